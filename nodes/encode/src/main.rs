//! encode: one instance per modality (same binary, `HAR_MODALITY` set in the yml) running
//! that modality's encoder part of the model. Input `windows` (`window`), outputs `tokens`
//! (`token_embedding`) and `health`.
//!
//! Settings (env): `HAR_MODEL` (model directory), `HAR_MODALITY` (modality name).

use anyhow::Result;
use dora_node_api::{DoraNode, Event};
use har_core::streams::WindowMessage;
use har_dataflow::dora_io::{dora_drops, receive, GapCounter, Sender};
use har_dataflow::inference::StreamModel;
use har_dataflow::settings::{self, now_ns};

fn main() -> Result<()> {
    har_dataflow::node::init_logging();
    let mut model = StreamModel::load(&settings::path("HAR_MODEL")?)?;
    let modality = settings::var("HAR_MODALITY")
        .ok_or_else(|| har_dataflow::DataflowError::setting("HAR_MODALITY", "is required"))?;
    let m = model.modality_index(&modality)?;
    let (mut node, mut events) = DoraNode::init_from_env()?;
    let name = format!("encode-{modality}");
    let mut health = har_dataflow::node::health(&node, &name);
    let mut sender = Sender::default();
    let mut gaps = GapCounter::default();
    while let Some(event) = events.recv() {
        match event {
            Event::Input { id, metadata, data } => {
                health.dropped += gaps.observe(id.as_str(), &metadata);
                let windows: Vec<WindowMessage> = receive(id.as_str(), &data)?;
                health.received += windows.len() as u64;
                let mut tokens = model.encode(m, &windows)?;
                let now = now_ns();
                tokens.iter_mut().for_each(|t| t.encode_ts_ns = now);
                health.sent += tokens.len() as u64;
                sender.send(&mut node, "tokens", &tokens)?;
            }
            Event::Stop(_) => break,
            Event::Error(e) => tracing::warn!("dora: {e}"),
            _ => {}
        }
        health.dropped += dora_drops(&mut events);
        if health.due() {
            sender.send_health(&mut node, &health, 0)?;
        }
    }
    tracing::info!(windows = health.received, "{name} finished");
    sender.send_health(&mut node, &health, 0)?;
    Ok(())
}
