//! Training and distillation: AdamW, warm-up + cosine learning rate, modality dropout, early
//! stopping on validation macro-F1 (best weights restored), optional weight averaging, fixed
//! seeds, a record per epoch. The distillation loss and teacher are in [`crate::distill`].

use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use har_core::rng::Rng;
use serde::{Deserialize, Serialize};

use crate::augment::AugmentConfig;
use crate::data::TensorData;
use crate::distill::distillation_loss_from;
pub use crate::distill::{distillation_loss, DistillConfig, Teacher};
use crate::dmft::{Dmft, DmftConfig};
use crate::error::Result;
use crate::init::seeded_var_builder;
use crate::layers::linear;
use crate::metrics::Metrics;
use crate::mixup::{soft_cross_entropy, Mixup};

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Most epochs.
    pub epochs: usize,
    /// Windows per batch.
    pub batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Epochs of linear warm-up.
    pub warmup_epochs: usize,
    /// Stop after this many epochs without a better validation macro-F1.
    pub patience: usize,
    /// Probability of dropping each modality of a training window (never all of them).
    pub modality_dropout: f64,
    /// Augment training windows (with `augmentation`).
    pub augment: bool,
    /// The augmentation applied when `augment` is on (models saved before this field read
    /// as jitter 0.03 only, what they used).
    #[serde(default)]
    pub augmentation: AugmentConfig,
    /// Seed of initialisation, shuffling, dropout and augmentation.
    pub seed: u64,
    /// Stochastic weight averaging: from this epoch on, the weights at the end of every epoch
    /// are averaged and the average is the trained model (instead of the selected epoch's
    /// weights). `None` (the default, and what older model cards read as) averages nothing.
    #[serde(default)]
    pub average_from_epoch: Option<usize>,
    /// Share of each batch's windows replaced by a mixup blend with another window (see
    /// [`crate::mixup`]); 0 (the default, and what older model cards read as) mixes none.
    #[serde(default)]
    pub mixup: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_size: 64,
            learning_rate: 1e-3,
            weight_decay: 0.05,
            warmup_epochs: 2,
            patience: 12,
            modality_dropout: 0.1,
            augment: true,
            augmentation: AugmentConfig::default(),
            seed: 17,
            average_from_epoch: None,
            mixup: 0.0,
        }
    }
}

/// What happened in one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Learning rate at the epoch's end.
    pub learning_rate: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation cross-entropy (`None` when training without a validation split).
    pub val_loss: Option<f64>,
    /// Validation accuracy.
    pub val_accuracy: Option<f64>,
    /// Validation macro-F1.
    pub val_macro_f1: Option<f64>,
    /// Wall time of the epoch.
    pub seconds: f64,
}

/// Receives progress (the CLI shows it with indicatif).
pub trait Observer {
    /// An epoch of `batches` batches starts.
    fn epoch_started(&self, _epoch: usize, _batches: usize) {}
    /// A batch finished.
    fn batch_done(&self) {}
    /// An epoch finished.
    fn epoch_done(&self, _record: &EpochRecord) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// A trained model with its parameters and history.
pub struct Trained {
    /// The model (weights are the best epoch's).
    pub model: Dmft,
    /// Its parameters.
    pub varmap: VarMap,
    /// One record per epoch run.
    pub history: Vec<EpochRecord>,
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
    /// The kept weights' metrics on the validation windows (`None` without them): for
    /// averaged weights this is the average's own score, not an epoch's.
    pub validation: Option<Metrics>,
    /// Total training time.
    pub seconds: f64,
}

fn learning_rate(config: &TrainConfig, step: usize, steps_per_epoch: usize) -> f64 {
    let warmup = (config.warmup_epochs * steps_per_epoch).max(1);
    let total = (config.epochs * steps_per_epoch).max(warmup + 1);
    if step < warmup {
        return config.learning_rate * (step + 1) as f64 / warmup as f64;
    }
    let progress = (step - warmup) as f64 / (total - warmup) as f64;
    let floor = 0.05 * config.learning_rate;
    floor
        + (config.learning_rate - floor)
            * 0.5
            * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())
}

