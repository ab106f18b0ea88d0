//! Arrow schemas of every stream and table, loaded from the JSON files in `schemas/`.
//!
//! The files are the single source of truth: they are compiled into the library with
//! `include_str!`, parsed once, and every batch the library builds goes through
//! [`build_batch`], which fails when the columns disagree with the file. A schema file is
//!
//! ```json
//! { "name": "window", "version": 1, "kind": "stream", "description": "…",
//!   "fields": [ { "name": "values", "type": "list<float32>", "nullable": false,
//!                 "unit": "g", "description": "…" } ] }
//! ```
//!
//! Types: `bool`, `int8`…`int64`, `uint8`…`uint64`, `float32`, `float64`, `utf8`, and
//! `list<T>` (items nullable, named `item`, as Arrow's builders make them). `unit` and
//! `description` become field metadata; `name` and `version` become schema metadata.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::Deserialize;

use crate::error::{HarError, Result};

/// Every schema the system declares, one per file `schemas/<file_stem>.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaName {
    /// Raw sensor samples in chunks (stream: sensor-ingest → preprocess).
    SensorChunk,
    /// One modality of a preprocessed window (stream: preprocess → encode).
    Window,
    /// One modality's token embeddings of a window (stream: encode → fuse).
    TokenEmbedding,
    /// A prediction per window (stream: fuse → log).
    Prediction,
    /// Logged predictions with latencies (Parquet table).
    LogPredictions,
    /// Logged window summaries (Parquet table).
    LogWindows,
    /// Logged node health counters (Parquet table).
    LogNodeHealth,
    /// Activity segments (stream: segment → log, and Parquet table).
    LogSegments,
    /// Scene members' activities and scene label sets (stream: scene → log, and Parquet
    /// table).
    LogScenes,
    /// One modality of a recording on disk (Parquet file).
    RecordingSamples,
    /// Label intervals of a recording on disk (Parquet file).
    RecordingLabels,
}

impl SchemaName {
    /// All schemas, in a fixed order.
    pub const ALL: [SchemaName; 11] = [
        SchemaName::SensorChunk,
        SchemaName::Window,
        SchemaName::TokenEmbedding,
        SchemaName::Prediction,
        SchemaName::LogPredictions,
        SchemaName::LogWindows,
        SchemaName::LogNodeHealth,
        SchemaName::LogSegments,
        SchemaName::LogScenes,
        SchemaName::RecordingSamples,
        SchemaName::RecordingLabels,
    ];

    /// The file stem in `schemas/` (also the `name` inside the file).
    pub fn file_stem(self) -> &'static str {
        match self {
            SchemaName::SensorChunk => "sensor_chunk",
            SchemaName::Window => "window",
            SchemaName::TokenEmbedding => "token_embedding",
            SchemaName::Prediction => "prediction",
            SchemaName::LogPredictions => "log_predictions",
            SchemaName::LogWindows => "log_windows",
            SchemaName::LogNodeHealth => "log_node_health",
            SchemaName::LogSegments => "log_segments",
            SchemaName::LogScenes => "log_scenes",
            SchemaName::RecordingSamples => "recording_samples",
            SchemaName::RecordingLabels => "recording_labels",
        }
    }

    /// The folder of a log table under the log directory (`predictions`, `windows`,
    /// `node_health`); `None` for stream and recording schemas.
    pub fn log_folder(self) -> Option<&'static str> {
        match self {
            SchemaName::LogPredictions => Some("predictions"),
            SchemaName::LogWindows => Some("windows"),
            SchemaName::LogNodeHealth => Some("node_health"),
            SchemaName::LogSegments => Some("segments"),
            SchemaName::LogScenes => Some("scenes"),
            _ => None,
        }
    }

    fn source(self) -> &'static str {
        match self {
            SchemaName::SensorChunk => include_str!("../schemas/sensor_chunk.json"),
            SchemaName::Window => include_str!("../schemas/window.json"),
            SchemaName::TokenEmbedding => include_str!("../schemas/token_embedding.json"),
            SchemaName::Prediction => include_str!("../schemas/prediction.json"),
            SchemaName::LogPredictions => include_str!("../schemas/log_predictions.json"),
            SchemaName::LogWindows => include_str!("../schemas/log_windows.json"),
            SchemaName::LogNodeHealth => include_str!("../schemas/log_node_health.json"),
            SchemaName::LogSegments => include_str!("../schemas/log_segments.json"),
            SchemaName::LogScenes => include_str!("../schemas/log_scenes.json"),
            SchemaName::RecordingSamples => include_str!("../schemas/recording_samples.json"),
            SchemaName::RecordingLabels => include_str!("../schemas/recording_labels.json"),
        }
    }
}

/// One schema file as written in `schemas/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaFile {
    /// Schema name; must equal the file stem.
    pub name: String,
    /// Version, bumped on incompatible change.
    pub version: u32,
    /// `stream`, `log` or `recording`.
    pub kind: String,
    /// What one row is.
    pub description: String,
    /// The columns, in order.
    pub fields: Vec<FieldSpec>,
}

/// One column of a schema file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Column name.
    pub name: String,
    /// Type in the small grammar described in the module docs.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Whether the column may hold nulls.
    pub nullable: bool,
    /// Physical unit, if any.
    #[serde(default)]
    pub unit: Option<String>,
    /// What the column holds.
    pub description: String,
}

