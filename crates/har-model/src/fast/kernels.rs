//! Numeric kernels of the plain-Rust forward pass ([`super::FastDmft`]): dense layers (AVX2 +
//! FMA when the CPU has them, portable loops otherwise), layer norm, fast `exp`/`tanh`, GELU,
//! multi-head attention, attention pooling and the pre-norm transformer layer.

use std::collections::HashMap;

use candle_core::Tensor;

use crate::error::{ModelError, Result};
use crate::layers::LayerNorm;

pub(super) fn tensor(tensors: &HashMap<String, Tensor>, name: &str) -> Result<Vec<f32>> {
    let t = tensors
        .get(name)
        .ok_or_else(|| ModelError::Invalid(format!("fast model: tensor `{name}` is missing")))?;
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// `y = x · Wᵀ + b` with `W` stored transposed.
#[derive(Debug, Clone)]
pub(super) struct Dense {
    weight_t: Vec<f32>,
    bias: Vec<f32>,
    out_dim: usize,
}

impl Dense {
    /// A bias-free layer from its weight already transposed to `[in, out]`.
    pub(super) fn from_transposed(weight_t: Vec<f32>, out_dim: usize) -> Self {
        Self {
            weight_t,
            bias: vec![0.0; out_dim],
            out_dim,
        }
    }

    pub(super) fn load(
        tensors: &HashMap<String, Tensor>,
        prefix: &str,
        with_bias: bool,
    ) -> Result<Self> {
        let w = tensors.get(&format!("{prefix}.weight")).ok_or_else(|| {
            ModelError::Invalid(format!("fast model: tensor `{prefix}.weight` is missing"))
        })?;
        let (out_dim, in_dim) = w.dims2()?;
        let weight_t = w.t()?.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let bias = if with_bias {
            tensor(tensors, &format!("{prefix}.bias"))?
        } else {
            vec![0.0; out_dim]
        };
        debug_assert_eq!(weight_t.len(), in_dim * out_dim);
        Ok(Self {
            weight_t,
            bias,
            out_dim,
        })
    }

    /// Applies to each row of `x` (`rows × in`), writing `rows × out` into `y`.
    pub(super) fn apply(&self, x: &[f32], rows: usize, y: &mut Vec<f32>) {
        // Every output is written by the kernels, so only a length change needs filling.
        y.resize(rows * self.out_dim, 0.0);
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { dense_avx2_fma(&self.weight_t, &self.bias, x, rows, y) };
            return;
        }
        dense_kernel(&self.weight_t, &self.bias, x, rows, y);
    }
}

/// True when the CPU has AVX2 and FMA (std caches the detection).
#[cfg(target_arch = "x86_64")]
pub(super) fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// `y = x · Wᵀ + b` row by row, as axpy updates over contiguous rows of `Wᵀ` (the portable
/// path; x86-64 CPUs with AVX2 + FMA use [`dense_avx2_fma`]).
pub(super) fn dense_kernel(weight_t: &[f32], bias: &[f32], x: &[f32], rows: usize, y: &mut [f32]) {
    let out_dim = bias.len();
    let in_dim = x.len() / rows.max(1);
    for (xr, out) in x.chunks_exact(in_dim).zip(y.chunks_exact_mut(out_dim)) {
        out.copy_from_slice(bias);
        for (&xi, w) in xr.iter().zip(weight_t.chunks_exact(out_dim)) {
            axpy(out, w, xi);
        }
    }
}

/// `out += a · w`.
pub(super) fn axpy(out: &mut [f32], w: &[f32], a: f32) {
    for (o, &w) in out.iter_mut().zip(w) {
        *o += a * w;
    }
}

