//! Typed messages of the dataflow streams and their Arrow batches, one row per message, in
//! the schemas of `schemas/` (built through [`build_batch`], checked by [`check_batch`]).
//! Nodes send `to_batch(&[…])` and read `from_batch(&batch)`; a batch from another producer
//! that lacks a field or has a wrong type is rejected with an error naming stream and field.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array,
    ListArray, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field};

use crate::error::{HarError, Result};
use crate::schema::{build_batch, check_batch, SchemaName};

/// Who produced a message: device, subject and session.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Source {
    /// Device id.
    pub device_id: String,
    /// Subject id.
    pub subject_id: String,
    /// Session id.
    pub session_id: String,
}

/// A chunk of raw samples of one modality (schema `sensor_chunk`).
#[derive(Debug, Clone, PartialEq)]
pub struct SensorChunk {
    /// Producer.
    pub source: Source,
    /// Modality name.
    pub modality: String,
    /// Sequence number per (device, modality).
    pub chunk_seq: u64,
    /// Nominal rate.
    pub sample_rate_hz: f64,
    /// Channels per sample.
    pub channel_count: u32,
    /// Per-sample timestamps (sensor clock).
    pub timestamps_ns: Vec<i64>,
    /// Samples × channels, row-major.
    pub values: Vec<f32>,
    /// Ground-truth label per sample, when replaying a labelled recording.
    pub labels: Option<Vec<i32>>,
    /// Wall clock at emission.
    pub ingest_ts_ns: i64,
}

/// Identity, ground truth and timing of one modality of one window; shared by the window
/// and token messages, whose schemas start with the same columns.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowKey {
    /// Window number (per device and run); equal across the modalities of one window.
    pub window_id: u64,
    /// Producer.
    pub source: Source,
    /// Modality name.
    pub modality: String,
    /// First sample time (sensor clock).
    pub start_ns: i64,
    /// Last sample time (sensor clock).
    pub end_ns: i64,
    /// Ground truth, when known.
    pub label: Option<i32>,
    /// Wall clock when the window's last sample was ingested.
    pub ingest_ts_ns: i64,
    /// Wall clock when preprocess emitted the window.
    pub preprocess_ts_ns: i64,
}

/// One modality of a preprocessed window (schema `window`).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowMessage {
    /// Which window.
    pub key: WindowKey,
    /// Steps (T).
    pub num_steps: u32,
    /// Channels (C).
    pub num_channels: u32,
    /// T × C normalised values, row-major.
    pub values: Vec<f32>,
}

/// One modality's tokens for a window (schema `token_embedding`).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenMessage {
    /// Which window.
    pub key: WindowKey,
    /// Tokens (N).
    pub num_tokens: u32,
    /// Token dimension (D).
    pub dim: u32,
    /// N × D values, row-major.
    pub values: Vec<f32>,
    /// Wall clock when the encoder emitted the tokens.
    pub encode_ts_ns: i64,
}

/// A prediction for one window (schema `prediction`).
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionMessage {
    /// Window number.
    pub window_id: u64,
    /// Producer.
    pub source: Source,
    /// First sample time.
    pub start_ns: i64,
    /// Last sample time.
    pub end_ns: i64,
    /// Predicted class id.
    pub predicted_label: i32,
    /// Predicted class name.
    pub predicted_name: String,
    /// Probability of the predicted class.
    pub confidence: f32,
    /// Class probabilities.
    pub probabilities: Vec<f32>,
    /// Ground truth, when known.
    pub true_label: Option<i32>,
    /// Model identifier.
    pub model_id: String,
    /// Modalities that arrived in time.
    pub modalities_present: Vec<String>,
    /// True when a modality was missing.
    pub degraded: bool,
    /// Ingest wall clock.
    pub ingest_ts_ns: i64,
    /// Preprocess wall clock.
    pub preprocess_ts_ns: i64,
    /// Encode wall clock.
    pub encode_ts_ns: i64,
    /// Fuse wall clock.
    pub fuse_ts_ns: i64,
}

