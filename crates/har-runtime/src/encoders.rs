//! The modality encoders a [`crate::dmft::Dmft`] can have (the config's
//! [`Encoder`](crate::config::Encoder)): each turns one modality's window `T × C` into its
//! tokens `S × G × D` for the shared fusion part.
//!
//! - [`PatchEncoder`]: DMFT's patch tokens (and the spectral step), group and position
//!   embeddings, spatial and temporal transformer layers — also the plain per-sample
//!   transformer, which is this path with `patch_len = 1` and one group, and MVF, which is
//!   this path behind a [`MultiView`] module.
//! - [`RecurrentEncoder`]: stacked LSTM or GRU layers over the samples or the patches.

use crate::config::{DmftConfig, Encoder, RecurrentCell, RecurrentInput};
use crate::error::Result;
use crate::kernels::transpose_tokens;
use crate::layers::{
    Gru, Lstm, MultiView, PatchTokenizer, Scratch, SpectralTokenizer, TransformerLayer,
};
use crate::names::dmft as names;
use crate::weights::Params;

/// Tokeniser and modality-specific transformer layers of one modality.
#[derive(Debug, Clone)]
pub struct PatchEncoder {
    multiview: Option<MultiView>,
    channels: usize,
    groups: usize,
    patches: PatchTokenizer,
    spectral: Option<SpectralTokenizer>,
    group_embedding: Vec<f32>,
    position_embedding: Vec<f32>,
    spatial: Vec<TransformerLayer>,
    temporal: Vec<TransformerLayer>,
}

impl PatchEncoder {
    fn load(config: &DmftConfig, m: usize, p: &Params) -> Result<Self> {
        let spec = &config.modalities[m];
        let d = config.dim;
        let g = spec.groups.len();
        let options = config.patch_options();
        let layers = |name: fn(usize) -> String| {
            (0..config.modality_layers)
                .map(|l| TransformerLayer::configured(&p.pp(name(l)), config))
                .collect::<Result<Vec<_>>>()
        };
        let multiview = (config.encoder == Encoder::Mvf)
            .then(|| {
                let (shared, axes) = config.mvf_channels(m);
                MultiView::load(&p.pp(names::MULTIVIEW), spec.channels, shared, axes)
            })
            .transpose()?;
        Ok(Self {
            multiview,
            channels: spec.channels,
            groups: g,
            patches: PatchTokenizer::load(p, names::patch_projection, &spec.groups, options, d)?,
            spectral: config
                .spectral_tokens
                .then(|| {
                    SpectralTokenizer::load(
                        p,
                        names::spectral_projection,
                        &spec.groups,
                        config.window_len,
                        d,
                    )
                })
                .transpose()?,
            group_embedding: p.get(names::GROUP_EMBEDDING, &[g, d])?,
            position_embedding: p.get(names::POSITION_EMBEDDING, &[config.steps(), d])?,
            spatial: if g > 1 {
                layers(names::spatial_layer)?
            } else {
                Vec::new()
            },
            temporal: layers(names::temporal_layer)?,
        })
    }

    /// Tokens `S × G × D` of one window `x` (`T × C`, checked by the caller).
    fn encode(&self, config: &DmftConfig, x: &[f32], scratch: &mut Scratch) -> Vec<f32> {
        let mixed;
        let x = match &self.multiview {
            Some(multiview) => {
                mixed = multiview.apply(x);
                &mixed[..]
            }
            None => x,
        };
        let (s_len, d) = (config.steps(), config.dim);
        let patch_steps = config.patch_steps();
        let c = self.channels;
        let g_len = self.groups;
        let mut tokens = vec![0f32; s_len * g_len * d];
        let mut patches = Vec::new();
        let mut projected = Vec::new();
        // The spectral step's projection per group (`G × D`), when the model has one.
        let mut spectral = Vec::new();
        if let Some(s) = &self.spectral {
            s.apply(x, c, &mut spectral);
        }
        let detail = self.patches.window_input(x, c);
        for g in 0..g_len {
            self.patches
                .apply_group(g, x, c, &detail, &mut patches, &mut projected);
            debug_assert_eq!(projected.len(), patch_steps * d);
            if self.spectral.is_some() {
                // The spectral step: one more projected row after the patch steps.
                projected.extend_from_slice(&spectral[g * d..(g + 1) * d]);
            }
            for s in 0..s_len {
                let token = &mut tokens[(s * g_len + g) * d..(s * g_len + g + 1) * d];
                let (projection, group_emb, position) = (
                    &projected[s * d..(s + 1) * d],
                    &self.group_embedding[g * d..(g + 1) * d],
                    &self.position_embedding[s * d..(s + 1) * d],
                );
                for k in 0..d {
                    token[k] = projection[k] + group_emb[k] + position[k];
                }
            }
        }
        // Tokens are [S, G, D]: spatial layers see S sequences of G; temporal layers need the
        // transposed [G, S, D] layout (the same buffer when G = 1).
        let mut by_group = vec![0f32; s_len * g_len * d];
        // With several levels, every layer's output is handed over, in layer order.
        let mut levels = Vec::new();
        for (l, temporal) in self.temporal.iter().enumerate() {
            if let Some(spatial) = self.spatial.get(l) {
                spatial.apply(&mut tokens, g_len, scratch);
            }
            if g_len == 1 {
                temporal.apply(&mut tokens, s_len, scratch);
            } else {
                transpose_tokens(&tokens, s_len, g_len, d, &mut by_group);
                temporal.apply(&mut by_group, s_len, scratch);
                transpose_tokens(&by_group, g_len, s_len, d, &mut tokens);
            }
            if config.token_levels() > 1 {
                levels.extend_from_slice(&tokens);
            }
        }
        if config.token_levels() > 1 {
            levels
        } else {
            tokens
        }
    }
}

