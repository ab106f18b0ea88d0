//! The int8 dense kernel: weights quantised per output channel (`w ≈ s_w[o] · q_w[o, i]`),
//! the input per tensor with a calibrated scale (`x ≈ s_x · q_x[i]`, rounded to nearest
//! (ties to even), clamped to ±127), products summed in `i32`, then `y[o] = s_x · s_w[o] · Σ q_x·q_w + b[o]`.
//! A sum of at most 2¹⁶ products of magnitude ≤ 127² cannot overflow `i32`. The AVX2 path
//! and the portable one compute the same integers and the same two float operations, so
//! they agree bit for bit.
//!
//! Calibration ([`calibrate`]) records, per named dense layer, the largest input magnitude
//! the f32 forward sees on this thread while a [`Calibration`] is alive.

use std::cell::RefCell;
use std::collections::HashMap;

/// Largest quantised magnitude.
pub(crate) const QMAX: f32 = 127.0;

/// A dense layer with int8 weights, kept as 16-bit pairs of consecutive inputs per output
/// (`packed[(k · out_pad + o) · 2 + j] = w[o, 2k + j]`, zero-padded to `out_pad`, a multiple
/// of 8, and an even input count): with AVX2 one `vpmaddwd` multiplies two inputs into eight
/// outputs' `i32` sums, and each weight load serves four rows.
#[derive(Debug, Clone)]
pub(crate) struct QuantizedDense {
    packed: Vec<i16>,
    /// `input_scale · weight_scale[o]`, zero-padded to `out_pad`.
    scale: Vec<f32>,
    /// Bias, zero-padded to `out_pad`.
    bias: Vec<f32>,
    input_scale: f32,
    in_dim: usize,
    out_dim: usize,
    out_pad: usize,
    /// Reused buffer of the quantised input rows as pairs.
    pairs: RefCell<Vec<i32>>,
    /// Reused buffer of the padded output rows.
    padded: RefCell<Vec<f32>>,
}

impl QuantizedDense {
    /// A layer from its int8 weight `[out, in]`, per-output scales, input scale and bias.
    pub(crate) fn new(
        weight: Vec<i8>,
        weight_scale: Vec<f32>,
        input_scale: f32,
        bias: Vec<f32>,
        in_dim: usize,
        out_dim: usize,
    ) -> Self {
        debug_assert_eq!(weight.len(), in_dim * out_dim);
        let out_pad = out_dim.div_ceil(8) * 8;
        let k_pairs = in_dim.div_ceil(2);
        let mut packed = vec![0i16; k_pairs * out_pad * 2];
        for o in 0..out_dim {
            for i in 0..in_dim {
                packed[((i / 2) * out_pad + o) * 2 + i % 2] = i16::from(weight[o * in_dim + i]);
            }
        }
        let pad = |mut v: Vec<f32>| {
            v.resize(out_pad, 0.0);
            v
        };
        Self {
            packed,
            scale: pad(weight_scale.iter().map(|s| s * input_scale).collect()),
            bias: pad(bias),
            input_scale,
            in_dim,
            out_dim,
            out_pad,
            pairs: RefCell::new(vec![0; k_pairs]),
            padded: RefCell::new(vec![0.0; out_pad]),
        }
    }

    pub(crate) fn in_dim(&self) -> usize {
        self.in_dim
    }

