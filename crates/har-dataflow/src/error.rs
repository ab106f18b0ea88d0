//! Errors of the dataflow library.

use std::path::PathBuf;

use thiserror::Error;

/// Result with [`DataflowError`].
pub type Result<T, E = DataflowError> = std::result::Result<T, E>;

/// What can go wrong in a node's logic.
#[derive(Debug, Error)]
pub enum DataflowError {
    /// A configuration value (environment variable) is missing or malformed.
    #[error("setting `{name}`: {problem}")]
    Setting {
        /// Environment variable.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// A message broke the stream's contract (names stream and field).
    #[error("stream `{stream}`, field `{field}`: {problem}")]
    Stream {
        /// Input or output id.
        stream: String,
        /// Offending field.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// File system error on a path.
    #[error("{path}: {source}")]
    Io {
        /// File or folder.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Schema, recording or preprocessing error from the core library.
    #[error(transparent)]
    Core(#[from] har_core::error::HarError),
    /// Model loading or inference error.
    #[error(transparent)]
    Model(#[from] har_runtime::RuntimeError),
    /// Arrow error.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Parquet error.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A worker thread of the node (the log writer) stopped.
    #[error("{0}")]
    Worker(String),
    /// The dora runtime refused an operation.
    #[error("dora: {0}")]
    Dora(String),
}

impl DataflowError {
    /// Whether the error is about one received message (malformed, contradicting the
    /// stream's contract or the model): that message is rejected and counted, the node goes
    /// on. Settings, files and the transport failing end the node instead.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::Stream { .. } | Self::Core(_) | Self::Arrow(_) | Self::Model(_)
        )
    }

    /// A malformed setting.
    pub fn setting(name: &str, problem: impl std::fmt::Display) -> Self {
        Self::Setting {
            name: name.to_string(),
            problem: problem.to_string(),
        }
    }

    /// A message that breaks its stream's contract.
    pub fn stream(stream: &str, field: &str, problem: impl std::fmt::Display) -> Self {
        Self::Stream {
            stream: stream.to_string(),
            field: field.to_string(),
            problem: problem.to_string(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
