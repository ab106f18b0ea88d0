//! The glue between typed stream messages and dora: batches travel as one `StructArray` per
//! message; the schema name and a per-output sequence number travel in the message
//! parameters (schema metadata does not survive the transport). Receivers check the batch
//! against the declared schema and count sequence gaps as lost messages.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StructArray};
use dora_node_api::dora_core::config::DataId;
use dora_node_api::{
    futures, DoraArray, DoraNode, Event, EventStream, Metadata, MetadataParameters, Parameter,
};
use har_core::schema::SchemaName;
use har_core::streams::StreamMessage;

use crate::error::{DataflowError, Result};
use crate::health::Health;

/// Parameter naming the schema of a message's batch.
pub const SCHEMA_PARAM: &str = "har.schema";
/// Parameter with the sender's per-output sequence number.
pub const SEQ_PARAM: &str = "har.seq";

/// Sends batches with schema names and sequence numbers.
#[derive(Debug, Default)]
pub struct Sender {
    next_seq: HashMap<String, i64>,
}

impl Sender {
    /// Sends a batch of `schema` on `output` (no message for an empty batch).
    pub fn send_batch(
        &mut self,
        node: &mut DoraNode,
        output: &str,
        schema: SchemaName,
        batch: RecordBatch,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let seq = self.next_seq.entry(output.to_string()).or_insert(0);
        let mut parameters = MetadataParameters::new();
        parameters.insert(
            SCHEMA_PARAM.into(),
            Parameter::String(schema.file_stem().into()),
        );
        parameters.insert(SEQ_PARAM.into(), Parameter::Integer(*seq));
        *seq += 1;
        let array: ArrayRef = Arc::new(StructArray::from(batch));
        node.send_output(
            DataId::from(output.to_string()),
            parameters,
            DoraArray::from(array),
        )
        .map_err(|e| DataflowError::Dora(format!("output `{output}`: {e}")))
    }

    /// Sends a `log_node_health` row on the `health` output.
    pub fn send_health(
        &mut self,
        node: &mut DoraNode,
        health: &Health,
        backlog: u64,
    ) -> Result<()> {
        self.send_batch(
            node,
            "health",
            SchemaName::LogNodeHealth,
            health.row(backlog)?,
        )
    }

    /// Sends typed messages as one batch.
    pub fn send<T: StreamMessage>(
        &mut self,
        node: &mut DoraNode,
        output: &str,
        rows: &[T],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.send_batch(node, output, T::SCHEMA, T::to_batch(rows)?)
    }
}

/// The batch carried by an input message.
pub fn batch_of(input: &str, data: &DoraArray) -> Result<RecordBatch> {
    let array = data.as_array();
    let structs = array.as_struct_opt().ok_or_else(|| {
        DataflowError::stream(
            input,
            "(message)",
            format!("expected a struct array, got {}", array.data_type()),
        )
    })?;
    Ok(RecordBatch::from(structs.clone()))
}

/// Typed messages of an input message, checked against their schema.
pub fn receive<T: StreamMessage>(input: &str, data: &DoraArray) -> Result<Vec<T>> {
    let batch = batch_of(input, data)?;
    T::from_batch(&batch).map_err(|e| DataflowError::stream(input, T::SCHEMA.file_stem(), e))
}

/// Counts lost messages per input from sequence gaps.
#[derive(Debug, Default)]
pub struct GapCounter {
    last_seq: HashMap<String, i64>,
}

impl GapCounter {
    /// Notes a received message; returns how many messages before it never arrived.
    pub fn observe(&mut self, input: &str, metadata: &Metadata) -> u64 {
        let Some(Parameter::Integer(seq)) = metadata.parameters.get(SEQ_PARAM) else {
            return 0;
        };
        let previous = self.last_seq.insert(input.to_string(), *seq);
        match previous {
            Some(p) if *seq > p + 1 => (*seq - p - 1) as u64,
            _ => 0,
        }
    }
}

/// What waiting for the next event gave.
#[derive(Debug)]
pub enum Wait {
    /// An event.
    Event(Event),
    /// Nothing within the timeout.
    Timeout,
    /// The event stream has ended.
    Closed,
}

/// Waits at most `timeout` for the next event. (dora's `recv_timeout` reports a timeout as an
/// error event whose report captures a backtrace when `RUST_BACKTRACE` is set: costly at every
/// tick of a loop that waits on deadlines.)
pub fn next_event(events: &mut EventStream, timeout: Duration) -> Wait {
    let delay = futures_timer::Delay::new(timeout);
    let next = std::pin::pin!(events.recv_async());
    match futures::executor::block_on(futures::future::select(delay, next)) {
        futures::future::Either::Left(_) => Wait::Timeout,
        futures::future::Either::Right((Some(event), _)) => Wait::Event(event),
        futures::future::Either::Right((None, _)) => Wait::Closed,
    }
}

/// Messages dora discarded since the last call (queue overflows), over all inputs.
pub fn dora_drops(events: &mut EventStream) -> u64 {
    events.drain_drop_counts().values().sum()
}
