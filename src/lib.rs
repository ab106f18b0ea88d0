//! Core library of the multi-modal human activity recognition (HAR) dataflow.
//!
//! - [`schema`]: the Arrow schemas of every stream and table, loaded from `schemas/`.
//! - [`recording`]: the multi-modal recording format (Parquet) and its in-memory form.
//! - [`dataset`]: a dataset folder: manifest, classes, splits, recordings.
//! - [`import`]: readers for real datasets (HAPT, UEA BasicMotions, UTD-MHAD, BVH mocap) and
//!   the synthetic paired skeleton + IMU generator.
//! - [`preprocess`]: alignment, gap/NaN policy, windows, labels, normalisation.
//! - [`streams`]: typed dataflow messages and their Arrow batches.
//! - [`rng`]: the seeded generator; [`hash`]: SHA-256 checksums.

pub mod columns;
pub mod dataset;
pub mod error;
pub mod fuzz;
pub mod hash;
pub mod import;
pub mod preprocess;
pub mod recording;
pub mod rng;
pub mod scenes;
pub mod schema;
pub mod segments;
pub mod streams;

pub use error::{HarError, Result};
