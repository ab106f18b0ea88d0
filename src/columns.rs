//! Reading the recording format's columns as other tools write them: pyarrow and pandas
//! defaults, Polars, DuckDB, Spark. What is accepted (everything else is an error naming the
//! file, the column and the type found):
//! - times (`timestamp_ns`, `start_ns`, `end_ns`): any integer type that fits i64, or an Arrow
//!   timestamp of any unit (converted to ns with checked arithmetic); no nulls;
//! - `values`: a list, large list or fixed-size list with any child field name (`item`,
//!   `element`, …) of float32, float64 (rounded to float32: the models compute in float32),
//!   float16 or an integer type; a null value is NaN (missing), a null row is an error;
//! - `label`: any integer type that fits i32.

use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float32Type, Int64Type, TimeUnit};

use crate::error::{HarError, Result};

/// The column `name` of `batch`, or an error naming it.
pub fn column<'a>(path: &Path, batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| {
        let found: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        HarError::format(path, name, format!("missing column (found {found:?})"))
    })
}

/// Times in ns from an integer column (taken as ns) or a timestamp column of any unit.
pub fn times_ns(path: &Path, name: &str, array: &ArrayRef) -> Result<Vec<i64>> {
    if array.null_count() > 0 {
        return Err(HarError::format(path, name, "null time"));
    }
    let per_unit: i64 = match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => 1_000_000_000,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1_000_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => 1,
        other => {
            return Err(HarError::format(
                path,
                name,
                format!("type {other}: expected an integer (ns) or a timestamp"),
            ))
        }
    };
    let as_i64 = match array.data_type() {
        DataType::UInt64 => {
            let values = array.as_primitive::<arrow::datatypes::UInt64Type>();
            return values
                .values()
                .iter()
                .map(|&v| {
                    i64::try_from(v)
                        .map_err(|_| HarError::format(path, name, format!("{v} does not fit i64")))
                })
                .collect();
        }
        DataType::Timestamp(_, _) => cast(array, &DataType::Int64),
        _ => cast(array, &DataType::Int64),
    }
    .map_err(|e| HarError::format(path, name, e.to_string()))?;
    as_i64
        .as_primitive::<Int64Type>()
        .values()
        .iter()
        .map(|&v| {
            v.checked_mul(per_unit).ok_or_else(|| {
                HarError::format(path, name, format!("{v} overflows i64 nanoseconds"))
            })
        })
        .collect()
}

/// Appends the rows of a list column of `channels` numbers each, as f32.
pub fn append_rows(
    path: &Path,
    array: &ArrayRef,
    channels: usize,
    out: &mut Vec<f32>,
) -> Result<()> {
    if array.null_count() > 0 {
        return Err(HarError::format(path, "values", "null sample row"));
    }
    let (items, offsets): (&ArrayRef, Vec<usize>) = match array.data_type() {
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            (
                list.values(),
                list.value_offsets().iter().map(|&o| o as usize).collect(),
            )
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            (
                list.values(),
                list.value_offsets().iter().map(|&o| o as usize).collect(),
            )
        }
        DataType::FixedSizeList(_, size) => {
            let list = array.as_fixed_size_list();
            let size = *size as usize;
            let offset = list.offset() * size;
            (
                list.values(),
                (0..=list.len()).map(|i| offset + i * size).collect(),
            )
        }
        other => {
            return Err(HarError::format(
                path,
                "values",
                format!("type {other}: expected a list of numbers per sample"),
            ))
        }
    };
    for (row, w) in offsets.windows(2).enumerate() {
        let len = w[1] - w[0];
        if len != channels {
            return Err(HarError::format(
                path,
                "values",
                format!("row {row} has {len} values, expected {channels} channels"),
            ));
        }
    }
    let numbers = match items.data_type() {
        DataType::Float32 => items.clone(),
        t if t.is_floating() || t.is_integer() => cast(items, &DataType::Float32)
            .map_err(|e| HarError::format(path, "values", e.to_string()))?,
        other => {
            return Err(HarError::format(
                path,
                "values",
                format!("list of {other}: expected numbers"),
            ))
        }
    };
    let numbers = numbers.as_primitive::<Float32Type>();
    let (first, last) = (offsets[0], *offsets.last().unwrap_or(&0));
    if last > numbers.len() || first > last {
        return Err(HarError::format(
            path,
            "values",
            "list offsets out of range",
        ));
    }
    // Null items become NaN (the format's missing value).
    out.extend((first..last).map(|i| {
        if numbers.is_null(i) {
            f32::NAN
        } else {
            numbers.value(i)
        }
    }));
    Ok(())
}

/// Class ids from an integer column.
pub fn labels(path: &Path, name: &str, array: &ArrayRef) -> Result<Vec<i32>> {
    if array.null_count() > 0 {
        return Err(HarError::format(path, name, "null label"));
    }
    if !array.data_type().is_integer() {
        return Err(HarError::format(
            path,
            name,
            format!("type {}: expected an integer class id", array.data_type()),
        ));
    }
    let wide =
        cast(array, &DataType::Int64).map_err(|e| HarError::format(path, name, e.to_string()))?;
    wide.as_primitive::<Int64Type>()
        .values()
        .iter()
        .map(|&v| {
            i32::try_from(v)
                .map_err(|_| HarError::format(path, name, format!("{v} does not fit i32")))
        })
        .collect()
}
