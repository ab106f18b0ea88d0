//! The mapping file of `har data import table` (TOML or JSON): which files, which columns hold
//! the time, ids, label and channels, and how to split subjects. Documented with examples in
//! `docs/import-table.md`; unknown keys are errors, so a typo is never silently ignored.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{HarError, Result};

/// A whole mapping file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableMapping {
    /// Where the subject id comes from (required: splits are by subject).
    pub subject: FieldSource,
    /// Where the session id comes from [default: the file's stem, one session per file].
    #[serde(default)]
    pub session: Option<FieldSource>,
    /// Where a device id comes from, when one file mixes devices [default: none].
    #[serde(default)]
    pub device: Option<FieldSource>,
    /// Describes the dataset in its manifest.
    pub dataset: DatasetSection,
    /// Which files to read.
    pub files: FilesSection,
    /// How each sample's time is known.
    pub time: TimeSection,
    /// The activity label and its classes.
    pub label: LabelSection,
    /// The modalities and their channel columns.
    #[serde(rename = "modality")]
    pub modalities: Vec<ModalityMapping>,
    /// Which subjects are held out for testing.
    #[serde(default)]
    pub split: SplitRule,
}

/// Where an id or a label comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FieldSource {
    /// A column of the table (any type; numbers are written without a trailing `.0`).
    Column(String),
    /// A named group of `files.name_pattern`, matched against each file's name.
    FromName(String),
    /// One value for every row of every file.
    Value(String),
}

/// The manifest's description of the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSection {
    /// Short name, e.g. `seglearn_watch`.
    pub name: String,
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// Licence of the data.
    #[serde(default)]
    pub licence: String,
    /// How to cite the data.
    #[serde(default)]
    pub citation: String,
}

/// The input files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSection {
    /// Glob patterns, relative to the source folder (the mapping file's folder unless `--src`).
    pub include: Vec<String>,
    /// A regular expression matched against each file's name (not its folder); its named
    /// groups feed `from_name` sources. A file it does not match is an error.
    #[serde(default)]
    pub name_pattern: Option<String>,
    /// `csv` or `parquet` [default: from each file's extension].
    #[serde(default)]
    pub format: Option<TableFormat>,
    /// CSV field delimiter, one ASCII character [default: `,`].
    #[serde(default)]
    pub delimiter: Option<String>,
}

/// A table file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableFormat {
    /// Comma- (or `delimiter`-) separated text with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
}

/// How sample times are known: a `column` (with its `unit` unless it is a timestamp type), or
/// only a `rate_hz` (rows are evenly spaced in file order), or both (times from the column,
/// nominal rate declared instead of estimated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSection {
    /// The time column.
    #[serde(default)]
    pub column: Option<String>,
    /// Unit of a numeric time column.
    #[serde(default)]
    pub unit: Option<TimeUnit>,
    /// The sample rate.
    #[serde(default)]
    pub rate_hz: Option<f64>,
}

/// Unit of a numeric time column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Seconds (fractions allowed).
    S,
    /// Milliseconds.
    Ms,
    /// Microseconds.
    Us,
    /// Nanoseconds.
    Ns,
}

impl TimeUnit {
    /// Nanoseconds per unit.
    pub fn ns(self) -> f64 {
        match self {
            TimeUnit::S => 1e9,
            TimeUnit::Ms => 1e6,
            TimeUnit::Us => 1e3,
            TimeUnit::Ns => 1.0,
        }
    }
}

/// The label: its source, how values map to class names, which values mean "no label".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSection {
    /// Where the label comes from (per row with `column`, per file with `from_name`).
    pub source: FieldSource,
    /// Class names in id order (ids 0, 1, …); a label naming no class is an error
    /// [default: the distinct names found, sorted].
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// Label value → class name, for coded labels (`{ "1" = "walking" }`); a value missing
    /// here is an error [default: the value is the class name].
    #[serde(default)]
    pub codes: Option<std::collections::BTreeMap<String, String>>,
    /// Values that mean "no label" (those samples are kept, unlabelled).
    #[serde(default)]
    pub unlabelled: Vec<String>,
}

/// One modality: name, units and the columns of its channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModalityMapping {
    /// Stream name, e.g. `acc`.
    pub name: String,
    /// Physical unit after `scale`, e.g. `g`, `m/s^2`, `rad/s`.
    pub units: String,
    /// The channel columns, in channel order.
    pub columns: Vec<String>,
    /// Channel names [default: the column names].
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    /// Factor every value is multiplied by (unit conversion) [default: 1].
    #[serde(default)]
    pub scale: Option<f64>,
}

impl ModalityMapping {
    /// The channel names.
    pub fn channel_names(&self) -> Vec<String> {
        self.channels
            .clone()
            .unwrap_or_else(|| self.columns.clone())
    }
}

/// Which subjects go to the test split: a list, or a seeded fraction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitRule {
    /// Test subjects by id.
    #[serde(default)]
    pub test_subjects: Option<Vec<String>>,
    /// Fraction of subjects (rounded, at least one, never all) drawn for testing.
    #[serde(default)]
    pub test_fraction: Option<f64>,
    /// Seed of the draw [default: 0].
    #[serde(default)]
    pub seed: u64,
}

impl Default for SplitRule {
    fn default() -> Self {
        Self {
            test_subjects: None,
            test_fraction: Some(0.2),
            seed: 0,
        }
    }
}

