//! Reading one CSV or Parquet table and its columns as ids, numbers or times, whatever types
//! pandas, pyarrow, Polars or a hand-written CSV gave them. Errors name the file and column.

use std::fs::File;
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::mapping::{TableFormat, TimeUnit};
use crate::columns;
use crate::error::{HarError, Result};

/// Largest |time| in ns a numeric time column may give (about 146 years from zero).
const MAX_ABS_TIME_NS: f64 = 4.6e18;

/// The format of `path`: the declared one, or from its extension.
pub fn format_of(path: &Path, declared: Option<TableFormat>) -> Result<TableFormat> {
    if let Some(format) = declared {
        return Ok(format);
    }
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") | Some("txt") | Some("tsv") => Ok(TableFormat::Csv),
        Some("parquet") | Some("pq") => Ok(TableFormat::Parquet),
        _ => Err(HarError::format(
            path,
            "file name",
            "extension is neither .csv nor .parquet: set files.format",
        )),
    }
}

/// Reads a whole table into one batch. CSV types are inferred from every row, so a column is
/// numeric only if every row is.
pub fn read_table(path: &Path, format: TableFormat, delimiter: u8) -> Result<RecordBatch> {
    let open = || File::open(path).map_err(|e| HarError::io(path, e));
    let arrow_error = |e: arrow::error::ArrowError| HarError::format(path, "table", e.to_string());
    let batches: Vec<RecordBatch> = match format {
        TableFormat::Csv => {
            let csv_format = arrow::csv::reader::Format::default()
                .with_header(true)
                .with_delimiter(delimiter);
            let (schema, _) = csv_format
                .infer_schema(open()?, None)
                .map_err(arrow_error)?;
            if schema.fields().is_empty() {
                return Err(HarError::format(path, "header", "no columns"));
            }
            arrow::csv::ReaderBuilder::new(std::sync::Arc::new(schema))
                .with_format(csv_format)
                .with_batch_size(64 * 1024)
                .build(open()?)
                .map_err(arrow_error)?
                .collect::<std::result::Result<_, _>>()
                .map_err(arrow_error)?
        }
        TableFormat::Parquet => {
            // The parquet reader can panic on some corrupt files; contain it as an error.
            let file = open()?;
            let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| HarError::Parquet {
                        path: path.to_path_buf(),
                        source: e,
                    })?
                    .build()
                    .map_err(|e| HarError::Parquet {
                        path: path.to_path_buf(),
                        source: e,
                    })?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(arrow_error)
            }));
            read.map_err(|_| HarError::format(path, "table", "unreadable (corrupt Parquet)"))??
        }
    };
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => return Err(HarError::format(path, "table", "no rows")),
    };
    concat_batches(&schema, &batches).map_err(arrow_error)
}

/// Writes a number as an id: integers without a trailing `.0`.
fn number_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A column as text ids; a null is an error naming its row.
pub fn text_column(path: &Path, batch: &RecordBatch, name: &str) -> Result<Vec<String>> {
    let array = columns::column(path, batch, name)?;
    if let Some(row) = (0..array.len()).find(|&i| array.is_null(i)) {
        return Err(HarError::format(
            path,
            name,
            format!("empty value at data row {}", row + 1),
        ));
    }
    let fail = |e: arrow::error::ArrowError| HarError::format(path, name, e.to_string());
    let data_type = array.data_type();
    if data_type.is_floating() {
        let wide = cast(array, &DataType::Float64).map_err(fail)?;
        return Ok(wide
            .as_primitive::<Float64Type>()
            .values()
            .iter()
            .map(|&v| number_text(v))
            .collect());
    }
    if data_type.is_integer() {
        let wide = cast(array, &DataType::Int64).map_err(fail)?;
        return Ok(wide
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(|v| v.to_string())
            .collect());
    }
    let text = cast(array, &DataType::Utf8).map_err(fail)?;
    Ok(text
        .as_string::<i32>()
        .iter()
        .map(|v| v.unwrap_or_default().trim().to_string())
        .collect())
}

/// A numeric column as f64; a null (an empty CSV cell) is NaN, a text column an error.
pub fn number_column(path: &Path, batch: &RecordBatch, name: &str) -> Result<Vec<f64>> {
    let array = columns::column(path, batch, name)?;
    let data_type = array.data_type();
    if !(data_type.is_floating() || data_type.is_integer() || data_type == &DataType::Null) {
        return Err(HarError::format(
            path,
            name,
            format!("type {data_type}: expected numbers (is a cell not a number?)"),
        ));
    }
    let wide =
        cast(array, &DataType::Float64).map_err(|e| HarError::format(path, name, e.to_string()))?;
    let values = wide.as_primitive::<Float64Type>();
    Ok((0..values.len())
        .map(|i| {
            if values.is_null(i) {
                f64::NAN
            } else {
                values.value(i)
            }
        })
        .collect())
}

/// Absolute times in ns: a timestamp column (any unit), or a numeric column in `unit`.
pub fn time_column(
    path: &Path,
    batch: &RecordBatch,
    name: &str,
    unit: Option<TimeUnit>,
) -> Result<Vec<i64>> {
    let array: &ArrayRef = columns::column(path, batch, name)?;
    if let DataType::Timestamp(_, _) = array.data_type() {
        return columns::times_ns(path, name, array);
    }
    let unit = unit.ok_or_else(|| {
        HarError::format(
            path,
            name,
            format!(
                "type {}: a numeric time column needs time.unit (s, ms, us or ns)",
                array.data_type()
            ),
        )
    })?;
    number_column(path, batch, name)?
        .into_iter()
        .enumerate()
        .map(|(row, v)| {
            let ns = (v * unit.ns()).round();
            if ns.is_finite() && ns.abs() <= MAX_ABS_TIME_NS {
                Ok(ns as i64)
            } else {
                Err(HarError::format(
                    path,
                    name,
                    format!("data row {}: time {v} is empty or out of range", row + 1),
                ))
            }
        })
        .collect()
}