    pub(crate) fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Applies to each row of `x` (`rows × in`), writing `rows × out` into `y`.
    #[inline(always)]
    pub(crate) fn apply(&self, x: &[f32], rows: usize, y: &mut Vec<f32>) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            unsafe { self.apply_avx2(x, rows, y) };
            return;
        }
        self.apply_with(x, rows, y, Self::rows_portable);
    }

    /// [`Self::apply`] compiled for AVX2 (the input rounding vectorises too).
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn apply_avx2(&self, x: &[f32], rows: usize, y: &mut Vec<f32>) {
        self.apply_with(x, rows, y, |s, p, n, out| s.rows_avx2(p, n, out));
    }

    /// Quantises every row of `x` into pairs, runs `kernel` over all rows into the padded
    /// output buffer, copies the real outputs into `y`.
    #[inline(always)]
    fn apply_with(
        &self,
        x: &[f32],
        rows: usize,
        y: &mut Vec<f32>,
        kernel: impl Fn(&Self, &[i32], usize, &mut [f32]),
    ) {
        y.resize(rows * self.out_dim, 0.0);
        let (mut pairs, mut padded) = (self.pairs.borrow_mut(), self.padded.borrow_mut());
        let k_pairs = self.in_dim.div_ceil(2);
        pairs.resize(rows * k_pairs, 0);
        padded.resize(rows * self.out_pad, 0.0);
        let inv = 1.0 / self.input_scale;
        // Ties to even: one instruction (`vroundps`), where `round` calls the C library.
        let q = |v: f32| (v * inv).round_ties_even().clamp(-QMAX, QMAX) as i16 as u16 as u32;
        for (xr, row_pairs) in x
            .chunks_exact(self.in_dim)
            .take(rows)
            .zip(pairs.chunks_exact_mut(k_pairs))
        {
            let two = xr.chunks_exact(2);
            let odd = two.remainder().first().map(|&v| q(v) as i32);
            for (pair, v) in row_pairs.iter_mut().zip(two) {
                *pair = (q(v[0]) | (q(v[1]) << 16)) as i32;
            }
            if let Some(last) = odd {
                row_pairs[self.in_dim / 2] = last;
            }
        }
        kernel(self, &pairs, rows, &mut padded);
        for (yr, pr) in y
            .chunks_exact_mut(self.out_dim)
            .zip(padded.chunks_exact(self.out_pad))
        {
            yr.copy_from_slice(&pr[..self.out_dim]);
        }
    }

    /// Every row: `out[o] = scale[o] · Σ_k pair_k · packed_k,o + bias[o]` in portable loops.
    fn rows_portable(&self, pairs: &[i32], rows: usize, out: &mut [f32]) {
        let k_pairs = self.in_dim.div_ceil(2);
        let mut acc = vec![0i32; self.out_pad];
        for r in 0..rows {
            acc.fill(0);
            for (k, &pair) in pairs[r * k_pairs..(r + 1) * k_pairs].iter().enumerate() {
                let (lo, hi) = (i32::from(pair as i16), i32::from((pair >> 16) as i16));
                let w = &self.packed[k * self.out_pad * 2..(k + 1) * self.out_pad * 2];
                for (a, w) in acc.iter_mut().zip(w.chunks_exact(2)) {
                    *a += lo * i32::from(w[0]) + hi * i32::from(w[1]);
                }
            }
            let row = &mut out[r * self.out_pad..(r + 1) * self.out_pad];
            for (((o, a), s), b) in row.iter_mut().zip(&acc).zip(&self.scale).zip(&self.bias) {
                *o = *a as f32 * s + b;
            }
        }
    }

    /// [`Self::rows_portable`] with AVX2: blocks of four rows share each weight load, outputs
    /// in blocks of 16 then 8.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn rows_avx2(&self, pairs: &[i32], rows: usize, out: &mut [f32]) {
        let mut r = 0;
        while r + 4 <= rows {
            self.row_block_avx2::<4>(pairs, out, r);
            r += 4;
        }
        match rows - r {
            3 => self.row_block_avx2::<3>(pairs, out, r),
            2 => self.row_block_avx2::<2>(pairs, out, r),
            1 => self.row_block_avx2::<1>(pairs, out, r),
            _ => {}
        }
    }

    /// Rows `r..r + R`, every output.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn row_block_avx2<const R: usize>(&self, pairs: &[i32], out: &mut [f32], r: usize) {
        let mut o = 0;
        while o + 16 <= self.out_pad {
            self.block_avx2::<R, 2>(pairs, out, r, o);
            o += 16;
        }
        if o < self.out_pad {
            self.block_avx2::<R, 1>(pairs, out, r, o);
        }
    }

    /// Outputs `o..o + 8·V` of rows `r..r + R`, in `R × V` accumulators.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn block_avx2<const R: usize, const V: usize>(
        &self,
        pairs: &[i32],
        out: &mut [f32],
        r: usize,
        o: usize,
    ) {
        use std::arch::x86_64::*;
        let k_pairs = self.in_dim.div_ceil(2);
        let mut acc = [[_mm256_setzero_si256(); V]; R];
        let (base, xp) = (self.packed.as_ptr(), pairs.as_ptr().add(r * k_pairs));
        for k in 0..k_pairs {
            let row = base.add((k * self.out_pad + o) * 2);
            let mut w = [_mm256_setzero_si256(); V];
            for (v, slot) in w.iter_mut().enumerate() {
                *slot = _mm256_loadu_si256(row.add(16 * v) as *const __m256i);
            }
            for (rr, slots) in acc.iter_mut().enumerate() {
                let a = _mm256_set1_epi32(*xp.add(rr * k_pairs + k));
                for (slot, &wv) in slots.iter_mut().zip(&w) {
                    *slot = _mm256_add_epi32(*slot, _mm256_madd_epi16(a, wv));
                }
            }
        }
        for (rr, slots) in acc.iter().enumerate() {
            for (v, slot) in slots.iter().enumerate() {
                let at = o + 8 * v;
                let scaled = _mm256_mul_ps(
                    _mm256_cvtepi32_ps(*slot),
                    _mm256_loadu_ps(self.scale.as_ptr().add(at)),
                );
                let with_bias = _mm256_add_ps(scaled, _mm256_loadu_ps(self.bias.as_ptr().add(at)));
                _mm256_storeu_ps(
                    out.as_mut_ptr().add((r + rr) * self.out_pad + at),
                    with_bias,
                );
            }
        }
    }
}

