//! DMFT — distilled multi-modal mid-fusion transformer for human activity recognition, in
//! candle: the model ([`dmft`]), its layers, seeded initialisation, training and distillation
//! ([`train`]), metrics, and the self-describing model directory ([`artifact`]).

pub mod artifact;
pub mod augment;
pub mod data;
pub mod distill;
pub mod dmft;
pub mod error;
pub mod fast;
pub mod init;
pub mod layers;
pub mod metrics;
pub mod mixup;
pub mod ops;
pub mod patch_input;
pub mod spectrum;
pub mod train;

pub use error::{ModelError, Result};
