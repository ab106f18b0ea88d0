//! The trainable modality encoders (the config's [`Encoder`]), the same functions as the
//! runtime's `har_runtime::encoders` under the same weight names: each turns a modality's
//! windows `[B, T, C]` into tokens `[B, S, G, D]` for the shared fusion part.
//!
//! - [`PatchEncoder`]: DMFT's patch tokens (unified representation, step 1 of [`crate::dmft`])
//!   and its modality layers (step 2); with `patch_len = 1` and one group, the plain
//!   per-sample transformer of seed S4.
//! - [`RecurrentEncoder`]: stacked LSTM / GRU layers over the samples (tokens: the hidden state
//!   at each patch's end) or over the patches (seed S4's recurrent baseline).

use candle_core::{Device, Result, Tensor};
use candle_nn::{Init, Module, VarBuilder};
use har_runtime::names::dmft as names;
use har_runtime::patch_input::{PATCH_VARIANCE_FLOOR, WINDOW_VARIANCE_FLOOR};
use har_runtime::spectrum::SpectrumTables;

use crate::dmft::{DmftConfig, Encoder, ModalitySpec, RecurrentCell, RecurrentInput};
use crate::layers::{linear, Linear, Train, TransformerLayer};
use crate::sequence_layers::{Gru, Lstm, MultiView};

/// Tokeniser and modality-specific transformer layers of one modality.
#[derive(Debug, Clone)]
pub struct PatchEncoder {
    multiview: Option<MultiView>,
    spec: ModalitySpec,
    patch_projections: Vec<Linear>,
    spectral: Option<(SpectrumTables, Vec<Linear>)>,
    group_indices: Vec<Tensor>,
    group_embedding: Tensor,
    position_embedding: Tensor,
    spatial: Vec<TransformerLayer>,
    temporal: Vec<TransformerLayer>,
    span: tracing::Span,
}

impl PatchEncoder {
    fn new(config: &DmftConfig, m: usize, vb: VarBuilder) -> Result<Self> {
        let spec = &config.modalities[m];
        let d = config.dim;
        let multiview = if config.encoder == Encoder::Mvf {
            let (shared, axes) = config.mvf_channels(m);
            Some(MultiView::new(shared, axes, vb.pp(names::MULTIVIEW))?)
        } else {
            None
        };
        // One linear projection per channel group, named `name(g)`.
        let group_projections =
            |name: fn(usize) -> String, input_len: fn(&DmftConfig, usize) -> usize| {
                spec.groups
                    .iter()
                    .enumerate()
                    .map(|(g, group)| linear(input_len(config, group.len()), d, vb.pp(name(g))))
                    .collect::<Result<Vec<_>>>()
            };
        let patch_projections =
            group_projections(names::patch_projection, DmftConfig::patch_input_len)?;
        let spectral = if config.spectral_tokens {
            let projections =
                group_projections(names::spectral_projection, DmftConfig::spectral_input_len)?;
            Some((SpectrumTables::new(config.window_len), projections))
        } else {
            None
        };
        let group_indices = spec
            .groups
            .iter()
            .map(|g| {
                Tensor::from_vec(
                    g.iter().map(|&c| c as u32).collect::<Vec<_>>(),
                    g.len(),
                    &Device::Cpu,
                )
            })
            .collect::<Result<_>>()?;
        let emb = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let several_groups = spec.groups.len() > 1;
        let mut spatial = Vec::new();
        let mut temporal = Vec::new();
        for l in 0..config.modality_layers {
            if several_groups {
                spatial.push(TransformerLayer::new(
                    config,
                    vb.pp(names::spatial_layer(l)),
                )?);
            }
            temporal.push(TransformerLayer::new(
                config,
                vb.pp(names::temporal_layer(l)),
            )?);
        }
        Ok(Self {
            multiview,
            spec: spec.clone(),
            patch_projections,
            spectral,
            group_indices,
            group_embedding: vb.get_with_hints(
                (spec.groups.len(), d),
                names::GROUP_EMBEDDING,
                emb,
            )?,
            position_embedding: vb.get_with_hints(
                (config.steps(), d),
                names::POSITION_EMBEDDING,
                emb,
            )?,
            spatial,
            temporal,
            span: tracing::trace_span!("encode", modality = %spec.name),
        })
    }