/// Per-output-channel symmetric quantisation of `weight` `[out, in]`: the int8 values and
/// each output's scale (its largest magnitude / 127; 1 for an all-zero row).
pub(crate) fn quantize_rows(weight: &[f32], in_dim: usize) -> (Vec<i8>, Vec<f32>) {
    let mut values = Vec::with_capacity(weight.len());
    let mut scales = Vec::with_capacity(weight.len() / in_dim.max(1));
    for row in weight.chunks_exact(in_dim.max(1)) {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / QMAX } else { 1.0 };
        scales.push(scale);
        values.extend(
            row.iter()
                .map(|v| (v / scale).round().clamp(-QMAX, QMAX) as i8),
        );
    }
    (values, scales)
}

thread_local! {
    static OBSERVED: RefCell<Option<HashMap<String, f32>>> = const { RefCell::new(None) };
}

/// While alive, every f32 dense layer that has a name records its largest input magnitude
/// (this thread only).
pub(crate) struct Calibration(());

impl Calibration {
    pub(crate) fn start() -> Self {
        OBSERVED.with(|o| *o.borrow_mut() = Some(HashMap::new()));
        Self(())
    }

    /// The largest input magnitude seen per layer name.
    pub(crate) fn finish(self) -> HashMap<String, f32> {
        OBSERVED.with(|o| o.borrow_mut().take().unwrap_or_default())
    }
}

impl Drop for Calibration {
    fn drop(&mut self) {
        OBSERVED.with(|o| o.borrow_mut().take());
    }
}

/// Records `x`'s largest magnitude for layer `name` when calibrating.
#[inline(always)]
pub(crate) fn observe(name: &str, x: &[f32]) {
    OBSERVED.with(|o| {
        if let Some(map) = o.borrow_mut().as_mut() {
            let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            let entry = map.entry(name.to_string()).or_insert(0.0);
            *entry = entry.max(max);
        }
    });
}

