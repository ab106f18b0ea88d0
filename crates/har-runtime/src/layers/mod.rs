//! The runtime's vocabulary of layers: a model's forward pass is assembled from these
//! according to its card (see [`crate::dmft`]). Each loads itself from a [`Params`] place
//! under the names of [`crate::names`], checking every shape against the config, and runs on
//! plain `f32` slices with reused buffers; the arithmetic is in [`crate::kernels`].
//!
//! | layer | computes |
//! |---|---|
//! | [`Dense`] | `y = x · Wᵀ + b` on rows |
//! | [`LayerNorm`] | normalisation of each row, learned scale and shift |
//! | [`MultiHeadAttention`] | self-attention within sequences of rows |
//! | [`FeedForward`] | `W₂ · gelu(W₁ · x + b₁) + b₂` |
//! | [`TransformerLayer`] | pre-norm: `x + attn(ln(x))`, then `x + ffn(ln(x))` |
//! | [`AttentionPool`] | a learned query's softmax-weighted sum of rows |
//! | [`PatchTokenizer`] | patches of a window (with `window_detail` / `patch_stats`) → one row each |
//! | [`SpectralTokenizer`] | log band powers of a window → one row per channel group |
//! | [`DepthwiseConv1d`] | one kernel per channel over time (causal or centred) |
//! | [`SeparableConv1d`] | depthwise, then a dense layer across channels |
//! | [`Lstm`], [`Gru`] | recurrent layers over a sequence, every step's hidden state |
//! | [`CausalAttention`] | causal self-attention one step at a time over a [`KvCache`] |
//! | [`MultiView`] | convolutions along time and across channels, fused (MVF, seed S6) |

mod causal_attention;
mod conv;
mod multiview;
mod recurrent;

pub use causal_attention::{CausalAttention, KvCache, StepScratch};
pub use conv::{DepthwiseConv1d, Padding, SeparableConv1d};
pub use multiview::MultiView;
pub use recurrent::{Gru, Lstm};

use crate::config::{DmftConfig, LayerWidths};
use crate::error::Result;
use crate::kernels::int8;
use crate::kernels::matmul::{self, has_avx2_fma};
use crate::kernels::{self, AttentionScratch};
use crate::names::{self, transformer};
pub use crate::patch_input::PatchOptions;
use crate::patch_input::{patch_log_std, standardise_window};
use crate::spectrum::SpectrumTables;
use crate::weights::Params;

/// Epsilon added to the variance by every layer norm (both engines).
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// A linear layer `y = x · Wᵀ + b` (weights `weight` `[out, in]`, `bias` `[out]`): f32, or
/// int8 when its weight is stored quantised (see [`crate::names::quantized`]).
#[derive(Debug, Clone)]
pub struct Dense {
    kernel: DenseKernel,
    /// The weight prefix, for calibration (empty for fixed transforms).
    name: String,
}

#[derive(Debug, Clone)]
enum DenseKernel {
    F32(matmul::Dense),
    Int8(int8::QuantizedDense),
}

impl Dense {
    /// Loads `weight` `[out_dim, in_dim]` and `bias` `[out_dim]` from `p`.
    pub fn load(p: &Params, in_dim: usize, out_dim: usize) -> Result<Self> {
        // The weight before the bias: a wrong shape is named by its weight.
        let kernel = match p.get_int8(names::WEIGHT, &[out_dim, in_dim])? {
            Some(q) => DenseKernel::Int8(int8::QuantizedDense::new(
                q.values,
                q.weight_scale,
                q.input_scale,
                p.get(names::BIAS, &[out_dim])?,
                in_dim,
                out_dim,
            )),
            None => {
                let weight = p.get(names::WEIGHT, &[out_dim, in_dim])?;
                let bias = p.get(names::BIAS, &[out_dim])?;
                DenseKernel::F32(matmul::Dense::new(&weight, bias, in_dim, out_dim))
            }
        };
        Ok(Self {
            kernel,
            name: p.prefix().to_string(),
        })
    }

