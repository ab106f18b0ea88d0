//! Layers over time for the encoders, as trainable candle modules on `[B, T, C]`
//! sequences: depthwise and separable 1-D convolution, LSTM and GRU, the multi-view module. Each has its runtime
//! counterpart in `har_runtime::layers` under the same weight names (tested equal).

use candle_core::{Module, Result, Tensor};
use candle_nn::rnn::{GRUConfig, LSTMConfig, RNN};
use candle_nn::{Conv1d, Conv1dConfig, VarBuilder};
use har_runtime::layers::Padding;
use har_runtime::names::{multiview, separable};
use har_runtime::patch_input::WINDOW_VARIANCE_FLOOR;

use crate::layers::{linear, Linear};

/// One kernel of `K` taps per channel over time (`weight` `[C, 1, K]`, `bias` `[C]`).
#[derive(Debug, Clone)]
pub struct DepthwiseConv1d {
    conv: Conv1d,
    kernel: usize,
    padding: Padding,
}

impl DepthwiseConv1d {
    /// A convolution of `channels` channels and `kernel` taps (odd for [`Padding::Same`]).
    pub fn new(channels: usize, kernel: usize, padding: Padding, vb: VarBuilder) -> Result<Self> {
        if kernel == 0 || (padding == Padding::Same && kernel % 2 == 0) {
            candle_core::bail!("a {padding:?} convolution needs an odd kernel, not {kernel}");
        }
        // Zeros are padded in `forward`, not by the convolution: candle's backward of a
        // padded conv1d underflows on sequences shorter than the padding (3 taps over 2).
        let config = Conv1dConfig {
            groups: channels,
            ..Default::default()
        };
        Ok(Self {
            conv: candle_nn::conv1d(channels, channels, kernel, config, vb)?,
            kernel,
            padding,
        })
    }
}

impl Module for DepthwiseConv1d {
    /// `[B, T, C]` → `[B, T, C]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = xs.transpose(1, 2)?.contiguous()?;
        let (before, after) = match self.padding {
            Padding::Causal => (self.kernel - 1, 0),
            Padding::Same => ((self.kernel - 1) / 2, (self.kernel - 1) / 2),
        };
        if before + after > 0 {
            xs = xs.pad_with_zeros(2, before, after)?;
        }
        self.conv.forward(&xs)?.transpose(1, 2)?.contiguous()
    }
}

/// A depthwise convolution, then a dense layer across channels (`depthwise`, `pointwise`).
#[derive(Debug, Clone)]
pub struct SeparableConv1d {
    depthwise: DepthwiseConv1d,
    pointwise: Linear,
}

impl SeparableConv1d {
    /// A convolution from `channels` to `out_channels` with `kernel` taps.
    pub fn new(
        channels: usize,
        out_channels: usize,
        kernel: usize,
        padding: Padding,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            depthwise: DepthwiseConv1d::new(
                channels,
                kernel,
                padding,
                vb.pp(separable::DEPTHWISE),
            )?,
            pointwise: linear(channels, out_channels, vb.pp(separable::POINTWISE))?,
        })
    }
}

impl Module for SeparableConv1d {
    /// `[B, T, C]` → `[B, T, C_out]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.pointwise.forward(&self.depthwise.forward(xs)?)
    }
}

/// A single-layer LSTM over `[B, T, I]`, every step's hidden state `[B, T, H]`.
#[derive(Debug, Clone)]
pub struct Lstm(candle_nn::LSTM);

impl Lstm {
    /// An LSTM from `input_dim` to `hidden_dim` (candle-nn's names and gate order).
    pub fn new(input_dim: usize, hidden_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self(candle_nn::lstm(
            input_dim,
            hidden_dim,
            LSTMConfig::default(),
            vb,
        )?))
    }
}

impl Module for Lstm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let states = self.0.seq(xs)?;
        Tensor::stack(&states.iter().map(|s| s.h().clone()).collect::<Vec<_>>(), 1)
    }
}

/// A single-layer GRU over `[B, T, I]`, every step's hidden state `[B, T, H]`.
#[derive(Debug, Clone)]
pub struct Gru(candle_nn::GRU);

impl Gru {
    /// A GRU from `input_dim` to `hidden_dim` (candle-nn's names and gate order).
    pub fn new(input_dim: usize, hidden_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self(candle_nn::gru(
            input_dim,
            hidden_dim,
            GRUConfig::default(),
            vb,
        )?))
    }
}

impl Module for Gru {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let states = self.0.seq(xs)?;
        Tensor::stack(&states.iter().map(|s| s.h().clone()).collect::<Vec<_>>(), 1)
    }
}

/// The multi-view fusion module (seed S6) on `[B, T, C]`: convolutions along time and across
/// the first `C_s` channels (per axis), summed, standardised over the window, scaled, shifted
/// and activated; the other channels pass unchanged. The runtime's `layers::MultiView`.
#[derive(Debug, Clone)]
pub struct MultiView {
    shared: usize,
    axes: usize,
    time: DepthwiseConv1d,
    across: DepthwiseConv1d,
    scale: Tensor,
    shift: Tensor,
}

impl MultiView {
    /// The module mixing the first `shared` channels, `axes` interleaved axes apart.
    pub fn new(shared: usize, axes: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            shared,
            axes,
            time: DepthwiseConv1d::new(
                shared,
                multiview::TIME_KERNEL,
                Padding::Same,
                vb.pp(multiview::TIME),
            )?,
            across: DepthwiseConv1d::new(
                axes,
                multiview::CHANNEL_KERNEL,
                Padding::Same,
                vb.pp(multiview::CHANNEL),
            )?,
            scale: vb.get_with_hints(shared, multiview::SCALE, candle_nn::Init::Const(1.0))?,
            shift: vb.get_with_hints(shared, multiview::SHIFT, candle_nn::Init::Const(0.0))?,
        })
    }
}

impl Module for MultiView {
    /// `[B, T, C]` → `[B, T, C]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, t, c) = xs.dims3()?;
        let shared = xs.narrow(2, 0, self.shared)?;
        let along = self.time.forward(&shared)?;
        let positions = self.shared / self.axes;
        let across = self
            .across
            .forward(&shared.reshape((b * t, positions, self.axes))?)?
            .reshape((b, t, self.shared))?;
        let summed = (along + across)?;
        let centred = summed.broadcast_sub(&summed.mean_keepdim(1)?)?;
        let std = (centred.sqr()?.mean_keepdim(1)? + WINDOW_VARIANCE_FLOOR as f64)?.sqrt()?;
        let mixed = centred
            .broadcast_div(&std)?
            .broadcast_mul(&self.scale)?
            .broadcast_add(&self.shift)?
            .gelu()?;
        if self.shared == c {
            Ok(mixed)
        } else {
            Tensor::cat(&[mixed, xs.narrow(2, self.shared, c - self.shared)?], 2)
        }
    }
}
