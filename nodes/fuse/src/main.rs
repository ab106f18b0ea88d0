//! fuse: matches the modalities' tokens of each window (`har_dataflow::aligner`), runs
//! temporal mid-fusion and the head, and sends `prediction` batches on `predictions` (plus
//! `health`). Inputs are named after the modalities (`acc: encode-acc/tokens`, …). A window
//! waits at most `HAR_DEADLINE_MS` for its missing modalities, then is predicted with what
//! arrived and flagged `degraded`; a modality whose input closed is no longer waited for.
//!
//! Settings (env): `HAR_MODEL` (model directory; the shipped student by default in the yml,
//! the teacher is selectable), `HAR_DEADLINE_MS` (default 200), `HAR_MAX_PENDING` (windows
//! waiting at most, default 100000).

use std::time::Duration;

use anyhow::Result;
use dora_node_api::{DoraNode, Event};
use har_core::streams::{PredictionMessage, TokenMessage};
use har_dataflow::aligner::{Aligner, ReadyWindow};
use har_dataflow::dora_io::{dora_drops, next_event, receive, GapCounter, Sender, Wait};
use har_dataflow::health::Health;
use har_dataflow::inference::StreamModel;
use har_dataflow::settings::{self, now_ns};

/// Predicts released windows and sends them as one batch.
fn predict(
    model: &mut StreamModel,
    ready: Vec<ReadyWindow>,
    node: &mut DoraNode,
    sender: &mut Sender,
    health: &mut Health,
) -> Result<()> {
    if ready.is_empty() {
        return Ok(());
    }
    let mut predictions = ready
        .iter()
        .map(|w| model.fuse(w))
        .collect::<Result<Vec<PredictionMessage>, _>>()?;
    let now = now_ns();
    predictions.iter_mut().for_each(|p| p.fuse_ts_ns = now);
    health.sent += predictions.len() as u64;
    sender.send(node, "predictions", &predictions)?;
    Ok(())
}

fn main() -> Result<()> {
    har_dataflow::node::init_logging();
    let mut model = StreamModel::load(&settings::path("HAR_MODEL")?)?;
    let deadline = settings::millis("HAR_DEADLINE_MS", 200.0)?;
    let max_pending: usize = settings::parse_or("HAR_MAX_PENDING", 100_000)?;
    let mut aligner = Aligner::new(
        model.modality_names(),
        deadline.as_nanos() as i64,
        max_pending,
    );
    let (mut node, mut events) = DoraNode::init_from_env()?;
    tracing::info!(model = model.model_id(), ?deadline, "fuse ready");
    let mut health = har_dataflow::node::health(&node, "fuse");
    let mut sender = Sender::default();
    let mut gaps = GapCounter::default();
    let mut lost_in_transport = 0;
    loop {
        // Wake up for the next deadline (or at least every 100 ms for health).
        let wait = aligner
            .next_deadline()
            .map(|d| Duration::from_nanos((d - now_ns()).max(0) as u64))
            .unwrap_or(Duration::from_millis(100))
            .min(Duration::from_millis(100));
        let mut ready = Vec::new();
        match next_event(&mut events, wait) {
            Wait::Event(Event::Input { id, metadata, data }) => {
                lost_in_transport += gaps.observe(id.as_str(), &metadata);
                let tokens: Vec<TokenMessage> = receive(id.as_str(), &data)?;
                health.received += tokens.len() as u64;
                let now = now_ns();
                for t in tokens {
                    ready.extend(aligner.insert(t, now));
                }
            }
            Wait::Event(Event::InputClosed { id }) => {
                tracing::info!(
                    input = id.as_str(),
                    "modality stream closed: no longer waited for"
                );
                ready.extend(aligner.close(id.as_str()));
            }
            Wait::Event(Event::Stop(_)) | Wait::Closed => break,
            Wait::Event(Event::Error(e)) => tracing::warn!("dora: {e}"),
            Wait::Event(_) | Wait::Timeout => {}
        }
        ready.extend(aligner.expire(now_ns()));
        predict(&mut model, ready, &mut node, &mut sender, &mut health)?;
        lost_in_transport += dora_drops(&mut events);
        if health.due() {
            update(&mut health, lost_in_transport, &aligner);
            sender.send_health(&mut node, &health, aligner.pending() as u64)?;
        }
    }
    let rest = aligner.drain();
    predict(&mut model, rest, &mut node, &mut sender, &mut health)?;
    update(&mut health, lost_in_transport, &aligner);
    tracing::info!(counters = ?aligner.counters, "fuse finished");
    sender.send_health(&mut node, &health, 0)?;
    Ok(())
}

/// Health counters from the transport's losses and the aligner's counts.
fn update(health: &mut Health, lost_in_transport: u64, aligner: &Aligner) {
    health.dropped = lost_in_transport + aligner.counters.dropped;
    health.degraded = aligner.counters.degraded;
}
