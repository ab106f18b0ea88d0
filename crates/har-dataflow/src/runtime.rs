//! The node runtime every node's `main` uses: one event loop, health rows, counting of lost
//! and rejected messages, and an orderly shutdown.
//!
//! A node is a [`NodeLogic`] (what to do with an input, a closed input, a tick, the stop) run
//! by [`NodeRuntime::run`]. The runtime owns what each node used to repeat:
//! - **Counting**: sequence gaps and dora's queue overflows are counted as `dropped`; a
//!   message the logic rejects as malformed ([`DataflowError::is_bad_input`]) is logged,
//!   counted as `dropped` and the node goes on — one bad message never ends a node.
//! - **Health**: a `log_node_health` row every [`HEALTH_INTERVAL`] and one at the end.
//! - **Orderly shutdown**: dora delivers `Stop` ahead of inputs already queued, so the loop
//!   keeps receiving after `Stop` until the stream ends, then calls [`NodeLogic::finish`]
//!   (which flushes what the node holds and sends it downstream) before the last health row.
//!   Breaking on `Stop` lost the tail of every run.
//!
//! Sources (sensor-ingest) drive their own pacing and call [`NodeRuntime::poll`] between
//! sends.

use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, RecordBatch};
use dora_node_api::dora_core::config::DataId;
use dora_node_api::{
    DoraArray, DoraNode, Event, EventStream, Metadata, MetadataParameters, Parameter,
};
use har_core::schema::SchemaName;
use har_core::streams::StreamMessage;

use crate::dora_io::{
    batch_of, dora_drops, next_event, receive, GapCounter, Sender, Wait, SCHEMA_PARAM,
};
use crate::error::{DataflowError, Result};
use crate::health::Health;

/// How often nodes report health.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// Longest the loop sleeps without looking at health and ticks.
const MAX_WAIT: Duration = Duration::from_millis(100);

/// Rejections logged in full per node; after that only every 1000th (all are counted).
const LOGGED_REJECTIONS: u64 = 20;

/// Logs through `tracing` to stderr, filtered by `RUST_LOG` (default `info`, with dora's
/// transport diagnostics quietened).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,zenoh=error,zenoh_transport=error,dora_node_api=error",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Logs the `count`-th rejection of a `what` (the first [`LOGGED_REJECTIONS`], then every
/// 1000th: a flood of bad input must not flood the log; all are counted in health).
pub fn warn_rejected(what: &str, count: u64, error: &dyn std::fmt::Display) {
    if count <= LOGGED_REJECTIONS || count % 1000 == 0 {
        tracing::warn!(rejected = count, "{what} rejected: {error}");
    }
}

/// Rejections of one kind of item (a chunk, a window) inside a message: the item is dropped,
/// counted and logged (rate-limited); the rest of the message goes on.
#[derive(Debug)]
pub struct Rejections {
    what: &'static str,
    /// Items rejected so far.
    pub count: u64,
}

impl Rejections {
    /// Rejections of items called `what` in the log.
    pub fn new(what: &'static str) -> Self {
        Self { what, count: 0 }
    }

    /// Passes a result through: a bad-input error becomes `None` (counted), any other error
    /// is returned.
    pub fn check<T>(&mut self, result: Result<T>) -> Result<Option<T>> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(e) if e.is_bad_input() => {
                self.count += 1;
                warn_rejected(self.what, self.count, &e);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// What a node does with its events; [`NodeRuntime::run`] owns the loop.
pub trait NodeLogic {
    /// Handles one input message. An error for which [`DataflowError::is_bad_input`] holds
    /// rejects this message only (counted); any other error ends the node.
    fn on_input(&mut self, out: &mut Outputs<'_>, input: Input<'_>) -> Result<()>;

    /// An upstream node exited: no more messages on `input`.
    fn on_input_closed(&mut self, _out: &mut Outputs<'_>, _input: &str) -> Result<()> {
        Ok(())
    }

    /// Called after every event and wake-up: release what is due.
    fn on_tick(&mut self, _out: &mut Outputs<'_>) -> Result<()> {
        Ok(())
    }

    /// How long the loop may wait for an event before [`NodeLogic::on_tick`] is due.
    fn next_wake(&self) -> Option<Duration> {
        None
    }

    /// The stream has ended: send everything still held.
    fn finish(&mut self, _out: &mut Outputs<'_>) -> Result<()> {
        Ok(())
    }

    /// The node's own counts for its health row: (dropped, degraded, backlog).
    fn counts(&self) -> LogicCounts {
        LogicCounts::default()
    }

    /// Where a health row goes: the `health` output (the log node writes its own).
    fn report_health(&mut self, out: &mut Outputs<'_>, row: RecordBatch) -> Result<()> {
        out.sender
            .send_batch(out.node, "health", SchemaName::LogNodeHealth, row)
    }
}

/// One received message.
#[derive(Clone, Copy)]
pub struct Input<'a> {
    /// The input id (as named in the yml).
    pub id: &'a str,
    /// dora's metadata, with the sender's parameters (schema name, sequence number).
    pub metadata: &'a Metadata,
    /// The Arrow payload.
    pub data: &'a DoraArray,
}

impl Input<'_> {
    /// The message's batch (a struct array), unchecked.
    pub fn batch(&self) -> Result<RecordBatch> {
        batch_of(self.id, self.data)
    }