/// A message type with a declared stream schema.
pub trait StreamMessage: Sized {
    /// The schema its batches follow.
    const SCHEMA: SchemaName;
    /// Packs messages into one batch (one row each).
    fn to_batch(rows: &[Self]) -> Result<RecordBatch>;
    /// Unpacks a batch, checking it against the schema first.
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>>;
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from(values.collect::<Vec<_>>()))
}

fn source_columns(sources: impl Iterator<Item = Source> + Clone) -> [ArrayRef; 3] {
    let collect = |f: fn(Source) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(sources.clone().map(f)))
    };
    [
        collect(|s| s.device_id),
        collect(|s| s.subject_id),
        collect(|s| s.session_id),
    ]
}

/// A list column from rows of a primitive array type.
fn list<A: Array + 'static>(rows: Vec<Option<usize>>, values: A) -> ArrayRef {
    let nulls: Option<arrow::buffer::NullBuffer> = rows
        .iter()
        .any(|r| r.is_none())
        .then(|| rows.iter().map(|r| r.is_some()).collect());
    let item = Arc::new(Field::new_list_field(values.data_type().clone(), true));
    let offsets = OffsetBuffer::from_lengths(rows.iter().map(|r| r.unwrap_or(0)));
    Arc::new(ListArray::new(item, offsets, Arc::new(values), nulls))
}

fn list_f32<'a>(rows: impl Iterator<Item = &'a [f32]> + Clone) -> ArrayRef {
    list(
        rows.clone().map(|r| Some(r.len())).collect(),
        Float32Array::from_iter_values(rows.flatten().copied()),
    )
}

/// Reads typed columns of a batch, with errors naming the stream and field.
struct Columns<'a> {
    schema: SchemaName,
    batch: &'a RecordBatch,
}

impl<'a> Columns<'a> {
    fn new(schema: SchemaName, batch: &'a RecordBatch) -> Result<Self> {
        check_batch(schema, batch)?;
        Ok(Self { schema, batch })
    }

    fn error(&self, field: &str, problem: &str) -> HarError {
        HarError::invalid(self.schema.file_stem(), field, problem)
    }

    fn get<T: 'static>(&self, name: &str) -> Result<&'a T> {
        self.batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<T>())
            .ok_or_else(|| self.error(name, "missing or of the wrong type"))
    }

    fn strings(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .get::<StringArray>(name)?
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect())
    }

    fn sources(&self) -> Result<Vec<Source>> {
        let (d, s, e) = (
            self.strings("device_id")?,
            self.strings("subject_id")?,
            self.strings("session_id")?,
        );
        Ok(d.into_iter()
            .zip(s)
            .zip(e)
            .map(|((device_id, subject_id), session_id)| Source {
                device_id,
                subject_id,
                session_id,
            })
            .collect())
    }

    /// Rows of a list column of primitive `T` (null rows become `None`, null items NaN/0).
    fn list_rows<T: arrow::datatypes::ArrowPrimitiveType>(
        &self,
        name: &str,
    ) -> Result<Vec<Option<Vec<T::Native>>>> {
        let list = self.get::<ListArray>(name)?;
        let values = list
            .values()
            .as_primitive_opt::<T>()
            .ok_or_else(|| self.error(name, "list items of the wrong type"))?;
        Ok((0..list.len())
            .map(|i| {
                list.is_valid(i).then(|| {
                    let (a, b) = (
                        list.value_offsets()[i] as usize,
                        list.value_offsets()[i + 1] as usize,
                    );
                    values.values()[a..b].to_vec()
                })
            })
            .collect())
    }

    fn required_rows<T: arrow::datatypes::ArrowPrimitiveType>(
        &self,
        name: &str,
    ) -> Result<Vec<Vec<T::Native>>> {
        self.list_rows::<T>(name)?
            .into_iter()
            .map(|r| r.ok_or_else(|| self.error(name, "null list")))
            .collect()
    }
}

fn check_len(schema: SchemaName, field: &str, got: usize, expected: usize) -> Result<()> {
    if got != expected {
        return Err(HarError::invalid(
            schema.file_stem(),
            field,
            format!("{got} values, expected {expected}"),
        ));
    }
    Ok(())
}

