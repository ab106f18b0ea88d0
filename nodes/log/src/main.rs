//! log: writes the log tables as Parquet under `HAR_LOG_DIR` (default `logs`), one folder per
//! table and run (`predictions/run_id=<id>/part-NNNNN.parquet`, likewise `windows` and
//! `node_health`), sealed files flushed regularly (`har_dataflow::logsink`) by a writer
//! thread. Inputs may have any names: each message is routed by the schema it declares
//! (`prediction`, `window`, `log_node_health`). After every prediction batch it sends on
//! `progress` the newest `ingest_ts_ns` logged (sensor-ingest's flow control at `max` speed).
//!
//! Settings (env): `HAR_LOG_DIR`, `HAR_FLUSH_ROWS` (default 16384), `HAR_FLUSH_MS` (default
//! 2000).

mod writer;

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::Int64Type;
use dora_node_api::dora_core::config::DataId;
use dora_node_api::{DoraNode, Event, MetadataParameters, Parameter};
use har_dataflow::dora_io::{batch_of, dora_drops, next_event, GapCounter, Wait, SCHEMA_PARAM};
use har_dataflow::logsink::{prediction_rows, FlushPolicy};
use har_dataflow::settings::{self, now_ns};

use crate::writer::{Rows, Writer};

fn main() -> Result<()> {
    har_dataflow::node::init_logging();
    let root =
        std::path::PathBuf::from(settings::var("HAR_LOG_DIR").unwrap_or_else(|| "logs".into()));
    let policy = FlushPolicy {
        flush_rows: settings::parse_or("HAR_FLUSH_ROWS", 16_384)?,
        flush_interval: settings::millis("HAR_FLUSH_MS", 2000.0)?,
    };
    let (mut node, mut events) = DoraNode::init_from_env()?;
    let run_id = har_dataflow::node::run_id(&node);
    let mut writer = Writer::start(&root, &run_id, policy)?;
    tracing::info!(%run_id, root = %root.display(), "logging");
    let mut health = har_dataflow::node::health(&node, "log");
    let mut gaps = GapCounter::default();
    let mut acked_ts_ns = i64::MIN;
    loop {
        match next_event(&mut events, Duration::from_millis(250)) {
            Wait::Event(Event::Input { id, metadata, data }) => {
                let logged_ts_ns = now_ns();
                health.dropped += gaps.observe(id.as_str(), &metadata);
                let schema = match metadata.parameters.get(SCHEMA_PARAM) {
                    Some(Parameter::String(s)) => s.clone(),
                    _ => String::new(),
                };
                let batch = batch_of(id.as_str(), &data)?;
                health.received += batch.num_rows() as u64;
                match schema.as_str() {
                    "prediction" => {
                        let rows = prediction_rows(&run_id, &batch, logged_ts_ns)?;
                        let newest = rows
                            .column_by_name("ingest_ts_ns")
                            .and_then(|c| c.as_primitive_opt::<Int64Type>())
                            .and_then(|c| c.values().iter().max().copied());
                        writer.send(Rows::Predictions(rows))?;
                        if let Some(newest) = newest.filter(|&n| n > acked_ts_ns) {
                            acked_ts_ns = newest;
                            node.send_output(
                                DataId::from("progress".to_string()),
                                MetadataParameters::new(),
                                Int64Array::from(vec![acked_ts_ns]),
                            )?;
                        }
                    }
                    "window" => writer.send(Rows::Windows(batch))?,
                    "log_node_health" => writer.send(Rows::Health(batch))?,
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
            Wait::Event(Event::Stop(_)) | Wait::Closed => break,
            Wait::Event(Event::Error(e)) => tracing::warn!("dora: {e}"),
            Wait::Event(_) | Wait::Timeout => {}
        }
        health.dropped += dora_drops(&mut events);
        if health.due() {
            writer.send(Rows::Health(
                health.row(writer.buffered.load(Ordering::Relaxed))?,
            ))?;
        }
    }
    writer.send(Rows::Health(
        health.row(writer.buffered.load(Ordering::Relaxed))?,
    ))?;
    let rows = writer.finish()?;
    tracing::info!(predictions = rows, "log closed");
    Ok(())
}
