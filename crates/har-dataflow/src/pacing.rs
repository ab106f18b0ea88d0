//! sensor-ingest's replay loop: real time (or a multiple of it), or as fast as the graph
//! acknowledges — with an overload policy that never stalls.
//!
//! At `max` speed one batch is sent per `batch` of replay time and at most `max_in_flight`
//! batches stay unacknowledged: the log node reports on `progress` the newest `ingest_ts_ns`
//! it has logged, which acknowledges every batch sent up to then ([`FlowControl`]). When no
//! acknowledgement comes for `stall` (a node died, the log is gone), the replay *sheds*:
//! batches are counted (`dropped` in its health row) instead of sent, and one probe batch is
//! sent per `stall` to find out whether the graph came back (a restarted node); the first
//! acknowledgement ends the shedding. A dead downstream node therefore costs counted
//! batches, never a crawl, and the replay ends in bounded time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;

use crate::error::Result;
use crate::faults::FaultInjector;
use crate::replay::Replay;
use crate::runtime::{Input, LogicCounts, NodeLogic, NodeRuntime, Outputs, RunSummary};
use crate::settings::now_ns;

/// How fast a replay runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// A multiple of real time (1.0 = real time).
    Factor(f64),
    /// As fast as the graph acknowledges.
    Max,
}

/// Probes in a row without an acknowledgement after which the graph is taken as gone.
pub const MAX_UNANSWERED_PROBES: u32 = 5;

/// Flow control settings (used at `max` speed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowSettings {
    /// Replay time per batch.
    pub batch: Duration,
    /// Unacknowledged batches at most.
    pub max_in_flight: usize,
    /// Without an acknowledgement for this long, the replay sheds.
    pub stall: Duration,
    /// At real time: the largest lag (age of the oldest unacknowledged batch) admitted.
    pub max_lag: Duration,
}

impl Default for FlowSettings {
    fn default() -> Self {
        Self {
            batch: Duration::from_secs(1),
            max_in_flight: 4,
            stall: Duration::from_secs(2),
            max_lag: Duration::from_secs(10),
        }
    }
}

/// What to do with the next batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Send it.
    Send,
    /// Wait for acknowledgements (the graph is busy, not stalled).
    Wait,
    /// Count it and do not send it (the graph stopped acknowledging).
    Shed,
}

/// Admission of batches by acknowledgement, with a stall timeout that turns into shedding.
#[derive(Debug)]
pub struct FlowControl {
    settings: FlowSettings,
    /// `ingest_ts_ns` and chunk count of every unacknowledged batch, oldest first.
    in_flight: VecDeque<(i64, u64)>,
    acked_ts_ns: i64,
    last_progress: Instant,
    shedding_since: Option<Instant>,
    last_probe: Instant,
    last_shed: Instant,
    unanswered_probes: u32,
    /// Chunks never sent because the graph was stalled.
    pub shed_chunks: u64,
    /// Chunks sent but never acknowledged within the stall timeout (maybe lost downstream).
    pub unacknowledged_chunks: u64,
    /// Times the graph stalled.
    pub stalls: u64,
}

impl FlowControl {
    /// Starts with nothing in flight at `now`.
    pub fn new(settings: FlowSettings, now: Instant) -> Self {
        Self {
            settings,
            in_flight: VecDeque::new(),
            acked_ts_ns: i64::MIN,
            last_progress: now,
            shedding_since: None,
            last_probe: now,
            last_shed: now,
            unanswered_probes: 0,
            shed_chunks: 0,
            unacknowledged_chunks: 0,
            stalls: 0,
        }
    }

    /// Batches sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether the replay is shedding.
    pub fn shedding(&self) -> bool {
        self.shedding_since.is_some()
    }

    /// Whether the graph is taken as gone (probes unanswered): everything is shed at once.
    pub fn given_up(&self) -> bool {
        self.unanswered_probes >= MAX_UNANSWERED_PROBES
    }

    /// Everything sent up to `acked_ts_ns` was logged.
    pub fn acknowledge(&mut self, acked_ts_ns: i64, now: Instant) {
        if acked_ts_ns <= self.acked_ts_ns {
            return;
        }
        self.acked_ts_ns = acked_ts_ns;
        self.last_progress = now;
        self.in_flight.retain(|&(ts, _)| ts > acked_ts_ns);
        self.unanswered_probes = 0;
        if let Some(since) = self.shedding_since.take() {
            tracing::info!(
                after = ?now.saturating_duration_since(since),
                shed_chunks = self.shed_chunks,
                "graph acknowledges again: shedding ends"
            );
        }
    }