/// One recurrent layer.
#[derive(Debug, Clone)]
enum RecurrentLayer {
    Lstm(Lstm),
    Gru(Gru),
}

/// Stacked recurrent layers over a modality's samples or patches; the hidden states at the
/// patch ends are its tokens (`S × 1 × D`).
#[derive(Debug, Clone)]
pub struct RecurrentEncoder {
    over: RecurrentInput,
    layers: Vec<RecurrentLayer>,
}

impl RecurrentEncoder {
    fn load(
        config: &DmftConfig,
        m: usize,
        cell: RecurrentCell,
        over: RecurrentInput,
        p: &Params,
    ) -> Result<Self> {
        let d = config.dim;
        let layers = (0..config.modality_layers)
            .map(|l| {
                let input = config.recurrent_layer_input(m, l, over);
                let p = p.pp(names::recurrent_layer(l));
                Ok(match cell {
                    RecurrentCell::Lstm => RecurrentLayer::Lstm(Lstm::load(&p, input, d)?),
                    RecurrentCell::Gru => RecurrentLayer::Gru(Gru::load(&p, input, d)?),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { over, layers })
    }

    /// Tokens `S × 1 × D` of one window `x` (`T × C`, checked by the caller). A window of
    /// patches is the same row-major buffer as the window of samples, `S` rows of `P·C`.
    fn encode(&self, config: &DmftConfig, x: &[f32]) -> Vec<f32> {
        let mut input = x.to_vec();
        let mut hidden = Vec::new();
        for layer in &self.layers {
            match layer {
                RecurrentLayer::Lstm(l) => l.apply(&input, &mut hidden),
                RecurrentLayer::Gru(g) => g.apply(&input, &mut hidden),
            }
            std::mem::swap(&mut input, &mut hidden);
        }
        match self.over {
            RecurrentInput::Patches => input,
            RecurrentInput::Samples => {
                // The hidden state after each patch's last sample.
                let (p, d) = (config.patch_len, config.dim);
                input
                    .chunks_exact(d)
                    .skip(p - 1)
                    .step_by(p)
                    .flatten()
                    .copied()
                    .collect()
            }
        }
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
    /// Loads modality `m`'s encoder of `config` from `p`.
    pub fn load(config: &DmftConfig, m: usize, p: &Params) -> Result<Self> {
        Ok(match config.encoder {
            Encoder::Patch | Encoder::Mvf | Encoder::Transformer => {
                ModalityEncoder::Patch(Box::new(PatchEncoder::load(config, m, p)?))
            }
            Encoder::Recurrent { cell, over } => {
                ModalityEncoder::Recurrent(RecurrentEncoder::load(config, m, cell, over, p)?)
            }
        })
    }

    /// Tokens `S × G × D` of one window `x` (`T × C`, length checked by the caller).
    pub fn encode(&self, config: &DmftConfig, x: &[f32], scratch: &mut Scratch) -> Vec<f32> {
        match self {
            ModalityEncoder::Patch(e) => e.encode(config, x, scratch),
            ModalityEncoder::Recurrent(e) => e.encode(config, x),
        }
    }
}
