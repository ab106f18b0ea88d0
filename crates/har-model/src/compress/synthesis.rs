//! Input windows synthesised from a trained model alone (seed S3's data-free step): noise
//! windows are optimised by back-propagation, the model's weights fixed, until
//!
//! - the model is confident they are their assigned class (classes balanced),
//! - each modality's channels have the statistics the normaliser stored (mean 0 and variance
//!   1 after normalisation, over the batch),
//! - the model's features (each modality's tokens, the mid-fusion features) have the
//!   per-channel mean and variance recorded in the model's [`ActivationStats`],
//! - the signals are smooth along time (first differences small), and
//! - an accelerometer (a 3-channel modality whose name starts with `acc`) carries gravity:
//!   the norm of its window mean, in the sensor's units, is near `gravity`.
//!
//! No training window is read. The windows come out normalised, as the model takes them.

use candle_core::{Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use har_core::preprocess::Normalizer;
use har_core::rng::Rng;
use serde::{Deserialize, Serialize};

use super::stats::ActivationStats;
use crate::data::TensorData;
use crate::dmft::Dmft;
use crate::error::{ModelError, Result};

/// Settings of the synthesis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SynthesisConfig {
    /// Windows to synthesise.
    pub windows: usize,
    /// Windows optimised together (the statistics are matched per batch).
    pub batch_size: usize,
    /// Optimisation steps per batch.
    pub steps: usize,
    /// Adam learning rate on the inputs.
    pub learning_rate: f64,
    /// Weight of the normalisation-statistics term.
    pub input_stats_weight: f64,
    /// Weight of the feature-statistics term.
    pub feature_stats_weight: f64,
    /// Weight of the smoothness prior.
    pub smoothness_weight: f64,
    /// Weight of the gravity prior.
    pub gravity_weight: f64,
    /// Gravity in the accelerometer's units (`None`: 9.81 when the stored mean is above 3,
    /// else 1 — m/s² or g).
    pub gravity: Option<f64>,
    /// Random seed (initial noise, class assignment order).
    pub seed: u64,
}

impl Default for SynthesisConfig {
    fn default() -> Self {
        Self {
            windows: 1024,
            batch_size: 256,
            steps: 200,
            learning_rate: 0.05,
            input_stats_weight: 1.0,
            feature_stats_weight: 1.0,
            smoothness_weight: 0.1,
            gravity_weight: 1.0,
            gravity: None,
            seed: 1,
        }
    }
}

/// The objective's terms after the last step of each batch (averaged over batches).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SynthesisReport {
    /// Total objective at the first step.
    pub initial: f64,
    /// Total objective at the last step.
    pub last: f64,
    /// Cross-entropy to the assigned classes at the last step.
    pub confidence: f64,
    /// Share of synthetic windows the model assigns to their class.
    pub assigned_accuracy: f64,
}

/// A modality that gets the gravity prior: (index, mean, std, gravity).
struct Gravity {
    modality: usize,
    mean: Vec<f32>,
    std: Vec<f32>,
    magnitude: f64,
}

fn gravity_modalities(model: &Dmft, normalizer: &Normalizer, gravity: Option<f64>) -> Vec<Gravity> {
    model
        .config()
        .modalities
        .iter()
        .enumerate()
        .filter(|(_, m)| m.channels == 3 && m.name.to_lowercase().starts_with("acc"))
        .filter_map(|(i, _)| {
            let stats = normalizer.modalities.get(i)?;
            let stored = stats
                .mean
                .iter()
                .map(|v| f64::from(*v).powi(2))
                .sum::<f64>()
                .sqrt();
            Some(Gravity {
                modality: i,
                mean: stats.mean.clone(),
                std: stats.std.clone(),
                magnitude: gravity.unwrap_or(if stored > 3.0 { 9.81 } else { 1.0 }),
            })
        })
        .collect()
}

/// Mean and (biased) variance of `x` over every dimension but the last.
fn channel_moments(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let d = x.dim(D::Minus1)?;
    let rows = x.reshape(((), d))?;
    let mean = rows.mean(0)?;
    let var = rows.broadcast_sub(&mean)?.sqr()?.mean(0)?;
    Ok((mean, var))
}

/// Squared distance of the moments of `x` to `mean` and `var` (per channel, averaged).
fn moment_gap(x: &Tensor, mean: &Tensor, var: &Tensor) -> Result<Tensor> {
    let (m, v) = channel_moments(x)?;
    Ok(((m - mean)?.sqr()?.mean_all()? + (v - var)?.sqr()?.mean_all()?)?)
}

