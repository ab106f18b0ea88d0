//! Building blocks: layer norm, multi-head attention, pre-norm transformer layer, attention
//! pooling. Every `forward` takes `train`: training composes differentiable primitive ops,
//! inference uses candle's fused CPU kernels (same maths, no autograd).

use std::sync::{Arc, Mutex};

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};
use har_core::rng::Rng;
use har_runtime::config::DmftConfig;
use har_runtime::names::{self, transformer};

use crate::ops::{add_row_vector, mul_row_vector};

/// Whether a forward pass must be differentiable.
pub type Train = bool;

/// `y = x · Wᵀ + b` over the last dimension of `x`: one 2-D product over all leading
/// dimensions (as `candle_nn::Linear` does for contiguous inputs), then the bias through
/// [`add_row_vector`], whose gradient avoids candle's strided reduction (see [`crate::ops`]).
/// Bit-identical to `candle_nn::Linear` (tested); parameters are named as its (`weight`
/// `[out, in]`, `bias` `[out]`).
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// A layer from its weight `[out, in]` and optional bias `[out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut dims = xs.dims().to_vec();
        let in_dim = dims.pop().unwrap_or(1);
        let rows = xs.elem_count() / in_dim.max(1);
        let ys = xs.reshape((rows, in_dim))?.matmul(&self.weight.t()?)?;
        let ys = match &self.bias {
            Some(bias) => add_row_vector(&ys, bias)?,
            None => ys,
        };
        dims.push(ys.dim(1)?);
        ys.reshape(dims)
    }
}

/// A linear layer with seeded init: weights N(0, 1/in), bias 0.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let std = (1.0 / in_dim as f64).sqrt();
    let weight = vb.get_with_hints(
        (out_dim, in_dim),
        names::WEIGHT,
        Init::Randn {
            mean: 0.0,
            stdev: std,
        },
    )?;
    let bias = vb.get_with_hints(out_dim, names::BIAS, Init::Const(0.0))?;
    Ok(Linear::new(weight, Some(bias)))
}

/// Softmax over the last dimension.
pub fn softmax(xs: &Tensor, train: Train) -> Result<Tensor> {
    if train {
        candle_nn::ops::softmax(xs, D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(&xs.contiguous()?)
    }
}

/// Layer normalisation over the last dimension, with learned scale and shift.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    /// Epsilon added to the variance (the runtime's, so both engines agree).
    pub const EPS: f64 = har_runtime::layers::LAYER_NORM_EPS;

    /// A layer norm over `dim` features.
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(dim, names::WEIGHT, Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, names::BIAS, Init::Const(0.0))?,
        })
    }

    /// Normalises `xs` over its last dimension.
    pub fn forward(&self, xs: &Tensor, train: Train) -> Result<Tensor> {
        if !train {
            return candle_nn::ops::layer_norm(
                &xs.contiguous()?,
                &self.weight,
                &self.bias,
                Self::EPS as f32,
            );
        }
        let dim = xs.dim(D::Minus1)? as f64;
        let centred = xs.broadcast_sub(&(xs.sum_keepdim(D::Minus1)? / dim)?)?;
        let variance = (centred.sqr()?.sum_keepdim(D::Minus1)? / dim)?;
        let normalised = centred.broadcast_div(&(variance + Self::EPS)?.sqrt()?)?;
        add_row_vector(&mul_row_vector(&normalised, &self.weight)?, &self.bias)
    }
}

/// Multi-head self-attention over sequences `[N, L, D]`.
#[derive(Debug, Clone)]
pub struct Attention {
    qkv: Linear,
    out: Linear,
    heads: usize,
}

impl Attention {
    /// Attention with `heads` heads, each `head_dim` wide, over `dim` features.
    pub fn new(dim: usize, heads: usize, head_dim: usize, vb: VarBuilder) -> Result<Self> {
        if heads == 0 || head_dim == 0 {
            candle_core::bail!("attention of {heads} heads {head_dim} wide");
        }
        let inner = heads * head_dim;
        Ok(Self {
            qkv: linear(dim, 3 * inner, vb.pp(transformer::QKV))?,
            out: linear(inner, dim, vb.pp(transformer::OUT))?,
            heads,
        })
    }

    /// `bias`, if given, is added to the attention scores and must broadcast to `[N, H, L, L]`
    /// (use a large negative value to mask keys).
    pub fn forward(&self, xs: &Tensor, bias: Option<&Tensor>, train: Train) -> Result<Tensor> {
        let (n, l, _) = xs.dims3()?;
        let inner = self.out.weight.dim(1)?;
        let head_dim = inner / self.heads;
        let qkv = self
            .qkv
            .forward(xs)?
            .reshape((n, l, 3, self.heads, head_dim))?
            .permute((2, 0, 3, 1, 4))?;
        let q = (qkv.get(0)?.contiguous()? * (1.0 / (head_dim as f64).sqrt()))?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(bias) = bias {
            scores = scores.broadcast_add(bias)?;
        }
        let weights = softmax(&scores, train)?;
        let ys = weights
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((n, l, inner))?;
        self.out.forward(&ys)
    }
}

/// Dropout with its own seeded generator (seeded from the layer's parameter path), so that
/// training stays reproducible; the identity outside training.
#[derive(Debug, Clone)]
pub struct Dropout {
    rate: f32,
    rng: Arc<Mutex<Rng>>,
}

impl Dropout {
    /// Dropout of `rate`, seeded by `vb`'s path.
    pub fn new(rate: f32, vb: &VarBuilder) -> Self {
        let seed = vb.prefix().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Self {
            rate,
            rng: Arc::new(Mutex::new(Rng::new(seed))),
        }
    }

