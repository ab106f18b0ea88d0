//! Preprocessing shared by training and the dataflow nodes.
//!
//! The pipeline for one recording is
//! 1. [`align::align`]: every modality onto one common clock (linear interpolation), with the
//!    gap and NaN policy below;
//! 2. [`skeleton::normalise_skeletons`]: skeleton frames centred on the hip/spine joint and
//!    scaled by torso length;
//! 3. [`window::extract_windows`]: sliding windows with a label policy;
//! 4. [`normalize::Normalizer`]: per-channel standardisation fitted on training windows only
//!    and stored beside a model.
//!
//! **Gap and NaN policy.** A grid instant whose neighbouring source samples are more than
//! [`align::AlignConfig::max_gap_periods`] source periods apart lies in a gap and is invalid.
//! After resampling, runs of samples holding NaN that are at most
//! [`align::AlignConfig::max_nan_run`] grid samples long are filled by per-channel linear
//! interpolation between the valid neighbours (held at the edges); longer runs are invalid.
//! Windows never contain an invalid instant: the valid instants form segments and windows are
//! laid from each segment's start. Every filled and every invalid sample is counted in
//! [`align::AlignReport`], so nothing is dropped silently.

pub mod align;
pub mod normalize;
pub mod skeleton;
pub mod window;

pub use align::{align, AlignConfig, AlignReport, AlignedRecording};
pub use normalize::{ChannelStats, Normalizer};
pub use window::{extract_windows, LabelPolicy, WindowConfig, WindowSet};

use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, Split};
use crate::error::Result;

/// Everything that turns recordings into windows: alignment and windowing settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PreprocessConfig {
    /// Common clock and gap/NaN policy.
    pub align: AlignConfig,
    /// Window length, stride and label policy.
    pub window: WindowConfig,
}

/// Windows of every recording of one split, with the summed alignment report and the number
/// of skeleton frames too degenerate to scale.
pub fn dataset_windows(
    dataset: &Dataset,
    split: Split,
    config: &PreprocessConfig,
) -> Result<(WindowSet, AlignReport)> {
    let mut windows = WindowSet::default();
    let mut report = AlignReport::default();
    for entry in dataset.entries(split) {
        let recording = dataset.read(entry)?;
        let mut aligned = align(&recording, &config.align)?;
        skeleton::normalise_skeletons(&mut aligned);
        report.grid_samples += aligned.report.grid_samples;
        report.nan_filled += aligned.report.nan_filled;
        report.invalid += aligned.report.invalid;
        windows.append(extract_windows(&aligned, &config.window)?)?;
    }
    Ok((windows, report))
}