impl StreamMessage for SensorChunk {
    const SCHEMA: SchemaName = SchemaName::SensorChunk;

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        for r in rows {
            check_len(
                Self::SCHEMA,
                "values",
                r.values.len(),
                r.timestamps_ns.len() * r.channel_count as usize,
            )?;
            if let Some(labels) = &r.labels {
                check_len(Self::SCHEMA, "labels", labels.len(), r.timestamps_ns.len())?;
            }
        }
        let [device, subject, session] = source_columns(rows.iter().map(|r| r.source.clone()));
        let timestamps = list(
            rows.iter().map(|r| Some(r.timestamps_ns.len())).collect(),
            Int64Array::from_iter_values(rows.iter().flat_map(|r| r.timestamps_ns.iter().copied())),
        );
        let labels = list(
            rows.iter()
                .map(|r| r.labels.as_ref().map(Vec::len))
                .collect(),
            Int32Array::from_iter_values(
                rows.iter().flat_map(|r| r.labels.iter().flatten().copied()),
            ),
        );
        build_batch(
            Self::SCHEMA,
            vec![
                device,
                subject,
                session,
                strings(rows.iter().map(|r| r.modality.as_str())),
                Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| r.chunk_seq),
                )),
                Arc::new(Float64Array::from_iter_values(
                    rows.iter().map(|r| r.sample_rate_hz),
                )),
                Arc::new(UInt32Array::from_iter_values(
                    rows.iter().map(|r| r.channel_count),
                )),
                timestamps,
                list_f32(rows.iter().map(|r| r.values.as_slice())),
                labels,
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| r.ingest_ts_ns),
                )),
            ],
        )
    }

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let c = Columns::new(Self::SCHEMA, batch)?;
        let (modality, seq, rate, channels) = (
            c.strings("modality")?,
            c.get::<UInt64Array>("chunk_seq")?,
            c.get::<Float64Array>("sample_rate_hz")?,
            c.get::<UInt32Array>("channel_count")?,
        );
        let timestamps = c.required_rows::<arrow::datatypes::Int64Type>("timestamps_ns")?;
        let values = c.required_rows::<arrow::datatypes::Float32Type>("values")?;
        let labels = c.list_rows::<arrow::datatypes::Int32Type>("labels")?;
        let ingest = c.get::<Int64Array>("ingest_ts_ns")?;
        let mut out = Vec::with_capacity(batch.num_rows());
        for (i, (((source, timestamps_ns), values), labels)) in c
            .sources()?
            .into_iter()
            .zip(timestamps)
            .zip(values)
            .zip(labels)
            .enumerate()
        {
            check_len(
                Self::SCHEMA,
                "values",
                values.len(),
                timestamps_ns.len() * channels.value(i) as usize,
            )?;
            if let Some(labels) = &labels {
                check_len(Self::SCHEMA, "labels", labels.len(), timestamps_ns.len())?;
            }
            out.push(SensorChunk {
                source,
                modality: modality[i].clone(),
                chunk_seq: seq.value(i),
                sample_rate_hz: rate.value(i),
                channel_count: channels.value(i),
                timestamps_ns,
                values,
                labels,
                ingest_ts_ns: ingest.value(i),
            });
        }
        Ok(out)
    }
}

/// A window key with a row-major matrix: the common part of window and token messages.
struct Matrix<'a> {
    key: &'a WindowKey,
    rows: u32,
    cols: u32,
    values: &'a [f32],
}

