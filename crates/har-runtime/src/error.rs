//! Errors of the runtime: every one names the file, and the tensor or field, it is about.

use std::path::PathBuf;

/// Everything that can go wrong reading a model directory or running a model.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A model directory file is missing, unreadable or malformed.
    #[error("{path}: {problem}")]
    File {
        /// The file involved.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A tensor of a weights file is missing, misshapen, non-finite or unexpected.
    #[error("{path}: tensor `{tensor}`: {problem}")]
    Tensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor involved.
        tensor: String,
        /// What is wrong.
        problem: String,
    },
    /// A field of a card or normaliser disagrees with the rest of the model.
    #[error("{path}: field `{field}`: {problem}")]
    Field {
        /// The file involved.
        path: PathBuf,
        /// The field involved (a JSON path such as `config.num_classes`).
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// The data layer failed (reading the normaliser).
    #[error(transparent)]
    Data(#[from] har_core::HarError),
    /// An input to a forward pass, or a configuration, does not make sense.
    #[error("{0}")]
    Invalid(String),
}

impl RuntimeError {
    /// A [`RuntimeError::File`] error.
    pub fn file(path: impl Into<PathBuf>, problem: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.into(),
            problem: problem.to_string(),
        }
    }

    /// A [`RuntimeError::Field`] error.
    pub fn field(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        problem: impl std::fmt::Display,
    ) -> Self {
        Self::Field {
            path: path.into(),
            field: field.into(),
            problem: problem.to_string(),
        }
    }
}

/// The runtime's result type.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
