//! log: writes the log tables as Parquet under `HAR_LOG_DIR` (default `logs`), one folder per
//! table and run (`predictions/run_id=<id>/part-NNNNN.parquet`, likewise `windows`,
//! `node_health`, `segments` and `scenes`), sealed files flushed regularly (`har_dataflow::logsink`) by a writer
//! thread (`har_dataflow::log_writer`). Inputs may have any names: each message is routed by
//! the schema it declares (`prediction`, `window`, `log_node_health`, `log_segments`,
//! `log_scenes`); a message of no log
//! table is counted and skipped. It acknowledges on `progress` what is logged in both tables:
//! the older of the newest `ingest_ts_ns` among predictions and among window rows (window rows
//! only once any arrived), so sensor-ingest's flow control and admission see a log that falls
//! behind on either. At the end of
//! the stream it logs everything still queued, seals the files, then exits.
//!
//! Its health row's `dropped` is the run's end-to-end loss after preprocess: windows logged
//! with no prediction within 60 s or by the end (`har_dataflow::reconcile`), plus messages of
//! no log table and batches that did not fit their table.
//!
//! Settings (env): `HAR_LOG_DIR`, `HAR_FLUSH_ROWS` (default 16384), `HAR_FLUSH_MS` (default
//! 2000).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::datatypes::Int64Type;
use har_core::schema::{check_batch, SchemaName};
use har_dataflow::log_writer::{Rows, Writer};
use har_dataflow::logsink::{prediction_rows, FlushPolicy};
use har_dataflow::runtime::{
    warn_rejected, Input, LogicCounts, NodeLogic, NodeRuntime, Outputs, RunSummary,
};
use har_dataflow::settings::{self, now_ns};
use har_dataflow::Result;

/// The node's settings, read once at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Root folder of the log tables.
    pub root: PathBuf,
    /// When files are sealed.
    pub policy: FlushPolicy,
}

impl Settings {
    /// Reads `HAR_LOG_DIR`, `HAR_FLUSH_ROWS` and `HAR_FLUSH_MS`.
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            root: PathBuf::from(settings::var("HAR_LOG_DIR").unwrap_or_else(|| "logs".into())),
            policy: FlushPolicy {
                flush_rows: settings::parse_or("HAR_FLUSH_ROWS", 16_384)?,
                flush_interval: settings::millis("HAR_FLUSH_MS", 2000.0)?,
            },
        })
    }
}

/// Routes messages to the log tables.
pub struct Log {
    run_id: String,
    writer: Writer,
    acked_ts_ns: i64,
    newest_prediction_ts_ns: Option<i64>,
    newest_window_ts_ns: Option<i64>,
    unroutable: u64,
}

impl Log {
    /// Starts the writer for run `run_id`.
    pub fn new(settings: &Settings, run_id: &str) -> Result<Self> {
        let writer = Writer::start(&settings.root, run_id, settings.policy)?;
        tracing::info!(%run_id, root = %settings.root.display(), "logging");
        Ok(Self {
            run_id: run_id.to_string(),
            writer,
            acked_ts_ns: i64::MIN,
            newest_prediction_ts_ns: None,
            newest_window_ts_ns: None,
            unroutable: 0,
        })
    }

    /// Logs a prediction batch.
    fn log_predictions(&mut self, out: &mut Outputs<'_>, batch: &RecordBatch) -> Result<()> {
        let rows = prediction_rows(&self.run_id, batch, now_ns())?;
        let newest = newest_ingest(&rows);
        self.writer.send(Rows::Predictions(rows))?;
        self.newest_prediction_ts_ns = self.newest_prediction_ts_ns.max(newest);
        self.acknowledge(out)
    }

    /// Logs a window batch.
    fn log_windows(&mut self, out: &mut Outputs<'_>, batch: RecordBatch) -> Result<()> {
        check_batch(SchemaName::Window, &batch)?;
        let newest = newest_ingest(&batch);
        self.writer.send(Rows::Windows(batch))?;
        self.newest_window_ts_ns = self.newest_window_ts_ns.max(newest);
        self.acknowledge(out)
    }

    /// Sends on `progress` what is now logged in both tables, when it moved.
    fn acknowledge(&mut self, out: &mut Outputs<'_>) -> Result<()> {
        let Some(predicted) = self.newest_prediction_ts_ns else {
            return Ok(());
        };
        let logged = self
            .newest_window_ts_ns
            .map_or(predicted, |w| w.min(predicted));
        if logged > self.acked_ts_ns {
            self.acked_ts_ns = logged;
            out.send_array("progress", Arc::new(Int64Array::from(vec![logged])))?;
        }
        Ok(())
    }
}

impl NodeLogic for Log {
    fn on_input(&mut self, out: &mut Outputs<'_>, input: Input<'_>) -> Result<()> {
        let batch = input.batch()?;
        out.received(batch.num_rows());
        match input.schema() {
            "prediction" => self.log_predictions(out, &batch),
            // Checked here: a batch that does not fit its table is rejected in the event
            // loop (counted), never handed to the writer.
            "window" => self.log_windows(out, batch),
            "log_node_health" => {
                check_batch(SchemaName::LogNodeHealth, &batch)?;
                self.writer.send(Rows::Health(batch))
            }
            "log_segments" => {
                check_batch(SchemaName::LogSegments, &batch)?;
                self.writer.send(Rows::Segments(batch))
            }
            "log_scenes" => {
                check_batch(SchemaName::LogScenes, &batch)?;
                self.writer.send(Rows::Scenes(batch))
            }
            other => {
                self.unroutable += 1;
                let problem = format!("input `{}`: schema `{other}` has no log table", input.id);
                warn_rejected("message", self.unroutable, &problem);
                Ok(())
            }
        }
    }

    fn report_health(&mut self, _out: &mut Outputs<'_>, row: RecordBatch) -> Result<()> {
        self.writer.send(Rows::Health(row))
    }

    fn finish(&mut self, _out: &mut Outputs<'_>) -> Result<()> {
        // Inputs ended: windows still without a prediction will never get one.
        let unpredicted = self.writer.end_of_run()?;
        if unpredicted > 0 {
            tracing::warn!(unpredicted, "windows logged without a prediction");
        }
        Ok(())
    }

    fn counts(&self) -> LogicCounts {
        let counts = &self.writer.counts;
        LogicCounts {
            dropped: self.unroutable
                + counts.unpredicted.load(Ordering::Relaxed)
                + counts.rejected.load(Ordering::Relaxed),
            degraded: 0,
            backlog: counts.buffered.load(Ordering::Relaxed),
        }
    }
}

/// The newest `ingest_ts_ns` of a batch (None when empty or without the column).
fn newest_ingest(batch: &RecordBatch) -> Option<i64> {
    batch
        .column_by_name("ingest_ts_ns")
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .and_then(|c| c.values().iter().max().copied())
}

/// Runs the node until its inputs close, then seals the files.
pub fn run(runtime: NodeRuntime, settings: &Settings) -> Result<RunSummary> {
    let mut log = Log::new(settings, &runtime.run_id())?;
    let summary = runtime.run(&mut log)?;
    let rows = log.writer.finish()?;
    tracing::info!(predictions = rows, "log closed");
    Ok(summary)
}