/// Per-window modality presence `[B, M]`: each modality dropped with probability `p`,
/// never all of them.
fn presence_mask(batch: usize, modalities: usize, p: f64, rng: &mut Rng) -> Result<Tensor> {
    let mut mask = Vec::with_capacity(batch * modalities);
    for _ in 0..batch {
        let mut row: Vec<f32> = (0..modalities)
            .map(|_| if rng.uniform(0.0, 1.0) < p { 0.0 } else { 1.0 })
            .collect();
        if row.iter().all(|v| *v == 0.0) {
            row[(rng.next_u64() % modalities as u64) as usize] = 1.0;
        }
        mask.extend(row);
    }
    Ok(Tensor::from_vec(mask, (batch, modalities), &Device::Cpu)?)
}

/// Class probabilities of every window, in batches, with all modalities present.
pub fn predict(model: &Dmft, data: &TensorData, batch_size: usize) -> Result<Vec<Vec<f32>>> {
    predict_with(model, data, batch_size, None)
}

/// Like [`predict`], with only the modalities whose flag in `present` is true.
pub fn predict_with(
    model: &Dmft,
    data: &TensorData,
    batch_size: usize,
    present: Option<&[bool]>,
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(data.len());
    let all: Vec<usize> = (0..data.len()).collect();
    for indices in all.chunks(batch_size.max(1)) {
        let inputs = data.inputs(indices, None)?;
        let output = match present {
            None => model.forward(&inputs, None, false)?,
            Some(flags) => {
                let tokens = inputs
                    .iter()
                    .enumerate()
                    .map(|(m, xs)| {
                        if flags[m] {
                            model.encode(m, xs, false).map(Some)
                        } else {
                            Ok(None)
                        }
                    })
                    .collect::<candle_core::Result<Vec<_>>>()?;
                model.fuse_available(&tokens, false)?
            }
        };
        out.extend(crate::dmft::probabilities(&output.logits)?.to_vec2::<f32>()?);
    }
    Ok(out)
}

/// Index of the largest probability of each row.
pub fn argmax(probabilities: &[Vec<f32>]) -> Vec<u32> {
    probabilities
        .iter()
        .map(|p| {
            p.iter()
                .enumerate()
                .fold(
                    (0, f32::MIN),
                    |best, (i, &v)| if v > best.1 { (i, v) } else { best },
                )
                .0 as u32
        })
        .collect()
}

fn evaluate(model: &Dmft, data: &TensorData, names: &[String]) -> Result<(f64, Metrics)> {
    let probabilities = predict(model, data, 256)?;
    let loss = probabilities
        .iter()
        .zip(&data.targets)
        .map(|(p, &t)| -(p[t as usize].max(1e-12) as f64).ln())
        .sum::<f64>()
        / data.len().max(1) as f64;
    Ok((
        loss,
        Metrics::compute(&argmax(&probabilities), &data.targets, names),
    ))
}

