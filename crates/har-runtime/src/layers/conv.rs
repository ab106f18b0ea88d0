//! 1-D convolutions over time of a window `T × C` (row-major): depthwise (one kernel per
//! channel) and separable (depthwise, then a dense layer across channels).

use crate::error::{Result, RuntimeError};
use crate::names::{self, separable};
use crate::weights::Params;

use super::Dense;

/// Where a convolution's output sample `t` looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Samples `t − K + 1 ..= t` (zeros before the start): no look-ahead, for streams.
    Causal,
    /// Samples centred on `t` (`(K − 1) / 2` before, `K / 2` after; zeros outside), as
    /// candle's `conv1d` with padding `(K − 1) / 2` for odd `K`.
    Same,
}

/// One kernel of `K` taps per channel (`weight` `[C, 1, K]`, `bias` `[C]`, candle's depthwise
/// `conv1d` layout with `groups = C`).
#[derive(Debug, Clone)]
pub struct DepthwiseConv1d {
    channels: usize,
    kernel: usize,
    padding: Padding,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl DepthwiseConv1d {
    /// Loads a convolution of `channels` channels and `kernel` taps.
    pub fn load(p: &Params, channels: usize, kernel: usize, padding: Padding) -> Result<Self> {
        if kernel == 0 || (padding == Padding::Same && kernel % 2 == 0) {
            return Err(RuntimeError::Invalid(format!(
                "{}: a {padding:?} convolution needs an odd kernel of at least 1 tap, not {kernel}",
                p.prefix()
            )));
        }
        Ok(Self {
            channels,
            kernel,
            padding,
            weight: p.get(names::WEIGHT, &[channels, 1, kernel])?,
            bias: p.get(names::BIAS, &[channels])?,
        })
    }

    /// Convolves `x` (`T × C`) into `y` (`T × C`).
    pub fn apply(&self, x: &[f32], y: &mut Vec<f32>) {
        let (c, k) = (self.channels, self.kernel);
        let t_len = x.len() / c;
        let before = match self.padding {
            Padding::Causal => k - 1,
            Padding::Same => (k - 1) / 2,
        };
        y.clear();
        y.resize(x.len(), 0.0);
        for t in 0..t_len {
            let out = &mut y[t * c..(t + 1) * c];
            out.copy_from_slice(&self.bias);
            for tap in 0..k {
                // Input sample t + tap − before, when inside the window.
                let Some(s) = (t + tap).checked_sub(before).filter(|&s| s < t_len) else {
                    continue;
                };
                let sample = &x[s * c..(s + 1) * c];
                for ch in 0..c {
                    out[ch] += self.weight[ch * k + tap] * sample[ch];
                }
            }
        }
    }
}

/// A depthwise convolution followed by a dense layer across channels (`depthwise`,
/// `pointwise`).
#[derive(Debug, Clone)]
pub struct SeparableConv1d {
    depthwise: DepthwiseConv1d,
    pointwise: Dense,
}

impl SeparableConv1d {
    /// Loads a convolution from `channels` to `out_channels` with `kernel` taps.
    pub fn load(
        p: &Params,
        channels: usize,
        out_channels: usize,
        kernel: usize,
        padding: Padding,
    ) -> Result<Self> {
        Ok(Self {
            depthwise: DepthwiseConv1d::load(
                &p.pp(separable::DEPTHWISE),
                channels,
                kernel,
                padding,
            )?,
            pointwise: Dense::load(&p.pp(separable::POINTWISE), channels, out_channels)?,
        })
    }

    /// Convolves `x` (`T × C`) into `y` (`T × C_out`); `buffer` holds the depthwise output.
    pub fn apply(&self, x: &[f32], buffer: &mut Vec<f32>, y: &mut Vec<f32>) {
        self.depthwise.apply(x, buffer);
        let rows = x.len() / self.depthwise.channels;
        self.pointwise.apply(buffer, rows, y);
    }
}
