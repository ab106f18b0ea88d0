//! Errors of the model crate.

use std::path::PathBuf;

/// Everything that can go wrong building, training, saving or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed (shapes, dtypes): a bug or an inconsistent config.
    #[error("tensor operation: {0}")]
    Candle(#[from] candle_core::Error),
    /// The data layer failed (dataset, preprocessing).
    #[error(transparent)]
    Data(#[from] har_core::HarError),
    /// The runtime refused a model directory or an input (it names the file and tensor).
    #[error(transparent)]
    Runtime(#[from] har_runtime::RuntimeError),
    /// A checkpoint file is unusable; names the file and the tensor.
    #[error("{path}: tensor `{tensor}`: {problem}")]
    Checkpoint {
        /// The weights file.
        path: PathBuf,
        /// The tensor involved.
        tensor: String,
        /// What is wrong.
        problem: String,
    },
    /// A model directory file is missing or malformed.
    #[error("{path}: {problem}")]
    Artifact {
        /// The file involved.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A configuration or input does not make sense.
    #[error("{0}")]
    Invalid(String),
}

/// The model crate's result type.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