    /// Decides about the next batch at `now`.
    pub fn admit(&mut self, now: Instant) -> Admit {
        if self.in_flight.len() < self.settings.max_in_flight.max(1) {
            return Admit::Send;
        }
        if self.shedding_since.is_some() {
            if self.given_up() {
                return Admit::Shed;
            }
            if now.saturating_duration_since(self.last_probe) >= self.settings.stall {
                return self.probe(now);
            }
            let pace = self.settings.stall / self.settings.max_in_flight.max(1) as u32;
            if now.saturating_duration_since(self.last_shed) >= pace {
                self.last_shed = now;
                return Admit::Shed;
            }
            return Admit::Wait;
        }
        if now.saturating_duration_since(self.last_progress) >= self.settings.stall {
            self.stalls += 1;
            self.shedding_since = Some(now);
            tracing::warn!(
                stall = ?self.settings.stall,
                "no acknowledgement: the graph is stalled, shedding batches (counted) and probing"
            );
            return self.probe(now);
        }
        Admit::Wait
    }

    /// Gives up on the oldest unacknowledged batch to make room for a probe.
    fn probe(&mut self, now: Instant) -> Admit {
        self.last_probe = now;
        self.last_shed = now;
        self.unanswered_probes += 1;
        if self.given_up() {
            tracing::error!(
                probes = self.unanswered_probes,
                "the graph answers no probe: shedding the rest of the replay"
            );
        }
        if let Some((_, chunks)) = self.in_flight.pop_front() {
            self.unacknowledged_chunks += chunks;
        }
        Admit::Send
    }

    /// A batch of `chunks` chunks stamped `ingest_ts_ns` was sent.
    pub fn sent(&mut self, ingest_ts_ns: i64, chunks: u64) {
        self.in_flight.push_back((ingest_ts_ns, chunks));
    }

    /// A batch of `chunks` chunks was shed.
    pub fn shed(&mut self, chunks: u64) {
        self.shed_chunks += chunks;
    }
}

/// Admission by lag for sources that cannot wait (real time).
#[derive(Debug)]
pub struct LagAdmission {
    max_lag: Duration,
    /// Send time and `ingest_ts_ns` of every unacknowledged batch, oldest first.
    in_flight: VecDeque<(Instant, i64)>,
    acked_ts_ns: i64,
    shed_until: Option<Instant>,
    /// Times the lag went past the limit.
    pub overloads: u64,
}

impl LagAdmission {
    /// Admits batches while the lag stays under `max_lag`.
    pub fn new(max_lag: Duration) -> Self {
        Self {
            max_lag,
            in_flight: VecDeque::new(),
            acked_ts_ns: i64::MIN,
            shed_until: None,
            overloads: 0,
        }
    }

    /// Everything sent up to `acked_ts_ns` was logged.
    pub fn acknowledge(&mut self, acked_ts_ns: i64) {
        if acked_ts_ns > self.acked_ts_ns {
            self.acked_ts_ns = acked_ts_ns;
            self.in_flight.retain(|&(_, ts)| ts > acked_ts_ns);
        }
    }

    /// The age of the oldest unacknowledged batch at `now`.
    pub fn lag(&self, now: Instant) -> Duration {
        self.in_flight.front().map_or(Duration::ZERO, |(sent, _)| {
            now.saturating_duration_since(*sent)
        })
    }

    /// Whether the next batch is sent (`Send`) or shed (`Shed`) at `now`.
    pub fn admit(&mut self, now: Instant) -> Admit {
        if let Some(until) = self.shed_until {
            if now < until {
                return Admit::Shed;
            }
            self.shed_until = None;
            tracing::info!("admitting again after shedding");
        }
        if self.lag(now) > self.max_lag {
            self.overloads += 1;
            self.shed_until = Some(now + self.max_lag / 2);
            // What is in flight is left to the graph; the lag is measured afresh after.
            self.in_flight.clear();
            tracing::warn!(
                max_lag = ?self.max_lag,
                "the graph lags behind real time: shedding (counted) to let it drain"
            );
            return Admit::Shed;
        }
        Admit::Send
    }