    /// A layer from its weight `[out_dim, in_dim]` (row-major) and bias `[out_dim]` already
    /// read (a cell whose tensors are not named `weight` / `bias`).
    pub fn from_parts(weight: Vec<f32>, bias: Vec<f32>, in_dim: usize, out_dim: usize) -> Self {
        Self {
            kernel: DenseKernel::F32(matmul::Dense::new(&weight, bias, in_dim, out_dim)),
            name: String::new(),
        }
    }

    /// Input width.
    pub fn in_dim(&self) -> usize {
        match &self.kernel {
            DenseKernel::F32(d) => d.in_dim(),
            DenseKernel::Int8(d) => d.in_dim(),
        }
    }

    /// A bias-free layer from a fixed matrix already laid out `[in, out]` (a transform such
    /// as the DFT, not a learned weight).
    pub fn fixed(weight_t: Vec<f32>, out_dim: usize) -> Self {
        Self {
            kernel: DenseKernel::F32(matmul::Dense::from_transposed(weight_t, out_dim)),
            name: String::new(),
        }
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        match &self.kernel {
            DenseKernel::F32(d) => d.out_dim(),
            DenseKernel::Int8(d) => d.out_dim(),
        }
    }

    /// True when the layer runs the int8 kernel.
    pub fn is_int8(&self) -> bool {
        matches!(self.kernel, DenseKernel::Int8(_))
    }

    /// Applies to each of `rows` rows of `x`, writing `rows × out` into `y`.
    #[inline(always)]
    pub fn apply(&self, x: &[f32], rows: usize, y: &mut Vec<f32>) {
        match &self.kernel {
            DenseKernel::F32(d) => {
                if !self.name.is_empty() {
                    int8::observe(&self.name, &x[..rows * d.in_dim()]);
                }
                d.apply(x, rows, y)
            }
            DenseKernel::Int8(d) => d.apply(x, rows, y),
        }
    }
}

/// Layer normalisation over each row (`weight`, `bias` `[dim]`).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl LayerNorm {
    /// Loads a layer norm over `dim` features.
    pub fn load(p: &Params, dim: usize) -> Result<Self> {
        Ok(Self {
            weight: p.get(names::WEIGHT, &[dim])?,
            bias: p.get(names::BIAS, &[dim])?,
        })
    }

    /// Normalises each row of `x` into `y`.
    #[inline(always)]
    pub fn apply(&self, x: &[f32], y: &mut Vec<f32>) {
        kernels::layer_norm_rows(&self.weight, &self.bias, LAYER_NORM_EPS as f32, x, y);
    }
}

/// Buffers reused across calls of the layers (one per model instance).
#[derive(Debug, Default, Clone)]
pub struct Scratch {
    normed: Vec<f32>,
    qkv: Vec<f32>,
    attended: Vec<f32>,
    projected: Vec<f32>,
    hidden: Vec<f32>,
    attention: AttentionScratch,
}

/// Multi-head self-attention within consecutive sequences of rows (`attn.qkv` `[3E, D]`,
/// `attn.out` `[D, E]`, `E` = heads × head width: `D` but for a pruned layer).
#[derive(Debug, Clone)]
pub struct MultiHeadAttention {
    qkv: Dense,
    out: Dense,
    heads: usize,
}

impl MultiHeadAttention {
    /// Loads attention of `heads` heads, each `head_dim` wide, over `dim` features.
    pub fn load(p: &Params, dim: usize, heads: usize, head_dim: usize) -> Result<Self> {
        let inner = heads * head_dim;
        Ok(Self {
            qkv: Dense::load(&p.pp(transformer::QKV), dim, 3 * inner)?,
            out: Dense::load(&p.pp(transformer::OUT), inner, dim)?,
            heads,
        })
    }

