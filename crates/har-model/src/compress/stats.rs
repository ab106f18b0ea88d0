//! The model's feature statistics (`activation_stats.json` in a model directory): per
//! feature site — each modality's tokens, the mid-fusion features — the mean and variance of
//! every channel over the training windows. They play the part batch-norm running statistics
//! play in image models: recorded once where the data is (`har compress stats`), they let
//! the data-free synthesis ([`super::synthesis`]) match what real windows look like inside
//! the model without reading any.

use std::path::Path;

use candle_core::{Device, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::data::TensorData;
use crate::dmft::{Dmft, DmftConfig};
use crate::error::{ModelError, Result};

/// File name in a model directory.
pub const ACTIVATION_STATS_FILE: &str = "activation_stats.json";

/// The mid-fusion features' site name.
pub const FUSED_SITE: &str = "fused";

/// A modality's tokens' site name.
pub fn token_site(modality: &str) -> String {
    format!("tokens.{modality}")
}

/// One site's per-channel moments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteStats {
    /// `tokens.<modality>` or `fused`.
    pub site: String,
    /// Mean per channel.
    pub mean: Vec<f32>,
    /// Variance per channel.
    pub var: Vec<f32>,
}

impl SiteStats {
    /// The moments as `[D]` tensors.
    pub fn tensors(&self) -> Result<(Tensor, Tensor)> {
        Ok((
            Tensor::from_slice(&self.mean, self.mean.len(), &Device::Cpu)?,
            Tensor::from_slice(&self.var, self.var.len(), &Device::Cpu)?,
        ))
    }
}

/// Feature statistics of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationStats {
    /// Windows they were recorded on.
    pub windows: usize,
    /// Per site.
    pub sites: Vec<SiteStats>,
}

/// Running sums of one site.
struct Sums {
    site: String,
    rows: f64,
    sum: Vec<f64>,
    squares: Vec<f64>,
}

impl Sums {
    fn add(&mut self, x: &Tensor) -> Result<()> {
        let d = x.dim(D::Minus1)?;
        let rows = x.reshape(((), d))?;
        self.rows += rows.dim(0)? as f64;
        let sum = rows.sum(0)?.to_vec1::<f32>()?;
        let squares = rows.sqr()?.sum(0)?.to_vec1::<f32>()?;
        self.sum.resize(d, 0.0);
        self.squares.resize(d, 0.0);
        for c in 0..d {
            self.sum[c] += f64::from(sum[c]);
            self.squares[c] += f64::from(squares[c]);
        }
        Ok(())
    }

    fn finish(self) -> SiteStats {
        let n = self.rows.max(1.0);
        let mean: Vec<f64> = self.sum.iter().map(|s| s / n).collect();
        SiteStats {
            site: self.site,
            var: self
                .squares
                .iter()
                .zip(&mean)
                .map(|(q, m)| (q / n - m * m).max(0.0) as f32)
                .collect(),
            mean: mean.into_iter().map(|m| m as f32).collect(),
        }
    }
}

impl ActivationStats {
    /// Records the statistics of `model`'s features over every window of `data`.
    pub fn record(model: &Dmft, data: &TensorData, batch_size: usize) -> Result<Self> {
        if data.is_empty() {
            return Err(ModelError::Invalid(
                "feature statistics need at least one window".into(),
            ));
        }
        let config = model.config();
        let mut sums: Vec<Sums> = config
            .modalities
            .iter()
            .map(|m| token_site(&m.name))
            .chain([FUSED_SITE.to_string()])
            .map(|site| Sums {
                site,
                rows: 0.0,
                sum: Vec::new(),
                squares: Vec::new(),
            })
            .collect();
        let indices: Vec<usize> = (0..data.len()).collect();
        for chunk in indices.chunks(batch_size.max(1)) {
            let inputs = data.inputs(chunk, None)?;
            let tokens = inputs
                .iter()
                .enumerate()
                .map(|(m, x)| model.encode(m, x, false))
                .collect::<Result<Vec<_>, _>>()?;
            let fused = model.fuse(&tokens, None, false)?.fused;
            for (s, t) in sums.iter_mut().zip(tokens.iter().chain([&fused])) {
                s.add(t)?;
            }
        }
        Ok(Self {
            windows: data.len(),
            sites: sums.into_iter().map(Sums::finish).collect(),
        })
    }

    /// Pairs each recorded site with the same features of a forward (`tokens` per modality,
    /// the mid-fusion features `fused`); sites the model lacks are skipped.
    pub fn sites<'a>(
        &'a self,
        config: &DmftConfig,
        tokens: &[Tensor],
        fused: &Tensor,
    ) -> Vec<(&'a SiteStats, Tensor)> {
        self.sites
            .iter()
            .filter_map(|s| {
                let features = if s.site == FUSED_SITE {
                    fused.clone()
                } else {
                    let m = config
                        .modalities
                        .iter()
                        .position(|m| token_site(&m.name) == s.site)?;
                    tokens.get(m)?.clone()
                };
                (features.dim(D::Minus1).ok()? == s.mean.len()).then_some((s, features))
            })
            .collect()
    }

    /// Reads `activation_stats.json` from a model directory.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(ACTIVATION_STATS_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::Artifact {
            path: path.clone(),
            problem: format!(
                "{e} (record it where the training data is: `har compress stats --model {} \
                 --dataset …`)",
                dir.display()
            ),
        })?;
        let stats: Self = serde_json::from_str(&text).map_err(|e| ModelError::Artifact {
            path: path.clone(),
            problem: e.to_string(),
        })?;
        if let Some(bad) = stats.sites.iter().find(|s| {
            s.mean.len() != s.var.len()
                || s.mean.iter().chain(&s.var).any(|v| !v.is_finite())
                || s.var.iter().any(|v| *v < 0.0)
        }) {
            return Err(ModelError::Artifact {
                path,
                problem: format!(
                    "site `{}`: moments of unequal length or not finite",
                    bad.site
                ),
            });
        }
        Ok(stats)
    }

    /// Writes `activation_stats.json` into a model directory.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(ACTIVATION_STATS_FILE);
        let text = serde_json::to_string_pretty(self).expect("stats serialise");
        std::fs::write(&path, text).map_err(|e| ModelError::Artifact {
            path,
            problem: e.to_string(),
        })
    }
}