    /// A batch stamped `ingest_ts_ns` was sent at `now`.
    pub fn sent(&mut self, now: Instant, ingest_ts_ns: i64) {
        self.in_flight.push_back((now, ingest_ts_ns));
    }
}

/// sensor-ingest's inputs: `progress` acknowledgements from the log node.
#[derive(Debug, Default)]
pub struct Progress {
    /// Newest `ingest_ts_ns` acknowledged.
    pub acked_ts_ns: Option<i64>,
    /// The progress input closed: no acknowledgement will come any more.
    pub closed: bool,
    /// What the source counts for its health row.
    pub counts: LogicCounts,
}

impl NodeLogic for Progress {
    fn on_input(&mut self, _out: &mut Outputs<'_>, input: Input<'_>) -> Result<()> {
        let array = input.data.as_array();
        if let Some(acked) = array.as_primitive_opt::<Int64Type>() {
            if let Some(&max) = acked.values().iter().max() {
                self.acked_ts_ns = Some(self.acked_ts_ns.map_or(max, |a| a.max(max)));
            }
        }
        Ok(())
    }

    fn on_input_closed(&mut self, _out: &mut Outputs<'_>, _input: &str) -> Result<()> {
        self.closed = true;
        Ok(())
    }

    fn counts(&self) -> LogicCounts {
        self.counts
    }
}