    /// Attention of `x` (sequences of `len` rows) into `y`; with `keep` (one flag per row of
    /// `x`), each sequence attends only to its kept rows. `qkv`, `attended` and `scratch` are
    /// buffers.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        x: &[f32],
        len: usize,
        keep: Option<&[bool]>,
        qkv: &mut Vec<f32>,
        attended: &mut Vec<f32>,
        scratch: &mut AttentionScratch,
        y: &mut Vec<f32>,
    ) {
        let (d, inner) = (self.out.out_dim(), self.out.in_dim());
        let rows = x.len() / d;
        self.qkv.apply(x, rows, qkv);
        attended.resize(rows * inner, 0.0);
        for (n, (qkv, attended)) in qkv
            .chunks_exact(len * 3 * inner)
            .zip(attended.chunks_exact_mut(len * inner))
            .enumerate()
        {
            match keep {
                None => kernels::attention(qkv, len, inner, self.heads, scratch, attended),
                Some(keep) => kernels::attention_masked(
                    qkv,
                    len,
                    inner,
                    self.heads,
                    &keep[n * len..(n + 1) * len],
                    scratch,
                    attended,
                ),
            }
        }
        self.out.apply(attended, rows, y);
    }
}

/// The GELU feed-forward block (`ffn_in` `[F, D]`, `ffn_out` `[D, F]`).
#[derive(Debug, Clone)]
pub struct FeedForward {
    expand: Dense,
    contract: Dense,
}

impl FeedForward {
    /// Loads a block of `dim` features and hidden width `hidden`.
    pub fn load(p: &Params, dim: usize, hidden: usize) -> Result<Self> {
        Ok(Self {
            expand: Dense::load(&p.pp(transformer::FFN_IN), dim, hidden)?,
            contract: Dense::load(&p.pp(transformer::FFN_OUT), hidden, dim)?,
        })
    }

    /// The block applied to each row of `x` into `y`; `hidden` is a buffer.
    #[inline(always)]
    fn apply(&self, x: &[f32], hidden: &mut Vec<f32>, y: &mut Vec<f32>) {
        let rows = x.len() / self.contract.out_dim();
        self.expand.apply(x, rows, hidden);
        hidden.iter_mut().for_each(|v| *v = kernels::gelu(*v));
        self.contract.apply(hidden, rows, y);
    }
}

/// A pre-norm transformer encoder layer: `x + attn(ln(x))`, then `x + ffn(ln(x))`.
#[derive(Debug, Clone)]
pub struct TransformerLayer {
    norm1: LayerNorm,
    attention: MultiHeadAttention,
    norm2: LayerNorm,
    ffn: FeedForward,
}

impl TransformerLayer {
    /// Loads a layer of `dim` features, `heads` heads and a feed-forward width `ffn_dim`.
    pub fn load(p: &Params, dim: usize, heads: usize, ffn_dim: usize) -> Result<Self> {
        let widths = LayerWidths {
            heads,
            ffn: ffn_dim,
        };
        Self::load_widths(p, dim, dim / heads.max(1), widths)
    }

    /// Loads the layer at `p` with the widths `config` gives it (pruned or not).
    pub fn configured(p: &Params, config: &DmftConfig) -> Result<Self> {
        let widths = config.layer_widths(p.prefix());
        Self::load_widths(p, config.dim, config.head_dim(), widths)
    }

    /// Loads a layer of `dim` features whose heads are `head_dim` wide.
    pub fn load_widths(
        p: &Params,
        dim: usize,
        head_dim: usize,
        widths: LayerWidths,
    ) -> Result<Self> {
        let attention = p.pp(transformer::ATTENTION);
        Ok(Self {
            norm1: LayerNorm::load(&p.pp(transformer::NORM1), dim)?,
            attention: MultiHeadAttention::load(&attention, dim, widths.heads, head_dim)?,
            norm2: LayerNorm::load(&p.pp(transformer::NORM2), dim)?,
            ffn: FeedForward::load(p, dim, widths.ffn)?,
        })
    }

