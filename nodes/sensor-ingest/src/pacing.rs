//! The replay loop: real time (or a multiple of it), or as fast as the graph acknowledges.
//!
//! At `max` speed the node sends one batch per `HAR_BATCH_MS` of replay time and keeps at
//! most `HAR_MAX_IN_FLIGHT` batches unacknowledged: the log node reports on `progress` the
//! newest `ingest_ts_ns` it has logged, which acknowledges every batch sent up to then. dora
//! queues would otherwise overflow and lose messages. If no acknowledgement comes for
//! `HAR_STALL_MS` (log node gone, a batch that completed no window), the oldest batch is
//! given up on and counted in health as `degraded`, so the replay never blocks for good.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Result;
use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use dora_node_api::{DoraNode, Event, EventStream};
use har_dataflow::dora_io::{dora_drops, next_event, Sender, Wait};
use har_dataflow::health::Health;
use har_dataflow::replay::Replay;
use har_dataflow::settings::{self, now_ns};

use crate::Speed;

/// What the loop learned from its inputs.
#[derive(Debug, Default)]
pub struct InputState {
    /// Newest `ingest_ts_ns` the log node acknowledged.
    pub acked_ts_ns: i64,
    /// A stop was requested.
    pub stopped: bool,
    /// The progress input closed (no more acknowledgements).
    pub progress_closed: bool,
}

impl InputState {
    /// Applies one event.
    pub fn handle(&mut self, event: Event, health: &mut Health) {
        match event {
            Event::Input { data, .. } => {
                health.received += 1;
                if let Some(acked) = data.as_array().as_primitive_opt::<Int64Type>() {
                    if let Some(max) = acked.values().iter().max() {
                        self.acked_ts_ns = self.acked_ts_ns.max(*max);
                    }
                }
            }
            Event::InputClosed { .. } => self.progress_closed = true,
            Event::Stop(_) => self.stopped = true,
            Event::Error(e) => tracing::warn!("dora: {e}"),
            _ => {}
        }
    }

    /// Handles events until `deadline` (or a stop).
    pub fn wait_until(&mut self, events: &mut EventStream, deadline: Instant, health: &mut Health) {
        while !self.stopped {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            match next_event(events, deadline - now) {
                Wait::Event(event) => self.handle(event, health),
                Wait::Timeout => return,
                Wait::Closed => {
                    // No more events (no acknowledgements either): sleep whatever is left.
                    self.progress_closed = true;
                    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                    return;
                }
            }
        }
    }
}

/// The health counters of this node, reported every second.
pub fn ingest_health(node: &DoraNode) -> Health {
    har_dataflow::node::health(node, "sensor-ingest")
}

/// Replays until every chunk is sent or a stop arrives.
pub fn run_replay(
    node: &mut DoraNode,
    events: &mut EventStream,
    mut replay: Replay,
    speed: Speed,
) -> Result<()> {
    let mut health = ingest_health(node);
    let mut sender = Sender::default();
    let mut inputs = InputState::default();
    let batch_ns = settings::millis("HAR_BATCH_MS", 1000.0)?.as_nanos() as i64;
    let max_in_flight: usize = settings::parse_or("HAR_MAX_IN_FLIGHT", 4)?;
    let stall = settings::millis("HAR_STALL_MS", 2000.0)?;
    let started = Instant::now();
    let mut in_flight: VecDeque<i64> = VecDeque::new();
    let mut replay_ns = 0i64;
    while let Some(due) = replay.next_due() {
        match speed {
            Speed::Factor(factor) => {
                let wall = started + Duration::from_nanos((due as f64 / factor) as u64);
                inputs.wait_until(events, wall, &mut health);
                replay_ns = ((started.elapsed().as_nanos() as f64 * factor) as i64).max(due);
            }
            Speed::Max => {
                let waiting_since = Instant::now();
                loop {
                    in_flight.retain(|&ts| ts > inputs.acked_ts_ns);
                    if in_flight.len() < max_in_flight.max(1)
                        || inputs.progress_closed
                        || inputs.stopped
                    {
                        break;
                    }
                    if waiting_since.elapsed() >= stall {
                        in_flight.pop_front();
                        health.degraded += 1;
                        tracing::warn!(
                            "no acknowledgement for {stall:?}: giving up on the oldest batch"
                        );
                        break;
                    }
                    inputs.wait_until(
                        events,
                        Instant::now() + Duration::from_millis(5),
                        &mut health,
                    );
                }
                while let Ok(event) = events.try_recv() {
                    inputs.handle(event, &mut health);
                }
                replay_ns = (replay_ns + batch_ns).max(due);
            }
        }
        if inputs.stopped {
            tracing::info!("stop requested: replay ends early");
            break;
        }
        let mut chunks = replay.take_until(replay_ns);
        let now = now_ns();
        for chunk in &mut chunks {
            chunk.ingest_ts_ns = now;
        }
        health.sent += chunks.len() as u64;
        sender.send(node, "chunks", &chunks)?;
        in_flight.push_back(now);
        health.dropped += dora_drops(events);
        if health.due() {
            sender.send_health(node, &health, in_flight.len() as u64)?;
        }
    }
    tracing::info!(chunks = health.sent, "replay finished");
    Ok(sender.send_health(node, &health, in_flight.len() as u64)?)
}
