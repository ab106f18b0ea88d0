//! `har data import table`: plain tables of samples (CSV or Parquet, one row per sample) into
//! a dataset folder, driven by a [`TableMapping`] file. Rows are grouped into recordings by
//! (file, subject, session, device); a recording never spans two files. What it made is
//! returned as a [`TableReport`]; anything ambiguous is an error naming the file and field.
//! The mapping's keys, with examples, are in `docs/import-table.md`.

pub mod mapping;
mod read;
mod report;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

pub use mapping::TableMapping;
use mapping::{FieldSource, TableFormat};
pub use report::TableReport;

use crate::dataset::{ClassInfo, Dataset, DatasetManifest, DatasetWriter, Split};
use crate::error::{HarError, Result};
use crate::recording::{
    intervals_from_sample_labels, ModalityInfo, ModalityStream, Recording, UNLABELLED,
};
use crate::rng::Rng;

/// Rows of one recording, gathered from one file.
struct Pending {
    id: String,
    subject: String,
    session: String,
    file: PathBuf,
    /// Times from the recording's first sample, ns.
    times_ns: Vec<i64>,
    /// Row-major values per modality.
    values: Vec<Vec<f32>>,
    /// Class name per sample (`None`: unlabelled).
    labels: Vec<Option<String>>,
}

/// A field of every row of one file: per row, or one value for the file.
enum Resolved {
    PerRow(Vec<String>),
    Const(String),
}

impl Resolved {
    fn at(&self, row: usize) -> &str {
        match self {
            Resolved::PerRow(v) => &v[row],
            Resolved::Const(v) => v,
        }
    }
}

/// Keeps the characters a folder name may safely hold.
fn sanitise(id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() || clean.starts_with('.') {
        format!("_{clean}")
    } else {
        clean
    }
}

/// Imports the files `mapping` selects under `src` into a dataset at `out`. `progress` is told
/// (files done, files in all).
pub fn import(
    mapping: &TableMapping,
    mapping_path: &Path,
    src: &Path,
    out: &Path,
    progress: &dyn Fn(usize, usize),
) -> Result<(Dataset, TableReport)> {
    mapping.check(mapping_path)?;
    let files = mapping.files(src, mapping_path)?;
    let name_pattern = mapping
        .files
        .name_pattern
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| HarError::format(mapping_path, "files.name_pattern", e.to_string()))?;
    let delimiter = mapping
        .files
        .delimiter
        .as_deref()
        .map_or(b',', |d| d.as_bytes()[0]);
    let mut pending: Vec<Pending> = Vec::new();
    let mut where_is: HashMap<String, PathBuf> = HashMap::new();
    for (done, file) in files.iter().enumerate() {
        let format = read::format_of(file, mapping.files.format)?;
        let found = read_file(mapping, file, format, delimiter, name_pattern.as_ref())?;
        for p in found {
            if let Some(other) = where_is.insert(p.id.clone(), p.file.clone()) {
                return Err(HarError::format(
                    &p.file,
                    "session",
                    format!(
                        "recording `{}` (subject `{}`, session `{}`) is also in {}: a recording \
                         lies in one file, so give each file its own session",
                        p.id,
                        p.subject,
                        p.session,
                        other.display()
                    ),
                ));
            }
            pending.push(p);
        }
        progress(done + 1, files.len());
    }
    build_dataset(mapping, mapping_path, files.len(), pending, out)
}

