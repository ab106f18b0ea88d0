//! The scene model in candle (issue 20; the runtime's `har_runtime::scene` describes the
//! same model, under the same names, for inference): cross-subject context over each
//! member's fused feature (seed S5), a per-member activity head, the attention + LSTM
//! label-set decoder (seed S11) trained without a fixed label order, and the baseline's
//! independent per-label head.
//!
//! Batches hold scenes padded to the largest member count: `mask` `[B, K]` is 1 for a real
//! member, and padded members are never attended to, pooled or scored.
//!
//! **Order-free decoder training**: at each step the target is *any* label of the set not yet
//! decoded (loss `−log Σ_{l ∈ remaining} p(l)`, the softmax over the labels not yet decoded
//! and the end token), the next input is the remaining label the model itself ranks highest,
//! and once none remains the target is the end token — no label order is imposed.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::rnn::{LSTMConfig, LSTMState, RNN};
use candle_nn::{Init, VarBuilder};
use har_runtime::names::scene as names;

pub use har_runtime::scene::SceneConfig;

use crate::layers::{linear, Attention, LayerNorm, Linear, Train};

pub mod data;
pub mod train;

/// Added to scores that must get no weight.
const MASKED: f32 = -1e9;

/// The members' outputs of a batch of moments.
#[derive(Debug)]
pub struct Encoded {
    /// Activity logits `[B, K, A]`.
    pub activity_logits: Tensor,
    /// Features after context `[B, K, D]`: the decoder's memory.
    pub memory: Tensor,
    /// The baseline's per-label logits `[B, L]`.
    pub independent_logits: Tensor,
}

/// The trainable model.
#[derive(Debug, Clone)]
pub struct SceneModel {
    config: SceneConfig,
    input: Linear,
    cross: Option<(Attention, Linear)>,
    norm: LayerNorm,
    head: Linear,
    label_embedding: Tensor,
    lstm: candle_nn::LSTM,
    query: Linear,
    out: Linear,
    independent: Linear,
}

/// `[B, K]` additive bias: 0 for a real member, [`MASKED`] for padding.
fn member_bias(mask: &Tensor) -> candle_core::Result<Tensor> {
    (mask.affine(-1.0, 1.0)? * f64::from(MASKED))?.to_dtype(DType::F32)
}

/// `log Σ exp` over the last dimension, `[B, N]` → `[B]`.
fn logsumexp(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?;
    x.broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        .add(&max)?
        .squeeze(D::Minus1)
}