    /// The message's rows as typed messages, checked against their schema.
    pub fn rows<T: StreamMessage>(&self) -> Result<Vec<T>> {
        receive(self.id, self.data)
    }

    /// The schema name the sender declared (empty when none).
    pub fn schema(&self) -> &str {
        match self.metadata.parameters.get(SCHEMA_PARAM) {
            Some(Parameter::String(s)) => s,
            _ => "",
        }
    }
}

/// A node's own contribution to its health row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogicCounts {
    /// Messages or rows the logic discarded for a counted reason.
    pub dropped: u64,
    /// Degraded results.
    pub degraded: u64,
    /// What the node holds: windows waiting, rows buffered, batches in flight.
    pub backlog: u64,
}

/// What a node may send while handling an event.
pub struct Outputs<'a> {
    node: &'a mut DoraNode,
    sender: &'a mut Sender,
    health: &'a mut Health,
}

impl Outputs<'_> {
    /// Sends typed rows on `output` as one batch (nothing for none); counts them as sent.
    pub fn send<T: StreamMessage>(&mut self, output: &str, rows: &[T]) -> Result<()> {
        self.health.sent += rows.len() as u64;
        self.sender.send(self.node, output, rows)
    }

    /// Sends a batch of `schema` on `output`; counts its rows as sent.
    pub fn send_batch(
        &mut self,
        output: &str,
        schema: SchemaName,
        batch: RecordBatch,
    ) -> Result<()> {
        self.health.sent += batch.num_rows() as u64;
        self.sender.send_batch(self.node, output, schema, batch)
    }

    /// Sends a plain Arrow array (control messages such as `progress`), not counted as rows.
    pub fn send_array(&mut self, output: &str, array: ArrayRef) -> Result<()> {
        self.node
            .send_output(
                DataId::from(output.to_string()),
                MetadataParameters::new(),
                DoraArray::from(array),
            )
            .map_err(|e| DataflowError::Dora(format!("output `{output}`: {e}")))
    }

    /// Counts received rows.
    pub fn received(&mut self, rows: usize) {
        self.health.received += rows as u64;
    }
}

/// Why the event stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// All inputs closed (the normal end of a run).
    InputsClosed,
    /// A manual stop (`dora stop`, ctrl-c).
    Stopped,
    /// The stream closed without a stop event.
    Closed,
}

/// Totals of a finished run of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// Rows received.
    pub received: u64,
    /// Rows sent.
    pub sent: u64,
    /// Messages lost in transport (sequence gaps, dora queue overflows).
    pub lost_in_transport: u64,
    /// Messages rejected as malformed.
    pub rejected: u64,
    /// How the stream ended.
    pub ending: Ending,
}

/// One node's connection to dora with its counters.
pub struct NodeRuntime {
    node: DoraNode,
    events: EventStream,
    sender: Sender,
    gaps: GapCounter,
    health: Health,
    lost_in_transport: u64,
    rejected: Rejections,
    ending: Option<Ending>,
    stop_seen: Option<Ending>,
}

impl NodeRuntime {
    /// Connects to the dora daemon (node started by dora) as node `name` in the health rows.
    pub fn init(name: &str) -> Result<Self> {
        let (node, events) =
            DoraNode::init_from_env().map_err(|e| DataflowError::Dora(format!("init: {e}")))?;
        Ok(Self::new(node, events, name))
    }

    /// A runtime over an already connected node (tests use `DoraNode::init_testing`).
    pub fn new(node: DoraNode, events: EventStream, name: &str) -> Self {
        let health = Health::new(&node.dataflow_id().to_string(), name, HEALTH_INTERVAL);
        if node.restart_count() > 0 {
            tracing::warn!(
                restarts = node.restart_count(),
                "{name} restarted: what the previous instance held is lost"
            );
        }
        Self {
            node,
            events,
            sender: Sender::default(),
            gaps: GapCounter::default(),
            health,
            lost_in_transport: 0,
            rejected: Rejections::new("message"),
            ending: None,
            stop_seen: None,
        }
    }