impl TableMapping {
    /// Reads a mapping from a `.toml` or `.json` file and checks it.
    pub fn from_path(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| HarError::io(path, e))?;
        let mapping: TableMapping = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => toml::from_str(&text)
                .map_err(|e| HarError::format(path, "mapping", e.to_string().trim_end()))?,
            Some("json") => serde_json::from_str(&text).map_err(|e| {
                HarError::format(
                    path,
                    format!("line {} column {}", e.line(), e.column()),
                    e.to_string(),
                )
            })?,
            _ => {
                return Err(HarError::format(
                    path,
                    "file name",
                    "a mapping file ends in .toml or .json",
                ))
            }
        };
        mapping.check(path)?;
        Ok(mapping)
    }

    /// Rejects what is ambiguous or cannot work, naming the key.
    pub fn check(&self, path: &Path) -> Result<()> {
        let bad = |key: &str, problem: String| Err(HarError::format(path, key, problem));
        if self.dataset.name.trim().is_empty() {
            return bad("dataset.name", "is empty".into());
        }
        if self.files.include.is_empty() {
            return bad("files.include", "lists no pattern".into());
        }
        let groups: BTreeSet<String> = match &self.files.name_pattern {
            Some(p) => regex::Regex::new(p)
                .map_err(|e| HarError::format(path, "files.name_pattern", e.to_string()))?
                .capture_names()
                .flatten()
                .map(str::to_string)
                .collect(),
            None => BTreeSet::new(),
        };
        if let Some(d) = &self.files.delimiter {
            if d.len() != 1 || !d.is_ascii() {
                return bad(
                    "files.delimiter",
                    format!("`{d}` is not one ASCII character"),
                );
            }
        }
        let sources = [
            ("subject", Some(&self.subject)),
            ("session", self.session.as_ref()),
            ("device", self.device.as_ref()),
            ("label.source", Some(&self.label.source)),
        ];
        for (key, source) in sources {
            if let Some(FieldSource::FromName(group)) = source {
                if !groups.contains(group) {
                    return bad(
                        key,
                        format!(
                            "files.name_pattern has no named group `{group}` (it has {groups:?})"
                        ),
                    );
                }
            }
        }
        match (&self.time.column, self.time.rate_hz) {
            (None, None) => return bad("time", "give `column` (with `unit`) or `rate_hz`".into()),
            (None, Some(_)) if self.time.unit.is_some() => {
                return bad("time.unit", "a unit without a time column".into())
            }
            _ => {}
        }
        if let Some(rate) = self.time.rate_hz {
            if !(rate.is_finite() && rate > 0.0 && rate <= 1e6) {
                return bad(
                    "time.rate_hz",
                    format!("{rate} is not a rate in (0, 1 MHz]"),
                );
            }
        }
        if self.modalities.is_empty() {
            return bad("modality", "no [[modality]] is declared".into());
        }
        let mut names = BTreeSet::new();
        let mut columns = BTreeSet::new();
        for (i, m) in self.modalities.iter().enumerate() {
            let key = format!("modality[{i}]");
            if m.name.is_empty()
                || !m
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return bad(
                    &key,
                    format!("name `{}` must be letters, digits or _", m.name),
                );
            }
            if !names.insert(m.name.clone()) {
                return bad(&key, format!("modality `{}` declared twice", m.name));
            }
            if m.columns.is_empty() {
                return bad(&key, "lists no column".into());
            }
            for c in &m.columns {
                if !columns.insert(c.clone()) {
                    return bad(&key, format!("column `{c}` is used by two channels"));
                }
                if self.time.column.as_ref() == Some(c) {
                    return bad(&key, format!("column `{c}` is also the time column"));
                }
            }
            if let Some(ch) = &m.channels {
                if ch.len() != m.columns.len() {
                    return bad(
                        &key,
                        format!("{} channel names for {} columns", ch.len(), m.columns.len()),
                    );
                }
            }
            if let Some(s) = m.scale {
                if !(s.is_finite() && s != 0.0) {
                    return bad(&key, format!("scale {s} is not a finite non-zero number"));
                }
            }
        }
        if let Some(classes) = &self.label.classes {
            let distinct: BTreeSet<&String> = classes.iter().collect();
            if distinct.len() != classes.len() || classes.is_empty() {
                return bad("label.classes", "empty or names a class twice".into());
            }
            if let Some(codes) = &self.label.codes {
                if let Some((code, name)) = codes.iter().find(|(_, n)| !classes.contains(n)) {
                    return bad(
                        "label.codes",
                        format!("`{code}` maps to `{name}`, which label.classes does not list"),
                    );
                }
            }
        }
        match (&self.split.test_subjects, self.split.test_fraction) {
            (Some(_), Some(_)) => {
                return bad(
                    "split",
                    "give test_subjects or test_fraction, not both".into(),
                )
            }
            (None, None) => return bad("split", "give test_subjects or test_fraction".into()),
            (None, Some(f)) if !(f > 0.0 && f < 1.0) => {
                return bad("split.test_fraction", format!("{f} is not in (0, 1)"))
            }
            _ => {}
        }
        Ok(())
    }

    /// The files the `include` patterns match under `src`, sorted and without repeats.
    pub fn files(&self, src: &Path, mapping_path: &Path) -> Result<Vec<PathBuf>> {
        let mut found = BTreeSet::new();
        for pattern in &self.files.include {
            let full = src.join(pattern);
            let text = full.to_string_lossy();
            let paths = glob::glob(&text).map_err(|e| {
                HarError::format(mapping_path, "files.include", format!("`{pattern}`: {e}"))
            })?;
            let before = found.len();
            for path in paths {
                let path = path.map_err(|e| HarError::io(e.path().to_path_buf(), e.into()))?;
                if path.is_file() {
                    found.insert(path);
                }
            }
            if found.len() == before {
                return Err(HarError::format(
                    mapping_path,
                    "files.include",
                    format!("`{pattern}` matches no file under {}", src.display()),
                ));
            }
        }
        Ok(found.into_iter().collect())
    }
}
