//! The error type shared by the whole library.

use std::path::PathBuf;

/// Every failure the library reports. Each variant names where the problem is (file, field,
/// stream) so a user can find and fix it.
#[derive(Debug, thiserror::Error)]
pub enum HarError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A file's content does not follow its format.
    #[error("{path}: {field}: {problem}")]
    Format {
        /// The file involved.
        path: PathBuf,
        /// The field, line or element where the problem is.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// A schema file in `schemas/` is malformed or a batch does not match it.
    #[error("schema `{schema}`: {problem}")]
    Schema {
        /// The schema's name.
        schema: String,
        /// What is wrong.
        problem: String,
    },
    /// A value in a stream or in memory is invalid.
    #[error("stream `{stream}`: {field}: {problem}")]
    Invalid {
        /// The stream, recording or object involved.
        stream: String,
        /// The field involved.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// An error from Arrow.
    #[error("{context}: {source}")]
    Arrow {
        /// What was being done.
        context: String,
        /// The underlying Arrow error.
        source: arrow::error::ArrowError,
    },
    /// An error from Parquet.
    #[error("{path}: {source}")]
    Parquet {
        /// The Parquet file involved.
        path: PathBuf,
        /// The underlying Parquet error.
        source: parquet::errors::ParquetError,
    },
}

/// The library's result type.
pub type Result<T, E = HarError> = std::result::Result<T, E>;

impl HarError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A format error in `path` at `field`.
    pub fn format(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        Self::Format {
            path: path.into(),
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// An invalid value in `stream` at `field`.
    pub fn invalid(
        stream: impl Into<String>,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            stream: stream.into(),
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// An error against the schema named `schema`.
    pub fn schema(schema: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Schema {
            schema: schema.into(),
            problem: problem.into(),
        }
    }

    /// Wraps an Arrow error with what was being done.
    pub fn arrow(context: impl Into<String>, source: arrow::error::ArrowError) -> Self {
        Self::Arrow {
            context: context.into(),
            source,
        }
    }

    /// Wraps a Parquet error with the file involved.
    pub fn parquet(path: impl Into<PathBuf>, source: parquet::errors::ParquetError) -> Self {
        Self::Parquet {
            path: path.into(),
            source,
        }
    }
}
