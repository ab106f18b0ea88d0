//! The multi-view fusion module (seed S6, MVFNet, on a sensor window instead of video planes):
//! on the first `C_s` channels of a window `T × C`, a depthwise convolution along time and a
//! depthwise convolution across the channels (run apart for each of the `A` axes, so for a
//! skeleton it slides across joints) are summed; each channel of the sum is standardised over
//! the window, scaled, shifted and passed through GELU. The other channels are left as they
//! are. The result replaces the window in front of the patch tokeniser.

use crate::error::Result;
use crate::kernels::gelu;
use crate::names::multiview as names;
use crate::patch_input::standardise_window;
use crate::weights::Params;

use super::{DepthwiseConv1d, Padding};

/// The module of one modality.
#[derive(Debug, Clone)]
pub struct MultiView {
    channels: usize,
    shared: usize,
    time: DepthwiseConv1d,
    across: DepthwiseConv1d,
    scale: Vec<f32>,
    shift: Vec<f32>,
}

impl MultiView {
    /// Loads the module of a `channels`-channel modality whose first `shared` channels it
    /// mixes, `axes` interleaved axes apart.
    pub fn load(p: &Params, channels: usize, shared: usize, axes: usize) -> Result<Self> {
        Ok(Self {
            channels,
            shared,
            time: DepthwiseConv1d::load(
                &p.pp(names::TIME),
                shared,
                names::TIME_KERNEL,
                Padding::Same,
            )?,
            across: DepthwiseConv1d::load(
                &p.pp(names::CHANNEL),
                axes,
                names::CHANNEL_KERNEL,
                Padding::Same,
            )?,
            scale: p.get(names::SCALE, &[shared])?,
            shift: p.get(names::SHIFT, &[shared])?,
        })
    }

    /// The window `x` (`T × C`) with its shared channels replaced by the module's output.
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        let (c, cs) = (self.channels, self.shared);
        let t_len = x.len() / c;
        let shared: Vec<f32> = x
            .chunks_exact(c)
            .flat_map(|row| &row[..cs])
            .copied()
            .collect();
        let mut along_time = Vec::new();
        self.time.apply(&shared, &mut along_time);
        // Each sample's shared channels are a sequence of `C_s / A` positions of `A` axes.
        let mut across = Vec::new();
        let mut row_out = Vec::new();
        for row in shared.chunks_exact(cs) {
            self.across.apply(row, &mut row_out);
            across.extend_from_slice(&row_out);
        }
        let summed: Vec<f32> = along_time.iter().zip(&across).map(|(a, b)| a + b).collect();
        let normed = standardise_window(&summed, cs);
        let mut out = x.to_vec();
        for t in 0..t_len {
            for k in 0..cs {
                let v = normed[t * cs + k] * self.scale[k] + self.shift[k];
                out[t * c + k] = gelu(v);
            }
        }
        out
    }
}