    /// Applies the layer in place to `x`: consecutive sequences of `len` rows (attention stays
    /// within each sequence; the row-wise parts run on all rows at once).
    pub fn apply(&self, x: &mut [f32], len: usize, s: &mut Scratch) {
        self.apply_with_mask(x, len, None, s);
    }

    /// [`TransformerLayer::apply`] with a key mask: `keep` has one flag per row of `x`, and
    /// each sequence attends only to its kept rows (masked rows are still computed as queries).
    /// Masked keys get weight exactly 0, the same function as leaving them out.
    pub fn apply_masked(&self, x: &mut [f32], len: usize, keep: &[bool], s: &mut Scratch) {
        assert_eq!(
            keep.len() * self.norm1.weight.len(),
            x.len(),
            "apply_masked: one flag per row"
        );
        self.apply_with_mask(x, len, Some(keep), s);
    }

    fn apply_with_mask(&self, x: &mut [f32], len: usize, keep: Option<&[bool]>, s: &mut Scratch) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: the CPU supports the features the copy is compiled for.
            unsafe { self.apply_avx2_fma(x, len, keep, s) };
            return;
        }
        self.apply_body(x, len, keep, s);
    }

    /// [`TransformerLayer::apply`] compiled for AVX2 + FMA (element-wise loops eight wide).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn apply_avx2_fma(
        &self,
        x: &mut [f32],
        len: usize,
        keep: Option<&[bool]>,
        s: &mut Scratch,
    ) {
        self.apply_body(x, len, keep, s);
    }

    #[inline(always)]
    fn apply_body(&self, x: &mut [f32], len: usize, keep: Option<&[bool]>, s: &mut Scratch) {
        self.norm1.apply(x, &mut s.normed);
        self.attention.apply(
            &s.normed,
            len,
            keep,
            &mut s.qkv,
            &mut s.attended,
            &mut s.attention,
            &mut s.projected,
        );
        x.iter_mut().zip(&s.projected).for_each(|(a, b)| *a += b);
        self.norm2.apply(x, &mut s.normed);
        self.ffn.apply(&s.normed, &mut s.hidden, &mut s.projected);
        x.iter_mut().zip(&s.projected).for_each(|(a, b)| *a += b);
    }
}

/// Attention pooling: a learned query (`query` `[D, 1]`) scores each row; the output is the
/// softmax-weighted sum of the rows.
#[derive(Debug, Clone)]
pub struct AttentionPool {
    query: Vec<f32>,
}

impl AttentionPool {
    /// Loads a pool over `dim` features.
    pub fn load(p: &Params, dim: usize) -> Result<Self> {
        Ok(Self {
            query: p.get(names::QUERY, &[dim, 1])?,
        })
    }

    /// Pools the first `len` rows of `x` into `out` (`D`); `scores` is a buffer.
    pub fn apply(&self, x: &[f32], len: usize, scores: &mut Vec<f32>, out: &mut [f32]) {
        kernels::attention_pool(&self.query, x, len, scores, out);
    }
}

/// One [`Dense`] to `dim` per channel group, `name(g)` under `p`, whose input width is
/// `input_len(group length)` (the tokenisers' projections).
fn group_projections(
    p: &Params,
    name: impl Fn(usize) -> String,
    groups: &[Vec<usize>],
    input_len: impl Fn(usize) -> usize,
    dim: usize,
) -> Result<Vec<Dense>> {
    groups
        .iter()
        .enumerate()
        .map(|(g, group)| Dense::load(&p.pp(name(g)), input_len(group.len()), dim))
        .collect()
}

/// Tokens from temporal patches: a window `T × C` cut into `T / P` patches; per channel group,
/// each patch's values (plus, with `window_detail`, the same values standardised per window
/// and channel, and with `patch_stats` each channel's log standard deviation in the patch)
/// projected to `D` by the group's own [`Dense`].
#[derive(Debug, Clone)]
pub struct PatchTokenizer {
    patch_len: usize,
    window_detail: bool,
    patch_stats: bool,
    groups: Vec<Vec<usize>>,
    projections: Vec<Dense>,
}