/// The 13 leading columns shared by the `window` and `token_embedding` schemas.
fn matrix_columns(schema: SchemaName, matrices: &[Matrix]) -> Result<Vec<ArrayRef>> {
    for m in matrices {
        check_len(schema, "values", m.values.len(), (m.rows * m.cols) as usize)?;
    }
    let keys = || matrices.iter().map(|m| m.key);
    let [device, subject, session] = source_columns(keys().map(|k| k.source.clone()));
    Ok(vec![
        Arc::new(UInt64Array::from_iter_values(keys().map(|k| k.window_id))),
        device,
        subject,
        session,
        strings(keys().map(|k| k.modality.as_str())),
        Arc::new(Int64Array::from_iter_values(keys().map(|k| k.start_ns))),
        Arc::new(Int64Array::from_iter_values(keys().map(|k| k.end_ns))),
        Arc::new(UInt32Array::from_iter_values(
            matrices.iter().map(|m| m.rows),
        )),
        Arc::new(UInt32Array::from_iter_values(
            matrices.iter().map(|m| m.cols),
        )),
        list_f32(matrices.iter().map(|m| m.values)),
        Arc::new(Int32Array::from_iter(keys().map(|k| k.label))),
        Arc::new(Int64Array::from_iter_values(keys().map(|k| k.ingest_ts_ns))),
        Arc::new(Int64Array::from_iter_values(
            keys().map(|k| k.preprocess_ts_ns),
        )),
    ])
}

/// A window key with an owned matrix: (key, rows, cols, values).
type OwnedMatrix = (WindowKey, u32, u32, Vec<f32>);

/// Reads the shared leading columns of every row.
fn read_matrices(c: &Columns, rows_field: &str, cols_field: &str) -> Result<Vec<OwnedMatrix>> {
    let (id, modality, start, end) = (
        c.get::<UInt64Array>("window_id")?,
        c.strings("modality")?,
        c.get::<Int64Array>("start_ns")?,
        c.get::<Int64Array>("end_ns")?,
    );
    let (rows, cols, label) = (
        c.get::<UInt32Array>(rows_field)?,
        c.get::<UInt32Array>(cols_field)?,
        c.get::<Int32Array>("label")?,
    );
    let (ingest, preprocess) = (
        c.get::<Int64Array>("ingest_ts_ns")?,
        c.get::<Int64Array>("preprocess_ts_ns")?,
    );
    let values = c.required_rows::<arrow::datatypes::Float32Type>("values")?;
    c.sources()?
        .into_iter()
        .zip(values)
        .enumerate()
        .map(|(i, (source, values))| {
            check_len(
                c.schema,
                "values",
                values.len(),
                (rows.value(i) * cols.value(i)) as usize,
            )?;
            let key = WindowKey {
                window_id: id.value(i),
                source,
                modality: modality[i].clone(),
                start_ns: start.value(i),
                end_ns: end.value(i),
                label: label.is_valid(i).then(|| label.value(i)),
                ingest_ts_ns: ingest.value(i),
                preprocess_ts_ns: preprocess.value(i),
            };
            Ok((key, rows.value(i), cols.value(i), values))
        })
        .collect()
}

impl StreamMessage for WindowMessage {
    const SCHEMA: SchemaName = SchemaName::Window;

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        let matrices: Vec<Matrix> = rows
            .iter()
            .map(|r| Matrix {
                key: &r.key,
                rows: r.num_steps,
                cols: r.num_channels,
                values: &r.values,
            })
            .collect();
        build_batch(Self::SCHEMA, matrix_columns(Self::SCHEMA, &matrices)?)
    }

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let c = Columns::new(Self::SCHEMA, batch)?;
        Ok(read_matrices(&c, "num_steps", "num_channels")?
            .into_iter()
            .map(|(key, num_steps, num_channels, values)| WindowMessage {
                key,
                num_steps,
                num_channels,
                values,
            })
            .collect())
    }
}

impl StreamMessage for TokenMessage {
    const SCHEMA: SchemaName = SchemaName::TokenEmbedding;

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        let matrices: Vec<Matrix> = rows
            .iter()
            .map(|r| Matrix {
                key: &r.key,
                rows: r.num_tokens,
                cols: r.dim,
                values: &r.values,
            })
            .collect();
        let mut columns = matrix_columns(Self::SCHEMA, &matrices)?;
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.encode_ts_ns),
        )));
        build_batch(Self::SCHEMA, columns)
    }

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let c = Columns::new(Self::SCHEMA, batch)?;
        let encode = c.get::<Int64Array>("encode_ts_ns")?;
        Ok(read_matrices(&c, "num_tokens", "dim")?
            .into_iter()
            .enumerate()
            .map(|(i, (key, num_tokens, dim, values))| TokenMessage {
                key,
                num_tokens,
                dim,
                values,
                encode_ts_ns: encode.value(i),
            })
            .collect())
    }
}

