//! preprocess: streaming alignment, windowing and normalisation per device
//! (`har_dataflow::windower`). Input `chunks` (`sensor_chunk`); one output per model modality,
//! named after it (`window` batches), and `health`.
//!
//! Settings (env): `HAR_MODEL` (model directory: its card and normaliser are read — modalities,
//! window, statistics — never its weights),
//! `HAR_STRIDE` (grid samples between windows; default: the model's training stride).

use std::collections::BTreeMap;

use anyhow::Result;
use dora_node_api::{DoraNode, Event};
use har_core::streams::{SensorChunk, WindowMessage};
use har_dataflow::dora_io::{dora_drops, receive, GapCounter, Sender};
use har_dataflow::inference::read_streaming_spec;
use har_dataflow::settings::{self, now_ns};
use har_dataflow::windower::StreamingPreprocessor;

fn main() -> Result<()> {
    har_dataflow::node::init_logging();
    let stride = settings::var("HAR_STRIDE")
        .map(|_| settings::parse_or::<usize>("HAR_STRIDE", 0))
        .transpose()?;
    // The card and the normaliser only: preprocessing needs no weights.
    let spec = read_streaming_spec(&settings::path("HAR_MODEL")?, stride)?;
    let mut preprocessor = StreamingPreprocessor::new(spec)?;
    let (mut node, mut events) = DoraNode::init_from_env()?;
    let mut health = har_dataflow::node::health(&node, "preprocess");
    let mut sender = Sender::default();
    let mut gaps = GapCounter::default();
    let mut lost_in_transport = 0;
    while let Some(event) = events.recv() {
        match event {
            Event::Input { id, metadata, data } => {
                lost_in_transport += gaps.observe(id.as_str(), &metadata);
                let chunks: Vec<SensorChunk> = receive(id.as_str(), &data)?;
                health.received += chunks.len() as u64;
                let mut by_modality: BTreeMap<String, Vec<WindowMessage>> = BTreeMap::new();
                for chunk in &chunks {
                    for window in preprocessor.push(chunk)? {
                        by_modality
                            .entry(window.key.modality.clone())
                            .or_default()
                            .push(window);
                    }
                }
                let now = now_ns();
                for (modality, mut windows) in by_modality {
                    windows
                        .iter_mut()
                        .for_each(|w| w.key.preprocess_ts_ns = now);
                    health.sent += windows.len() as u64;
                    sender.send(&mut node, &modality, &windows)?;
                }
            }
            Event::Stop(_) => break,
            Event::Error(e) => tracing::warn!("dora: {e}"),
            _ => {}
        }
        lost_in_transport += dora_drops(&mut events);
        let c = preprocessor.counters;
        health.degraded = c.skipped_windows;
        health.dropped = lost_in_transport + c.unknown_modality_chunks + c.out_of_order_samples;
        if health.due() {
            sender.send_health(&mut node, &health, 0)?;
        }
    }
    let c = preprocessor.counters;
    tracing::info!(
        devices = preprocessor.device_count(),
        ?c,
        "preprocess finished"
    );
    sender.send_health(&mut node, &health, 0)?;
    Ok(())
}
