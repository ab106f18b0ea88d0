//! Node settings from environment variables (declared under each node's `env:` in the
//! dataflow yml), with errors that name the variable.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{DataflowError, Result};

/// The variable's value, or `None` when unset or empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The variable parsed as `T`, or `default` when unset.
pub fn parse_or<T: FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|e| DataflowError::setting(name, format!("`{text}`: {e}"))),
    }
}

/// A required path.
pub fn path(name: &str) -> Result<PathBuf> {
    var(name)
        .map(PathBuf::from)
        .ok_or_else(|| DataflowError::setting(name, "is required"))
}

/// A comma-separated list (empty when unset).
pub fn list(name: &str) -> Vec<String> {
    var(name)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// A duration in milliseconds (fractions allowed), or `default_ms` when unset.
pub fn millis(name: &str, default_ms: f64) -> Result<Duration> {
    let ms: f64 = parse_or(name, default_ms)?;
    if !(ms.is_finite() && ms >= 0.0) {
        return Err(DataflowError::setting(
            name,
            format!("{ms} is not a duration in ms"),
        ));
    }
    Ok(Duration::from_secs_f64(ms / 1e3))
}

/// Wall clock in nanoseconds since the UNIX epoch (the clock of every `*_ts_ns` column).
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The id a model directory's outputs carry: `<directory name>@<first 12 hex digits of the
/// SHA-256 of its weights file>`; an error naming `setting` when the file cannot be read.
pub fn weights_id(dir: &Path, weights_file: &str, setting: &str) -> Result<String> {
    let path = dir.join(weights_file);
    let bytes = std::fs::read(&path)
        .map_err(|e| DataflowError::setting(setting, format!("{}: {e}", path.display())))?;
    let name = dir
        .file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
    Ok(format!(
        "{name}@{}",
        &har_core::hash::sha256_hex(&bytes)[..12]
    ))
}
