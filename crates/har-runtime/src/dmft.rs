//! DMFT's forward pass in the runtime, assembled from [`crate::layers`] by its config (the
//! architecture, seed S1, is described in full in the training crate's `dmft` module; the
//! two are tested equal to 1e-4 over random configurations).
//!
//! Per modality ([`Dmft::encode`], one encode node each in the dataflow): patch tokens (and
//! the spectral step) of each channel group, plus group and position embeddings, then
//! `modality_layers` × (spatial layer across groups when there are several, temporal layer
//! across steps). Fusion ([`Dmft::fuse`], the fuse node): at each step a layer across the
//! tokens of all present modalities and attention pooling into one fused token; joint
//! temporal layers; attention pooling over time; layer norm; the head. A missing modality's
//! tokens are left out of fusion — exactly what the training model's key mask computes.

use tracing::trace_span;

use crate::config::DmftConfig;
use crate::error::{Result, RuntimeError};
use crate::kernels::{softmax_in_place, transpose_tokens};
use crate::layers::{
    AttentionPool, Dense, LayerNorm, PatchTokenizer, Scratch, SpectralTokenizer, TransformerLayer,
};
use crate::names::dmft as names;
use crate::weights::{Params, Weights};

/// Tokeniser and modality-specific layers of one modality.
#[derive(Debug, Clone)]
struct ModalityEncoder {
    name: String,
    channels: usize,
    groups: usize,
    patches: PatchTokenizer,
    spectral: Option<SpectralTokenizer>,
    group_embedding: Vec<f32>,
    position_embedding: Vec<f32>,
    spatial: Vec<TransformerLayer>,
    temporal: Vec<TransformerLayer>,
}

