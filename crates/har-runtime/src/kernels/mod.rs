//! Numeric kernels of the runtime, kept apart from the layers that use them: the matrix
//! product ([`matmul`]), the int8 dense product ([`int8`]), layer norm over rows, fast `exp`/`tanh`, GELU, multi-head attention of
//! one sequence and attention pooling. The layers in [`crate::layers`] compile their
//! element-wise loops a second time for AVX2 + FMA, so these are `#[inline(always)]`.

pub(crate) mod int8;
pub(crate) mod matmul;

use matmul::{Operand, Rows};

/// Layer norm of each row of `x` (`d = weight.len()` wide) into `y`, with learned `weight`
/// and `bias`; one pass, `E[x²] − mean²`, as candle's layer-norm kernel.
#[inline(always)]
pub(crate) fn layer_norm_rows(weight: &[f32], bias: &[f32], eps: f32, x: &[f32], y: &mut Vec<f32>) {
    let d = weight.len();
    y.resize(x.len(), 0.0);
    for (row, out) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let mean = sum(row) / d as f32;
        let var = (dot(row, row) / d as f32 - mean * mean).max(0.0);
        let inv = 1.0 / (var + eps).sqrt();
        for (((o, v), w), b) in out.iter_mut().zip(row).zip(weight).zip(bias) {
            *o = (v - mean) * inv * w + b;
        }
    }
}

