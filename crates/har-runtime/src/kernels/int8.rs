//! The int8 dense kernel: weights quantised per output channel (`w ≈ s_w[o] · q_w[o, i]`),
//! the input per tensor with a calibrated scale (`x ≈ s_x · q_x[i]`, rounded to nearest,
//! clamped to ±127), products summed in `i32`, then `y[o] = s_x · s_w[o] · Σ q_x·q_w + b[o]`.
//! A sum of at most 2¹⁶ products of magnitude ≤ 127² cannot overflow `i32`.
//!
//! Calibration ([`calibrate`]) records, per named dense layer, the largest input magnitude
//! the f32 forward sees on this thread while a [`Calibration`] is alive.

use std::cell::RefCell;
use std::collections::HashMap;

/// Largest quantised magnitude.
pub(crate) const QMAX: f32 = 127.0;

/// A dense layer with int8 weights `[out, in]` (row-major: each output's weights contiguous).
#[derive(Debug, Clone)]
pub(crate) struct QuantizedDense {
    weight: Vec<i8>,
    weight_scale: Vec<f32>,
    input_scale: f32,
    bias: Vec<f32>,
    in_dim: usize,
    out_dim: usize,
    /// Reused buffer of one quantised input row.
    row: RefCell<Vec<i8>>,
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
        Self {
            weight,
            weight_scale,
            input_scale,
            bias,
            in_dim,
            out_dim,
            row: RefCell::new(vec![0; in_dim]),
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
        y.resize(rows * self.out_dim, 0.0);
        let mut q = self.row.borrow_mut();
        let inv = 1.0 / self.input_scale;
        for (xr, yr) in x
            .chunks_exact(self.in_dim)
            .take(rows)
            .zip(y.chunks_exact_mut(self.out_dim))
        {
            for (qi, &v) in q.iter_mut().zip(xr) {
                *qi = (v * inv).round().clamp(-QMAX, QMAX) as i8;
            }
            for (o, out) in yr.iter_mut().enumerate() {
                let w = &self.weight[o * self.in_dim..(o + 1) * self.in_dim];
                let acc = dot_i8(&q, w);
                *out = acc as f32 * self.input_scale * self.weight_scale[o] + self.bias[o];
            }
        }
    }
}

/// `Σ a[i]·b[i]` in `i32` (the loop vectorises to 16-bit multiply-adds).
#[inline(always)]
pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
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