    /// Zeroes each element with probability `rate` and scales the rest by `1 / (1 - rate)`.
    pub fn forward(&self, xs: &Tensor, train: Train) -> Result<Tensor> {
        if !train || self.rate <= 0.0 {
            return Ok(xs.clone());
        }
        let keep = 1.0 / (1.0 - self.rate);
        let mut rng = self.rng.lock().expect("dropout rng");
        let mask: Vec<f32> = (0..xs.elem_count())
            .map(|_| {
                if (rng.uniform(0.0, 1.0) as f32) < self.rate {
                    0.0
                } else {
                    keep
                }
            })
            .collect();
        xs * Tensor::from_vec(mask, xs.shape(), xs.device())?
    }
}

/// A pre-norm transformer encoder layer: `x + attn(ln(x))`, then `x + ffn(ln(x))` (GELU).
#[derive(Debug, Clone)]
pub struct TransformerLayer {
    norm1: LayerNorm,
    attention: Attention,
    norm2: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    dropout: Dropout,
}

impl TransformerLayer {
    /// The layer at `vb` with the widths `config` gives it (pruned or not; see
    /// [`DmftConfig::layer_widths`]) and the config's residual dropout (training only).
    pub fn new(config: &DmftConfig, vb: VarBuilder) -> Result<Self> {
        let (dim, widths) = (config.dim, config.layer_widths(&vb.prefix()));
        let attention = vb.pp(transformer::ATTENTION);
        Ok(Self {
            dropout: Dropout::new(config.dropout, &vb),
            norm1: LayerNorm::new(dim, vb.pp(transformer::NORM1))?,
            attention: Attention::new(dim, widths.heads, config.head_dim(), attention)?,
            norm2: LayerNorm::new(dim, vb.pp(transformer::NORM2))?,
            ffn_in: linear(dim, widths.ffn, vb.pp(transformer::FFN_IN))?,
            ffn_out: linear(widths.ffn, dim, vb.pp(transformer::FFN_OUT))?,
        })
    }

    /// Applies the layer to `[N, L, D]` sequences.
    pub fn forward(&self, xs: &Tensor, bias: Option<&Tensor>, train: Train) -> Result<Tensor> {
        let attended = self
            .attention
            .forward(&self.norm1.forward(xs, train)?, bias, train)?;
        let xs = (xs + self.dropout.forward(&attended, train)?)?;
        let hidden = self
            .ffn_in
            .forward(&self.norm2.forward(&xs, train)?)?
            .gelu()?;
        xs + self
            .dropout
            .forward(&self.ffn_out.forward(&hidden)?, train)?
    }
}

/// Attention pooling: a learned query scores each element; the output is the
/// softmax-weighted sum, `[N, L, D] → [N, D]`.
#[derive(Debug, Clone)]
pub struct AttentionPool {
    query: Tensor,
    scale: f64,
}

impl AttentionPool {
    /// A pool over `dim` features.
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        let std = (1.0 / dim as f64).sqrt();
        Ok(Self {
            query: vb.get_with_hints(
                (dim, 1),
                names::QUERY,
                Init::Randn {
                    mean: 0.0,
                    stdev: std,
                },
            )?,
            scale: 1.0 / (dim as f64).sqrt(),
        })
    }

    /// Pools `xs` `[N, L, D]`; `bias` `[N, L]` (0 or large negative) masks elements.
    pub fn forward(&self, xs: &Tensor, bias: Option<&Tensor>, train: Train) -> Result<Tensor> {
        let (n, _, d) = xs.dims3()?;
        self.weights(xs, bias, train)?.matmul(xs)?.reshape((n, d))
    }

    /// The pooling weights `[N, 1, L]` of `xs` `[N, L, D]` (what [`Self::forward`] sums
    /// with), for a scheme that weighs other rows by them too.
    pub fn weights(&self, xs: &Tensor, bias: Option<&Tensor>, train: Train) -> Result<Tensor> {
        let (n, l, d) = xs.dims3()?;
        let mut scores =
            (xs.reshape((n * l, d))?.matmul(&self.query)? * self.scale)?.reshape((n, 1, l))?;
        if let Some(bias) = bias {
            scores = scores.broadcast_add(&bias.reshape((n, 1, l))?)?;
        }
        softmax(&scores, train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The 2-D [`Linear`] computes `candle_nn::Linear` exactly: outputs and the gradients of
    /// input, weight and bias, bit for bit, on a 3-D input.
    #[test]
    fn linear_equals_candle_nn_linear_bit_for_bit() -> Result<()> {
        let device = Device::Cpu;
        let values = |n: usize, k: f32| (0..n).map(|i| (i as f32 * k).sin()).collect::<Vec<_>>();
        let run = |ours: bool| -> Result<Vec<Vec<u32>>> {
            let x = Var::from_vec(values(4 * 6 * 5, 0.37), (4, 6, 5), &device)?;
            let w = Var::from_vec(values(3 * 5, 0.71), (3, 5), &device)?;
            let b = Var::from_vec(values(3, 1.3), 3, &device)?;
            let y = if ours {
                Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone())).forward(&x)?
            } else {
                candle_nn::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()))
                    .forward(&x)?
            };
            let weights = Tensor::from_vec(values(4 * 6 * 3, 0.13), (4, 6, 3), &device)?;
            let grads = (&y * &weights)?.sum_all()?.backward()?;
            [
                &y,
                grads.get(&x).unwrap(),
                grads.get(&w).unwrap(),
                grads.get(&b).unwrap(),
            ]
            .iter()
            .map(|t| {
                let v = t.flatten_all()?.to_vec1::<f32>()?;
                Ok(v.iter().map(|x| x.to_bits()).collect())
            })
            .collect()
        };
        assert_eq!(run(true)?, run(false)?);
        Ok(())
    }
}
