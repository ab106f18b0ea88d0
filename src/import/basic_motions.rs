//! UEA BasicMotions: smartwatch accelerometer + gyroscope, 6 channels × 100 samples at 10 Hz,
//! 4 classes, 40 train / 40 test cases, as `.ts` files (sktime/aeon time-series format)
//! shipped in the `aeon==1.6.0` wheel. Each case becomes one 10-second recording.

use std::path::Path;

use crate::dataset::{ClassInfo, Dataset, DatasetManifest, DatasetWriter, SourceInfo, Split};
use crate::error::{HarError, Result};
use crate::recording::{LabelInterval, ModalityInfo, ModalityStream, Recording};

/// BasicMotions' sample rate.
pub const SAMPLE_RATE_HZ: f64 = 10.0;

/// A parsed `.ts` file: class names in header order, and cases.
#[derive(Debug, Clone, PartialEq)]
pub struct TsFile {
    /// `@problemName`.
    pub problem_name: String,
    /// Class names from `@classLabel true …`, in order; a case's label is an index into it.
    pub class_names: Vec<String>,
    /// The cases.
    pub cases: Vec<TsCase>,
}

/// One case (instance) of a `.ts` file.
#[derive(Debug, Clone, PartialEq)]
pub struct TsCase {
    /// One series per dimension (NaN for `?`).
    pub dimensions: Vec<Vec<f32>>,
    /// Index into [`TsFile::class_names`].
    pub label: usize,
}