/// The recordings of one file.
fn read_file(
    mapping: &TableMapping,
    file: &Path,
    format: TableFormat,
    delimiter: u8,
    name_pattern: Option<&regex::Regex>,
) -> Result<Vec<Pending>> {
    let batch = read::read_table(file, format, delimiter)?;
    let rows = batch.num_rows();
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let captures = match name_pattern {
        Some(re) => Some(re.captures(&file_name).ok_or_else(|| {
            HarError::format(
                file,
                "file name",
                format!("does not match files.name_pattern `{}`", re.as_str()),
            )
        })?),
        None => None,
    };
    let resolve = |source: &FieldSource| -> Result<Resolved> {
        Ok(match source {
            FieldSource::Column(c) => Resolved::PerRow(read::text_column(file, &batch, c)?),
            FieldSource::Value(v) => Resolved::Const(v.clone()),
            FieldSource::FromName(group) => Resolved::Const(
                captures
                    .as_ref()
                    .and_then(|c| c.name(group))
                    .map(|m| m.as_str().to_string())
                    .ok_or_else(|| {
                        HarError::format(file, "file name", format!("group `{group}` is empty"))
                    })?,
            ),
        })
    };
    let subject = resolve(&mapping.subject)?;
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let session = match &mapping.session {
        Some(source) => resolve(source)?,
        None => Resolved::Const(stem),
    };
    let device = mapping.device.as_ref().map(&resolve).transpose()?;
    let label = resolve(&mapping.label.source)?;
    let times = match &mapping.time.column {
        Some(c) => Some(read::time_column(file, &batch, c, mapping.time.unit)?),
        None => None,
    };
    let channels: Vec<(f64, Vec<Vec<f64>>)> = mapping
        .modalities
        .iter()
        .map(|m| {
            let columns = m
                .columns
                .iter()
                .map(|c| read::number_column(file, &batch, c))
                .collect::<Result<Vec<_>>>()?;
            Ok((m.scale.unwrap_or(1.0), columns))
        })
        .collect::<Result<_>>()?;

    // Group rows by recording key, in order of first appearance.
    let mut order: Vec<(String, String, Option<String>)> = Vec::new();
    let mut members: HashMap<(String, String, Option<String>), Vec<usize>> = HashMap::new();
    for row in 0..rows {
        let key = (
            subject.at(row).to_string(),
            session.at(row).to_string(),
            device.as_ref().map(|d| d.at(row).to_string()),
        );
        if key.0.is_empty() {
            return Err(HarError::format(
                file,
                "subject",
                format!("empty subject at data row {}", row + 1),
            ));
        }
        members
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(row);
    }
    let mut found = Vec::with_capacity(order.len());
    for key in order {
        let rows = &members[&key];
        let (subject, session, device) = key;
        let mut id = format!("{}_{}", sanitise(&subject), sanitise(&session));
        if let Some(d) = &device {
            id = format!("{id}_{}", sanitise(d));
        }
        let times_ns = match &times {
            Some(t) => relative_times(file, &id, rows, t)?,
            None => {
                let period = 1e9 / mapping.time.rate_hz.unwrap_or(1.0);
                (0..rows.len())
                    .map(|i| (i as f64 * period).round() as i64)
                    .collect()
            }
        };
        let values = channels
            .iter()
            .map(|(scale, columns)| {
                rows.iter()
                    .flat_map(|&r| columns.iter().map(move |c| (c[r] * scale) as f32))
                    .collect()
            })
            .collect();
        let labels = rows
            .iter()
            .map(|&r| class_of(mapping, file, label.at(r)))
            .collect::<Result<_>>()?;
        found.push(Pending {
            id,
            subject,
            session,
            file: file.to_path_buf(),
            times_ns,
            values,
            labels,
        });
    }
    Ok(found)
}

/// The rows' times from the first one; they must increase strictly.
fn relative_times(file: &Path, id: &str, rows: &[usize], times: &[i64]) -> Result<Vec<i64>> {
    let first = times[rows[0]];
    let mut out = Vec::with_capacity(rows.len());
    for (k, &r) in rows.iter().enumerate() {
        if k > 0 && times[r] <= times[rows[k - 1]] {
            return Err(HarError::format(
                file,
                "time",
                format!(
                    "recording `{id}`: time does not increase at data row {} ({} ns after {} ns); \
                     sort the rows or give a session column that separates recordings",
                    r + 1,
                    times[r],
                    times[rows[k - 1]]
                ),
            ));
        }
        // Both lie within ±4.6e18, so the difference fits i64.
        out.push(times[r] - first);
    }
    Ok(out)
}