impl PatchTokenizer {
    /// Loads one projection per group, `name(g)` under `p`, each to `dim`.
    pub fn load(
        p: &Params,
        name: impl Fn(usize) -> String,
        groups: &[Vec<usize>],
        options: PatchOptions,
        dim: usize,
    ) -> Result<Self> {
        Ok(Self {
            patch_len: options.patch_len,
            window_detail: options.window_detail,
            patch_stats: options.patch_stats,
            projections: group_projections(p, name, groups, |g| options.input_len(g), dim)?,
            groups: groups.to_vec(),
        })
    }

    /// The per-window input the projections share: the window standardised per channel with
    /// `window_detail`, else empty.
    pub fn window_input(&self, x: &[f32], channels: usize) -> Vec<f32> {
        if self.window_detail {
            standardise_window(x, channels)
        } else {
            Vec::new()
        }
    }

    /// Group `g`'s patch tokens of window `x` (`T × C`; `detail` from
    /// [`PatchTokenizer::window_input`]): `T / P` rows of `D` into `out`; `patches` is a
    /// buffer.
    pub fn apply_group(
        &self,
        g: usize,
        x: &[f32],
        channels: usize,
        detail: &[f32],
        patches: &mut Vec<f32>,
        out: &mut Vec<f32>,
    ) {
        let (p, c) = (self.patch_len, channels);
        let group = &self.groups[g];
        let steps = x.len() / (p * c);
        patches.clear();
        for s in 0..steps {
            let patch = &x[s * p * c..(s + 1) * p * c];
            for row in patch.chunks_exact(c) {
                patches.extend(group.iter().map(|&ch| row[ch]));
            }
            if self.window_detail {
                for row in detail[s * p * c..(s + 1) * p * c].chunks_exact(c) {
                    patches.extend(group.iter().map(|&ch| row[ch]));
                }
            }
            if self.patch_stats {
                patches.extend(
                    group
                        .iter()
                        .map(|&ch| patch_log_std(patch.chunks_exact(c).map(move |row| row[ch]))),
                );
            }
        }
        self.projections[g].apply(patches, steps, out);
    }
}

/// One token per channel group from the whole window's spectrum: each channel's log band
/// powers (see [`crate::spectrum`]), the group's concatenated, projected to `D`.
#[derive(Debug, Clone)]
pub struct SpectralTokenizer {
    tables: SpectrumTables,
    dft: Dense,
    groups: Vec<Vec<usize>>,
    projections: Vec<Dense>,
}

impl SpectralTokenizer {
    /// Loads one projection per group, `name(g)` under `p`, for windows of `window_len`.
    pub fn load(
        p: &Params,
        name: impl Fn(usize) -> String,
        groups: &[Vec<usize>],
        window_len: usize,
        dim: usize,
    ) -> Result<Self> {
        let tables = SpectrumTables::new(window_len);
        let width = 2 * tables.bins();
        let bands = tables.bands();
        Ok(Self {
            dft: Dense::fixed(tables.dft_matrix().to_vec(), width),
            projections: group_projections(p, name, groups, |g| g * bands, dim)?,
            tables,
            groups: groups.to_vec(),
        })
    }