    /// The run id (the dora dataflow's id).
    pub fn run_id(&self) -> String {
        self.node.dataflow_id().to_string()
    }

    /// Whether the event stream has ended.
    pub fn ended(&self) -> bool {
        self.ending.is_some()
    }

    /// Whether a stop (or the end of the stream) was seen: sources stop producing.
    pub fn stopping(&self) -> bool {
        self.stop_seen.is_some() || self.ending.is_some()
    }

    /// The health counters (sources count what they send and shed here).
    pub fn health_mut(&mut self) -> &mut Health {
        &mut self.health
    }

    /// What a source may send between polls.
    pub fn outputs(&mut self) -> Outputs<'_> {
        Outputs {
            node: &mut self.node,
            sender: &mut self.sender,
            health: &mut self.health,
        }
    }

    /// Runs `logic` until the event stream ends, then finishes it; returns the totals.
    pub fn run(mut self, logic: &mut impl NodeLogic) -> Result<RunSummary> {
        while !self.ended() {
            let wait = logic.next_wake().unwrap_or(MAX_WAIT).min(MAX_WAIT);
            self.poll(logic, wait)?;
        }
        self.finish(logic)
    }

    /// Waits at most `wait` for one event and handles it, then ticks and reports health.
    pub fn poll(&mut self, logic: &mut impl NodeLogic, wait: Duration) -> Result<()> {
        match next_event(&mut self.events, wait) {
            Wait::Event(event) => self.handle(logic, event)?,
            Wait::Timeout => {
                if self.stop_seen.is_some() {
                    // Stop seen and nothing queued: the stream is over.
                    self.ending = self.stop_seen;
                }
            }
            Wait::Closed => self.ending = Some(self.stop_seen.unwrap_or(Ending::Closed)),
        }
        logic.on_tick(&mut self.outputs())?;
        self.lost_in_transport += dora_drops(&mut self.events);
        if self.health.due() {
            self.report(logic)?;
        }
        Ok(())
    }

    /// Polls until `deadline` (or the end of the stream).
    pub fn poll_until(&mut self, logic: &mut impl NodeLogic, deadline: Instant) -> Result<()> {
        loop {
            let now = Instant::now();
            if now >= deadline || self.stopping() {
                return Ok(());
            }
            self.poll(logic, (deadline - now).min(MAX_WAIT))?;
        }
    }

    fn handle(&mut self, logic: &mut impl NodeLogic, event: Event) -> Result<()> {
        match event {
            Event::Input { id, metadata, data } => {
                self.lost_in_transport += self.gaps.observe(id.as_str(), &metadata);
                let input = Input {
                    id: id.as_str(),
                    metadata: &metadata,
                    data: &data,
                };
                let handled = logic.on_input(&mut self.outputs(), input);
                self.rejected.check(handled)?;
            }
            Event::InputClosed { id } => {
                tracing::info!(input = id.as_str(), "input closed");
                logic.on_input_closed(&mut self.outputs(), id.as_str())?;
            }
            Event::Stop(cause) => {
                let ending = match cause {
                    dora_node_api::StopCause::Manual => Ending::Stopped,
                    _ => Ending::InputsClosed,
                };
                tracing::debug!(?ending, "stop: draining what is queued");
                self.stop_seen = Some(ending);
            }
            Event::NodeFailed {
                source_node_id,
                error,
                ..
            } => tracing::warn!(node = %source_node_id, "upstream node failed: {error}"),
            Event::NodeRestarted { id } => tracing::info!(node = %id, "upstream node restarted"),
            Event::Error(e) => tracing::warn!("dora: {e}"),
            _ => {}
        }
        Ok(())
    }

    fn report(&mut self, logic: &mut impl NodeLogic) -> Result<()> {
        let counts = logic.counts();
        self.health.dropped = self.lost_in_transport + self.rejected.count + counts.dropped;
        self.health.degraded = counts.degraded;
        let row = self.health.row(counts.backlog)?;
        logic.report_health(&mut self.outputs(), row)
    }

    /// Finishes `logic` (it sends what it holds) and sends the last health row.
    pub fn finish(mut self, logic: &mut impl NodeLogic) -> Result<RunSummary> {
        logic.finish(&mut self.outputs())?;
        self.lost_in_transport += dora_drops(&mut self.events);
        self.report(logic)?;
        let summary = RunSummary {
            received: self.health.received,
            sent: self.health.sent,
            lost_in_transport: self.lost_in_transport,
            rejected: self.rejected.count,
            ending: self.ending.unwrap_or(Ending::Closed),
        };
        tracing::info!(?summary, "finished");
        Ok(summary)
    }
}
