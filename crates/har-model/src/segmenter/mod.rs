//! A per-time-step segmentation model for sensor streams (seed S10's CAN, first part: candle
//! only): one time step per patch of `patch_len` samples of every modality's channels, then
//!
//! 1. a dense embedding of the patch and a **causal convolution** over the last `kernel`
//!    steps (an unfold and a dense layer), residual;
//! 2. **local self-attention** over the last `local_window` steps (additive mask), residual
//!    and layer norm — the abstract's local attention over adjacent characters;
//! 3. a **GRU** over the steps;
//! 4. **global self-attention** over every earlier step (causal mask), residual and layer
//!    norm — the abstract's sentence-level context;
//! 5. a dense head per step.
//!
//! Every part only looks back, so the model runs online with no look-ahead. `local` and
//! `global` switch parts 2 and 4 off for the abstract's ablation. The shape and the weight
//! names are the runtime's (`har_runtime::segmenter`, which runs the model step by step in
//! the dataflow's segment node).

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::VarBuilder;

use har_runtime::names::segmenter as names;
pub use har_runtime::segmenter::SegmenterConfig;

use crate::layers::{linear, Attention, LayerNorm, Linear, Train};
use crate::sequence_layers::Gru;

pub mod train;

/// The model.
#[derive(Debug, Clone)]
pub struct Segmenter {
    config: SegmenterConfig,
    embed: Linear,
    conv: Linear,
    local: Option<(Attention, LayerNorm)>,
    gru: Gru,
    global: Option<(Attention, LayerNorm)>,
    head: Linear,
}

/// Additive attention mask `[S, S]`: step `t` sees steps `t − window + 1 ..= t` (all earlier
/// ones when `window` is `None`).
pub fn causal_mask(
    steps: usize,
    window: Option<usize>,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let values: Vec<f32> = (0..steps)
        .flat_map(|t| {
            (0..steps).map(move |k| {
                let seen = k <= t && window.is_none_or(|w| t - k < w);
                if seen {
                    0.0
                } else {
                    -1e9
                }
            })
        })
        .collect();
    Tensor::from_vec(values, (steps, steps), device)
}

impl Segmenter {
    /// The model of `config` under `vb`.
    pub fn new(config: &SegmenterConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let d = config.dim;
        let hd = d / config.heads.max(1);
        let attention = |name: &str| -> candle_core::Result<(Attention, LayerNorm)> {
            Ok((
                Attention::new(d, config.heads, hd, vb.pp(name).pp(names::ATTENTION))?,
                LayerNorm::new(d, vb.pp(name).pp(names::NORM))?,
            ))
        };
        Ok(Self {
            config: config.clone(),
            embed: linear(config.step_width(), d, vb.pp(names::EMBED))?,
            conv: linear(config.kernel * d, d, vb.pp(names::CONV))?,
            local: config.local.then(|| attention(names::LOCAL)).transpose()?,
            gru: Gru::new(d, d, vb.pp(names::GRU))?,
            global: config
                .global
                .then(|| attention(names::GLOBAL))
                .transpose()?,
            head: linear(d, config.num_classes, vb.pp(names::HEAD))?,
        })
    }

    /// The same weights with the global attention reading only the last `window` steps
    /// (`None`: every earlier step) — to evaluate a context limit the model was not trained
    /// with, such as the dataflow node's.
    pub fn with_global_window(mut self, window: Option<usize>) -> Self {
        self.config.global_window = window;
        self
    }

    /// The model's shape.
    pub fn config(&self) -> &SegmenterConfig {
        &self.config
    }

    /// Per-step class logits `[B, S, K]` of step inputs `[B, S, patch_len · channels]`.
    pub fn forward(&self, xs: &Tensor, train: Train) -> candle_core::Result<Tensor> {
        let (b, s, _) = xs.dims3()?;
        let d = self.config.dim;
        let h = self.embed.forward(xs)?.gelu()?;
        // Causal convolution: the last `kernel` steps side by side (zeros before the start).
        let k = self.config.kernel;
        let padded = Tensor::cat(
            &[
                Tensor::zeros((b, k - 1, d), DType::F32, xs.device())?,
                h.clone(),
            ],
            1,
        )?;
        let unfolded = Tensor::cat(
            &(0..k)
                .map(|j| padded.narrow(1, j, s))
                .collect::<candle_core::Result<Vec<_>>>()?,
            D::Minus1,
        )?;
        let mut h = (h + self.conv.forward(&unfolded)?.gelu()?)?;
        if let Some((attention, norm)) = &self.local {
            let mask = causal_mask(s, Some(self.config.local_window), xs.device())?;
            h = norm.forward(&(&h + attention.forward(&h, Some(&mask), train)?)?, train)?;
        }
        let mut h = self.gru.forward(&h)?;
        if let Some((attention, norm)) = &self.global {
            let mask = causal_mask(s, self.config.global_window, xs.device())?;
            h = norm.forward(&(&h + attention.forward(&h, Some(&mask), train)?)?, train)?;
        }
        self.head.forward(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::seeded_var_builder;
    use candle_nn::VarMap;

    fn config(local: bool, global: bool) -> SegmenterConfig {
        SegmenterConfig {
            channels: 3,
            patch_len: 4,
            dim: 8,
            heads: 2,
            kernel: 3,
            local_window: 3,
            local,
            global,
            global_window: None,
            num_classes: 4,
        }
    }

    #[test]
    fn the_masks_let_a_step_see_only_its_window_of_the_past() {
        let m = causal_mask(4, Some(2), &Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let seen: Vec<Vec<bool>> = m
            .iter()
            .map(|r| r.iter().map(|v| *v == 0.0).collect())
            .collect();
        assert_eq!(seen[0], [true, false, false, false]);
        assert_eq!(seen[3], [false, false, true, true]);
        let all = causal_mask(3, None, &Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(all[2], [0.0, 0.0, 0.0]);
        assert!(all[0][1] < -1e8);
    }

    /// No look-ahead: changing the inputs after step `t` leaves every output up to `t`
    /// unchanged, with every part switched on or off.
    #[test]
    fn outputs_never_depend_on_later_steps() {
        for (local, global) in [(true, true), (true, false), (false, true), (false, false)] {
            let varmap = VarMap::new();
            let model =
                Segmenter::new(&config(local, global), seeded_var_builder(&varmap, 3)).unwrap();
            let (s, w) = (12, 4 * 3);
            let a: Vec<f32> = (0..s * w)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0)
                .collect();
            let mut b = a.clone();
            for v in &mut b[7 * w..] {
                *v = -*v * 3.0 + 1.0;
            }
            let run = |x: Vec<f32>| {
                let x = Tensor::from_vec(x, (1, s, w), &Device::Cpu).unwrap();
                model
                    .forward(&x, false)
                    .unwrap()
                    .squeeze(0)
                    .unwrap()
                    .to_vec2::<f32>()
                    .unwrap()
            };
            let (ya, yb) = (run(a), run(b));
            for t in 0..7 {
                for (p, q) in ya[t].iter().zip(&yb[t]) {
                    assert!(
                        (p - q).abs() < 1e-5,
                        "local {local} global {global} step {t}"
                    );
                }
            }
            assert!(ya[11]
                .iter()
                .zip(&yb[11])
                .any(|(p, q)| (p - q).abs() > 1e-4));
        }
    }
}