/// Parses a type of the schema grammar into an Arrow type.
pub fn parse_type(text: &str) -> Option<DataType> {
    let text = text.trim();
    if let Some(inner) = text.strip_prefix("list<").and_then(|t| t.strip_suffix('>')) {
        return parse_type(inner)
            .map(|item| DataType::List(Arc::new(Field::new_list_field(item, true))));
    }
    Some(match text {
        "bool" => DataType::Boolean,
        "int8" => DataType::Int8,
        "int16" => DataType::Int16,
        "int32" => DataType::Int32,
        "int64" => DataType::Int64,
        "uint8" => DataType::UInt8,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        "utf8" => DataType::Utf8,
        _ => return None,
    })
}

impl SchemaFile {
    /// Parses a schema file's JSON text.
    pub fn parse(name: &str, json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| HarError::schema(name, format!("invalid JSON: {e}")))
    }

    /// Builds the Arrow schema, with units and descriptions as field metadata.
    pub fn to_arrow(&self) -> Result<Schema> {
        let mut seen = std::collections::HashSet::new();
        let fields = self
            .fields
            .iter()
            .map(|spec| {
                if !seen.insert(spec.name.as_str()) {
                    return Err(HarError::schema(
                        &self.name,
                        format!("field `{}` declared twice", spec.name),
                    ));
                }
                let data_type = parse_type(&spec.type_name).ok_or_else(|| {
                    HarError::schema(
                        &self.name,
                        format!("field `{}`: unknown type `{}`", spec.name, spec.type_name),
                    )
                })?;
                let mut metadata =
                    HashMap::from([("description".to_string(), spec.description.clone())]);
                if let Some(unit) = &spec.unit {
                    metadata.insert("unit".to_string(), unit.clone());
                }
                Ok(Field::new(&spec.name, data_type, spec.nullable).with_metadata(metadata))
            })
            .collect::<Result<Vec<_>>>()?;
        let metadata = HashMap::from([
            ("schema_name".to_string(), self.name.clone()),
            ("schema_version".to_string(), self.version.to_string()),
        ]);
        Ok(Schema::new_with_metadata(fields, metadata))
    }
}

fn registry() -> &'static HashMap<SchemaName, Result<SchemaRef, String>> {
    static REGISTRY: OnceLock<HashMap<SchemaName, Result<SchemaRef, String>>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        SchemaName::ALL
            .iter()
            .map(|&name| {
                let parsed = SchemaFile::parse(name.file_stem(), name.source()).and_then(|file| {
                    if file.name != name.file_stem() {
                        return Err(HarError::schema(
                            name.file_stem(),
                            format!("file declares name `{}`", file.name),
                        ));
                    }
                    file.to_arrow()
                });
                (name, parsed.map(Arc::new).map_err(|e| e.to_string()))
            })
            .collect()
    })
}

/// The Arrow schema declared in `schemas/<name>.json`.
pub fn schema(name: SchemaName) -> Result<SchemaRef> {
    registry()[&name]
        .clone()
        .map_err(|problem| HarError::schema(name.file_stem(), problem))
}

/// The parsed schema file (field descriptions and units).
pub fn schema_file(name: SchemaName) -> Result<SchemaFile> {
    SchemaFile::parse(name.file_stem(), name.source())
}

/// Builds a batch of the declared schema from columns in declared order; fails naming the
/// first column whose count, type or nullability disagrees with the file.
pub fn build_batch(name: SchemaName, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    let schema = schema(name)?;
    if columns.len() != schema.fields().len() {
        return Err(HarError::schema(
            name.file_stem(),
            format!(
                "code built {} columns, the file declares {}",
                columns.len(),
                schema.fields().len()
            ),
        ));
    }
    for (field, column) in schema.fields().iter().zip(&columns) {
        if field.data_type() != column.data_type() {
            return Err(HarError::schema(
                name.file_stem(),
                format!(
                    "field `{}`: code builds {}, the file declares {}",
                    field.name(),
                    column.data_type(),
                    field.data_type()
                ),
            ));
        }
    }
    RecordBatch::try_new(schema, columns)
        .map_err(|e| HarError::schema(name.file_stem(), e.to_string()))
}

/// Checks that a received batch has the declared fields and types (metadata may differ, as it
/// does not travel through every transport); names the first field that disagrees.
pub fn check_batch(name: SchemaName, batch: &RecordBatch) -> Result<()> {
    let schema = schema(name)?;
    let got = batch.schema();
    for field in schema.fields() {
        let actual = got.field_with_name(field.name()).map_err(|_| {
            HarError::schema(
                name.file_stem(),
                format!("field `{}` is missing", field.name()),
            )
        })?;
        if actual.data_type() != field.data_type() {
            return Err(HarError::schema(
                name.file_stem(),
                format!(
                    "field `{}` has type {}, expected {}",
                    field.name(),
                    actual.data_type(),
                    field.data_type()
                ),
            ));
        }
        if !field.is_nullable()
            && actual.is_nullable()
            && batch
                .column_by_name(field.name())
                .is_some_and(|c| c.null_count() > 0)
        {
            return Err(HarError::schema(
                name.file_stem(),
                format!("field `{}` holds nulls", field.name()),
            ));
        }
    }
    if got.fields().len() != schema.fields().len() {
        return Err(HarError::schema(
            name.file_stem(),
            format!(
                "batch has {} fields, expected {}",
                got.fields().len(),
                schema.fields().len()
            ),
        ));
    }
    Ok(())
}