/// Calibrates `run` (a closure running forwards): the largest input magnitude of every named
/// f32 dense layer it applied.
pub(crate) fn calibrate(run: impl FnOnce()) -> HashMap<String, f32> {
    let calibration = Calibration::start();
    run();
    calibration.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::matmul;

    /// A small deterministic generator of values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn the_int8_product_stays_within_its_rounding_bound_of_f32() {
        let (in_dim, out_dim, rows) = (37, 19, 5);
        let weight: Vec<f32> = values(in_dim * out_dim, 1)
            .iter()
            .map(|v| v * 0.3)
            .collect();
        let bias = values(out_dim, 2);
        let x: Vec<f32> = values(rows * in_dim, 3).iter().map(|v| v * 4.0).collect();
        let x_max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let (q, scales) = quantize_rows(&weight, in_dim);
        let input_scale = x_max / QMAX;
        let quantized = QuantizedDense::new(
            q,
            scales.clone(),
            input_scale,
            bias.clone(),
            in_dim,
            out_dim,
        );
        let exact = matmul::Dense::new(&weight, bias, in_dim, out_dim);
        let (mut yq, mut y) = (Vec::new(), Vec::new());
        quantized.apply(&x, rows, &mut yq);
        exact.apply(&x, rows, &mut y);
        // Each product's error: |x|·s_w/2 + |w|·s_x/2 + s_w·s_x/4 (rounding both factors).
        let mut worst = 0f32;
        for r in 0..rows {
            for o in 0..out_dim {
                let bound: f32 = (0..in_dim)
                    .map(|i| {
                        let (xv, wv) = (x[r * in_dim + i].abs(), weight[o * in_dim + i].abs());
                        xv * scales[o] / 2.0
                            + wv * input_scale / 2.0
                            + scales[o] * input_scale / 4.0
                    })
                    .sum();
                let error = (yq[r * out_dim + o] - y[r * out_dim + o]).abs();
                assert!(
                    error <= bound * 1.001 + 1e-5,
                    "row {r} out {o}: {error} > {bound}"
                );
                worst = worst.max(error);
            }
        }
        // The tolerance the runtime states: every output within 3 % of the outputs' RMS.
        let rms = (y.iter().map(|v| v * v).sum::<f32>() / y.len() as f32).sqrt();
        assert!(worst < 0.03 * rms, "worst error {worst}, RMS {rms}");
    }

    #[test]
    fn the_vector_and_portable_paths_agree_bit_for_bit() {
        // Odd widths: an unpaired last input, outputs not a multiple of 8 or 32.
        for (in_dim, out_dim) in [(37, 19), (1, 1), (32, 96), (45, 41)] {
            let weight = values(in_dim * out_dim, in_dim as u64);
            let (q, scales) = quantize_rows(&weight, in_dim);
            let layer = QuantizedDense::new(q, scales, 0.05, values(out_dim, 5), in_dim, out_dim);
            // 7 rows: a block of four and a leftover block of three.
            let x: Vec<f32> = values(7 * in_dim, 8).iter().map(|v| v * 9.0).collect();
            let mut fast = Vec::new();
            layer.apply(&x, 7, &mut fast);
            let mut portable = Vec::new();
            layer.apply_with(&x, 7, &mut portable, QuantizedDense::rows_portable);
            assert_eq!(fast, portable, "{in_dim} × {out_dim}");
        }
    }

    #[test]
    fn quantised_rows_use_the_full_range_and_zero_rows_stay_zero() {
        let weight = [0.5, -1.0, 0.25, 0.0, 0.0, 0.0];
        let (q, scales) = quantize_rows(&weight, 3);
        assert_eq!(&q[..3], &[64, -127, 32]);
        assert_eq!(&q[3..], &[0, 0, 0]);
        assert_eq!(scales[1], 1.0);
        assert!((scales[0] - 1.0 / 127.0).abs() < 1e-9);
        // Inputs beyond the calibrated range clamp rather than wrap.
        let layer = QuantizedDense::new(vec![127], vec![1.0 / 127.0], 1.0 / 127.0, vec![0.0], 1, 1);
        let mut y = Vec::new();
        layer.apply(&[5.0], 1, &mut y);
        assert!((y[0] - 1.0).abs() < 1e-6, "{y:?}");
    }

    #[test]
    fn calibration_records_only_while_alive() {
        observe("a", &[1.0, -3.0]);
        let seen = calibrate(|| {
            observe("a", &[2.0]);
            observe("b", &[-0.5]);
            observe("a", &[-1.0]);
        });
        assert_eq!(seen.len(), 2);
        assert_eq!((seen["a"], seen["b"]), (2.0, 0.5));
        observe("a", &[10.0]);
        assert!(calibrate(|| {}).is_empty());
    }
}