/// `exp` for softmax arguments (≤ 0 after the max is subtracted; clamped to [−87, 88]):
/// Cephes' single-precision polynomial on `x − n·ln 2`, scaled by `2ⁿ` through the exponent
/// bits. Within 2 ulp of the library `exp` and branch-free, so softmax loops vectorise.
#[inline(always)]
pub(crate) fn exp_fast(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[inline(always)]
pub(crate) fn softmax_in_place(xs: &mut [f32]) {
    let max = max(xs);
    for x in xs.iter_mut() {
        *x = exp_fast(*x - max);
    }
    let inv = 1.0 / sum(xs);
    for x in xs.iter_mut() {
        *x *= inv;
    }
}

/// `tanh` as a rational function (the approximation Eigen uses for f32): within a few ulp of
/// the library `tanh` and several times faster, which matters because the feed-forward blocks
/// call it for every hidden unit.
#[inline(always)]
pub(crate) fn tanh_fast(x: f32) -> f32 {
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

#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    // The tanh approximation, as candle's `Tensor::gelu`.
    0.5 * x * (1.0 + tanh_fast(0.797_884_6 * (x + 0.044_715 * x * x * x)))
}

/// `out += a · w`.
#[inline(always)]
pub(crate) fn axpy(out: &mut [f32], w: &[f32], a: f32) {
    for (o, &w) in out.iter_mut().zip(w) {
        *o += a * w;
    }
}

/// Maximum with eight independent lanes, so the compiler can vectorise it.
#[inline(always)]
pub(crate) fn max(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = a.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for x in chunks {
        for k in 0..8 {
            acc[k] = acc[k].max(x[k]);
        }
    }
    acc.iter().copied().fold(tail, f32::max)
}

/// Sum with eight independent accumulators, so the compiler can vectorise it.
#[inline(always)]
pub(crate) fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for x in chunks {
        for k in 0..8 {
            acc[k] += x[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Dot product with eight independent accumulators, so the compiler can vectorise it.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
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

/// The buffers of [`attention`]: one head's keys transposed and its score matrix.
#[derive(Debug, Default, Clone)]
pub(crate) struct AttentionScratch {
    keys_t: Vec<f32>,
    scores: Vec<f32>,
}

/// Multi-head attention of one sequence: `qkv` holds `len` rows of `[q | k | v]` (each `d`
/// wide, heads contiguous inside); the heads' outputs go to `attended` (`len × d`). Per head,
/// the scores `Q · Kᵀ` and the output `P · V` are two matrix products on the shared kernel
/// (keys transposed into a buffer padded to a multiple of 8 columns; queries, values and
/// outputs read and written in place through strides).
/// Sequences shorter than [`SHORT_SEQUENCE`] take [`attention_short`].
#[inline(always)]
pub(crate) fn attention(
    qkv: &[f32],
    len: usize,
    d: usize,
    heads: usize,
    s: &mut AttentionScratch,
    attended: &mut [f32],
) {
    if len < SHORT_SEQUENCE {
        attention_short(qkv, len, d, heads, &mut s.scores, attended);
        return;
    }
    let hd = d / heads;
    let padded = len.div_ceil(8) * 8;
    let scale = 1.0 / (hd as f32).sqrt();
    s.keys_t.resize(hd * padded, 0.0);
    s.scores.resize(len * padded, 0.0);
    for h in 0..heads {
        for (c, keys) in s.keys_t.chunks_exact_mut(padded).enumerate() {
            for (j, key) in keys[..len].iter_mut().enumerate() {
                *key = qkv[j * 3 * d + d + h * hd + c];
            }
            keys[len..].fill(0.0);
        }
        let keys = Operand {
            weight: &s.keys_t,
            weight_stride: padded,
            bias: None,
            in_dim: hd,
            out_dim: padded,
        };
        keys.multiply(
            Rows {
                data: &qkv[h * hd..],
                stride: 3 * d,
                rows: len,
            },
            Rows {
                data: &mut s.scores,
                stride: padded,
                rows: len,
            },
        );
        for row in s.scores.chunks_exact_mut(padded) {
            let row = &mut row[..len];
            row.iter_mut().for_each(|v| *v *= scale);
            softmax_in_place(row);
        }
        let values = Operand {
            weight: &qkv[2 * d + h * hd..],
            weight_stride: 3 * d,
            bias: None,
            in_dim: len,
            out_dim: hd,
        };
        values.multiply(
            Rows {
                data: &s.scores,
                stride: padded,
                rows: len,
            },
            Rows {
                data: &mut attended[h * hd..],
                stride: d,
                rows: len,
            },
        );
    }
}

/// Below this length (one vector of scores) [`attention`] is computed directly: padding the
/// keys and two matrix products cost more than they save (the fusion layer attends over the
/// two or three modality tokens of a step).
const SHORT_SEQUENCE: usize = 8;

/// [`attention`] of a short sequence, row by row: dot products, softmax, axpy updates.
#[inline(always)]
fn attention_short(
    qkv: &[f32],
    len: usize,
    d: usize,
    heads: usize,
    scores: &mut Vec<f32>,
    attended: &mut [f32],
) {
    let hd = d / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    scores.resize(len, 0.0);
    let part = |row: usize, part: usize, h: usize| {
        let start = row * 3 * d + part * d + h * hd;
        &qkv[start..start + hd]
    };
    for h in 0..heads {
        for i in 0..len {
            for (j, score) in scores.iter_mut().enumerate() {
                *score = dot(part(i, 0, h), part(j, 1, h)) * scale;
            }
            softmax_in_place(scores);
            let out = &mut attended[i * d + h * hd..i * d + (h + 1) * hd];
            out.fill(0.0);
            for (j, &weight) in scores.iter().enumerate() {
                axpy(out, part(j, 2, h), weight);
            }
        }
    }
}

/// [`attention`] with a key mask: row `j` of the sequence is attended to only where
/// `keep[j]`; masked keys get weight exactly 0 (the same function as attention over the kept
/// rows alone). A query with no key kept gets zeros. Row by row, like [`attention_short`].
pub(crate) fn attention_masked(
    qkv: &[f32],
    len: usize,
    d: usize,
    heads: usize,
    keep: &[bool],
    s: &mut AttentionScratch,
    attended: &mut [f32],
) {
    let hd = d / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let kept: Vec<usize> = (0..len).filter(|&j| keep[j]).collect();
    let scores = &mut s.scores;
    scores.resize(kept.len(), 0.0);
    let part = |row: usize, part: usize, h: usize| {
        let start = row * 3 * d + part * d + h * hd;
        &qkv[start..start + hd]
    };
    for h in 0..heads {
        for i in 0..len {
            let out = &mut attended[i * d + h * hd..i * d + (h + 1) * hd];
            out.fill(0.0);
            if kept.is_empty() {
                continue;
            }
            for (score, &j) in scores.iter_mut().zip(&kept) {
                *score = dot(part(i, 0, h), part(j, 1, h)) * scale;
            }
            softmax_in_place(&mut scores[..]);
            for (&weight, &j) in scores.iter().zip(&kept) {
                axpy(out, part(j, 2, h), weight);
            }
        }
    }
}

/// One query's multi-head attention over `rows` keys and values (each `rows × d`, heads
/// contiguous inside a row): per head, softmax of the scaled dot products, then the weighted
/// sum of the values into `out` (`d`). The step-by-step form of [`attention`], for models
/// that run one step at a time over a cache of the past.
pub(crate) fn attend_query(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    heads: usize,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let d = q.len();
    let hd = d / heads;
    let rows = keys.len() / d;
    let scale = 1.0 / (hd as f32).sqrt();
    scores.resize(rows, 0.0);
    out.fill(0.0);
    if rows == 0 {
        return;
    }
    for h in 0..heads {
        let head = h * hd..(h + 1) * hd;
        for (j, score) in scores.iter_mut().enumerate() {
            *score = dot(
                &q[head.clone()],
                &keys[j * d + h * hd..j * d + (h + 1) * hd],
            ) * scale;
        }
        softmax_in_place(scores);
        for (j, &weight) in scores.iter().enumerate() {
            axpy(
                &mut out[head.clone()],
                &values[j * d + h * hd..j * d + (h + 1) * hd],
                weight,
            );
        }
    }
}

/// Transposes `[a, b, d]` tokens into `[b, a, d]`.
pub(crate) fn transpose_tokens(from: &[f32], a: usize, b: usize, d: usize, to: &mut [f32]) {
    for i in 0..a {
        for j in 0..b {
            to[(j * a + i) * d..(j * a + i + 1) * d]
                .copy_from_slice(&from[(i * b + j) * d..(i * b + j + 1) * d]);
        }
    }
}

/// Attention pooling of `len` rows of `x` into `out` (`d`).
pub(crate) fn attention_pool(
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

    /// Attention through the matrix kernel equals its definition, per head:
    /// `softmax(q·kᵀ / √hd) · v`.
    #[test]
    fn attention_matches_its_definition() {
        for (len, d, heads) in [(5, 16, 2), (17, 32, 2), (2, 32, 4), (9, 24, 1)] {
            let hd = d / heads;
            let qkv: Vec<f32> = (0..len * 3 * d).map(|i| (i as f32 * 0.11).cos()).collect();
            let mut got = vec![f32::NAN; len * d];
            attention(
                &qkv,
                len,
                d,
                heads,
                &mut AttentionScratch::default(),
                &mut got,
            );
            let at = |row: usize, part: usize, h: usize, c: usize| {
                qkv[row * 3 * d + part * d + h * hd + c]
            };
            for h in 0..heads {
                for i in 0..len {
                    let scores: Vec<f32> = (0..len)
                        .map(|j| {
                            (0..hd)
                                .map(|c| at(i, 0, h, c) * at(j, 1, h, c))
                                .sum::<f32>()
                                / (hd as f32).sqrt()
                        })
                        .collect();
                    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let weights: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f32 = weights.iter().sum();
                    for c in 0..hd {
                        let want: f32 = (0..len).map(|j| weights[j] / total * at(j, 2, h, c)).sum();
                        let value = got[i * d + h * hd + c];
                        assert!(
                            (value - want).abs() < 1e-5,
                            "len {len} head {h} row {i} col {c}: {value} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// Masked attention equals attention over the kept rows alone (for those rows), and a
    /// mask keeping everything changes nothing.
    #[test]
    fn masked_attention_is_attention_over_the_kept_keys() {
        let (len, d, heads) = (6, 8, 2);
        let qkv: Vec<f32> = (0..len * 3 * d).map(|i| (i as f32 * 0.23).sin()).collect();
        let keep = [true, false, true, true, false, true];
        let mut masked = vec![f32::NAN; len * d];
        attention_masked(
            &qkv,
            len,
            d,
            heads,
            &keep,
            &mut AttentionScratch::default(),
            &mut masked,
        );
        let kept: Vec<usize> = (0..len).filter(|&j| keep[j]).collect();
        let compact: Vec<f32> = kept
            .iter()
            .flat_map(|&j| qkv[j * 3 * d..(j + 1) * 3 * d].iter().copied())
            .collect();
        let mut alone = vec![f32::NAN; kept.len() * d];
        attention(
            &compact,
            kept.len(),
            d,
            heads,
            &mut AttentionScratch::default(),
            &mut alone,
        );
        for (k, &j) in kept.iter().enumerate() {
            for c in 0..d {
                let (a, b) = (masked[j * d + c], alone[k * d + c]);
                assert!((a - b).abs() < 1e-6, "row {j} col {c}: {a} vs {b}");
            }
        }
        let mut all = vec![f32::NAN; len * d];
        attention_masked(
            &qkv,
            len,
            d,
            heads,
            &[true; 6],
            &mut AttentionScratch::default(),
            &mut all,
        );
        let mut plain = vec![f32::NAN; len * d];
        attention(
            &qkv,
            len,
            d,
            heads,
            &mut AttentionScratch::default(),
            &mut plain,
        );
        assert!(all.iter().zip(&plain).all(|(a, b)| (a - b).abs() < 1e-6));
        // Nothing kept: zeros, not NaN.
        let mut none = vec![f32::NAN; len * d];
        attention_masked(
            &qkv,
            len,
            d,
            heads,
            &[false; 6],
            &mut AttentionScratch::default(),
            &mut none,
        );
        assert!(none.iter().all(|v| *v == 0.0));
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