/// Trains a model of `config` on `train`, selecting the epoch by `validation` macro-F1 (an
/// empty validation set trains all epochs and keeps the last); distils from `teacher` when
/// given.
pub fn train(
    config: &DmftConfig,
    train: &TensorData,
    validation: &TensorData,
    class_names: &[String],
    settings: &TrainConfig,
    mut teacher: Option<Teacher>,
    observer: &dyn Observer,
) -> Result<Trained> {
    if !(0.0..=1.0).contains(&settings.mixup) {
        return Err(crate::ModelError::Invalid(format!(
            "mixup share {} is not in [0, 1]",
            settings.mixup
        )));
    }
    let started = Instant::now();
    let varmap = VarMap::new();
    let model = Dmft::new(config, seeded_var_builder(&varmap, settings.seed))?;
    let projection_vars = VarMap::new();
    let projection = match &teacher {
        Some(t) => Some(linear(
            config.dim,
            t.model_config().dim,
            seeded_var_builder(&projection_vars, settings.seed).pp("kd_proj"),
        )?),
        None => None,
    };
    let mut params = varmap.all_vars();
    params.extend(projection_vars.all_vars());
    let mut optimizer = AdamW::new(
        params,
        ParamsAdamW {
            lr: settings.learning_rate,
            weight_decay: settings.weight_decay,
            ..Default::default()
        },
    )?;
    let mut rng = Rng::new(settings.seed ^ 0x5EED);
    let steps_per_epoch = train.len().div_ceil(settings.batch_size);
    let modalities = config.modalities.len();
    let mut history = Vec::new();
    // (validation macro-F1, epoch, weights) of the best epoch so far.
    type Best = (f64, usize, Vec<(String, Tensor)>);
    let mut best: Option<Best> = None;
    let mut average = WeightAverage::default();
    let mut step = 0;
    for epoch in 1..=settings.epochs {
        let epoch_start = Instant::now();
        observer.epoch_started(epoch, steps_per_epoch);
        let mut order: Vec<usize> = (0..train.len()).collect();
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0;
        for (batch_index, indices) in order.chunks(settings.batch_size).enumerate() {
            optimizer.set_learning_rate(learning_rate(settings, step, steps_per_epoch));
            let mut inputs = train.inputs(
                indices,
                settings
                    .augment
                    .then_some((&settings.augmentation, &mut rng)),
            )?;
            let present = (modalities > 1 && settings.modality_dropout > 0.0)
                .then(|| {
                    presence_mask(
                        indices.len(),
                        modalities,
                        settings.modality_dropout,
                        &mut rng,
                    )
                })
                .transpose()?;
            let mixup = (settings.mixup > 0.0)
                .then(|| Mixup::draw(indices.len(), settings.mixup, &mut rng));
            if let Some(mixup) = &mixup {
                inputs = mixup.inputs(&inputs)?;
            }
            let output = model.forward(&inputs, present.as_ref(), true)?;
            let hard = match &mixup {
                Some(mixup) => {
                    let classes: Vec<u32> = indices.iter().map(|&i| train.targets[i]).collect();
                    let blended = mixup.targets(&classes, config.num_classes)?;
                    soft_cross_entropy(&output.logits, &blended)?
                }
                None => {
                    candle_nn::loss::cross_entropy(&output.logits, &train.target_tensor(indices)?)?
                }
            };
            let loss = match (&mut teacher, &projection) {
                (Some(t), Some(projection)) => {
                    let target = t.outputs(&inputs, present.as_ref())?;
                    distillation_loss_from(
                        hard,
                        &output.logits,
                        &target.logits,
                        &output.fused,
                        &target.fused,
                        projection,
                        &t.config,
                    )?
                }
                _ => hard,
            };
            let value = loss.to_scalar::<f32>()?;
            if !value.is_finite() {
                // A step on a non-finite loss would spread NaN through every weight.
                return Err(crate::ModelError::Invalid(format!(
                    "epoch {epoch}, batch {} of {steps_per_epoch}: the training loss is {value} \
                     (non-finite inputs, a non-finite teacher, or a diverging learning rate)",
                    batch_index + 1
                )));
            }
            optimizer.backward_step(&loss)?;
            loss_sum += value as f64;
            step += 1;
            observer.batch_done();
        }
        // Without a validation split every epoch counts as the best (the last one is kept).
        let validated = if validation.is_empty() {
            None
        } else {
            Some(evaluate(&model, validation, class_names)?)
        };
        let record = EpochRecord {
            epoch,
            learning_rate: learning_rate(settings, step.saturating_sub(1), steps_per_epoch),
            train_loss: loss_sum / steps_per_epoch as f64,
            val_loss: validated.as_ref().map(|v| v.0),
            val_accuracy: validated.as_ref().map(|v| v.1.accuracy),
            val_macro_f1: validated.as_ref().map(|v| v.1.macro_f1),
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        observer.epoch_done(&record);
        tracing::info!(
            epoch,
            train_loss = record.train_loss,
            val_loss = record.val_loss,
            val_f1 = record.val_macro_f1,
            "epoch"
        );
        let score = record.val_macro_f1;
        history.push(record);
        let averaging = settings
            .average_from_epoch
            .is_some_and(|from| epoch >= from);
        let improved = match (score, &best) {
            (None, _) | (_, None) => true,
            (Some(score), Some((best_score, _, _))) => score > *best_score,
        };
        // One copy of the weights serves both the average and the best epoch (tensors are
        // shared, never written in place).
        if averaging || improved {
            let weights = snapshot(&varmap)?;
            if averaging {
                average.add(weights.clone())?;
            }
            if improved {
                best = Some((score.unwrap_or(0.0), epoch, weights));
            }
        }
        if !improved && epoch - best.as_ref().map_or(0, |b| b.1) >= settings.patience {
            tracing::info!(epoch, "early stop");
            break;
        }
    }
    let (_, mut best_epoch, mut weights) =
        best.ok_or_else(|| crate::ModelError::Invalid("no epoch ran".into()))?;
    if let Some(averaged) = average.finish()? {
        tracing::info!(
            epochs = average.count,
            "keeping the weights averaged over the last epochs"
        );
        weights = averaged;
        best_epoch = history.len();
    }
    restore(&varmap, &weights)?;
    let validation = if validation.is_empty() {
        None
    } else {
        Some(evaluate(&model, validation, class_names)?.1)
    };
    Ok(Trained {
        model,
        varmap,
        history,
        best_epoch,
        validation,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The running mean of named weights (stochastic weight averaging).
#[derive(Debug, Default)]
struct WeightAverage {
    count: usize,
    sums: Vec<(String, Tensor)>,
}

impl WeightAverage {
    /// Adds one set of weights (named and ordered as every other set).
    fn add(&mut self, weights: Vec<(String, Tensor)>) -> Result<()> {
        self.sums = if self.count == 0 {
            weights
        } else {
            std::mem::take(&mut self.sums)
                .into_iter()
                .zip(weights)
                .map(|((name, sum), (_, w))| Ok((name, (sum + w)?)))
                .collect::<Result<_>>()?
        };
        self.count += 1;
        Ok(())
    }

    /// The mean of the added weights, or `None` when none were added.
    fn finish(&self) -> Result<Option<Vec<(String, Tensor)>>> {
        if self.count == 0 {
            return Ok(None);
        }
        let averaged = self
            .sums
            .iter()
            .map(|(name, sum)| Ok((name.clone(), (sum / self.count as f64)?)))
            .collect::<Result<_>>()?;
        Ok(Some(averaged))
    }
}

/// A copy of every variable's current value (to restore the best epoch's weights later).
pub(crate) fn snapshot(varmap: &VarMap) -> Result<Vec<(String, Tensor)>> {
    let data = varmap.data().lock().expect("varmap lock");
    data.iter()
        .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?)))
        .collect()
}

/// Sets every variable to the value [`snapshot`] took.
pub(crate) fn restore(varmap: &VarMap, weights: &[(String, Tensor)]) -> Result<()> {
    let data = varmap.data().lock().expect("varmap lock");
    for (name, tensor) in weights {
        data[name].set(tensor)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_average_is_the_mean_of_what_was_added() -> Result<()> {
        let mut average = WeightAverage::default();
        assert!(average.finish()?.is_none());
        for k in [1f32, 2.0, 6.0] {
            let w = Tensor::new(&[k, -k], &Device::Cpu)?;
            average.add(vec![("w".to_string(), w)])?;
        }
        let averaged = average.finish()?.expect("three sets added");
        assert_eq!(averaged[0].0, "w");
        assert_eq!(averaged[0].1.to_vec1::<f32>()?, vec![3.0, -3.0]);
        Ok(())
    }
}
