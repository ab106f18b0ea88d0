//! The log tables on disk: Parquet files under `<root>/<table>/run_id=<run>/part-NNNNN.parquet`.
//!
//! Rows are buffered and flushed regularly — every `flush_rows` rows or `flush_interval`,
//! whichever comes first. Each flush seals one file (one row group, or a few when a flush
//! holds more than `flush_rows`): it is written as `part-NNNNN.parquet.inprogress`, closed,
//! synced and only then renamed to `.parquet`. A reader that lists `*.parquet` therefore never
//! sees a half-written file, and a crash loses at most the rows buffered since the last flush
//! (the open row group). Files roll at every flush; numbering continues after the files a
//! previous writer of the same run left.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, AsArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::Int64Type;
use har_core::schema::{build_batch, check_batch, schema, SchemaName};
use har_core::streams::WindowMessage;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{DataflowError, Result};

/// Extension of sealed files; files being written carry [`IN_PROGRESS`] after it.
pub const PART_EXTENSION: &str = "parquet";
/// Suffix of the file being written.
pub const IN_PROGRESS: &str = ".inprogress";

/// When buffered rows are flushed to a new file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlushPolicy {
    /// Flush when this many rows are buffered (also the row-group size).
    pub flush_rows: usize,
    /// Flush rows older than this.
    pub flush_interval: Duration,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        Self {
            flush_rows: 16_384,
            flush_interval: Duration::from_secs(2),
        }
    }
}

/// One log table of one run, as a sequence of sealed Parquet files.
#[derive(Debug)]
pub struct RollingParquetWriter {
    table: SchemaName,
    dir: PathBuf,
    policy: FlushPolicy,
    buffer: Vec<RecordBatch>,
    buffered_rows: usize,
    oldest: Option<Instant>,
    next_part: u64,
    /// Files sealed so far.
    pub files_written: u64,
    /// Rows in sealed files so far.
    pub rows_written: u64,
}

impl RollingParquetWriter {
    /// Writes `table` rows of run `run_id` under `root`.
    pub fn new(root: &Path, table: SchemaName, run_id: &str, policy: FlushPolicy) -> Result<Self> {
        let folder = table.log_folder().ok_or_else(|| {
            DataflowError::setting(
                "log table",
                format!("`{}` is not a log table", table.file_stem()),
            )
        })?;
        let dir = root.join(folder).join(format!("run_id={run_id}"));
        std::fs::create_dir_all(&dir).map_err(|e| DataflowError::io(&dir, e))?;
        let next_part = existing_parts(&dir)?;
        Ok(Self {
            table,
            dir,
            policy: FlushPolicy {
                flush_rows: policy.flush_rows.max(1),
                ..policy
            },
            buffer: Vec::new(),
            buffered_rows: 0,
            oldest: None,
            next_part,
            files_written: 0,
            rows_written: 0,
        })
    }

    /// Rows waiting for the next flush.
    pub fn buffered_rows(&self) -> usize {
        self.buffered_rows
    }

    /// Buffers a batch of the table's schema; flushes when enough rows are buffered.
    pub fn write(&mut self, batch: RecordBatch) -> Result<()> {
        check_batch(self.table, &batch)?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.buffered_rows += batch.num_rows();
        self.buffer.push(batch);
        self.oldest.get_or_insert_with(Instant::now);
        if self.buffered_rows >= self.policy.flush_rows {
            self.flush()?;
        }
        Ok(())
    }

    /// Flushes when the oldest buffered row has waited `flush_interval`.
    pub fn flush_if_due(&mut self) -> Result<()> {
        if self
            .oldest
            .is_some_and(|t| t.elapsed() >= self.policy.flush_interval)
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Seals the buffered rows into a new file (nothing when empty).
    pub fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let final_path = self
            .dir
            .join(format!("part-{:05}.{PART_EXTENSION}", self.next_part));
        let temp_path = PathBuf::from(format!("{}{IN_PROGRESS}", final_path.display()));
        let file =
            std::fs::File::create(&temp_path).map_err(|e| DataflowError::io(&temp_path, e))?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(self.policy.flush_rows))
            .build();
        let mut writer = ArrowWriter::try_new(file, schema(self.table)?, Some(properties))?;
        for batch in &self.buffer {
            writer.write(batch)?;
        }
        let file = writer.into_inner()?;
        file.sync_all()
            .map_err(|e| DataflowError::io(&temp_path, e))?;
        std::fs::rename(&temp_path, &final_path).map_err(|e| DataflowError::io(&final_path, e))?;
        self.next_part += 1;
        self.files_written += 1;
        self.rows_written += self.buffered_rows as u64;
        self.buffer.clear();
        self.buffered_rows = 0;
        self.oldest = None;
        Ok(())
    }
}