impl StreamMessage for PredictionMessage {
    const SCHEMA: SchemaName = SchemaName::Prediction;

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        let [device, subject, session] = source_columns(rows.iter().map(|r| r.source.clone()));
        let present = list(
            rows.iter()
                .map(|r| Some(r.modalities_present.len()))
                .collect(),
            StringArray::from(
                rows.iter()
                    .flat_map(|r| r.modalities_present.iter().map(String::as_str))
                    .collect::<Vec<_>>(),
            ),
        );
        build_batch(
            Self::SCHEMA,
            vec![
                Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| r.window_id),
                )),
                device,
                subject,
                session,
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| r.start_ns),
                )),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.end_ns))),
                Arc::new(Int32Array::from_iter_values(
                    rows.iter().map(|r| r.predicted_label),
                )),
                strings(rows.iter().map(|r| r.predicted_name.as_str())),
                Arc::new(Float32Array::from_iter_values(
                    rows.iter().map(|r| r.confidence),
                )),
                list_f32(rows.iter().map(|r| r.probabilities.as_slice())),
                Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.true_label))),
                strings(rows.iter().map(|r| r.model_id.as_str())),
                present,
                Arc::new(BooleanArray::from_iter(
                    rows.iter().map(|r| Some(r.degraded)),
                )),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| r.ingest_ts_ns),
                )),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| r.preprocess_ts_ns),
                )),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| r.encode_ts_ns),
                )),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| r.fuse_ts_ns),
                )),
            ],
        )
    }

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let c = Columns::new(Self::SCHEMA, batch)?;
        let (id, start, end) = (
            c.get::<UInt64Array>("window_id")?,
            c.get::<Int64Array>("start_ns")?,
            c.get::<Int64Array>("end_ns")?,
        );
        let (label, name, confidence) = (
            c.get::<Int32Array>("predicted_label")?,
            c.strings("predicted_name")?,
            c.get::<Float32Array>("confidence")?,
        );
        let (truth, model, degraded) = (
            c.get::<Int32Array>("true_label")?,
            c.strings("model_id")?,
            c.get::<BooleanArray>("degraded")?,
        );
        let stamps = [
            "ingest_ts_ns",
            "preprocess_ts_ns",
            "encode_ts_ns",
            "fuse_ts_ns",
        ]
        .map(|n| c.get::<Int64Array>(n))
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
        let probabilities = c.required_rows::<arrow::datatypes::Float32Type>("probabilities")?;
        let present_list = c.get::<ListArray>("modalities_present")?;
        if present_list.values().data_type() != &DataType::Utf8 {
            return Err(c.error("modalities_present", "list items are not utf8"));
        }
        let present: Vec<Vec<String>> = (0..present_list.len())
            .map(|i| {
                present_list
                    .value(i)
                    .as_string::<i32>()
                    .iter()
                    .map(|s| s.unwrap_or_default().to_string())
                    .collect()
            })
            .collect();
        Ok(c.sources()?
            .into_iter()
            .zip(probabilities)
            .zip(present)
            .enumerate()
            .map(
                |(i, ((source, probabilities), modalities_present))| PredictionMessage {
                    window_id: id.value(i),
                    source,
                    start_ns: start.value(i),
                    end_ns: end.value(i),
                    predicted_label: label.value(i),
                    predicted_name: name[i].clone(),
                    confidence: confidence.value(i),
                    probabilities,
                    true_label: truth.is_valid(i).then(|| truth.value(i)),
                    model_id: model[i].clone(),
                    modalities_present,
                    degraded: degraded.value(i),
                    ingest_ts_ns: stamps[0].value(i),
                    preprocess_ts_ns: stamps[1].value(i),
                    encode_ts_ns: stamps[2].value(i),
                    fuse_ts_ns: stamps[3].value(i),
                },
            )
            .collect())
    }
}
