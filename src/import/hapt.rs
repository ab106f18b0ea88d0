//! UCI HAPT (Smartphone-Based Recognition of Human Activities and Postural Transitions,
//! Reyes-Ortiz et al., CC BY 4.0), from the CSV files that `scripts/hapt_unpickle.py` extracts
//! out of the KCC2020 pickle: one `userUU_recRR.csv` per recording, columns `acc-x, acc-y,
//! acc-z` (g), `gyro-x, gyro-y, gyro-z` (rad/s) at 50 Hz, `sequence` (sample index) and
//! `label` (-1 unlabelled, 1–12).

use std::path::{Path, PathBuf};

use crate::dataset::{ClassInfo, Dataset, DatasetManifest, DatasetWriter, SourceInfo, Split};
use crate::error::{HarError, Result};
use crate::recording::{
    intervals_from_sample_labels, ModalityInfo, ModalityStream, Recording, UNLABELLED,
};

/// HAPT's sample rate.
pub const SAMPLE_RATE_HZ: f64 = 50.0;
/// Test users of the UCI HAR cross-subject split.
pub const TEST_USERS: [u32; 9] = [2, 4, 9, 10, 12, 13, 18, 20, 24];
/// Class names for labels 1..=12 (6 activities, then 6 postural transitions).
pub const CLASS_NAMES: [&str; 12] = [
    "WALKING",
    "WALKING_UPSTAIRS",
    "WALKING_DOWNSTAIRS",
    "SITTING",
    "STANDING",
    "LAYING",
    "STAND_TO_SIT",
    "SIT_TO_STAND",
    "SIT_TO_LIE",
    "LIE_TO_SIT",
    "STAND_TO_LIE",
    "LIE_TO_STAND",
];
/// Number of basic activities (labels 1..=6); the rest are transitions.
pub const BASIC_ACTIVITIES: i32 = 6;

const ACC: [&str; 3] = ["acc-x", "acc-y", "acc-z"];
const GYRO: [&str; 3] = ["gyro-x", "gyro-y", "gyro-z"];

/// The HAPT modalities: accelerometer (g) and gyroscope (rad/s), 50 Hz.
pub fn modalities() -> Vec<ModalityInfo> {
    vec![
        ModalityInfo::inertial("acc", SAMPLE_RATE_HZ, "g", &["x", "y", "z"]),
        ModalityInfo::inertial("gyro", SAMPLE_RATE_HZ, "rad/s", &["x", "y", "z"]),
    ]
}

/// The manifest header of the HAPT dataset (recordings are added by the import).
pub fn manifest(source: Option<SourceInfo>) -> DatasetManifest {
    DatasetManifest {
        name: "hapt".into(),
        description: "UCI HAPT: 30 subjects, waist-mounted smartphone, 6 activities + 6 postural transitions".into(),
        licence: "CC BY 4.0".into(),
        citation: "J.-L. Reyes-Ortiz, L. Oneto, A. Samà, X. Parra, D. Anguita. Transition-Aware Human Activity \
                   Recognition Using Smartphones. Neurocomputing 171 (2016) 754-767."
            .into(),
        synthetic: false,
        source,
        classes: ClassInfo::numbered(&CLASS_NAMES, 1),
        modalities: modalities(),
        recordings: Vec::new(),
    }
}

/// Parses `userUU_recRR.csv` into (user, recording number).
fn parse_file_name(path: &Path) -> Option<(u32, u32)> {
    let stem = path.file_stem()?.to_str()?;
    let rest = stem.strip_prefix("user")?;
    let (user, rec) = rest.split_once("_rec")?;
    Some((user.parse().ok()?, rec.parse().ok()?))
}

/// Reads one extracted HAPT CSV into a recording.
pub fn read_csv(path: &Path) -> Result<Recording> {
    let text = std::fs::read_to_string(path).map_err(|e| HarError::io(path, e))?;
    parse_csv(path, &text)
}