    /// `[B, T, C]` → tokens `[B, L·S, G, D]` (`L` = [`DmftConfig::token_levels`]).
    fn forward(&self, xs: &Tensor, config: &DmftConfig, train: Train) -> Result<Tensor> {
        let _enter = self.span.enter();
        let (b, t, c) = xs.dims3()?;
        if t != config.window_len || c != self.spec.channels {
            candle_core::bail!(
                "modality `{}`: input [{b}, {t}, {c}], expected [B, {}, {}]",
                self.spec.name,
                config.window_len,
                self.spec.channels
            );
        }
        let mixed;
        let xs = match &self.multiview {
            Some(multiview) => {
                mixed = multiview.forward(xs)?;
                &mixed
            }
            None => xs,
        };
        let (s, p, d) = (config.steps(), config.patch_len, config.dim);
        let patch_steps = config.patch_steps();
        let patches = xs.reshape((b, patch_steps, p, c))?;
        // [B, S, C]: ½·ln(var + floor) of each channel within each patch (`patch_log_std`).
        let log_std = if config.patch_stats {
            let centred = patches.broadcast_sub(&patches.mean_keepdim(2)?)?;
            Some(((centred.sqr()?.mean(2)? + PATCH_VARIANCE_FLOOR as f64)?.log()? * 0.5)?)
        } else {
            None
        };
        // [B, S, P, C]: the window standardised per channel (`standardise_window`).
        let detail = if config.window_detail {
            let centred = xs.broadcast_sub(&xs.mean_keepdim(1)?)?;
            let std = (centred.sqr()?.mean_keepdim(1)? + WINDOW_VARIANCE_FLOOR as f64)?.sqrt()?;
            Some(
                centred
                    .broadcast_div(&std)?
                    .reshape((b, patch_steps, p, c))?,
            )
        } else {
            None
        };
        let tokens = self
            .patch_projections
            .iter()
            .zip(&self.group_indices)
            .zip(&self.spec.groups)
            .map(|((projection, indices), group)| {
                // The group's channels of a per-channel tensor (channels in dimension `dim`);
                // a group of every channel in order needs no selection.
                let select = |t: &Tensor, dim: usize| {
                    if is_identity(group, c) {
                        Ok(t.clone())
                    } else {
                        t.index_select(indices, dim)
                    }
                };
                let values = p * group.len();
                // Per patch: the values, their standardised copy, the log standard deviations.
                let mut parts = vec![select(&patches, 3)?.reshape((b, patch_steps, values))?];
                if let Some(detail) = &detail {
                    parts.push(select(detail, 3)?.reshape((b, patch_steps, values))?);
                }
                if let Some(log_std) = &log_std {
                    parts.push(select(log_std, 2)?);
                }
                // (`cat` of one tensor is that tensor.)
                projection.forward(&Tensor::cat(&parts, 2)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let g = tokens.len();
        let mut tokens = Tensor::stack(&tokens, 2)?;
        if let Some((tables, projections)) = &self.spectral {
            // [B, C, bands] → one token per group, as the last step: [B, 1, G, D].
            let power = crate::spectrum::log_band_power(tables, xs)?;
            let spectral = projections
                .iter()
                .zip(&self.group_indices)
                .zip(&self.spec.groups)
                .map(|((projection, indices), group)| {
                    let selected = if is_identity(group, c) {
                        power.clone()
                    } else {
                        power.index_select(indices, 1)?
                    };
                    projection.forward(&selected.reshape((b, ()))?)
                })
                .collect::<Result<Vec<_>>>()?;
            tokens = Tensor::cat(&[tokens, Tensor::stack(&spectral, 1)?.unsqueeze(1)?], 1)?;
        }
        let mut xs = tokens
            .broadcast_add(&self.group_embedding.reshape((1, 1, g, d))?)?
            .broadcast_add(&self.position_embedding.reshape((1, s, 1, d))?)?;
        let mut levels = Vec::with_capacity(self.temporal.len());
        for (l, temporal) in self.temporal.iter().enumerate() {
            if let Some(spatial) = self.spatial.get(l) {
                xs = spatial
                    .forward(&xs.reshape((b * s, g, d))?, None, train)?
                    .reshape((b, s, g, d))?;
            }
            let sequences = xs.transpose(1, 2)?.contiguous()?.reshape((b * g, s, d))?;
            xs = temporal
                .forward(&sequences, None, train)?
                .reshape((b, g, s, d))?
                .transpose(1, 2)?
                .contiguous()?;
            levels.push(xs.clone());
        }
        // With several levels every layer's output is handed over, stacked along the steps.
        if config.token_levels() > 1 {
            Tensor::cat(&levels, 1)
        } else {
            Ok(xs)
        }
    }
}

/// True when `group` is channels `0..c` in order (selecting it is the identity).
fn is_identity(group: &[usize], c: usize) -> bool {
    group.len() == c && group.iter().enumerate().all(|(i, &ch)| i == ch)
}

/// One recurrent layer.
#[derive(Debug, Clone)]
enum RecurrentLayer {
    Lstm(Lstm),
    Gru(Gru),
}

/// Stacked recurrent layers of width `D` over a modality's samples or patches.
#[derive(Debug, Clone)]
pub struct RecurrentEncoder {
    name: String,
    channels: usize,
    over: RecurrentInput,
    layers: Vec<RecurrentLayer>,
    span: tracing::Span,
}

impl RecurrentEncoder {
    fn new(
        config: &DmftConfig,
        m: usize,
        cell: RecurrentCell,
        over: RecurrentInput,
        vb: VarBuilder,
    ) -> Result<Self> {
        let d = config.dim;
        let layers = (0..config.modality_layers)
            .map(|l| {
                let input = config.recurrent_layer_input(m, l, over);
                let vb = vb.pp(names::recurrent_layer(l));
                Ok(match cell {
                    RecurrentCell::Lstm => RecurrentLayer::Lstm(Lstm::new(input, d, vb)?),
                    RecurrentCell::Gru => RecurrentLayer::Gru(Gru::new(input, d, vb)?),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            name: config.modalities[m].name.clone(),
            channels: config.modalities[m].channels,
            over,
            layers,
            span: tracing::trace_span!("encode.recurrent", modality = %config.modalities[m].name),
        })
    }

    /// `[B, T, C]` → tokens `[B, S, 1, D]`.
    fn forward(&self, xs: &Tensor, config: &DmftConfig) -> Result<Tensor> {
        let _enter = self.span.enter();
        let (b, t, c) = xs.dims3()?;
        if t != config.window_len || c != self.channels {
            candle_core::bail!(
                "modality `{}`: input [{b}, {t}, {c}], expected [B, {}, {}]",
                self.name,
                config.window_len,
                self.channels
            );
        }
        let (p, s) = (config.patch_len, config.patch_steps());
        let mut hidden = match self.over {
            RecurrentInput::Samples => xs.clone(),
            RecurrentInput::Patches => xs.reshape((b, s, p * c))?,
        };
        for layer in &self.layers {
            hidden = match layer {
                RecurrentLayer::Lstm(l) => l.forward(&hidden)?,
                RecurrentLayer::Gru(g) => g.forward(&hidden)?,
            };
        }
        if self.over == RecurrentInput::Samples {
            // The hidden state after each patch's last sample.
            let ends: Vec<u32> = (0..s).map(|k| ((k + 1) * p - 1) as u32).collect();
            hidden = hidden.index_select(&Tensor::new(ends, &Device::Cpu)?, 1)?;
        }
        hidden.unsqueeze(2)
    }
}

/// The encoder of one modality.
#[derive(Debug, Clone)]
pub enum ModalityEncoder {
    /// Patch tokens and transformer layers (DMFT, the plain transformer).
    Patch(Box<PatchEncoder>),
    /// Recurrent layers.
    Recurrent(RecurrentEncoder),
}

impl ModalityEncoder {
    /// Modality `spec`'s (the `m`-th) encoder of `config`, parameters from `vb`.
    pub fn new(config: &DmftConfig, m: usize, vb: VarBuilder) -> Result<Self> {
        Ok(match config.encoder {
            Encoder::Patch | Encoder::Mvf | Encoder::Transformer => {
                ModalityEncoder::Patch(Box::new(PatchEncoder::new(config, m, vb)?))
            }
            Encoder::Recurrent { cell, over } => {
                ModalityEncoder::Recurrent(RecurrentEncoder::new(config, m, cell, over, vb)?)
            }
        })
    }

    /// `[B, T, C]` → tokens `[B, S, G, D]`.
    pub fn forward(&self, xs: &Tensor, config: &DmftConfig, train: Train) -> Result<Tensor> {
        match self {
            ModalityEncoder::Patch(e) => e.forward(xs, config, train),
            ModalityEncoder::Recurrent(e) => e.forward(xs, config),
        }
    }
}