impl SceneModel {
    /// The model of `config` under `vb`.
    pub fn new(config: &SceneConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let d = config.dim;
        let cross = config
            .context
            .then(|| -> candle_core::Result<_> {
                Ok((
                    Attention::new(d, config.heads, d / config.heads, vb.pp(names::CROSS))?,
                    linear(2 * d, d, vb.pp(names::MIX))?,
                ))
            })
            .transpose()?;
        Ok(Self {
            config: config.clone(),
            input: linear(config.input_dim, d, vb.pp(names::INPUT))?,
            cross,
            norm: LayerNorm::new(d, vb.pp(names::NORM))?,
            head: linear(d, config.activities, vb.pp(names::HEAD))?,
            label_embedding: vb.get_with_hints(
                (config.labels + 1, d),
                names::LABEL_EMBEDDING,
                Init::Randn {
                    mean: 0.0,
                    stdev: 1.0 / (d as f64).sqrt(),
                },
            )?,
            lstm: candle_nn::lstm(d, d, LSTMConfig::default(), vb.pp(names::LSTM))?,
            query: linear(d, d, vb.pp(names::QUERY))?,
            out: linear(2 * d, config.labels + 1, vb.pp(names::OUT))?,
            independent: linear(2 * d, config.labels, vb.pp(names::INDEPENDENT))?,
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &SceneConfig {
        &self.config
    }

    /// Members' features `[B, K, E]` with `mask` `[B, K]` → activities, memory, baseline.
    pub fn encode(
        &self,
        features: &Tensor,
        mask: &Tensor,
        train: Train,
    ) -> candle_core::Result<Encoded> {
        let (b, k, _) = features.dims3()?;
        let d = self.config.dim;
        let h = candle_core::Module::forward(&self.input, features)?.gelu()?;
        let count = mask.sum_keepdim(1)?; // [B, 1]
        let mut z = h.clone();
        if let Some((attention, mix)) = &self.cross {
            // Member i attends to the other real members.
            let eye = Tensor::eye(k, DType::F32, features.device())?;
            let others = mask
                .unsqueeze(1)?
                .broadcast_mul(&eye.affine(-1.0, 1.0)?.unsqueeze(0)?)?; // [B, K(query), K(key)]
            let bias = (others.affine(-1.0, 1.0)? * f64::from(MASKED))?.unsqueeze(1)?;
            let has_others = others.sum_keepdim(2)?.gt(0.0)?.to_dtype(DType::F32)?; // [B, K, 1]
            let context = attention
                .forward(&h, Some(&bias), train)?
                .broadcast_mul(&has_others)?;
            let summary = h
                .broadcast_mul(&mask.unsqueeze(2)?)?
                .sum_keepdim(1)?
                .broadcast_div(&count.unsqueeze(2)?)?
                .broadcast_as((b, k, d))?
                .contiguous()?;
            let both = Tensor::cat(&[context, summary], 2)?;
            z = (z + candle_core::Module::forward(mix, &both)?)?;
        }
        let memory = self.norm.forward(&z, train)?;
        let activity_logits = candle_core::Module::forward(&self.head, &memory)?;
        let weights = mask.unsqueeze(2)?;
        let mean = memory
            .broadcast_mul(&weights)?
            .sum(1)?
            .broadcast_div(&count)?;
        let max = memory
            .broadcast_add(&member_bias(mask)?.unsqueeze(2)?)?
            .max(1)?;
        let independent_logits =
            candle_core::Module::forward(&self.independent, &Tensor::cat(&[mean, max], 1)?)?;
        Ok(Encoded {
            activity_logits,
            memory,
            independent_logits,
        })
    }

    /// One decoder step for the batch: the previous tokens `[B]` (the start token is
    /// `labels`) advance the LSTM; returns the new state and the logits `[B, L + 1]`.
    fn decoder_step(
        &self,
        memory: &Tensor,
        bias: &Tensor,
        state: &LSTMState,
        tokens: &[u32],
    ) -> candle_core::Result<(LSTMState, Tensor)> {
        let d = self.config.dim;
        let index = Tensor::new(tokens, memory.device())?;
        let x = self.label_embedding.index_select(&index, 0)?;
        let state = self.lstm.step(&x, state)?;
        let q = candle_core::Module::forward(&self.query, state.h())?;
        let scores = (memory.matmul(&q.unsqueeze(2)?)?.squeeze(2)? * (1.0 / (d as f64).sqrt()))?
            .add(bias)?;
        let alpha = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = alpha.unsqueeze(1)?.matmul(memory)?.squeeze(1)?;
        let logits = candle_core::Module::forward(
            &self.out,
            &Tensor::cat(&[state.h().clone(), context], 1)?,
        )?;
        Ok((state, logits))
    }

    /// The order-free decoder loss (mean over the batch of the summed step losses) for the
    /// label sets `targets` (label indices).
    pub fn decoder_loss(
        &self,
        memory: &Tensor,
        mask: &Tensor,
        targets: &[Vec<usize>],
    ) -> candle_core::Result<Tensor> {
        let b = targets.len();
        let labels = self.config.labels;
        let bias = member_bias(mask)?;
        let mut state = self.lstm.zero_state(b)?;
        let mut tokens = vec![labels as u32; b];
        let mut emitted = vec![vec![false; labels]; b];
        let mut active = vec![true; b];
        let mut total = Tensor::zeros(b, DType::F32, memory.device())?;
        let steps = targets.iter().map(Vec::len).max().unwrap_or(0) + 1;
        for _ in 0..steps {
            let (next, logits) = self.decoder_step(memory, &bias, &state, &tokens)?;
            state = next;
            let mut allowed = Vec::with_capacity(b * (labels + 1));
            let mut wanted = Vec::with_capacity(b * (labels + 1));
            for (i, set) in targets.iter().enumerate() {
                let remaining: Vec<bool> = (0..labels)
                    .map(|l| set.contains(&l) && !emitted[i][l])
                    .collect();
                let none_left = !remaining.iter().any(|&r| r);
                for l in 0..=labels {
                    let open = l == labels || !emitted[i][l];
                    allowed.push(if open { 0.0 } else { MASKED });
                    let target = if l == labels { none_left } else { remaining[l] };
                    wanted.push(if target { 0.0 } else { MASKED });
                }
            }
            let allowed = Tensor::from_vec(allowed, (b, labels + 1), memory.device())?;
            let wanted = Tensor::from_vec(wanted, (b, labels + 1), memory.device())?;
            let open = logits.add(&allowed)?;
            let aimed = open.add(&wanted)?;
            let step_loss = (logsumexp(&open)? - logsumexp(&aimed)?)?;
            let on: Vec<f32> = active.iter().map(|&a| f32::from(u8::from(a))).collect();
            total = (total + step_loss.mul(&Tensor::from_vec(on, b, memory.device())?)?)?;
            // The next input: the remaining label the model ranks highest.
            let scores = aimed.to_vec2::<f32>()?;
            for i in 0..b {
                if !active[i] {
                    continue;
                }
                let best = scores[i]
                    .iter()
                    .enumerate()
                    .max_by(|a, c| a.1.total_cmp(c.1))
                    .map_or(labels, |(l, _)| l);
                if best == labels {
                    active[i] = false;
                } else {
                    emitted[i][best] = true;
                    tokens[i] = best as u32;
                }
            }
        }
        total.mean(0)
    }

    /// Log-probabilities `[T][L + 1]` of one moment's decoder along a given token sequence
    /// (already-decoded labels excluded from the softmax), for the engines' equivalence test.
    pub fn decoder_log_probs(
        &self,
        memory: &Tensor,
        mask: &Tensor,
        sequence: &[usize],
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let labels = self.config.labels;
        let bias = member_bias(mask)?;
        let mut state = self.lstm.zero_state(1)?;
        let mut token = labels;
        let mut emitted = vec![false; labels];
        let mut out = Vec::new();
        for step in 0..=sequence.len() {
            let (next, logits) = self.decoder_step(memory, &bias, &state, &[token as u32])?;
            state = next;
            let allowed: Vec<f32> = (0..=labels)
                .map(|l| {
                    if l < labels && emitted[l] {
                        MASKED
                    } else {
                        0.0
                    }
                })
                .collect();
            let open = logits.add(&Tensor::from_vec(allowed, (1, labels + 1), &Device::Cpu)?)?;
            let logp = candle_nn::ops::log_softmax(&open, D::Minus1)?;
            out.push(logp.squeeze(0)?.to_vec1()?);
            if let Some(&next_token) = sequence.get(step) {
                emitted[next_token] = true;
                token = next_token;
            }
        }
        Ok(out)
    }
}