/// Parses the text of a HAPT CSV file named `path` (`userUU_recRR.csv`); errors name the
/// file, line and column.
pub fn parse_csv(path: &Path, text: &str) -> Result<Recording> {
    let (user, rec) = parse_file_name(path)
        .ok_or_else(|| HarError::format(path, "file name", "expected userUU_recRR.csv"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| HarError::format(path, "line 1", "empty file"))?
        .split(',')
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| HarError::format(path, "header", format!("missing column `{name}`")))
    };
    let acc_cols = ACC.map(column);
    let gyro_cols = GYRO.map(column);
    let label_col = column("label")?;
    let acc_cols: Vec<usize> = acc_cols.into_iter().collect::<Result<_>>()?;
    let gyro_cols: Vec<usize> = gyro_cols.into_iter().collect::<Result<_>>()?;
    let sequence_col = column("sequence").ok();

    let period_ns = 1e9 / SAMPLE_RATE_HZ;
    let (mut acc, mut gyro, mut labels, mut timestamps) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != header.len() {
            return Err(HarError::format(
                path,
                format!("line {line_no}"),
                format!("{} fields, header has {}", fields.len(), header.len()),
            ));
        }
        let number = |col: usize| {
            super::parse_f64(
                path,
                || format!("line {line_no}, column `{}`", header[col]),
                fields[col],
            )
        };
        for &c in &acc_cols {
            acc.push(number(c)? as f32);
        }
        for &c in &gyro_cols {
            gyro.push(number(c)? as f32);
        }
        let label = number(label_col)?;
        let label = label as i32;
        if label != UNLABELLED && !(1..=CLASS_NAMES.len() as i32).contains(&label) {
            return Err(HarError::format(
                path,
                format!("line {line_no}, column `label`"),
                format!("unknown label {label}"),
            ));
        }
        labels.push(label);
        let index = match sequence_col {
            Some(c) => number(c)?,
            None => timestamps.len() as f64,
        };
        // A sample index must be a whole number whose timestamp fits i64 with room for the
        // arithmetic after it (MAX_SAMPLE_INDEX: 63 years at 50 Hz).
        if !(0.0..=MAX_SAMPLE_INDEX).contains(&index) || index.fract() != 0.0 {
            return Err(HarError::format(
                path,
                format!("line {line_no}, column `sequence`"),
                format!("sample index {index} is not a whole number in 0..={MAX_SAMPLE_INDEX}"),
            ));
        }
        timestamps.push((index * period_ns).round() as i64);
    }
    if let Some(i) = timestamps.windows(2).position(|w| w[1] <= w[0]) {
        return Err(HarError::format(
            path,
            format!("line {}, column `sequence`", i + 3),
            "sample index not increasing",
        ));
    }
    let streams = [("acc", acc), ("gyro", gyro)]
        .into_iter()
        .zip(modalities())
        .map(|((_, values), info)| ModalityStream {
            info,
            timestamps_ns: timestamps.clone(),
            values,
        })
        .collect();
    Ok(Recording {
        id: format!("user{user:02}_rec{rec:02}"),
        subject_id: format!("{user}"),
        session_id: format!("{rec}"),
        labels: intervals_from_sample_labels(&timestamps, &labels, period_ns),
        streams,
    })
}

/// Largest sample index a HAPT CSV may hold (10¹¹ samples: 63 years at 50 Hz; its timestamp,
/// 2·10¹⁸ ns, leaves i64 room for the arithmetic after it).
pub const MAX_SAMPLE_INDEX: f64 = 1e11;

/// The official split of a HAPT user.
pub fn split_of_user(user: &str) -> Split {
    match user.parse::<u32>() {
        Ok(u) if TEST_USERS.contains(&u) => Split::Test,
        _ => Split::Train,
    }
}

/// Imports every `user*_rec*.csv` in `csv_dir` into a dataset at `out`.
pub fn import(
    csv_dir: &Path,
    out: &Path,
    source: Option<SourceInfo>,
    progress: &dyn Fn(usize, usize),
) -> Result<Dataset> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(csv_dir)
        .map_err(|e| HarError::io(csv_dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv") && parse_file_name(p).is_some())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(HarError::format(
            csv_dir,
            "files",
            "no userUU_recRR.csv files; run `har data fetch hapt` first",
        ));
    }
    let mut writer = DatasetWriter::create(out, manifest(source))?;
    for (i, path) in files.iter().enumerate() {
        let recording = read_csv(path)?;
        let split = split_of_user(&recording.subject_id);
        writer.add(&recording, split)?;
        progress(i + 1, files.len());
    }
    writer.finish()
}