/// The class name of a label value (`None`: unlabelled); unknown codes are errors.
fn class_of(mapping: &TableMapping, file: &Path, value: &str) -> Result<Option<String>> {
    let label = &mapping.label;
    if label.unlabelled.iter().any(|u| u == value) {
        return Ok(None);
    }
    let name = match &label.codes {
        Some(codes) => codes.get(value).cloned().ok_or_else(|| {
            HarError::format(
                file,
                "label",
                format!("value `{value}` is not in label.codes nor label.unlabelled"),
            )
        })?,
        None => value.to_string(),
    };
    if let Some(classes) = &label.classes {
        if !classes.contains(&name) {
            return Err(HarError::format(
                file,
                "label",
                format!("class `{name}` is not in label.classes nor label.unlabelled"),
            ));
        }
    }
    Ok(Some(name))
}

/// Class names in id order: declared, or the distinct names found (numbers in numeric order).
fn class_names(mapping: &TableMapping, pending: &[Pending]) -> Vec<String> {
    if let Some(classes) = &mapping.label.classes {
        return classes.clone();
    }
    let found: BTreeSet<&String> = pending
        .iter()
        .flat_map(|p| p.labels.iter().flatten())
        .collect();
    let mut names: Vec<String> = found.into_iter().cloned().collect();
    if names.iter().all(|n| n.parse::<f64>().is_ok()) {
        names.sort_by(|a, b| {
            let (a, b) = (
                a.parse::<f64>().unwrap_or(0.0),
                b.parse::<f64>().unwrap_or(0.0),
            );
            a.total_cmp(&b)
        });
    }
    names
}

/// Median of a non-empty list.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The test subjects under the mapping's split rule.
fn test_subjects(
    mapping: &TableMapping,
    mapping_path: &Path,
    subjects: &BTreeSet<String>,
) -> Result<BTreeSet<String>> {
    if let Some(list) = &mapping.split.test_subjects {
        if let Some(missing) = list.iter().find(|s| !subjects.contains(*s)) {
            return Err(HarError::format(
                mapping_path,
                "split.test_subjects",
                format!("subject `{missing}` has no recording (subjects: {subjects:?})"),
            ));
        }
        if list.len() >= subjects.len() {
            return Err(HarError::format(
                mapping_path,
                "split.test_subjects",
                "every subject would be a test subject",
            ));
        }
        return Ok(list.iter().cloned().collect());
    }
    let fraction = mapping.split.test_fraction.unwrap_or(0.2);
    if subjects.len() < 2 {
        return Err(HarError::format(
            mapping_path,
            "split",
            format!(
                "{} subject(s): a subject split needs two or more",
                subjects.len()
            ),
        ));
    }
    let count = ((subjects.len() as f64 * fraction).round() as usize).clamp(1, subjects.len() - 1);
    let mut order: Vec<&String> = subjects.iter().collect();
    let mut rng = Rng::new(mapping.split.seed);
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    Ok(order.into_iter().take(count).cloned().collect())
}

