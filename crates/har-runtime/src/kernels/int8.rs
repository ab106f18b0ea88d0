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
