//! SYNTHETIC log tables at scale (`har logs synth`), to measure queries over months of logs
//! on one machine: no months of real logs exist here. The rows follow the log tables' schemas
//! and the shapes of real runs — devices sending a window every 1.28 s, six classes predicted
//! right most of the time, latencies of a few milliseconds, one health row per node and
//! second — and are written as the log node writes them: small sealed `part-N` files per run.
//! Marked synthetic in their model id (`synthetic-logs`); never evidence about people.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, UInt64Array};
use har_core::rng::Rng;
use har_core::schema::{build_batch, SchemaName};
use har_core::streams::{PredictionMessage, Source, StreamMessage};

use crate::error::Result;
use crate::logsink::{prediction_rows, FlushPolicy, RollingParquetWriter};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthSettings {
    /// Prediction rows in all.
    pub rows: u64,
    /// Files per table and run the predictions are spread over.
    pub files_per_run: u64,
    /// Runs.
    pub runs: u64,
    /// Devices per run.
    pub devices: u64,
    /// Seed.
    pub seed: u64,
    /// Wall clock of the first row (ns since the epoch).
    pub start_ns: i64,
}

const CLASSES: [&str; 6] = [
    "WALKING",
    "WALKING_UPSTAIRS",
    "WALKING_DOWNSTAIRS",
    "SITTING",
    "STANDING",
    "LAYING",
];
const NODES: [&str; 6] = [
    "sensor-ingest",
    "preprocess",
    "encode-acc",
    "encode-gyro",
    "fuse",
    "log",
];
/// Seconds between a device's windows.
const HOP_NS: i64 = 1_280_000_000;

/// Writes the tables under `log_dir`; returns the prediction and health rows written.
pub fn synthesise(log_dir: &Path, s: &SynthSettings) -> Result<(u64, u64)> {
    let mut rng = Rng::new(s.seed);
    let per_run = s.rows / s.runs.max(1);
    let per_file = (per_run / s.files_per_run.max(1)).max(1) as usize;
    let devices = s.devices.max(1);
    let (mut predictions_written, mut health_written) = (0u64, 0u64);
    for run in 0..s.runs.max(1) {
        let run_id = format!("synthetic-{run:04}");
        let policy = FlushPolicy {
            flush_rows: usize::MAX,
            flush_interval: std::time::Duration::MAX,
        };
        let mut predictions =
            RollingParquetWriter::new(log_dir, SchemaName::LogPredictions, &run_id, policy)?;
        let mut health =
            RollingParquetWriter::new(log_dir, SchemaName::LogNodeHealth, &run_id, policy)?;
        // Runs follow each other in time.
        let run_start = s.start_ns + (run as i64) * (per_run / devices) as i64 * HOP_NS;
        let mut next_health_s = 0i64;
        let mut row = 0u64;
        while row < per_run {
            let n = per_file.min((per_run - row) as usize);
            let messages: Vec<PredictionMessage> = (0..n as u64)
                .map(|i| message(&mut rng, row + i, devices, run_start))
                .collect();
            let logged = messages
                .last()
                .map_or(run_start, |m| m.fuse_ts_ns + 300_000);
            let batch = PredictionMessage::to_batch(&messages)?;
            predictions.write(prediction_rows(&run_id, &batch, logged)?)?;
            predictions.flush()?;
            predictions_written += n as u64;
            // One health row per node and second of the run so far.
            let now_s = (logged - run_start) / 1_000_000_000;
            if now_s > next_health_s {
                let rows = health_rows(&run_id, run_start, next_health_s..now_s, row + n as u64)?;
                health_written += rows.num_rows() as u64;
                health.write(rows)?;
                health.flush()?;
                next_health_s = now_s;
            }
            row += n as u64;
        }
    }
    Ok((predictions_written, health_written))
}

/// Prediction `k` of a run: device `k mod devices`, window `k / devices`.
fn message(rng: &mut Rng, k: u64, devices: u64, run_start: i64) -> PredictionMessage {
    let device = k % devices;
    let window = k / devices;
    let start_ns = window as i64 * HOP_NS;
    let truth = (rng.next_u64() % 6) as usize;
    let predicted = if rng.uniform(0.0, 1.0) < 0.95 {
        truth
    } else {
        (rng.next_u64() % 6) as usize
    };
    let ingest = run_start + start_ns + 2_540_000_000 + (device as i64) * 1_000;
    let stage = |rng: &mut Rng, mean_us: f64| (rng.uniform(0.5, 1.5) * mean_us * 1e3) as i64;
    let preprocess = ingest + stage(rng, 300.0);
    let encode = preprocess + stage(rng, 600.0);
    let fuse = encode + stage(rng, 400.0);
    PredictionMessage {
        window_id: window,
        source: Source {
            device_id: format!("device{device:04}"),
            subject_id: format!("{}", device % 30 + 1),
            session_id: "1".into(),
        },
        start_ns,
        end_ns: start_ns + 2_540_000_000,
        predicted_label: predicted as i32 + 1,
        predicted_name: CLASSES[predicted].into(),
        confidence: rng.uniform(0.5, 1.0) as f32,
        probabilities: vec![1.0 / 6.0; 6],
        true_label: Some(truth as i32 + 1),
        model_id: "synthetic-logs".into(),
        modalities_present: vec!["acc".into(), "gyro".into()],
        degraded: false,
        ingest_ts_ns: ingest,
        preprocess_ts_ns: preprocess,
        encode_ts_ns: encode,
        fuse_ts_ns: fuse,
    }
}

/// Health rows of every node for the seconds `range` of a run.
fn health_rows(
    run_id: &str,
    run_start: i64,
    range: std::ops::Range<i64>,
    received: u64,
) -> Result<RecordBatch> {
    let rows: Vec<(i64, &str)> = range
        .flat_map(|s| {
            NODES
                .iter()
                .map(move |n| (run_start + s * 1_000_000_000, *n))
        })
        .collect();
    let u = |v: u64| -> ArrayRef { Arc::new(UInt64Array::from(vec![v; rows.len()])) };
    Ok(build_batch(
        SchemaName::LogNodeHealth,
        vec![
            Arc::new(StringArray::from(vec![run_id; rows.len()])),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            u(received),
            u(received),
            u(0),
            u(0),
            u(0),
            u(40 << 20),
        ],
    )?)
}
