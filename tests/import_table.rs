//! `har data import table`: hand-written CSV and pandas-written Parquet tables become datasets
//! as the mapping says; what is ambiguous or wrong is an error naming file and key.

use std::path::{Path, PathBuf};

use har_core::dataset::{Dataset, Split};
use har_core::import::table::{self, TableMapping, TableReport};
use har_core::recording::UNLABELLED;

/// Writes `mapping` (TOML) into `dir` and parses it.
fn mapping(dir: &Path, text: &str) -> (TableMapping, PathBuf) {
    let path = dir.join("mapping.toml");
    std::fs::write(&path, text).unwrap();
    (TableMapping::from_path(&path).unwrap(), path)
}

/// Imports with `text` as the mapping, the tables being in `dir`.
fn import(dir: &Path, text: &str) -> har_core::Result<(Dataset, TableReport)> {
    let path = dir.join("mapping.toml");
    std::fs::write(&path, text).unwrap();
    let mapping = TableMapping::from_path(&path)?;
    table::import(&mapping, &path, dir, &dir.join("out/ds"), &|_, _| {})
}

/// Hand-written CSV: times in ms, subject and session from the file name, labels per row.
const CSV_MAPPING: &str = r#"
subject = { from_name = "subject" }
session = { from_name = "session" }

[dataset]
name = "hand"

[files]
include = ["raw/*.csv"]
name_pattern = '^(?P<subject>p\d+)_(?P<session>\w+)\.csv$'

[time]
column = "t_ms"
unit = "ms"

[label]
source = { column = "activity" }
unlabelled = ["none"]

[[modality]]
name = "acc"
units = "m/s^2"
columns = ["ax", "ay", "az"]
channels = ["x", "y", "z"]
scale = 0.5

[split]
test_subjects = ["p2"]
"#;