/// The dense kernel with AVX2 + FMA: blocks of 32 outputs stay in four registers while the
/// inputs stream past; leftovers (fewer than 8 outputs) are scalar.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dense_avx2_fma(
    weight_t: &[f32],
    bias: &[f32],
    x: &[f32],
    rows: usize,
    y: &mut [f32],
) {
    use std::arch::x86_64::*;
    let out_dim = bias.len();
    let in_dim = x.len() / rows.max(1);
    assert!(weight_t.len() >= in_dim * out_dim && y.len() >= rows * out_dim);
    let vector_end = out_dim / 8 * 8;
    for r in 0..rows {
        let xr = &x[r * in_dim..(r + 1) * in_dim];
        let out = y.as_mut_ptr().add(r * out_dim);
        let mut o = 0;
        while o + 32 <= vector_end {
            let mut acc = [
                _mm256_loadu_ps(bias.as_ptr().add(o)),
                _mm256_loadu_ps(bias.as_ptr().add(o + 8)),
                _mm256_loadu_ps(bias.as_ptr().add(o + 16)),
                _mm256_loadu_ps(bias.as_ptr().add(o + 24)),
            ];
            for (i, &xi) in xr.iter().enumerate() {
                let a = _mm256_set1_ps(xi);
                let w = weight_t.as_ptr().add(i * out_dim + o);
                for (k, slot) in acc.iter_mut().enumerate() {
                    *slot = _mm256_fmadd_ps(a, _mm256_loadu_ps(w.add(8 * k)), *slot);
                }
            }
            for (k, slot) in acc.iter().enumerate() {
                _mm256_storeu_ps(out.add(o + 8 * k), *slot);
            }
            o += 32;
        }
        while o + 8 <= vector_end {
            let mut acc = _mm256_loadu_ps(bias.as_ptr().add(o));
            for (i, &xi) in xr.iter().enumerate() {
                acc = _mm256_fmadd_ps(
                    _mm256_set1_ps(xi),
                    _mm256_loadu_ps(weight_t.as_ptr().add(i * out_dim + o)),
                    acc,
                );
            }
            _mm256_storeu_ps(out.add(o), acc);
            o += 8;
        }
        for oo in vector_end..out_dim {
            let mut sum = bias[oo];
            for (i, &xi) in xr.iter().enumerate() {
                sum = xi.mul_add(weight_t[i * out_dim + oo], sum);
            }
            *out.add(oo) = sum;
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Norm {
    pub(super) fn load(tensors: &HashMap<String, Tensor>, prefix: &str) -> Result<Self> {
        Ok(Self {
            weight: tensor(tensors, &format!("{prefix}.weight"))?,
            bias: tensor(tensors, &format!("{prefix}.bias"))?,
        })
    }

    pub(super) fn apply(&self, x: &[f32], y: &mut Vec<f32>) {
        let d = self.weight.len();
        y.clear();
        for row in x.chunks_exact(d) {
            // One pass, E[x²] − mean², as candle's layer-norm kernel.
            let mean = row.iter().sum::<f32>() / d as f32;
            let var = (dot(row, row) / d as f32 - mean * mean).max(0.0);
            let inv = 1.0 / (var + LayerNorm::EPS as f32).sqrt();
            y.extend(
                row.iter()
                    .zip(&self.weight)
                    .zip(&self.bias)
                    .map(|((v, w), b)| (v - mean) * inv * w + b),
            );
        }
    }
}

/// `exp` for softmax arguments (≤ 0 after the max is subtracted; clamped to [−87, 88]):
/// Cephes' single-precision polynomial on `x − n·ln 2`, scaled by `2ⁿ` through the exponent
/// bits. Within 2 ulp of the library `exp` and branch-free, so softmax loops vectorise.
#[inline(always)]
pub(super) fn exp_fast(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

pub(super) fn softmax_in_place(xs: &mut [f32]) {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for x in xs.iter_mut() {
        *x = exp_fast(*x - max);
    }
    let inv = 1.0 / xs.iter().sum::<f32>();
    for x in xs.iter_mut() {
        *x *= inv;
    }
}

/// `tanh` as a rational function (the approximation Eigen uses for f32): within a few ulp of
/// the library `tanh` and several times faster, which matters because the feed-forward blocks
/// call it for every hidden unit.
pub(super) fn tanh_fast(x: f32) -> f32 {
    const ALPHA: [f32; 7] = [
        4.893_524_6e-3,
        6.372_619_3e-4,
        1.485_722_4e-5,
        5.122_297e-8,
        -8.604_672e-11,
        2.000_188e-13,
        -2.760_768_5e-16,
    ];
    const BETA: [f32; 4] = [4.893_525e-3, 2.268_434_6e-3, 1.185_347_1e-4, 1.198_258_4e-6];
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let mut p = ALPHA[6];
    for a in ALPHA[..6].iter().rev() {
        p = p * x2 + a;
    }
    let q = ((BETA[3] * x2 + BETA[2]) * x2 + BETA[1]) * x2 + BETA[0];
    x * p / q
}

pub(super) fn gelu(x: f32) -> f32 {
    // The tanh approximation, as candle's `Tensor::gelu`.
    0.5 * x * (1.0 + tanh_fast(0.797_884_6 * (x + 0.044_715 * x * x * x)))
}

/// Dot product with eight independent accumulators, so the compiler can vectorise it.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Scratch buffers reused across calls.
#[derive(Debug, Default, Clone)]
pub(super) struct Scratch {
    normed: Vec<f32>,
    qkv: Vec<f32>,
    attended: Vec<f32>,
    projected: Vec<f32>,
    hidden: Vec<f32>,
    scores: Vec<f32>,
}

#[derive(Debug, Clone)]
pub(super) struct Layer {
    norm1: Norm,
    qkv: Dense,
    out: Dense,
    norm2: Norm,
    ffn_in: Dense,
    ffn_out: Dense,
    heads: usize,
}

impl Layer {
    pub(super) fn load(
        tensors: &HashMap<String, Tensor>,
        prefix: &str,
        heads: usize,
    ) -> Result<Self> {
        Ok(Self {
            norm1: Norm::load(tensors, &format!("{prefix}.norm1"))?,
            qkv: Dense::load(tensors, &format!("{prefix}.attn.qkv"), true)?,
            out: Dense::load(tensors, &format!("{prefix}.attn.out"), true)?,
            norm2: Norm::load(tensors, &format!("{prefix}.norm2"))?,
            ffn_in: Dense::load(tensors, &format!("{prefix}.ffn_in"), true)?,
            ffn_out: Dense::load(tensors, &format!("{prefix}.ffn_out"), true)?,
            heads,
        })
    }

    /// Applies the pre-norm layer in place to a sequence `x` of `len × d`.
    /// Applies the pre-norm layer in place to `x`: consecutive sequences of `len` rows of `d`
    /// (attention stays within each sequence; the row-wise parts run on all rows at once).
    pub(super) fn apply(&self, x: &mut [f32], len: usize, s: &mut Scratch) {
        let d = self.norm1.weight.len();
        let rows = x.len() / d;
        self.norm1.apply(x, &mut s.normed);
        self.qkv.apply(&s.normed, rows, &mut s.qkv);
        s.attended.clear();
        s.attended.resize(rows * d, 0.0);
        s.scores.resize(len, 0.0);
        for (qkv, attended) in s
            .qkv
            .chunks_exact(len * 3 * d)
            .zip(s.attended.chunks_exact_mut(len * d))
        {
            attention(qkv, len, d, self.heads, &mut s.scores, attended);
        }
        self.out.apply(&s.attended, rows, &mut s.projected);
        x.iter_mut().zip(&s.projected).for_each(|(a, b)| *a += b);
        self.norm2.apply(x, &mut s.normed);
        self.ffn_in.apply(&s.normed, rows, &mut s.hidden);
        s.hidden.iter_mut().for_each(|v| *v = gelu(*v));
        self.ffn_out.apply(&s.hidden, rows, &mut s.projected);
        x.iter_mut().zip(&s.projected).for_each(|(a, b)| *a += b);
    }
}

/// Multi-head attention of one sequence: `qkv` holds `len` rows of `[q | k | v]` (each `d`
/// wide, heads contiguous inside); the heads' outputs go to `attended` (`len × d`, zeroed).
pub(super) fn attention(
    qkv: &[f32],
    len: usize,
    d: usize,
    heads: usize,
    scores: &mut [f32],
    attended: &mut [f32],
) {
    let hd = d / heads;
    #[cfg(target_arch = "x86_64")]
    if hd % 8 == 0 && has_avx2_fma() {
        // SAFETY: the CPU supports the features; slices are sized as asserted inside.
        unsafe { attention_avx2_fma(qkv, len, d, heads, scores, attended) };
        return;
    }
    attention_portable(qkv, len, d, heads, scores, attended);
}

/// [`attention`] in portable Rust.
pub(super) fn attention_portable(
    qkv: &[f32],
    len: usize,
    d: usize,
    heads: usize,
    scores: &mut [f32],
    attended: &mut [f32],
) {
    let hd = d / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    for h in 0..heads {
        for i in 0..len {
            let q = &qkv[i * 3 * d + h * hd..i * 3 * d + (h + 1) * hd];
            for j in 0..len {
                scores[j] = dot(
                    q,
                    &qkv[j * 3 * d + d + h * hd..j * 3 * d + d + (h + 1) * hd],
                ) * scale;
            }
            softmax_in_place(&mut scores[..len]);
            let out = &mut attended[i * d + h * hd..i * d + (h + 1) * hd];
            for j in 0..len {
                axpy(
                    out,
                    &qkv[j * 3 * d + 2 * d + h * hd..j * 3 * d + 2 * d + (h + 1) * hd],
                    scores[j],
                );
            }
        }
    }
}

/// [`attention`] with AVX2 + FMA, for head widths that are multiples of 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn attention_avx2_fma(
    qkv: &[f32],
    len: usize,
    d: usize,
    heads: usize,
    scores: &mut [f32],
    attended: &mut [f32],
) {
    use std::arch::x86_64::*;
    let hd = d / heads;
    assert!(
        qkv.len() >= len * 3 * d && attended.len() >= len * d && scores.len() >= len && hd % 8 == 0
    );
    let scale = 1.0 / (hd as f32).sqrt();
    let base = qkv.as_ptr();
    for h in 0..heads {
        for i in 0..len {
            let q = base.add(i * 3 * d + h * hd);
            for (j, score) in scores[..len].iter_mut().enumerate() {
                let k = base.add(j * 3 * d + d + h * hd);
                let mut acc = _mm256_setzero_ps();
                for c in (0..hd).step_by(8) {
                    acc =
                        _mm256_fmadd_ps(_mm256_loadu_ps(q.add(c)), _mm256_loadu_ps(k.add(c)), acc);
                }
                let pair = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
                let pair = _mm_add_ps(pair, _mm_movehl_ps(pair, pair));
                let single = _mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1));
                *score = _mm_cvtss_f32(single) * scale;
            }
            softmax_in_place(&mut scores[..len]);
            let out = attended.as_mut_ptr().add(i * d + h * hd);
            for c in (0..hd).step_by(8) {
                let mut acc = _mm256_setzero_ps();
                for (j, &w) in scores[..len].iter().enumerate() {
                    acc = _mm256_fmadd_ps(
                        _mm256_set1_ps(w),
                        _mm256_loadu_ps(base.add(j * 3 * d + 2 * d + h * hd + c)),
                        acc,
                    );
                }
                _mm256_storeu_ps(out.add(c), acc);
            }
        }
    }
}

/// Transposes `[a, b, d]` tokens into `[b, a, d]`.
pub(super) fn transpose_tokens(from: &[f32], a: usize, b: usize, d: usize, to: &mut [f32]) {
    for i in 0..a {
        for j in 0..b {
            to[(j * a + i) * d..(j * a + i + 1) * d]
                .copy_from_slice(&from[(i * b + j) * d..(i * b + j + 1) * d]);
        }
    }
}

/// Attention pooling of `len` rows of `x` into `out` (`d`).
pub(super) fn attention_pool(
    query: &[f32],
    x: &[f32],
    len: usize,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let d = query.len();
    let scale = 1.0 / (d as f32).sqrt();
    scores.clear();
    scores.extend(
        x.chunks_exact(d)
            .take(len)
            .map(|row| dot(row, query) * scale),
    );
    softmax_in_place(scores);
    out.iter_mut().for_each(|o| *o = 0.0);
    for (row, &w) in x.chunks_exact(d).zip(scores.iter()) {
        axpy(out, row, w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portable kernels and the AVX2 ones compute the same thing (the model tests only
    /// reach the AVX2 path on machines that have it).
    #[test]
    fn portable_and_vector_kernels_agree() {
        let (rows, in_dim, out_dim) = (3, 10, 45);
        let w: Vec<f32> = (0..in_dim * out_dim)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1)
            .collect();
        let b: Vec<f32> = (0..out_dim).map(|i| i as f32 * 0.01).collect();
        let x: Vec<f32> = (0..rows * in_dim)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let mut portable = vec![0.0; rows * out_dim];
        dense_kernel(&w, &b, &x, rows, &mut portable);
        let expected: Vec<f32> = (0..rows)
            .flat_map(|r| (0..out_dim).map(move |o| (r, o)))
            .map(|(r, o)| {
                b[o] + (0..in_dim)
                    .map(|i| x[r * in_dim + i] * w[i * out_dim + o])
                    .sum::<f32>()
            })
            .collect();
        assert!(portable
            .iter()
            .zip(&expected)
            .all(|(a, e)| (a - e).abs() < 1e-5));

        let (len, d, heads) = (5, 16, 2);
        let qkv: Vec<f32> = (0..len * 3 * d).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut scores = vec![0.0; len];
        let mut generic = vec![0.0; len * d];
        attention_portable(&qkv, len, d, heads, &mut scores, &mut generic);
        let mut dispatched = vec![0.0; len * d];
        attention(&qkv, len, d, heads, &mut scores, &mut dispatched);
        assert!(generic
            .iter()
            .zip(&dispatched)
            .all(|(a, e)| (a - e).abs() < 1e-5));
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            let mut vector = vec![0.0; rows * out_dim];
            unsafe { dense_avx2_fma(&w, &b, &x, rows, &mut vector) };
            assert!(vector
                .iter()
                .zip(&portable)
                .all(|(a, e)| (a - e).abs() < 1e-5));
        }
    }

    #[test]
    fn fast_tanh_exp_and_dot_match_the_library() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.01;
            assert!((tanh_fast(x) - x.tanh()).abs() < 2e-6, "tanh({x})");
        }
        assert!((tanh_fast(50.0) - 1.0).abs() < 1e-6 && (tanh_fast(-50.0) + 1.0).abs() < 1e-6);
        for i in -8700..=0 {
            let x = i as f32 * 0.01;
            assert!(
                (exp_fast(x) - x.exp()).abs() <= 4.0 * f32::EPSILON * x.exp(),
                "exp({x})"
            );
        }
        assert!(exp_fast(-1e9) < 1e-37);
        let a: Vec<f32> = (0..21).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..21).map(|i| 1.0 - i as f32 * 0.1).collect();
        let expected: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - expected).abs() < 1e-4);
    }
}