/// Parses a `.ts` file. Supports `@timeStamps false`, `@missing` (`?` values) and equal or
/// unequal lengths; errors name the file, line and field.
pub fn parse_ts(path: &Path, text: &str) -> Result<TsFile> {
    let mut problem_name = String::new();
    let mut class_names = Vec::new();
    let mut dimensions: Option<usize> = None;
    let mut in_data = false;
    let mut cases = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let place = || format!("line {line_no}");
        if !in_data {
            let mut words = line.split_whitespace();
            let tag = words.next().unwrap_or_default().to_ascii_lowercase();
            let rest: Vec<&str> = words.collect();
            match tag.as_str() {
                "@problemname" => problem_name = rest.join(" "),
                "@timestamps" if rest.first().is_some_and(|v| v.eq_ignore_ascii_case("true")) => {
                    return Err(HarError::format(
                        path,
                        place(),
                        "@timeStamps true is not supported",
                    ));
                }
                "@dimensions" => {
                    dimensions =
                        Some(rest.first().and_then(|v| v.parse().ok()).ok_or_else(|| {
                            HarError::format(path, place(), "@dimensions needs a number")
                        })?)
                }
                "@classlabel" if rest.first().is_some_and(|v| v.eq_ignore_ascii_case("true")) => {
                    class_names = rest[1..].iter().map(|s| s.to_string()).collect();
                }
                "@data" => in_data = true,
                _ => {}
            }
            continue;
        }
        if class_names.is_empty() {
            return Err(HarError::format(
                path,
                "@classLabel",
                "no class labels declared before @data",
            ));
        }
        let mut parts: Vec<&str> = line.split(':').collect();
        let label_text = parts.pop().unwrap_or_default().trim();
        let label = class_names
            .iter()
            .position(|c| c == label_text)
            .ok_or_else(|| {
                HarError::format(
                    path,
                    format!("line {line_no}, class label"),
                    format!("unknown label `{label_text}`"),
                )
            })?;
        if let Some(d) = dimensions {
            if parts.len() != d {
                return Err(HarError::format(
                    path,
                    place(),
                    format!("{} dimensions, header declares {d}", parts.len()),
                ));
            }
        }
        let series = parts
            .iter()
            .enumerate()
            .map(|(dim, part)| {
                part.split(',')
                    .map(|v| match v.trim() {
                        "?" | "NaN" => Ok(f32::NAN),
                        v => {
                            super::parse_f64(path, || format!("line {line_no}, dimension {dim}"), v)
                                .map(|x| x as f32)
                        }
                    })
                    .collect::<Result<Vec<f32>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(d) = series.iter().position(|s| s.len() != series[0].len()) {
            return Err(HarError::format(
                path,
                format!("line {line_no}, dimension {d}"),
                "dimensions differ in length",
            ));
        }
        cases.push(TsCase {
            dimensions: series,
            label,
        });
    }
    if !in_data {
        return Err(HarError::format(
            path,
            "@data",
            "missing @data section (truncated file?)",
        ));
    }
    Ok(TsFile {
        problem_name,
        class_names,
        cases,
    })
}

/// The manifest header of BasicMotions.
pub fn manifest(class_names: &[String], source: Option<SourceInfo>) -> DatasetManifest {
    DatasetManifest {
        name: "basic_motions".into(),
        description: "UEA BasicMotions: smartwatch acc + gyro, 4 students, 4 activities, 10 s at 10 Hz per case".into(),
        licence: "UEA/UCR time series archive: free for research use with citation".into(),
        citation: "A. Bagnall et al. The UEA multivariate time series classification archive, 2018. arXiv:1811.00075"
            .into(),
        synthetic: false,
        source,
        classes: ClassInfo::numbered(class_names, 0),
        modalities: vec![
            ModalityInfo::inertial("acc", SAMPLE_RATE_HZ, "device units", &["x", "y", "z"]),
            ModalityInfo::inertial("gyro", SAMPLE_RATE_HZ, "device units", &["x", "y", "z"]),
        ],
        recordings: Vec::new(),
    }
}

/// Turns one 6-dimension case into a recording (dims 0–2 acc, 3–5 gyro).
fn case_recording(
    path: &Path,
    id: String,
    case: &TsCase,
    modalities: &[ModalityInfo],
) -> Result<Recording> {
    if case.dimensions.len() != 6 {
        return Err(HarError::format(
            path,
            &id,
            format!("{} dimensions, BasicMotions has 6", case.dimensions.len()),
        ));
    }
    let n = case.dimensions[0].len();
    let period_ns = 1e9 / SAMPLE_RATE_HZ;
    let timestamps: Vec<i64> = (0..n)
        .map(|i| (i as f64 * period_ns).round() as i64)
        .collect();
    let streams = modalities
        .iter()
        .enumerate()
        .map(|(m, info)| ModalityStream {
            info: info.clone(),
            timestamps_ns: timestamps.clone(),
            values: (0..n)
                .flat_map(|t| (0..3).map(move |c| (t, 3 * m + c)))
                .map(|(t, d)| case.dimensions[d][t])
                .collect(),
        })
        .collect();
    Ok(Recording {
        session_id: id.clone(),
        id,
        subject_id: "unknown".into(),
        streams,
        labels: vec![LabelInterval {
            start_ns: 0,
            end_ns: (n as f64 * period_ns).round() as i64,
            label: case.label as i32,
        }],
    })
}

/// Imports `BasicMotions_TRAIN.ts` and `BasicMotions_TEST.ts` into a dataset at `out`.
pub fn import(
    train_ts: &Path,
    test_ts: &Path,
    out: &Path,
    source: Option<SourceInfo>,
) -> Result<Dataset> {
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map_err(|e| HarError::io(p, e))
            .and_then(|t| parse_ts(p, &t))
    };
    let train = read(train_ts)?;
    let test = read(test_ts)?;
    if train.class_names != test.class_names {
        return Err(HarError::format(
            test_ts,
            "@classLabel",
            "classes differ from the TRAIN file's",
        ));
    }
    let manifest = manifest(&train.class_names, source);
    let modalities = manifest.modalities.clone();
    let mut writer = DatasetWriter::create(out, manifest)?;
    for (file, path, split) in [
        (&train, train_ts, Split::Train),
        (&test, test_ts, Split::Test),
    ] {
        for (i, case) in file.cases.iter().enumerate() {
            let recording = case_recording(path, format!("{split}_case{i:03}"), case, &modalities)?;
            writer.add(&recording, split)?;
        }
    }
    writer.finish()
}
