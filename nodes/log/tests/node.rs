//! The log node in-process (dora's testing mode): messages routed to their tables by schema,
//! acknowledgements on `progress`, a message of no table counted, and everything received
//! before the end of the stream in sealed Parquet files afterwards.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use arrow::array::AsArray;
use arrow::datatypes::UInt64Type;
use har_core::schema::SchemaName;
use har_core::streams::{PredictionMessage, Source, WindowKey, WindowMessage};
use har_dataflow::health::Health;
use har_dataflow::logsink::FlushPolicy;
use har_dataflow::testing::{rows_of, Script};
use har_log::{run, Settings};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn prediction(window_id: u64) -> PredictionMessage {
    PredictionMessage {
        window_id,
        source: Source {
            device_id: "d".into(),
            subject_id: "s".into(),
            session_id: "1".into(),
        },
        start_ns: window_id as i64 * 1_000,
        end_ns: window_id as i64 * 1_000 + 999,
        predicted_label: 1,
        predicted_name: "WALKING".into(),
        confidence: 0.9,
        probabilities: vec![0.9, 0.1],
        true_label: Some(1),
        model_id: "m".into(),
        modalities_present: vec!["acc".into()],
        degraded: false,
        ingest_ts_ns: 100 + window_id as i64,
        preprocess_ts_ns: 200,
        encode_ts_ns: 300,
        fuse_ts_ns: 400,
    }
}

fn window(window_id: u64, ingest_ts_ns: i64) -> WindowMessage {
    WindowMessage {
        key: WindowKey {
            window_id,
            source: prediction(0).source,
            modality: "acc".into(),
            start_ns: 0,
            end_ns: 1,
            label: None,
            ingest_ts_ns,
            preprocess_ts_ns: 0,
        },
        num_steps: 2,
        num_channels: 1,
        values: vec![0.0, 1.0],
    }
}

/// The largest `dropped` the log node reported about itself.
fn log_dropped(root: &Path) -> u64 {
    let mut dropped = 0;
    for path in parquet_files(&root.join("node_health")) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let nodes = batch
                .column_by_name("node")
                .unwrap()
                .as_string::<i32>()
                .clone();
            let values = batch
                .column_by_name("dropped")
                .unwrap()
                .as_primitive::<UInt64Type>()
                .clone();
            for (node, value) in nodes.iter().zip(values.iter()) {
                if node == Some("log") {
                    dropped = dropped.max(value.unwrap());
                }
            }
        }
    }
    dropped
}

fn parquet_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    files
}

/// Rows of every Parquet file of `table` under `root`.
fn table_rows(root: &Path, table: &str) -> usize {
    parquet_files(&root.join(table))
        .iter()
        .map(|path| {
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
                .unwrap()
                .build()
                .unwrap();
            reader.map(|b| b.unwrap().num_rows()).sum::<usize>()
        })
        .sum()
}

#[test]
fn everything_received_is_logged_and_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        root: dir.path().join("logs"),
        policy: FlushPolicy {
            flush_rows: 1_000_000,
            flush_interval: Duration::from_secs(3600),
        },
    };
    let mut script = Script::new(dir.path());
    let first: Vec<_> = (0..5).map(prediction).collect();
    let second: Vec<_> = (5..12).map(prediction).collect();
    // Window 3 is predicted below, window 40 never: the log counts it. Window rows are
    // logged up to ingest time 107: acknowledgements never pass it.
    script
        .rows(0.0, "acc_windows", &[window(3, 103), window(40, 107)])
        .unwrap();
    script.rows(0.0, "predictions", &first).unwrap();
    let health = Health::new("run", "fuse", Duration::ZERO).row(0).unwrap();
    script
        .batch(
            0.0,
            "fuse_health",
            Some(SchemaName::LogNodeHealth),
            Some(0),
            health.clone(),
        )
        .unwrap();
    // A message of a schema the log has no table for: counted, skipped.
    script
        .batch(
            0.0,
            "other",
            Some(SchemaName::TokenEmbedding),
            Some(0),
            health,
        )
        .unwrap();
    script.rows(0.0, "predictions", &second).unwrap();
    script.all_closed(0.0);
    let (runtime, mut captured) = script.start("log").unwrap();
    run(runtime, &settings).unwrap();

    // Nothing is held back: one flush at the end wrote every row.
    assert_eq!(table_rows(&settings.root, "predictions"), 12);
    assert_eq!(table_rows(&settings.root, "windows"), 2);
    // The fuse row plus the log's own final row (and any periodic ones).
    assert!(table_rows(&settings.root, "node_health") >= 2);
    // One message of no table, one window without a prediction.
    assert_eq!(log_dropped(&settings.root), 2);
    let acks: Vec<i64> = rows_of(&captured.messages(), "progress")
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(
        acks,
        [104, 107],
        "the older of the newest prediction and the newest window row"
    );
}
