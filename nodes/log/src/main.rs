//! log: writes the log tables as Parquet under `HAR_LOG_DIR` (default `logs`), one folder per
//! table and run (`predictions/run_id=<id>/part-NNNNN.parquet`, likewise `windows` and
//! `node_health`), sealed files flushed regularly (`har_dataflow::logsink`). Inputs may have
//! any names: each message is routed by the schema it declares (`prediction`, `window`,
//! `log_node_health`). After every prediction batch it sends on `progress` the newest
//! `ingest_ts_ns` logged (sensor-ingest's flow control at `max` speed).
//!
//! Settings (env): `HAR_LOG_DIR`, `HAR_FLUSH_ROWS` (default 16384), `HAR_FLUSH_MS` (default
//! 2000).

use std::time::Duration;

use anyhow::Result;
use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::Int64Type;
use dora_node_api::dora_core::config::DataId;
use dora_node_api::{DoraNode, Event, MetadataParameters, Parameter};
use har_core::schema::SchemaName;
use har_core::streams::{StreamMessage, WindowMessage};
use har_dataflow::dora_io::{batch_of, dora_drops, GapCounter, SCHEMA_PARAM};
use har_dataflow::health::Health;
use har_dataflow::logsink::{prediction_rows, window_rows, FlushPolicy, RollingParquetWriter};
use har_dataflow::settings::{self, now_ns};
use har_dataflow::DataflowError;

/// The three tables of one run.
struct Tables {
    predictions: RollingParquetWriter,
    windows: RollingParquetWriter,
    health: RollingParquetWriter,
}

impl Tables {
    fn flush_if_due(&mut self) -> Result<()> {
        self.predictions.flush_if_due()?;
        self.windows.flush_if_due()?;
        self.health.flush_if_due()?;
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        self.predictions.flush()?;
        self.windows.flush()?;
        self.health.flush()?;
        Ok(())
    }

    fn buffered(&self) -> u64 {
        (self.predictions.buffered_rows()
            + self.windows.buffered_rows()
            + self.health.buffered_rows()) as u64
    }
}

fn main() -> Result<()> {
    har_dataflow::node::init_logging();
    let root = settings::var("HAR_LOG_DIR").unwrap_or_else(|| "logs".into());
    let policy = FlushPolicy {
        flush_rows: settings::parse_or("HAR_FLUSH_ROWS", 16_384)?,
        flush_interval: settings::millis("HAR_FLUSH_MS", 2000.0)?,
    };
    let (mut node, mut events) = DoraNode::init_from_env()?;
    let run_id = har_dataflow::node::run_id(&node);
    let root = std::path::PathBuf::from(root);
    let mut tables = Tables {
        predictions: RollingParquetWriter::new(&root, SchemaName::LogPredictions, &run_id, policy)?,
        windows: RollingParquetWriter::new(&root, SchemaName::LogWindows, &run_id, policy)?,
        health: RollingParquetWriter::new(&root, SchemaName::LogNodeHealth, &run_id, policy)?,
    };
    tracing::info!(%run_id, root = %root.display(), "logging");
    let mut health = Health::new(&run_id, "log", Duration::from_secs(1));
    let mut gaps = GapCounter::default();
    let mut acked_ts_ns = i64::MIN;
    loop {
        match events.recv_timeout(policy.flush_interval.min(Duration::from_millis(250))) {
            Some(Event::Input { id, metadata, data }) => {
                health.dropped += gaps.observe(id.as_str(), &metadata);
                let schema = match metadata.parameters.get(SCHEMA_PARAM) {
                    Some(Parameter::String(s)) => s.clone(),
                    _ => String::new(),
                };
                let batch = batch_of(id.as_str(), &data)?;
                health.received += batch.num_rows() as u64;
                match schema.as_str() {
                    "prediction" => {
                        let rows = prediction_rows(&run_id, &batch, now_ns())?;
                        let newest = rows
                            .column_by_name("ingest_ts_ns")
                            .and_then(|c| c.as_primitive_opt::<Int64Type>())
                            .and_then(|c| c.values().iter().max().copied());
                        tables.predictions.write(rows)?;
                        if let Some(newest) = newest.filter(|&n| n > acked_ts_ns) {
                            acked_ts_ns = newest;
                            node.send_output(
                                DataId::from("progress".to_string()),
                                MetadataParameters::new(),
                                Int64Array::from(vec![acked_ts_ns]),
                            )?;
                        }
                    }
                    "window" => {
                        let windows = WindowMessage::from_batch(&batch)
                            .map_err(|e| DataflowError::stream(id.as_str(), "window", e))?;
                        tables.windows.write(window_rows(&run_id, &windows)?)?;
                    }
                    "log_node_health" => tables.health.write(batch)?,
                    other => {
                        health.dropped += 1;
                        tracing::warn!(
                            input = id.as_str(),
                            schema = other,
                            "message of no log table skipped"
                        );
                    }
                }
            }
            Some(Event::Stop(_)) => break,
            Some(_) | None => {}
        }
        tables.flush_if_due()?;
        health.dropped += dora_drops(&mut events);
        if health.due() {
            tables.health.write(health.row(tables.buffered())?)?;
        }
    }
    tables.health.write(health.row(tables.buffered())?)?;
    tables.close()?;
    tracing::info!(
        predictions = tables.predictions.rows_written,
        files = tables.predictions.files_written,
        "log closed"
    );
    Ok(())
}