/// Synthesises `config.windows` normalised windows (classes balanced, targets set) from
/// `model`, its `normalizer` and its recorded feature `stats`.
pub fn synthesise(
    model: &Dmft,
    normalizer: &Normalizer,
    stats: &ActivationStats,
    config: &SynthesisConfig,
) -> Result<(TensorData, SynthesisReport)> {
    if config.windows == 0 || config.batch_size == 0 || config.steps == 0 {
        return Err(ModelError::Invalid(
            "synthesis: windows, batch size and steps must be positive".into(),
        ));
    }
    let shape = model.config().clone();
    let classes = shape.num_classes;
    let gravity = gravity_modalities(model, normalizer, config.gravity);
    let mut rng = Rng::new(config.seed);
    let mut data = TensorData {
        values: vec![Vec::new(); shape.modalities.len()],
        shapes: shape
            .modalities
            .iter()
            .map(|m| (shape.window_len, m.channels))
            .collect(),
        targets: Vec::new(),
        rotatable: vec![None; shape.modalities.len()],
    };
    let mut report = SynthesisReport::default();
    let batches = config.windows.div_ceil(config.batch_size);
    let mut assigned_right = 0usize;
    for batch in 0..batches {
        let n = config
            .batch_size
            .min(config.windows - batch * config.batch_size);
        let offset = (rng.next_u64() % classes as u64) as usize;
        let targets: Vec<u32> = (0..n).map(|i| ((i + offset) % classes) as u32).collect();
        let target_tensor = Tensor::from_vec(targets.clone(), n, &Device::Cpu)?;
        let inputs: Vec<Var> = data
            .shapes
            .iter()
            .map(|&(t, c)| {
                let noise: Vec<f32> = (0..n * t * c).map(|_| rng.normal() as f32).collect();
                Var::from_tensor(&Tensor::from_vec(noise, (n, t, c), &Device::Cpu)?)
                    .map_err(ModelError::from)
            })
            .collect::<Result<_>>()?;
        let mut optimizer = AdamW::new(
            inputs.clone(),
            ParamsAdamW {
                lr: config.learning_rate,
                weight_decay: 0.0,
                ..Default::default()
            },
        )?;
        let mut last = (0.0, 0.0);
        for step in 0..config.steps {
            let xs: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
            let (loss, confidence) =
                objective(model, &xs, &target_tensor, stats, &gravity, config)?;
            let value = f64::from(loss.to_scalar::<f32>()?);
            if !value.is_finite() {
                return Err(ModelError::Invalid(format!(
                    "synthesis diverged at step {step} of batch {batch} (objective {value})"
                )));
            }
            if batch == 0 && step == 0 {
                report.initial = value;
            }
            last = (value, confidence);
            optimizer.backward_step(&loss)?;
        }
        report.last += last.0 / batches as f64;
        report.confidence += last.1 / batches as f64;
        let xs: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
        let logits = model.forward(&xs, None, false)?.logits;
        let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        assigned_right += predicted
            .iter()
            .zip(&targets)
            .filter(|(p, t)| p == t)
            .count();
        for (values, x) in data.values.iter_mut().zip(&xs) {
            values.extend(x.flatten_all()?.to_vec1::<f32>()?);
        }
        data.targets.extend(targets);
        tracing::info!(
            batch,
            objective = last.0,
            confidence = last.1,
            "synthesised"
        );
    }
    report.assigned_accuracy = assigned_right as f64 / config.windows as f64;
    Ok((data, report))
}

/// The synthesis objective on inputs `xs` assigned `targets`; also the confidence term.
fn objective(
    model: &Dmft,
    xs: &[Tensor],
    targets: &Tensor,
    stats: &ActivationStats,
    gravity: &[Gravity],
    config: &SynthesisConfig,
) -> Result<(Tensor, f64)> {
    let tokens = xs
        .iter()
        .enumerate()
        .map(|(m, x)| model.encode(m, x, true))
        .collect::<Result<Vec<_>, _>>()?;
    let output = model.fuse(&tokens, None, true)?;
    let confidence = candle_nn::loss::cross_entropy(&output.logits, targets)?;
    let confidence_value = f64::from(confidence.to_scalar::<f32>()?);
    let mut loss = confidence;
    // The normaliser's statistics: mean 0, variance 1 per channel after normalisation.
    for x in xs {
        let (mean, var) = channel_moments(x)?;
        let gap = (mean.sqr()?.mean_all()? + (var - 1.0)?.sqr()?.mean_all()?)?;
        loss = (loss + (gap * config.input_stats_weight)?)?;
    }
    // The features' recorded statistics.
    for (site, features) in stats.sites(model.config(), &tokens, &output.fused) {
        let (mean, var) = site.tensors()?;
        loss = (loss + (moment_gap(&features, &mean, &var)? * config.feature_stats_weight)?)?;
    }
    // Smooth along time.
    for x in xs {
        let t = x.dim(1)?;
        if t > 1 {
            let diff = (x.narrow(1, 1, t - 1)? - x.narrow(1, 0, t - 1)?)?;
            loss = (loss + (diff.sqr()?.mean_all()? * config.smoothness_weight)?)?;
        }
    }
    // Gravity: the norm of the window's mean acceleration, in the sensor's units.
    for g in gravity {
        let x = &xs[g.modality];
        let std = Tensor::from_slice(&g.std, (1, 1, 3), &Device::Cpu)?;
        let mean = Tensor::from_slice(&g.mean, (1, 1, 3), &Device::Cpu)?;
        let raw = x.broadcast_mul(&std)?.broadcast_add(&mean)?;
        let norm = raw.mean(1)?.sqr()?.sum(D::Minus1)?.sqrt()?;
        let gap = ((norm / g.magnitude)? - 1.0)?.sqr()?.mean_all()?;
        loss = (loss + (gap * config.gravity_weight)?)?;
    }
    Ok((loss, confidence_value))
}