/// Writes `rows` CSV rows of a 20 Hz recording with a gap after row 5, a missing cell at row
/// 2 and labels walk / none / sit.
fn write_csv(path: &Path, offset_ms: i64) {
    let mut text = String::from("t_ms,ax,ay,az,activity\n");
    for i in 0..12i64 {
        let t = offset_ms + i * 50 + if i > 5 { 200 } else { 0 };
        let ay = if i == 2 {
            String::new()
        } else {
            format!("{}", i)
        };
        let label = match i {
            0..=4 => "walk",
            5..=6 => "none",
            _ => "sit",
        };
        text.push_str(&format!("{t},{}.0,{ay},2,{label}\n", i * 2));
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn hand_written_csv_becomes_the_recordings_the_mapping_describes() {
    let dir = tempfile::tempdir().unwrap();
    write_csv(&dir.path().join("raw/p1_morning.csv"), 1_000_000);
    write_csv(&dir.path().join("raw/p1_evening.csv"), 0);
    write_csv(&dir.path().join("raw/p2_morning.csv"), 5);
    let (dataset, report) = import(dir.path(), CSV_MAPPING).unwrap();
    assert_eq!(report.recordings, 3);
    assert_eq!(report.files, 3);
    assert_eq!(report.test_subjects, ["p2"]);
    assert_eq!(report.train_subjects, ["p1"]);
    assert!((report.rate_hz - 20.0).abs() < 1e-9, "{}", report.rate_hz);
    assert_eq!(report.gaps, 3, "one gap per recording");
    assert!((report.gap_seconds - 3.0 * 0.2).abs() < 1e-9);
    assert_eq!(report.missing_values["acc"], 3);
    assert_eq!(report.unlabelled_samples, 6);
    let names: Vec<&str> = report.classes.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(names, ["sit", "walk"], "distinct names, sorted");

    let entry = dataset
        .manifest
        .recordings
        .iter()
        .find(|r| r.id == "p1_morning")
        .unwrap();
    assert_eq!(entry.split, Split::Train);
    assert_eq!(entry.session_id, "morning");
    let recording = dataset.read(entry).unwrap();
    let acc = &recording.streams[0];
    assert_eq!(acc.info.channel_names, ["x", "y", "z"]);
    assert_eq!(acc.info.units, "m/s^2");
    assert_eq!(
        acc.timestamps_ns[0], 0,
        "times start at the recording's first row"
    );
    assert_eq!(acc.timestamps_ns[6], 500_000_000, "the gap is kept");
    assert_eq!(acc.sample(3), [3.0, 1.5, 1.0], "values scaled by 0.5");
    assert!(acc.sample(2)[1].is_nan(), "an empty cell is missing");
    let labels = recording.labels_at(&acc.timestamps_ns);
    let (sit, walk) = (0, 1);
    assert_eq!(labels[0], walk);
    assert_eq!(labels[5], UNLABELLED);
    assert_eq!(labels[11], sit);
    let test = dataset
        .manifest
        .recordings
        .iter()
        .find(|r| r.subject_id == "p2")
        .unwrap();
    assert_eq!(test.split, Split::Test);
}

/// What pandas writes by default: int64 subject and label codes, float64 channels, a
/// datetime64[ns] time column, one file holding several subjects and sessions interleaved.
const PANDAS_SCRIPT: &str = r#"
import sys
import numpy as np
import pandas as pd
rows = []
for subject in (1, 2, 3, 4, 5):
    for session in (0, 1):
        start = pd.Timestamp("2024-05-01 09:00") + pd.Timedelta(hours=session)
        for i in range(200):
            rows.append({
                "time": start + pd.Timedelta(milliseconds=10 * i),
                "subject": subject,
                "session": session,
                "code": 1 if i < 100 else 2,
                "acc_x": np.sin(i / 10), "acc_y": float(subject), "acc_z": 1.0,
                "gyr_x": 0.1, "gyr_y": 0.2, "gyr_z": float(session),
            })
frame = pd.DataFrame(rows).sample(frac=1.0, random_state=0).sort_values(["time"], kind="stable")
frame.to_parquet(sys.argv[1])
"#;

const PANDAS_MAPPING: &str = r#"
subject = { column = "subject" }
session = { column = "session" }

[dataset]
name = "pandas_defaults"

[files]
include = ["*.parquet"]

[time]
column = "time"

[label]
source = { column = "code" }
classes = ["standing", "walking"]
codes = { "1" = "standing", "2" = "walking" }

[[modality]]
name = "acc"
units = "g"
columns = ["acc_x", "acc_y", "acc_z"]

[[modality]]
name = "gyro"
units = "rad/s"
columns = ["gyr_x", "gyr_y", "gyr_z"]

[split]
test_fraction = 0.4
seed = 3
"#;

#[test]
fn a_table_written_by_pandas_defaults_imports_and_splits_by_seeded_fraction() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("write.py");
    std::fs::write(&script, PANDAS_SCRIPT).unwrap();
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(dir.path().join("all.parquet"))
        .output()
        .expect("python3 runs (CI installs pandas and pyarrow)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (dataset, report) = import(dir.path(), PANDAS_MAPPING).unwrap();
    assert_eq!(report.recordings, 10, "5 subjects × 2 sessions");
    assert_eq!(report.test_subjects.len(), 2, "40 % of 5 subjects");
    assert!((report.rate_hz - 100.0).abs() < 1e-6, "{}", report.rate_hz);
    assert_eq!(report.gaps, 0);
    assert_eq!(report.classes[1].2, 10, "every recording walks");
    assert!(
        (report.classes[0].3 - 10.0).abs() < 1e-6,
        "1 s of standing × 10"
    );
    let again = import(dir.path(), PANDAS_MAPPING).unwrap().1;
    assert_eq!(
        again.test_subjects, report.test_subjects,
        "the seed decides"
    );
    let entry = dataset
        .manifest
        .recordings
        .iter()
        .find(|r| r.id == "3_1")
        .unwrap();
    let recording = dataset.read(entry).unwrap();
    assert_eq!(recording.streams.len(), 2);
    assert_eq!(recording.streams[0].len(), 200);
    assert_eq!(
        recording.streams[0].sample(5)[1],
        3.0,
        "subject 3's rows only"
    );
    assert_eq!(
        recording.streams[1].sample(0)[2],
        1.0,
        "session 1's rows only"
    );
    assert_eq!(recording.streams[0].timestamps_ns[199], 1_990_000_000);
    assert!((recording.streams[0].sample(7)[0] - 0.7f32.sin()).abs() < 1e-6);
}

/// The error of an import with `text`, the tables in `dir`.
fn import_error(dir: &Path, text: &str) -> String {
    match import(dir, text) {
        Ok(_) => panic!("the import should fail"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn ambiguous_or_wrong_mappings_are_errors_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    write_csv(&dir.path().join("raw/p1_a.csv"), 0);
    write_csv(&dir.path().join("raw/p2_a.csv"), 0);
    let cases: &[(&str, &str, &str)] = &[
        ("[time]\ncolumn", "[time]\ncolum", "unknown field `colum`"),
        (
            "unit = \"ms\"",
            "unit = \"ms\"\nrate_hz = -3.0",
            "time.rate_hz",
        ),
        (
            "test_subjects = [\"p2\"]",
            "test_subjects = [\"p9\"]",
            "subject `p9` has no recording",
        ),
        (
            "test_subjects = [\"p2\"]",
            "test_subjects = [\"p2\"]\ntest_fraction = 0.5",
            "not both",
        ),
        (
            "columns = [\"ax\", \"ay\", \"az\"]",
            "columns = [\"ax\", \"ay\", \"ax\"]",
            "column `ax` is used by two channels",
        ),
        (
            "columns = [\"ax\", \"ay\", \"az\"]",
            "columns = [\"ax\", \"ay\", \"acc_z\"]",
            "acc_z: missing column (found [\"t_ms\", \"ax\", \"ay\", \"az\", \"activity\"])",
        ),
        (
            "columns = [\"ax\", \"ay\", \"az\"]",
            "columns = [\"ax\", \"ay\", \"activity\"]",
            "activity: type Utf8: expected numbers",
        ),
        (
            "unlabelled = [\"none\"]",
            "classes = [\"walk\", \"sit\"]",
            "class `none` is not in label.classes",
        ),
        (
            "session = { from_name = \"session\" }",
            "session = { from_name = \"day\" }",
            "no named group `day`",
        ),
        (
            "(?P<session>\\w+)",
            "(?P<session>[a-z])x",
            "does not match files.name_pattern",
        ),
        ("raw/*.csv", "raw/*.parquet", "matches no file"),
        ("unit = \"ms\"", "", "needs time.unit"),
    ];
    for (from, to, expected) in cases {
        assert!(CSV_MAPPING.contains(from), "{from}");
        let text = CSV_MAPPING.replacen(from, to, 1);
        let err = import_error(dir.path(), &text);
        assert!(err.contains(expected), "{to}: {err}");
    }
}

#[test]
fn rows_out_of_time_order_and_a_recording_split_over_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_csv(&dir.path().join("raw/p1_a.csv"), 0);
    let path = dir.path().join("raw/p2_a.csv");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        "t_ms,ax,ay,az,activity\n0,1,1,1,walk\n50,1,1,1,walk\n50,1,1,1,walk\n",
    )
    .unwrap();
    let err = import_error(dir.path(), CSV_MAPPING);
    assert!(err.contains("p2_a.csv"), "{err}");
    assert!(err.contains("does not increase at data row 3"), "{err}");

    std::fs::remove_file(&path).unwrap();
    write_csv(&dir.path().join("raw/p2_a.csv"), 0);
    write_csv(&dir.path().join("raw/p2_b.csv"), 0);
    let one_session = CSV_MAPPING.replacen(
        "session = { from_name = \"session\" }",
        "session = { value = \"only\" }",
        1,
    );
    let err = import_error(dir.path(), &one_session);
    assert!(err.contains("recording `p2_only`"), "{err}");
    assert!(err.contains("is also in"), "{err}");
}

#[test]
fn a_failed_import_leaves_the_previous_dataset_in_place() {
    let dir = tempfile::tempdir().unwrap();
    write_csv(&dir.path().join("raw/p1_a.csv"), 0);
    write_csv(&dir.path().join("raw/p2_a.csv"), 0);
    import(dir.path(), CSV_MAPPING).unwrap();
    std::fs::write(
        dir.path().join("raw/p3_a.csv"),
        "t_ms,ax,ay,az,activity\n0,x,1,1,walk\n",
    )
    .unwrap();
    import_error(dir.path(), CSV_MAPPING);
    let kept = Dataset::open(&dir.path().join("out/ds")).unwrap();
    assert_eq!(kept.manifest.recordings.len(), 2);
}

/// Every TOML and JSON mapping in docs/import-table.md parses and passes the checks, and the
/// example in examples/seglearn-watch does too.
#[test]
fn the_documented_mappings_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("docs/import-table.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut seen = 0;
    for (fence, ext) in [("```toml\n", "toml"), ("```json\n", "json")] {
        for block in docs.split(fence).skip(1) {
            let text = block.split_once("```").unwrap().0;
            let path = dir.path().join(format!("m{seen}.{ext}"));
            std::fs::write(&path, text).unwrap();
            TableMapping::from_path(&path).unwrap_or_else(|e| panic!("{ext} block {seen}: {e}"));
            seen += 1;
        }
    }
    assert!(seen >= 3, "{seen} mappings in the docs");
    let (watch, _) = mapping(
        dir.path(),
        &std::fs::read_to_string(root.join("examples/seglearn-watch/mapping.toml")).unwrap(),
    );
    assert_eq!(watch.modalities.len(), 2);
}
