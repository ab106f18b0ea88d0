//! Intermediate supervision (seed S3's fine-tuning): the pruned backbone learns to reproduce
//! the unpruned one's features on given windows — each modality's tokens, the mid-fusion
//! features and the scores through the head — while the classification head stays the
//! original's, frozen, so the pruned backbone is recombined with it unchanged. The windows
//! may be synthetic ([`super::synthesis`]) or real; no label is used.

use std::time::Instant;

use candle_core::Tensor;
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use har_core::rng::Rng;
use har_runtime::names::dmft as names;
use serde::{Deserialize, Serialize};

use crate::data::TensorData;
use crate::dmft::Dmft;
use crate::error::{ModelError, Result};

/// Settings of the fine-tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MimicConfig {
    /// Passes over the windows.
    pub epochs: usize,
    /// Windows per step.
    pub batch_size: usize,
    /// Peak AdamW learning rate (cosine decay to zero).
    pub learning_rate: f64,
    /// Shuffling seed.
    pub seed: u64,
}

impl Default for MimicConfig {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_size: 64,
            learning_rate: 1e-3,
            seed: 1,
        }
    }
}

/// What the fine-tuning did.
#[derive(Debug, Clone, Serialize)]
pub struct MimicReport {
    /// Mean loss of the first epoch.
    pub first_epoch_loss: f64,
    /// Mean loss of the last epoch.
    pub last_epoch_loss: f64,
    /// Trainable parameters (the head excluded).
    pub trained_parameters: usize,
    /// Wall time.
    pub seconds: f64,
}

/// Parameter names that belong to the classification head (kept frozen): every fusion
/// scheme's final norms, heads and the late mix.
pub fn is_head_parameter(name: &str) -> bool {
    [
        names::NORM,
        names::HEAD,
        names::MOTION_NORM,
        names::MOTION_HEAD,
        names::BRANCH_MIX,
    ]
    .iter()
    .any(|part| {
        let prefix = format!("{}.{part}", names::FUSION);
        name == prefix || name.starts_with(&format!("{prefix}."))
    })
}

fn mse(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok((a - b)?.sqr()?.mean_all()?)
}

/// The teacher's features on the student's channels: all of them, or the residual channels
/// a width-pruned student kept (`channels`, indices into the teacher's last axis).
fn on_channels(t: &Tensor, channels: Option<&Tensor>) -> Result<Tensor> {
    Ok(match channels {
        Some(idx) => t.index_select(idx, t.rank() - 1)?,
        None => t.clone(),
    })
}

/// The feature-matching loss of `student` against `teacher` on inputs `xs`; a student of
/// narrower residual width matches the teacher's features on its kept `channels`.
pub fn mimic_loss(
    teacher: &Dmft,
    student: &Dmft,
    xs: &[Tensor],
    channels: Option<&Tensor>,
) -> Result<Tensor> {
    let mut loss = Tensor::zeros((), candle_core::DType::F32, &candle_core::Device::Cpu)?;
    let mut teacher_tokens = Vec::with_capacity(xs.len());
    let mut student_tokens = Vec::with_capacity(xs.len());
    for (m, x) in xs.iter().enumerate() {
        let target = teacher.encode(m, x, false)?.detach();
        let tokens = student.encode(m, x, true)?;
        loss = (loss + mse(&tokens, &on_channels(&target, channels)?)?)?;
        teacher_tokens.push(target);
        student_tokens.push(tokens);
    }
    let target = teacher.fuse(&teacher_tokens, None, false)?;
    let output = student.fuse(&student_tokens, None, true)?;
    let fused = on_channels(&target.fused.detach(), channels)?;
    loss = (loss + mse(&output.fused, &fused)?)?;
    Ok((loss + mse(&output.logits, &target.logits.detach())?)?)
}

/// Fine-tunes `student` (its parameters in `varmap`, the head frozen) to mimic `teacher` on
/// every window of `data`; `channels`: the teacher's residual channels a width-pruned
/// student kept.
pub fn mimic(
    teacher: &Dmft,
    student: &Dmft,
    varmap: &VarMap,
    data: &TensorData,
    config: &MimicConfig,
    channels: Option<&[usize]>,
) -> Result<MimicReport> {
    if data.is_empty() || config.batch_size == 0 || config.epochs == 0 {
        return Err(ModelError::Invalid(
            "fine-tuning needs windows, a positive batch size and epochs".into(),
        ));
    }
    let started = Instant::now();
    let channels = channels
        .map(|c| {
            let idx: Vec<u32> = c.iter().map(|&i| i as u32).collect();
            Tensor::new(idx.as_slice(), &candle_core::Device::Cpu)
        })
        .transpose()?;
    let trainable: Vec<_> = {
        let vars = varmap.data().lock().expect("varmap lock");
        let mut named: Vec<_> = vars
            .iter()
            .filter(|(name, _)| !is_head_parameter(name))
            .collect();
        named.sort_by(|a, b| a.0.cmp(b.0));
        named.into_iter().map(|(_, v)| v.clone()).collect()
    };
    let trained_parameters = trainable.iter().map(|v| v.elem_count()).sum();
    let mut optimizer = AdamW::new(
        trainable,
        ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let mut rng = Rng::new(config.seed ^ 0x00D1_5717);
    let steps_per_epoch = data.len().div_ceil(config.batch_size);
    let total = (config.epochs * steps_per_epoch) as f64;
    let mut epoch_losses = Vec::with_capacity(config.epochs);
    let mut step = 0usize;
    for epoch in 1..=config.epochs {
        let mut order: Vec<usize> = (0..data.len()).collect();
        rng.shuffle(&mut order);
        let mut sum = 0.0;
        for indices in order.chunks(config.batch_size) {
            let lr = config.learning_rate
                * 0.5
                * (1.0 + (std::f64::consts::PI * step as f64 / total).cos());
            optimizer.set_learning_rate(lr);
            let inputs = data.inputs(indices, None)?;
            let loss = mimic_loss(teacher, student, &inputs, channels.as_ref())?;
            let value = f64::from(loss.to_scalar::<f32>()?);
            if !value.is_finite() {
                return Err(ModelError::Invalid(format!(
                    "fine-tuning diverged in epoch {epoch} (loss {value})"
                )));
            }
            sum += value;
            optimizer.backward_step(&loss)?;
            step += 1;
        }
        let mean = sum / steps_per_epoch as f64;
        tracing::info!(epoch, loss = mean, "mimic");
        epoch_losses.push(mean);
    }
    Ok(MimicReport {
        first_epoch_loss: epoch_losses[0],
        last_epoch_loss: *epoch_losses.last().expect("one epoch at least"),
        trained_parameters,
        seconds: started.elapsed().as_secs_f64(),
    })
}