/// Replays until every chunk is sent (or shed) or a stop arrives.
pub fn run_replay(
    mut runtime: NodeRuntime,
    mut replay: Replay,
    speed: Speed,
    flow: FlowSettings,
    mut faults: Option<FaultInjector>,
) -> Result<RunSummary> {
    let mut progress = Progress::default();
    let mut control = FlowControl::new(flow, Instant::now());
    let mut lag = LagAdmission::new(flow.max_lag);
    let batch_ns = i64::try_from(flow.batch.as_nanos()).unwrap_or(i64::MAX);
    let started = Instant::now();
    let mut replay_ns = 0i64;
    while let Some(due) = replay.next_due() {
        let mut admit = Admit::Send;
        match speed {
            Speed::Factor(factor) => {
                let wall = started + Duration::from_secs_f64((due.max(0) as f64 / 1e9) / factor);
                runtime.poll_until(&mut progress, wall)?;
                let elapsed = started.elapsed().as_secs_f64() * factor * 1e9;
                replay_ns = (elapsed.min(i64::MAX as f64) as i64).max(due);
                if let Some(acked) = progress.acked_ts_ns {
                    lag.acknowledge(acked);
                }
                if !progress.closed {
                    admit = lag.admit(Instant::now());
                }
            }
            Speed::Max => {
                loop {
                    if let Some(acked) = progress.acked_ts_ns {
                        control.acknowledge(acked, Instant::now());
                    }
                    admit = if progress.closed {
                        Admit::Send
                    } else {
                        control.admit(Instant::now())
                    };
                    if admit != Admit::Wait || runtime.stopping() {
                        break;
                    }
                    runtime.poll(&mut progress, Duration::from_millis(5))?;
                }
                replay_ns = replay_ns.saturating_add(batch_ns).max(due);
            }
        }
        if runtime.stopping() {
            tracing::info!("stop requested: replay ends early");
            break;
        }
        let mut chunks = replay.take_until(replay_ns);
        if let Some(faults) = &mut faults {
            chunks = faults.apply(chunks, replay_ns);
        }
        let count = chunks.len() as u64;
        if admit == Admit::Shed {
            control.shed(count);
        } else {
            let now = now_ns();
            chunks.iter_mut().for_each(|c| c.ingest_ts_ns = now);
            runtime.outputs().send("chunks", &chunks)?;
            match speed {
                Speed::Max => control.sent(now, count),
                Speed::Factor(_) => lag.sent(Instant::now(), now),
            }
        }
        progress.counts = LogicCounts {
            dropped: control.shed_chunks,
            degraded: control.unacknowledged_chunks,
            backlog: control.in_flight() as u64,
        };
        // Health rows and acknowledgements without waiting.
        runtime.poll(&mut progress, Duration::ZERO)?;
    }
    tracing::info!(
        shed_chunks = control.shed_chunks,
        unacknowledged_chunks = control.unacknowledged_chunks,
        stalls = control.stalls,
        overloads = lag.overloads,
        "replay finished"
    );
    if let Some(faults) = &faults {
        tracing::info!(injected = ?faults.counts, "faults injected (synthetic)");
    }
    runtime.finish(&mut progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> FlowSettings {
        FlowSettings {
            batch: Duration::from_millis(100),
            max_in_flight: 2,
            stall: Duration::from_millis(500),
            max_lag: Duration::from_secs(1),
        }
    }

    #[test]
    fn real_time_admission_sheds_past_the_lag_limit_then_admits_again() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut lag = LagAdmission::new(Duration::from_secs(1));
        for (i, t) in [0, 100, 200].into_iter().enumerate() {
            assert_eq!(lag.admit(ms(t)), Admit::Send);
            lag.sent(ms(t), i as i64);
        }
        // Acknowledged up to the second batch: the lag is the third's age.
        lag.acknowledge(1);
        assert_eq!(lag.lag(ms(700)), Duration::from_millis(500));
        assert_eq!(lag.admit(ms(1200)), Admit::Send);
        // Over the limit: shed for half of it, then send again.
        assert_eq!(lag.admit(ms(1201)), Admit::Shed);
        assert_eq!(lag.overloads, 1);
        assert_eq!(lag.admit(ms(1600)), Admit::Shed);
        assert_eq!(lag.admit(ms(1701)), Admit::Send);
        assert_eq!(lag.lag(ms(1701)), Duration::ZERO, "measured afresh");
    }

    #[test]
    fn a_busy_graph_is_waited_for_and_acknowledgements_free_room() {
        let t0 = Instant::now();
        let mut flow = FlowControl::new(settings(), t0);
        assert_eq!(flow.admit(t0), Admit::Send);
        flow.sent(10, 3);
        assert_eq!(flow.admit(t0), Admit::Send);
        flow.sent(20, 3);
        assert_eq!(flow.admit(t0 + Duration::from_millis(100)), Admit::Wait);
        flow.acknowledge(10, t0 + Duration::from_millis(200));
        assert_eq!(flow.in_flight(), 1);
        assert_eq!(flow.admit(t0 + Duration::from_millis(200)), Admit::Send);
        assert_eq!((flow.shed_chunks, flow.unacknowledged_chunks), (0, 0));
    }

    #[test]
    fn a_stalled_graph_is_shed_with_probes_until_it_acknowledges_again() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut flow = FlowControl::new(settings(), t0);
        flow.sent(10, 3);
        flow.sent(20, 3);
        // Stalled: the first decision after the timeout is a probe (oldest batch given up).
        assert_eq!(flow.admit(ms(499)), Admit::Wait);
        assert_eq!(flow.admit(ms(500)), Admit::Send);
        assert!(flow.shedding());
        assert_eq!((flow.unacknowledged_chunks, flow.stalls), (3, 1));
        flow.sent(30, 3);
        // Then batches are shed at the flow control's pace (2 per 500 ms), until the next
        // probe.
        assert_eq!(flow.admit(ms(600)), Admit::Wait);
        assert_eq!(flow.admit(ms(750)), Admit::Shed);
        flow.shed(4);
        assert_eq!(flow.admit(ms(800)), Admit::Wait);
        assert_eq!(flow.admit(ms(999)), Admit::Wait);
        assert_eq!(flow.admit(ms(1000)), Admit::Send);
        flow.sent(40, 3);
        assert_eq!(flow.shed_chunks, 4);
        // A restarted graph acknowledges the probe: shedding ends.
        flow.acknowledge(40, ms(1100));
        assert!(!flow.shedding());
        assert_eq!(flow.in_flight(), 0);
        assert_eq!(flow.admit(ms(1100)), Admit::Send);
    }

    #[test]
    fn a_graph_that_answers_no_probe_is_given_up_and_the_rest_shed_at_once() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut flow = FlowControl::new(settings(), t0);
        flow.sent(10, 1);
        flow.sent(20, 1);
        let mut probes = 0;
        let mut t = 500;
        while !flow.given_up() {
            if flow.admit(ms(t)) == Admit::Send {
                probes += 1;
                flow.sent(t as i64, 1);
            }
            t += 10;
            assert!(t < 10_000, "never gave up");
        }
        assert_eq!(probes, MAX_UNANSWERED_PROBES);
        assert_eq!(flow.admit(ms(t)), Admit::Shed);
        assert_eq!(flow.admit(ms(t)), Admit::Shed, "no pacing once given up");
    }
}