/// Turns the gathered rows into recordings, splits them and writes the dataset.
fn build_dataset(
    mapping: &TableMapping,
    mapping_path: &Path,
    files: usize,
    pending: Vec<Pending>,
    out: &Path,
) -> Result<(Dataset, TableReport)> {
    let mut report = TableReport {
        files,
        ..TableReport::default()
    };
    let (usable, short): (Vec<Pending>, Vec<Pending>) =
        pending.into_iter().partition(|p| p.times_ns.len() >= 2);
    report.skipped_short = short.iter().map(|p| p.id.clone()).collect();
    if usable.is_empty() {
        return Err(HarError::format(
            mapping_path,
            "files",
            "no recording with two or more samples",
        ));
    }
    let estimated: Vec<f64> = usable
        .iter()
        .map(|p| {
            let diffs = p
                .times_ns
                .windows(2)
                .map(|w| (w[1] - w[0]) as f64)
                .collect();
            1e9 / median(diffs)
        })
        .collect();
    let rate_hz = mapping
        .time
        .rate_hz
        .unwrap_or_else(|| median(estimated.clone()));
    report.rate_hz = rate_hz;
    report.rate_declared = mapping.time.rate_hz.is_some();
    report.estimated_rate_range = (
        estimated.iter().copied().fold(f64::INFINITY, f64::min),
        estimated.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let period_ns = 1e9 / rate_hz;
    let names = class_names(mapping, &usable);
    let ids: HashMap<&String, i32> = names.iter().zip(0..).collect();
    let infos: Vec<ModalityInfo> = mapping
        .modalities
        .iter()
        .map(|m| {
            let channels = m.channel_names();
            let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
            ModalityInfo::inertial(&m.name, rate_hz, &m.units, &channels)
        })
        .collect();
    let subjects: BTreeSet<String> = usable.iter().map(|p| p.subject.clone()).collect();
    let test = test_subjects(mapping, mapping_path, &subjects)?;
    let manifest = DatasetManifest {
        name: mapping.dataset.name.clone(),
        description: mapping.dataset.description.clone(),
        licence: mapping.dataset.licence.clone(),
        citation: mapping.dataset.citation.clone(),
        synthetic: false,
        source: None,
        classes: ClassInfo::numbered(&names, 0),
        modalities: infos.clone(),
        recordings: Vec::new(),
    };
    let mut writer = DatasetWriter::create(out, manifest)?;
    let mut class_stats: BTreeMap<i32, (usize, f64)> = BTreeMap::new();
    for p in usable {
        report.note_gaps(&p.times_ns, period_ns);
        let labels: Vec<i32> = p
            .labels
            .iter()
            .map(|l| l.as_ref().map_or(UNLABELLED, |n| ids[n]))
            .collect();
        report.unlabelled_samples += labels.iter().filter(|&&l| l == UNLABELLED).count();
        let intervals = intervals_from_sample_labels(&p.times_ns, &labels, period_ns);
        let mut seen = BTreeSet::new();
        for iv in &intervals {
            let entry = class_stats.entry(iv.label).or_default();
            entry.1 += (iv.end_ns - iv.start_ns) as f64 / 1e9;
            if seen.insert(iv.label) {
                entry.0 += 1;
            }
        }
        let streams = infos
            .iter()
            .zip(p.values)
            .map(|(info, values)| {
                *report.missing_values.entry(info.name.clone()).or_default() +=
                    values.iter().filter(|v| v.is_nan()).count();
                ModalityStream {
                    info: info.clone(),
                    timestamps_ns: p.times_ns.clone(),
                    values,
                }
            })
            .collect();
        report.samples += p.times_ns.len();
        report.seconds += p.times_ns.len() as f64 * period_ns / 1e9;
        let split = if test.contains(&p.subject) {
            Split::Test
        } else {
            Split::Train
        };
        let recording = Recording {
            id: p.id,
            subject_id: p.subject,
            session_id: p.session,
            streams,
            labels: intervals,
        };
        writer
            .add(&recording, split)
            .map_err(|e| HarError::format(&p.file, &recording.id, e.to_string()))?;
        report.recordings += 1;
    }
    report.train_subjects = subjects.difference(&test).cloned().collect();
    report.test_subjects = test.into_iter().collect();
    report.classes = names
        .iter()
        .enumerate()
        .map(|(id, name)| {
            let (recordings, seconds) = class_stats.get(&(id as i32)).copied().unwrap_or_default();
            (id as i32, name.clone(), recordings, seconds)
        })
        .collect();
    Ok((writer.finish()?, report))
}
