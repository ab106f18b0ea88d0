//! Per-channel standardisation, fitted on training windows only and stored beside a model.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::window::WindowSet;
use crate::error::{HarError, Result};

/// Standard deviations below this are treated as 1 (a constant channel is only centred).
pub const MIN_STD: f32 = 1e-6;

/// Mean and standard deviation of each channel of one modality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelStats {
    /// Modality name.
    pub modality: String,
    /// Channel names, in order.
    pub channel_names: Vec<String>,
    /// Mean per channel.
    pub mean: Vec<f32>,
    /// Standard deviation per channel (already floored: never below [`MIN_STD`]).
    pub std: Vec<f32>,
}

/// Standardisation statistics of every modality, `(x - mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// One entry per modality, in the window set's order.
    pub modalities: Vec<ChannelStats>,
}

impl Normalizer {
    /// Fits means and standard deviations over every step of every window (NaN-free input).
    pub fn fit(windows: &WindowSet) -> Result<Self> {
        if windows.is_empty() {
            return Err(HarError::invalid(
                "window set",
                "windows",
                "cannot fit normalisation on no windows",
            ));
        }
        let modalities = windows
            .modalities
            .iter()
            .zip(&windows.values)
            .map(|(info, values)| {
                let c = info.channels();
                let mut sum = vec![0f64; c];
                let mut sum_sq = vec![0f64; c];
                for row in values.chunks_exact(c) {
                    for (ch, &v) in row.iter().enumerate() {
                        sum[ch] += v as f64;
                        sum_sq[ch] += (v as f64) * (v as f64);
                    }
                }
                let n = (values.len() / c) as f64;
                let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
                let std = sum_sq
                    .iter()
                    .zip(&mean)
                    .map(|(sq, m)| {
                        let s = (sq / n - m * m).max(0.0).sqrt() as f32;
                        if s < MIN_STD {
                            1.0
                        } else {
                            s
                        }
                    })
                    .collect();
                ChannelStats {
                    modality: info.name.clone(),
                    channel_names: info.channel_names.clone(),
                    mean: mean.into_iter().map(|m| m as f32).collect(),
                    std,
                }
            })
            .collect();
        Ok(Self { modalities })
    }

    /// Standardises one modality's row-major values in place.
    pub fn apply_modality(&self, modality: usize, values: &mut [f32]) {
        let stats = &self.modalities[modality];
        for row in values.chunks_exact_mut(stats.mean.len()) {
            for ((v, m), s) in row.iter_mut().zip(&stats.mean).zip(&stats.std) {
                *v = (*v - m) / s;
            }
        }
    }

    /// Standardises a whole window set in place; its modalities must match the fitted ones.
    pub fn apply(&self, windows: &mut WindowSet) -> Result<()> {
        if windows.modalities.len() != self.modalities.len() {
            return Err(HarError::invalid(
                "normalisation",
                "modalities",
                "count differs from the fitted set",
            ));
        }
        for (m, info) in windows.modalities.iter().enumerate() {
            if info.name != self.modalities[m].modality
                || info.channel_names != self.modalities[m].channel_names
            {
                return Err(HarError::invalid(
                    "normalisation",
                    &info.name,
                    format!(
                        "fitted on modality `{}` with other channels",
                        self.modalities[m].modality
                    ),
                ));
            }
        }
        for m in 0..windows.modalities.len() {
            self.apply_modality(m, &mut windows.values[m]);
        }
        Ok(())
    }

    /// Writes the statistics as JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("normaliser serialises");
        std::fs::write(path, text + "\n").map_err(|e| HarError::io(path, e))
    }

    /// Reads statistics written by [`Normalizer::save`], checking their shapes.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| HarError::io(path, e))?;
        let normalizer: Normalizer = serde_json::from_str(&text)
            .map_err(|e| HarError::format(path, format!("line {}", e.line()), e.to_string()))?;
        for stats in &normalizer.modalities {
            let c = stats.channel_names.len();
            if stats.mean.len() != c || stats.std.len() != c {
                return Err(HarError::format(
                    path,
                    &stats.modality,
                    "mean/std length differs from channel count",
                ));
            }
            if stats.std.iter().any(|s| s.is_nan() || *s < MIN_STD) {
                return Err(HarError::format(
                    path,
                    &stats.modality,
                    "std must be positive",
                ));
            }
        }
        Ok(normalizer)
    }
}