impl ModalityEncoder {
    fn load(config: &DmftConfig, m: usize, p: &Params) -> Result<Self> {
        let spec = &config.modalities[m];
        let (d, ffn, heads) = (config.dim, config.dim * config.ffn_mult, config.heads);
        let g = spec.groups.len();
        let options = config.patch_options();
        let layers = |name: fn(usize) -> String| {
            (0..config.modality_layers)
                .map(|l| TransformerLayer::load(&p.pp(name(l)), d, heads, ffn))
                .collect::<Result<Vec<_>>>()
        };
        Ok(Self {
            name: spec.name.clone(),
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
}

/// The fusion part: fusion layer and pool, joint layers, time pool, norm and head.
#[derive(Debug, Clone)]
struct Fusion {
    layer: TransformerLayer,
    group_pool: AttentionPool,
    joint: Vec<TransformerLayer>,
    time_pool: AttentionPool,
    norm: LayerNorm,
    head: Dense,
}

impl Fusion {
    fn load(config: &DmftConfig, p: &Params) -> Result<Self> {
        let (d, ffn, heads) = (config.dim, config.dim * config.ffn_mult, config.heads);
        Ok(Self {
            layer: TransformerLayer::load(&p.pp(names::FUSION_LAYER), d, heads, ffn)?,
            group_pool: AttentionPool::load(&p.pp(names::GROUP_POOL), d)?,
            joint: (0..config.joint_layers)
                .map(|l| TransformerLayer::load(&p.pp(names::joint_layer(l)), d, heads, ffn))
                .collect::<Result<_>>()?,
            time_pool: AttentionPool::load(&p.pp(names::TIME_POOL), d)?,
            norm: LayerNorm::load(&p.pp(names::NORM), d)?,
            head: Dense::load(&p.pp(names::HEAD), d, config.num_classes)?,
        })
    }
}

/// The fusion part's result for one window.
#[derive(Debug, Clone, PartialEq)]
pub struct FusionOutput {
    /// Class logits (before the softmax).
    pub logits: Vec<f32>,
    /// Mid-fusion features `S × D`, row-major: one fused token per time step.
    pub fused: Vec<f32>,
}

/// A DMFT ready to run one window at a time.
#[derive(Debug, Clone)]
pub struct Dmft {
    config: DmftConfig,
    encoders: Vec<ModalityEncoder>,
    fusion: Fusion,
    scratch: Scratch,
}

impl Dmft {
    /// Assembles the model of `config` from `weights`: every tensor must be there with the
    /// config's shape, and no other may be.
    pub fn load(config: &DmftConfig, weights: &Weights) -> Result<Self> {
        config.validate().map_err(RuntimeError::Invalid)?;
        let root = weights.root();
        let encoders = (0..config.modalities.len())
            .map(|m| {
                let p = root.pp(names::encoder(&config.modalities[m].name));
                ModalityEncoder::load(config, m, &p)
            })
            .collect::<Result<_>>()?;
        let fusion = Fusion::load(config, &root.pp(names::FUSION))?;
        weights.finish()?;
        Ok(Self {
            config: config.clone(),
            encoders,
            fusion,
            scratch: Scratch::default(),
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &DmftConfig {
        &self.config
    }

    /// Encoder part of modality `m` for one window `x` (`T × C`, normalised): tokens
    /// `S × G × D`, row-major.
    pub fn encode(&mut self, m: usize, x: &[f32]) -> Result<Vec<f32>> {
        let _span = trace_span!("dmft.encode", m).entered();
        let (t, s_len, d) = (self.config.window_len, self.config.steps(), self.config.dim);
        let patch_steps = self.config.patch_steps();
        let enc = self
            .encoders
            .get(m)
            .ok_or_else(|| RuntimeError::Invalid(format!("no modality {m}")))?;
        let c = enc.channels;
        if x.len() != t * c {
            return Err(RuntimeError::Invalid(format!(
                "modality `{}`: {} values, expected {t} × {c}",
                enc.name,
                x.len()
            )));
        }
        let g_len = enc.groups;
        let mut tokens = vec![0f32; s_len * g_len * d];
        let mut patches = Vec::new();
        let mut projected = Vec::new();
        // The spectral step's projection per group (`G × D`), when the model has one.
        let mut spectral = Vec::new();
        if let Some(s) = &enc.spectral {
            s.apply(x, c, &mut spectral);
        }
        let detail = enc.patches.window_input(x, c);
        for g in 0..g_len {
            enc.patches
                .apply_group(g, x, c, &detail, &mut patches, &mut projected);
            debug_assert_eq!(projected.len(), patch_steps * d);
            if enc.spectral.is_some() {
                // The spectral step: one more projected row after the patch steps.
                projected.extend_from_slice(&spectral[g * d..(g + 1) * d]);
            }
            for s in 0..s_len {
                let token = &mut tokens[(s * g_len + g) * d..(s * g_len + g + 1) * d];
                let (projection, group_emb, position) = (
                    &projected[s * d..(s + 1) * d],
                    &enc.group_embedding[g * d..(g + 1) * d],
                    &enc.position_embedding[s * d..(s + 1) * d],
                );
                for k in 0..d {
                    token[k] = projection[k] + group_emb[k] + position[k];
                }
            }
        }
        // Tokens are [S, G, D]: spatial layers see S sequences of G; temporal layers need the
        // transposed [G, S, D] layout (the same buffer when G = 1).
        let mut by_group = vec![0f32; s_len * g_len * d];
        for (l, temporal) in enc.temporal.iter().enumerate() {
            if let Some(spatial) = enc.spatial.get(l) {
                spatial.apply(&mut tokens, g_len, &mut self.scratch);
            }
            if g_len == 1 {
                temporal.apply(&mut tokens, s_len, &mut self.scratch);
                continue;
            }
            transpose_tokens(&tokens, s_len, g_len, d, &mut by_group);
            temporal.apply(&mut by_group, s_len, &mut self.scratch);
            transpose_tokens(&by_group, g_len, s_len, d, &mut tokens);
        }
        Ok(tokens)
    }

    /// Fusion part for one window: each modality's tokens (`None` when missing); returns the
    /// class probabilities.
    pub fn fuse(&mut self, tokens: &[Option<&[f32]>]) -> Result<Vec<f32>> {
        let mut logits = self.fuse_logits(tokens, None)?;
        softmax_in_place(&mut logits);
        Ok(logits)
    }

    /// Fusion part for one window, returning the class logits and the mid-fusion features
    /// (what distillation needs from a teacher).
    pub fn fuse_with_features(&mut self, tokens: &[Option<&[f32]>]) -> Result<FusionOutput> {
        let mut fused = Vec::new();
        let logits = self.fuse_logits(tokens, Some(&mut fused))?;
        Ok(FusionOutput { logits, fused })
    }

    /// The class logits of one window; copies the mid-fusion features into `features` when
    /// asked (inference does not pay for the copy).
    fn fuse_logits(
        &mut self,
        tokens: &[Option<&[f32]>],
        features: Option<&mut Vec<f32>>,
    ) -> Result<Vec<f32>> {
        let _span = trace_span!("dmft.fuse").entered();
        let (s_len, d) = (self.config.steps(), self.config.dim);
        if tokens.len() != self.encoders.len() || tokens.iter().all(|t| t.is_none()) {
            return Err(RuntimeError::Invalid(format!(
                "fuse needs {} token sets with at least one present",
                self.encoders.len()
            )));
        }
        let present: usize = tokens
            .iter()
            .zip(&self.encoders)
            .filter(|(t, _)| t.is_some())
            .map(|(_, e)| e.groups)
            .sum();
        // All present tokens as [S, G_present, D]: one fusion layer call over S sequences.
        let mut step_tokens = Vec::with_capacity(s_len * present * d);
        for s in 0..s_len {
            for (m, (t, enc)) in tokens.iter().zip(&self.encoders).enumerate() {
                if let Some(t) = t {
                    let g = enc.groups;
                    if t.len() != s_len * g * d {
                        return Err(RuntimeError::Invalid(format!(
                            "modality {m}: {} token values, expected {}",
                            t.len(),
                            s_len * g * d
                        )));
                    }
                    step_tokens.extend_from_slice(&t[s * g * d..(s + 1) * g * d]);
                }
            }
        }
        let fusion = &self.fusion;
        fusion
            .layer
            .apply(&mut step_tokens, present, &mut self.scratch);
        let mut fused = vec![0f32; s_len * d];
        let mut scores = Vec::new();
        for (s, step) in step_tokens.chunks_exact(present * d).enumerate() {
            fusion
                .group_pool
                .apply(step, present, &mut scores, &mut fused[s * d..(s + 1) * d]);
        }
        if let Some(features) = features {
            features.clone_from(&fused);
        }
        for layer in &fusion.joint {
            layer.apply(&mut fused, s_len, &mut self.scratch);
        }
        let mut pooled = vec![0f32; d];
        fusion
            .time_pool
            .apply(&fused, s_len, &mut scores, &mut pooled);
        let mut normed = Vec::with_capacity(d);
        fusion.norm.apply(&pooled, &mut normed);
        let mut logits = Vec::new();
        fusion.head.apply(&normed, 1, &mut logits);
        Ok(logits)
    }

    /// Class probabilities of one window with every modality (`inputs[m]` is `T × C_m`).
    pub fn predict(&mut self, inputs: &[&[f32]]) -> Result<Vec<f32>> {
        let tokens = inputs
            .iter()
            .enumerate()
            .map(|(m, x)| self.encode(m, x))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<Option<&[f32]>> = tokens.iter().map(|t| Some(t.as_slice())).collect();
        self.fuse(&refs)
    }

    /// Class probabilities of one window with only the modalities whose input is `Some`.
    pub fn predict_available(&mut self, inputs: &[Option<&[f32]>]) -> Result<Vec<f32>> {
        let tokens = inputs
            .iter()
            .enumerate()
            .map(|(m, x)| x.map(|x| self.encode(m, x)).transpose())
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<Option<&[f32]>> = tokens.iter().map(|t| t.as_deref()).collect();
        self.fuse(&refs)
    }
}