    /// The spectral tokens of window `x` (`T × C`): one row of `D` per group, appended to
    /// `out`.
    pub fn apply(&self, x: &[f32], channels: usize, out: &mut Vec<f32>) {
        let t = x.len() / channels;
        let mut by_channel = vec![0f32; x.len()];
        for (i, sample) in x.chunks_exact(channels).enumerate() {
            for (c, v) in sample.iter().enumerate() {
                by_channel[c * t + i] = *v;
            }
        }
        let mut dft = Vec::new();
        self.dft.apply(&by_channel, channels, &mut dft);
        let row_len = dft.len() / channels;
        let mut power = Vec::new();
        let mut row = Vec::new();
        for (group, projection) in self.groups.iter().zip(&self.projections) {
            power.clear();
            for &c in group {
                let dft_row = &dft[c * row_len..(c + 1) * row_len];
                self.tables.log_band_power_from_dft(dft_row, &mut power);
            }
            projection.apply(&power, 1, &mut row);
            out.extend_from_slice(&row);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;
    use crate::weights::{WeightTensor, Weights};

    /// Weights of deterministic pseudo-random values for the given (name, shape) pairs.
    fn weights(specs: &[(&str, Vec<usize>)]) -> Weights {
        let mut seed = 0.1f32;
        let tensors: HashMap<String, WeightTensor> = specs
            .iter()
            .map(|(name, shape)| {
                let values = (0..shape.iter().product::<usize>())
                    .map(|_| {
                        seed += 0.37;
                        0.3 * seed.sin()
                    })
                    .collect();
                (
                    name.to_string(),
                    WeightTensor {
                        shape: shape.clone(),
                        values,
                    },
                )
            })
            .collect();
        Weights::new(Path::new("<test>"), tensors).unwrap()
    }

    fn transformer_weights(d: usize, f: usize) -> Weights {
        weights(&[
            ("norm1.weight", vec![d]),
            ("norm1.bias", vec![d]),
            ("attn.qkv.weight", vec![3 * d, d]),
            ("attn.qkv.bias", vec![3 * d]),
            ("attn.out.weight", vec![d, d]),
            ("attn.out.bias", vec![d]),
            ("norm2.weight", vec![d]),
            ("norm2.bias", vec![d]),
            ("ffn_in.weight", vec![f, d]),
            ("ffn_in.bias", vec![f]),
            ("ffn_out.weight", vec![d, f]),
            ("ffn_out.bias", vec![d]),
        ])
    }

    /// A key-masked layer gives the kept rows what the layer gives the kept rows alone, and
    /// a mask keeping everything is the unmasked layer.
    #[test]
    fn a_masked_transformer_layer_equals_the_layer_on_the_kept_rows() {
        let (d, f, len) = (8, 16, 5);
        let w = transformer_weights(d, f);
        let layer = TransformerLayer::load(&w.root(), d, 2, f).unwrap();
        w.finish().unwrap();
        // Two sequences of five rows; the first keeps rows 0, 2, 3, the second all but 4.
        let x: Vec<f32> = (0..2 * len * d).map(|i| (i as f32 * 0.41).cos()).collect();
        let keep = [
            true, false, true, true, false, true, true, true, true, false,
        ];
        let mut s = Scratch::default();
        let mut masked = x.clone();
        layer.apply_masked(&mut masked, len, &keep, &mut s);
        for (n, kept) in [vec![0, 2, 3], vec![5, 6, 7, 8]].iter().enumerate() {
            let mut alone: Vec<f32> = kept
                .iter()
                .flat_map(|&r| x[r * d..(r + 1) * d].iter().copied())
                .collect();
            layer.apply(&mut alone, kept.len(), &mut s);
            for (k, &r) in kept.iter().enumerate() {
                for c in 0..d {
                    let (a, b) = (masked[r * d + c], alone[k * d + c]);
                    assert!((a - b).abs() < 1e-5, "sequence {n} row {r}: {a} vs {b}");
                }
            }
        }
        let (mut all, mut plain) = (x.clone(), x);
        layer.apply_masked(&mut all, len, &[true; 10], &mut s);
        layer.apply(&mut plain, len, &mut s);
        assert!(all.iter().zip(&plain).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn loading_names_the_tensor_whose_shape_is_wrong() {
        let w = transformer_weights(8, 16);
        let err = TransformerLayer::load(&w.root(), 8, 2, 32)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ffn_in.weight") && err.contains("[32, 8]"),
            "{err}"
        );
    }
}
