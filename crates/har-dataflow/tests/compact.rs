//! Compaction of the log tables: a finished run's many small files become a few files per UTC
//! day, sorted by time, with exactly the same rows, every file of its table's schema; a run
//! still being written is left alone; compacting again changes nothing; a log writer that
//! resumes a compacted run adds files beside the compacted ones without touching them.
//! (Rows from `har_dataflow::synth_logs`: SYNTHETIC.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, UInt64Type};
use har_core::schema::{check_batch, SchemaName};
use har_dataflow::compact::{compact, day_of, CompactSettings};
use har_dataflow::logsink::{FlushPolicy, RollingParquetWriter};
use har_dataflow::synth_logs::{synthesise, SynthSettings};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn read(dir: &Path) -> Vec<RecordBatch> {
    files(dir)
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "parquet"))
        .flat_map(|f| har_core::recording::read_parquet(f).unwrap().0)
        .collect()
}

/// (device, window, logged time) of every prediction row, sorted.
fn keys(batches: &[RecordBatch]) -> Vec<(String, u64, i64)> {
    let mut out = Vec::new();
    for b in batches {
        let device = b.column_by_name("device_id").unwrap().as_string::<i32>();
        let window = b
            .column_by_name("window_id")
            .unwrap()
            .as_primitive::<UInt64Type>();
        let logged = b
            .column_by_name("logged_ts_ns")
            .unwrap()
            .as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.push((
                device.value(i).to_string(),
                window.value(i),
                logged.value(i),
            ));
        }
    }
    out.sort();
    out
}

const SETTINGS: CompactSettings = CompactSettings {
    file_rows: 700,
    min_age: Duration::ZERO,
};

#[test]
fn a_finished_run_becomes_few_sorted_files_per_day_with_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    // 2 runs of 1,500 rows in 60 files each; the second run crosses midnight UTC.
    let synth = SynthSettings {
        rows: 3_000,
        files_per_run: 60,
        runs: 2,
        devices: 8,
        seed: 3,
        start_ns: 1_764_460_800_000_000_000 + 86_400_000_000_000 - 300_000_000_000,
    };
    synthesise(dir.path(), &synth).unwrap();
    let predictions = dir.path().join("predictions");
    let before = keys(&read(&predictions));
    assert_eq!(before.len(), 3_000);
    let report = compact(dir.path(), &SchemaName::ALL, &SETTINGS).unwrap();
    assert_eq!(report.compacted, 4, "2 runs × (predictions, node_health)");
    assert!(report.live.is_empty());
    let after_batches = read(&predictions);
    assert_eq!(keys(&after_batches), before, "the same rows");
    for b in &after_batches {
        check_batch(SchemaName::LogPredictions, b).unwrap();
    }
    for run in ["synthetic-0000", "synthetic-0001"] {
        let run_dir = predictions.join(format!("run_id={run}"));
        let compacted = files(&run_dir);
        assert!(compacted.len() <= 4, "{compacted:?}");
        let mut previous = i64::MIN;
        for f in &compacted {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            assert!(name.starts_with("compact-"), "{name}");
            let day = f
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            for b in har_core::recording::read_parquet(f).unwrap().0 {
                let t = b
                    .column_by_name("logged_ts_ns")
                    .unwrap()
                    .as_primitive::<Int64Type>();
                for v in t.values() {
                    assert_eq!(
                        format!("day={}", day_of(*v)),
                        day,
                        "rows in their day's folder"
                    );
                    assert!(*v >= previous, "sorted by time");
                    previous = *v;
                }
            }
        }
    }
    let days: Vec<String> = files(&predictions.join("run_id=synthetic-0001"))
        .iter()
        .map(|f| {
            f.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    assert!(
        days.contains(&"day=2025-11-30".to_string())
            && days.contains(&"day=2025-12-01".to_string()),
        "{days:?}"
    );
    // No staging folder left behind.
    assert!(std::fs::read_dir(&predictions)
        .unwrap()
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().starts_with('.')));

    // Again: nothing to do.
    let again = compact(dir.path(), &SchemaName::ALL, &SETTINGS).unwrap();
    assert_eq!(again.compacted, 0);
    assert_eq!(again.already, 4);

    // A writer resuming a compacted run adds a part file beside the compacted ones.
    let mut writer = RollingParquetWriter::new(
        dir.path(),
        SchemaName::LogPredictions,
        "synthetic-0000",
        FlushPolicy::default(),
    )
    .unwrap();
    writer.write(after_batches[0].slice(0, 5)).unwrap();
    writer.flush().unwrap();
    assert_eq!(keys(&read(&predictions)).len(), 3_005);
}

#[test]
fn a_run_still_being_written_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let synth = SynthSettings {
        rows: 400,
        files_per_run: 10,
        runs: 1,
        devices: 4,
        seed: 1,
        start_ns: 1_764_460_800_000_000_000,
    };
    synthesise(dir.path(), &synth).unwrap();
    let run_dir = dir.path().join("predictions/run_id=synthetic-0000");
    std::fs::write(run_dir.join("part-00010.parquet.inprogress"), b"").unwrap();
    let before = files(&run_dir);
    let report = compact(dir.path(), &[SchemaName::LogPredictions], &SETTINGS).unwrap();
    assert_eq!(report.compacted, 0);
    assert_eq!(report.live.len(), 1);
    assert_eq!(files(&run_dir), before);
    // Files sealed moments ago: also live, under the default age.
    std::fs::remove_file(run_dir.join("part-00010.parquet.inprogress")).unwrap();
    let report = compact(
        dir.path(),
        &[SchemaName::LogPredictions],
        &CompactSettings::default(),
    )
    .unwrap();
    assert_eq!(report.live.len(), 1);
}
