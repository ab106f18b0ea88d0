//! Driving a node in-process with dora's testing mode (`DoraNode::init_testing`): a scripted
//! list of input messages, closes and stops, and the outputs the node sent — no daemon.
//! Batches travel to the node as Arrow IPC files written into a folder the test owns.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};
use dora_node_api::dora_core::config::DataId;
use dora_node_api::integration_testing::integration_testing_format::{
    IncomingEvent, InputData, TimedIncomingEvent,
};
use dora_node_api::integration_testing::{
    drain_outputs, output_channel, IntegrationTestInput, OutputReceiver, TestingInput,
    TestingOptions, TestingOutput,
};
use dora_node_api::{DoraNode, MetadataParameters, Parameter};
use har_core::schema::SchemaName;
use har_core::streams::StreamMessage;
use serde_json::Value;

use crate::dora_io::{SCHEMA_PARAM, SEQ_PARAM};
use crate::error::{DataflowError, Result};
use crate::runtime::NodeRuntime;

/// The events a node under test receives, in time order.
pub struct Script {
    dir: PathBuf,
    events: Vec<TimedIncomingEvent>,
    next_seq: HashMap<String, i64>,
}

impl Script {
    /// A script whose batches are written under `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            events: Vec::new(),
            next_seq: HashMap::new(),
        }
    }

    /// Typed rows on `input` at `at_s` seconds, with their schema and the next sequence number.
    pub fn rows<T: StreamMessage>(
        &mut self,
        at_s: f64,
        input: &str,
        rows: &[T],
    ) -> Result<&mut Self> {
        let seq = self.next_seq.entry(input.to_string()).or_insert(0);
        let this_seq = *seq;
        *seq += 1;
        self.batch(
            at_s,
            input,
            Some(T::SCHEMA),
            Some(this_seq),
            T::to_batch(rows)?,
        )
    }

    /// A batch on `input` with the given schema name and sequence number (either may be
    /// missing or wrong on purpose).
    pub fn batch(
        &mut self,
        at_s: f64,
        input: &str,
        schema: Option<SchemaName>,
        seq: Option<i64>,
        batch: RecordBatch,
    ) -> Result<&mut Self> {
        let mut parameters = MetadataParameters::new();
        if let Some(schema) = schema {
            parameters.insert(
                SCHEMA_PARAM.into(),
                Parameter::String(schema.file_stem().into()),
            );
        }
        if let Some(seq) = seq {
            parameters.insert(SEQ_PARAM.into(), Parameter::Integer(seq));
        }
        let path = self.write(&batch)?;
        self.push(at_s, input, parameters, path, None);
        Ok(self)
    }

    /// A plain array (a control message such as `progress`) on `input`.
    pub fn array(&mut self, at_s: f64, input: &str, array: ArrayRef) -> Result<&mut Self> {
        let schema = Schema::new(vec![Field::new("value", array.data_type().clone(), true)]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![array])?;
        let path = self.write(&batch)?;
        self.push(
            at_s,
            input,
            MetadataParameters::new(),
            path,
            Some("value".into()),
        );
        Ok(self)
    }

    /// Empty messages on `input` every `every_s` until `until_s`. dora's testing mode blocks
    /// a node's wait until the next scripted event, so a source that paces itself (waits with
    /// a timeout) needs events to wake it; nodes ignore empty messages of no schema.
    pub fn ticks(&mut self, input: &str, every_s: f64, until_s: f64) -> &mut Self {
        let steps = (until_s / every_s).max(0.0) as usize;
        for i in 1..=steps {
            self.event(
                i as f64 * every_s,
                IncomingEvent::Input {
                    id: DataId::from(input.to_string()),
                    metadata: None,
                    data: None,
                },
            );
        }
        self
    }

    /// `input` closes at `at_s`.
    pub fn close(&mut self, at_s: f64, input: &str) -> &mut Self {
        self.event(
            at_s,
            IncomingEvent::InputClosed {
                id: DataId::from(input.to_string()),
            },
        )
    }

    /// Every input has closed at `at_s` (the normal end of a run).
    pub fn all_closed(&mut self, at_s: f64) -> &mut Self {
        self.event(at_s, IncomingEvent::AllInputsClosed)
    }

    /// A manual stop at `at_s`.
    pub fn stop(&mut self, at_s: f64) -> &mut Self {
        self.event(at_s, IncomingEvent::Stop)
    }

    /// Starts node `name` on this script; its outputs are captured.
    pub fn start(self, name: &str) -> Result<(NodeRuntime, Captured)> {
        let input = IntegrationTestInput::new(
            "node-under-test"
                .parse()
                .map_err(|e| DataflowError::Dora(format!("{e}")))?,
            self.events,
        );
        let (tx, rx) = output_channel();
        let options = TestingOptions {
            skip_output_time_offsets: true,
        };
        let (node, events) = DoraNode::init_testing(
            TestingInput::Input(input),
            TestingOutput::ToChannel(tx),
            options,
        )
        .map_err(|e| DataflowError::Dora(format!("testing mode: {e}")))?;
        Ok((NodeRuntime::new(node, events, name), Captured(rx)))
    }

    fn event(&mut self, at_s: f64, event: IncomingEvent) -> &mut Self {
        self.events.push(TimedIncomingEvent {
            time_offset_secs: at_s,
            event,
        });
        self
    }

    fn push(
        &mut self,
        at_s: f64,
        input: &str,
        parameters: MetadataParameters,
        path: PathBuf,
        column: Option<String>,
    ) {
        self.event(
            at_s,
            IncomingEvent::Input {
                id: DataId::from(input.to_string()),
                metadata: Some(parameters),
                data: Some(Box::new(InputData::ArrowFile {
                    path,
                    batch_index: 0,
                    column,
                })),
            },
        );
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<PathBuf> {
        let path = self
            .dir
            .join(format!("message-{}.arrow", self.events.len()));
        let file = std::fs::File::create(&path).map_err(|e| DataflowError::io(&path, e))?;
        let mut writer = arrow::ipc::writer::FileWriter::try_new(file, &batch.schema())?;
        writer.write(batch)?;
        writer.finish()?;
        Ok(path)
    }
}

/// The outputs a node under test sent.
pub struct Captured(OutputReceiver);

/// One sent message: its output id and its rows as JSON objects.
#[derive(Debug, Clone)]
pub struct SentMessage {
    /// Output id.
    pub output: String,
    /// Rows (struct batches) or values (plain arrays).
    pub rows: Vec<Value>,
}

impl Captured {
    /// Every message sent so far, in order.
    pub fn messages(&mut self) -> Vec<SentMessage> {
        drain_outputs(&mut self.0)
            .into_iter()
            .map(|mut m| SentMessage {
                output: m
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                rows: match m.remove("data") {
                    Some(Value::Array(rows)) => rows,
                    Some(other) => vec![other],
                    None => Vec::new(),
                },
            })
            .collect()
    }
}

/// The rows of every message on `output`, concatenated.
pub fn rows_of(messages: &[SentMessage], output: &str) -> Vec<Value> {
    messages
        .iter()
        .filter(|m| m.output == output)
        .flat_map(|m| m.rows.iter().cloned())
        .collect()
}