/// Number after the highest `part-N.parquet` in `dir` (0 when none).
fn existing_parts(dir: &Path) -> Result<u64> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataflowError::io(dir, e))?;
    Ok(entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_prefix("part-")?
                .strip_suffix(&format!(".{PART_EXTENSION}"))?
                .parse::<u64>()
                .ok()
        })
        .map(|n| n + 1)
        .max()
        .unwrap_or(0))
}

fn run_column(run_id: &str, rows: usize) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
        run_id, rows,
    )))
}

/// Microseconds between two nanosecond columns.
fn latency_us(to: &Int64Array, from: &Int64Array) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(
        to.values()
            .iter()
            .zip(from.values())
            .map(|(t, f)| (t - f) as f64 / 1e3),
    ))
}

/// Log rows for a `prediction` stream batch: run id first, then the prediction's columns,
/// then the log time and the end-to-end and per-stage latencies.
pub fn prediction_rows(
    run_id: &str,
    predictions: &RecordBatch,
    logged_ts_ns: i64,
) -> Result<RecordBatch> {
    check_batch(SchemaName::Prediction, predictions)?;
    let rows = predictions.num_rows();
    let ts = |name: &str| -> Int64Array {
        predictions
            .column_by_name(name)
            .expect("checked batch has the field")
            .as_primitive::<Int64Type>()
            .clone()
    };
    let (ingest, preprocess, encode, fuse) = (
        ts("ingest_ts_ns"),
        ts("preprocess_ts_ns"),
        ts("encode_ts_ns"),
        ts("fuse_ts_ns"),
    );
    let logged = Int64Array::from_iter_values(std::iter::repeat_n(logged_ts_ns, rows));
    let prediction_schema = schema(SchemaName::Prediction)?;
    let mut columns = vec![run_column(run_id, rows)];
    for field in prediction_schema.fields() {
        columns.push(
            predictions
                .column_by_name(field.name())
                .expect("checked")
                .clone(),
        );
    }
    columns.extend([
        latency_us(&logged, &ingest),
        latency_us(&preprocess, &ingest),
        latency_us(&encode, &preprocess),
        latency_us(&fuse, &encode),
    ]);
    columns.insert(columns.len() - 4, Arc::new(logged));
    Ok(build_batch(SchemaName::LogPredictions, columns)?)
}

/// Log rows summarising windows (no sample values).
pub fn window_rows(run_id: &str, windows: &[WindowMessage]) -> Result<RecordBatch> {
    let keys = || windows.iter().map(|w| &w.key);
    let strings = |f: fn(&WindowMessage) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(windows.iter().map(f)))
    };
    Ok(build_batch(
        SchemaName::LogWindows,
        vec![
            run_column(run_id, windows.len()),
            Arc::new(UInt64Array::from_iter_values(keys().map(|k| k.window_id))),
            strings(|w| &w.key.source.device_id),
            strings(|w| &w.key.source.subject_id),
            strings(|w| &w.key.source.session_id),
            strings(|w| &w.key.modality),
            Arc::new(Int64Array::from_iter_values(keys().map(|k| k.start_ns))),
            Arc::new(Int64Array::from_iter_values(keys().map(|k| k.end_ns))),
            Arc::new(UInt32Array::from_iter_values(
                windows.iter().map(|w| w.num_steps),
            )),
            Arc::new(UInt32Array::from_iter_values(
                windows.iter().map(|w| w.num_channels),
            )),
            Arc::new(Float32Array::from_iter_values(windows.iter().map(|w| {
                w.values.iter().map(|v| v.abs()).sum::<f32>() / w.values.len().max(1) as f32
            }))),
            Arc::new(Int32Array::from(
                keys().map(|k| k.label).collect::<Vec<_>>(),
            )),
        ],
    )?)
}
