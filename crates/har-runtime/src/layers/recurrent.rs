//! Recurrent layers over a sequence `T × I` (row-major), from a zero state, returning every
//! step's hidden state `T × H`: LSTM and GRU with candle-nn's (PyTorch's) weight layout and
//! gate order.

use crate::error::Result;
use crate::kernels::tanh_fast;
use crate::names::recurrent;
use crate::weights::Params;

use super::Dense;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The two products of a recurrent cell: input-to-hidden and hidden-to-hidden, each with
/// its bias, `gates × H` outputs.
#[derive(Debug, Clone)]
struct GateProducts {
    input: Dense,
    hidden: Dense,
    hidden_dim: usize,
}

impl GateProducts {
    fn load(p: &Params, input_dim: usize, hidden_dim: usize, gates: usize) -> Result<Self> {
        let out = gates * hidden_dim;
        let input = Dense::from_parts(
            p.get(recurrent::WEIGHT_IH, &[out, input_dim])?,
            p.get(recurrent::BIAS_IH, &[out])?,
            input_dim,
            out,
        );
        let hidden = Dense::from_parts(
            p.get(recurrent::WEIGHT_HH, &[out, hidden_dim])?,
            p.get(recurrent::BIAS_HH, &[out])?,
            hidden_dim,
            out,
        );
        Ok(Self {
            input,
            hidden,
            hidden_dim,
        })
    }

    /// Runs a cell over the rows of `x` (`T × I`) from a zero hidden state, appending each
    /// step's hidden state to `y`: `cell(input gates, recurrent gates, h)` updates `h` in place
    /// from the step's two products (`gates × H` each).
    fn run(&self, x: &[f32], y: &mut Vec<f32>, mut cell: impl FnMut(&[f32], &[f32], &mut [f32])) {
        let h_len = self.hidden_dim;
        let width = self.input.out_dim();
        let rows = x.len() / self.input.in_dim();
        let mut inputs = Vec::new();
        self.input.apply(x, rows, &mut inputs);
        let mut h = vec![0f32; h_len];
        let mut recurrent = Vec::new();
        y.clear();
        for gates in inputs.chunks_exact(width) {
            self.hidden.apply(&h, 1, &mut recurrent);
            cell(gates, &recurrent, &mut h);
            y.extend_from_slice(&h);
        }
    }
}

/// A single-layer LSTM (gates `i, f, g, o`): `c' = f·c + i·g`, `h' = o·tanh(c')`.
#[derive(Debug, Clone)]
pub struct Lstm {
    products: GateProducts,
}

impl Lstm {
    /// Loads an LSTM from `input_dim` inputs to `hidden_dim` hidden units.
    pub fn load(p: &Params, input_dim: usize, hidden_dim: usize) -> Result<Self> {
        Ok(Self {
            products: GateProducts::load(p, input_dim, hidden_dim, 4)?,
        })
    }

    /// The hidden state after each step of `x` (`T × I`) into `y` (`T × H`).
    pub fn apply(&self, x: &[f32], y: &mut Vec<f32>) {
        let mut c = vec![0f32; self.products.hidden_dim];
        self.products.run(x, y, |gates, recurrent, h| {
            lstm_cell(gates, recurrent, h, &mut c)
        });
    }

    /// Hidden width.
    pub fn hidden_dim(&self) -> usize {
        self.products.hidden_dim
    }

    /// One step: input `x` (`I`) updates the hidden state `h` and cell state `c` (`H` each)
    /// in place; `gates` and `recurrent` are buffers. Steps from zero states give
    /// [`Lstm::apply`]'s rows.
    pub fn step(
        &self,
        x: &[f32],
        h: &mut [f32],
        c: &mut [f32],
        gates: &mut Vec<f32>,
        recurrent: &mut Vec<f32>,
    ) {
        self.products.input.apply(x, 1, gates);
        self.products.hidden.apply(h, 1, recurrent);
        lstm_cell(gates, recurrent, h, c);
    }
}

/// The LSTM update of `h` and `c` from a step's input and recurrent products (`4 × H` each).
fn lstm_cell(gates: &[f32], recurrent: &[f32], h: &mut [f32], c: &mut [f32]) {
    let h_len = h.len();
    for k in 0..h_len {
        let at = |g: usize| gates[g * h_len + k] + recurrent[g * h_len + k];
        let (i, f, g, o) = (
            sigmoid(at(0)),
            sigmoid(at(1)),
            tanh_fast(at(2)),
            sigmoid(at(3)),
        );
        c[k] = f * c[k] + i * g;
        h[k] = o * tanh_fast(c[k]);
    }
}

/// A single-layer GRU (gates `r, z, n`): `n = tanh(W_in·x + b_in + r·(W_hn·h + b_hn))`,
/// `h' = (1 − z)·n + z·h`.
#[derive(Debug, Clone)]
pub struct Gru {
    products: GateProducts,
}

impl Gru {
    /// Loads a GRU from `input_dim` inputs to `hidden_dim` hidden units.
    pub fn load(p: &Params, input_dim: usize, hidden_dim: usize) -> Result<Self> {
        Ok(Self {
            products: GateProducts::load(p, input_dim, hidden_dim, 3)?,
        })
    }

    /// The hidden state after each step of `x` (`T × I`) into `y` (`T × H`).
    pub fn apply(&self, x: &[f32], y: &mut Vec<f32>) {
        self.products.run(x, y, gru_cell);
    }

    /// Hidden width.
    pub fn hidden_dim(&self) -> usize {
        self.products.hidden_dim
    }

    /// One step of a stream: input `x` (`I`) updates the hidden state `h` (`H`) in place;
    /// `gates` and `recurrent` are buffers. Steps from a zero state give [`Gru::apply`]'s rows.
    pub fn step(&self, x: &[f32], h: &mut [f32], gates: &mut Vec<f32>, recurrent: &mut Vec<f32>) {
        self.products.input.apply(x, 1, gates);
        self.products.hidden.apply(h, 1, recurrent);
        gru_cell(gates, recurrent, h);
    }
}

/// The GRU update of `h` from a step's input and recurrent products (`3 × H` each).
fn gru_cell(gates: &[f32], recurrent: &[f32], h: &mut [f32]) {
    let h_len = h.len();
    for k in 0..h_len {
        let r = sigmoid(gates[k] + recurrent[k]);
        let z = sigmoid(gates[h_len + k] + recurrent[h_len + k]);
        let n = tanh_fast(gates[2 * h_len + k] + r * recurrent[2 * h_len + k]);
        h[k] = (1.0 - z) * n + z * h[k];
    }
}
