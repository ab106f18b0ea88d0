//! Training in candle. The architectures are described once here as trainable candle modules
//! ([`dmft`] with its [`encoders`], built from [`layers`]) under the runtime's weight names
//! ([`har_runtime::names`]) and configs; inference runs on the candle-free runtime
//! ([`har_runtime`]), which the equivalence tests hold to these modules.
//!
//! - [`pipeline`]: dataset → windows → normaliser → fit → card → save, and evaluation.
//! - [`train`], [`distill`], [`mixup`], [`augment`]: optimisation, the distillation loss and
//!   teacher, data augmentation; [`init`]: seeded, order-independent initialisation.
//! - [`sequence_layers`]: convolutions and recurrent layers (the recurrent encoders).
//! - [`data`]: windows as batches; [`metrics`]; [`artifact`]: writing a model directory and
//!   reading one back into candle; [`runtime`]: candle parameters as runtime weights.
//! - [`compress`]: structured pruning, data-free synthesis and feature-mimicking fine-tuning
//!   (seed S3).

pub mod artifact;
pub mod augment;
pub mod compress;
pub mod data;
pub mod distill;
pub mod dmft;
pub mod encoders;
pub mod error;
pub mod fewshot;
pub mod fusion;
pub mod init;
pub mod layers;
pub mod metrics;
pub mod mixup;
pub mod ops;
pub mod pipeline;
pub mod runtime;
pub mod scenes;
pub mod segmentation;
pub mod segmenter;
pub mod sequence_layers;
pub mod spectrum;
pub mod train;

pub use error::{ModelError, Result};
