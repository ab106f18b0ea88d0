//! DMFT: the distilled multi-modal mid-fusion transformer (seed S1), teacher and student.
//!
//! The paper publishes only its outline; the design here is this project's:
//!
//! 1. **Unified representation.** Each modality window `[T, C]` is cut into `S = T / P`
//!    temporal patches. A modality's channels form one or more *groups* (an inertial sensor is
//!    one group; a skeleton has one group per joint); each group's patch (`P × |g|` values) is
//!    projected to `D`. Every token gets a learned group embedding (which sensor / joint) and a
//!    learned temporal position embedding: tokens `[S, G_m, D]` per modality.
//! 2. **Modality encoders** (`modality_layers` blocks per modality, own weights): spatial
//!    attention across the modality's groups at each time step (when it has several), then
//!    temporal attention across the `S` steps of each group. This is the *encoder part* of
//!    the split forward ([`Dmft::encode`]): the dataflow runs it in one node per modality.
//! 3. **Temporal mid-fusion** ([`Dmft::fuse`]): at each time step, attention across the
//!    tokens of all modalities (masked for missing ones), then attention pooling across them:
//!    one fused token per time step, `[S, D]` — the *mid-fusion features* that distillation
//!    matches. `joint_layers` temporal transformer layers follow, then attention pooling over
//!    time, layer norm and a linear head.
//! 4. **Fusion stage** follows from the depths: `modality_layers = 0` fuses right after
//!    tokenisation (early), `joint_layers = 0` fuses at the end (late), both positive is mid.
//! 5. **Student**: the same code from a smaller [`DmftConfig`] (see [`DmftConfig::student`]).
//!
//! A missing modality is given as zero tokens with its mask off; masked scores are −1e9, whose
//! softmax weight is exactly 0 in f32, so the prediction equals one computed without those
//! tokens at all.

use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::{Init, Module, VarBuilder};
use har_runtime::names::dmft as names;
use har_runtime::patch_input::{PATCH_VARIANCE_FLOOR, WINDOW_VARIANCE_FLOOR};
use har_runtime::spectrum::SpectrumTables;

use crate::layers::{linear, AttentionPool, LayerNorm, Linear, Train, TransformerLayer};

pub use har_runtime::config::{DmftConfig, FusionStage, ModalitySpec};

/// Score bias of a masked token.
pub const MASKED: f64 = -1e9;

/// Tokeniser and modality-specific layers of one modality.
#[derive(Debug, Clone)]
pub struct ModalityEncoder {
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

impl ModalityEncoder {
    fn new(config: &DmftConfig, spec: &ModalitySpec, vb: VarBuilder) -> Result<Self> {
        let (d, ffn) = (config.dim, config.dim * config.ffn_mult);
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
                    d,
                    config.heads,
                    ffn,
                    config.dropout,
                    vb.pp(names::spatial_layer(l)),
                )?);
            }
            temporal.push(TransformerLayer::new(
                d,
                config.heads,
                ffn,
                config.dropout,
                vb.pp(names::temporal_layer(l)),
            )?);
        }
        Ok(Self {
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

    /// `[B, T, C]` → tokens `[B, S, G, D]`.
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
        }
        Ok(xs)
    }
}

/// True when `group` is channels `0..c` in order (selecting it is the identity).
fn is_identity(group: &[usize], c: usize) -> bool {
    group.len() == c && group.iter().enumerate().all(|(i, &ch)| i == ch)
}

/// The output of the fusion part.
#[derive(Debug, Clone)]
pub struct FusionOutput {
    /// Class scores `[B, K]`.
    pub logits: Tensor,
    /// Mid-fusion features `[B, S, D]` (one fused token per time step).
    pub fused: Tensor,
}

/// A DMFT model: one encoder per modality and the fusion part.
#[derive(Debug, Clone)]
pub struct Dmft {
    config: DmftConfig,
    encoders: Vec<ModalityEncoder>,
    fusion_layer: TransformerLayer,
    group_pool: AttentionPool,
    joint: Vec<TransformerLayer>,
    time_pool: AttentionPool,
    norm: LayerNorm,
    head: Linear,
    span: tracing::Span,
}

impl Dmft {
    /// Builds the model; parameters come from `vb` (seeded init or a checkpoint).
    pub fn new(config: &DmftConfig, vb: VarBuilder) -> Result<Self> {
        config.validate().map_err(candle_core::Error::msg)?;
        let (d, ffn) = (config.dim, config.dim * config.ffn_mult);
        let encoders = config
            .modalities
            .iter()
            .map(|m| ModalityEncoder::new(config, m, vb.pp(names::encoder(&m.name))))
            .collect::<Result<_>>()?;
        let fuse = vb.pp(names::FUSION);
        Ok(Self {
            config: config.clone(),
            encoders,
            fusion_layer: TransformerLayer::new(
                d,
                config.heads,
                ffn,
                config.dropout,
                fuse.pp(names::FUSION_LAYER),
            )?,
            group_pool: AttentionPool::new(d, fuse.pp(names::GROUP_POOL))?,
            joint: (0..config.joint_layers)
                .map(|l| {
                    TransformerLayer::new(
                        d,
                        config.heads,
                        ffn,
                        config.dropout,
                        fuse.pp(names::joint_layer(l)),
                    )
                })
                .collect::<Result<_>>()?,
            time_pool: AttentionPool::new(d, fuse.pp(names::TIME_POOL))?,
            norm: LayerNorm::new(d, fuse.pp(names::NORM))?,
            head: linear(d, config.num_classes, fuse.pp(names::HEAD))?,
            span: tracing::trace_span!("fuse"),
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &DmftConfig {
        &self.config
    }

    /// Encoder part of modality `m`: `[B, T, C]` → tokens `[B, S, G_m, D]`.
    pub fn encode(&self, m: usize, xs: &Tensor, train: Train) -> Result<Tensor> {
        self.encoders[m].forward(xs, &self.config, train)
    }

    /// Fusion part: the tokens of every modality (`[B, S, G_m, D]` each) and which modalities
    /// are present per window (`[B, M]`, 1 or 0; `None` = all present).
    pub fn fuse(
        &self,
        tokens: &[Tensor],
        present: Option<&Tensor>,
        train: Train,
    ) -> Result<FusionOutput> {
        let _enter = self.span.enter();
        let (b, s, _, d) = tokens[0].dims4()?;
        let all = Tensor::cat(tokens, 2)?;
        let g = all.dim(2)?;
        let bias = match present {
            None => None,
            Some(present) => {
                // Per-token mask [B, G] from the per-modality mask [B, M].
                let per_token = tokens
                    .iter()
                    .enumerate()
                    .map(|(m, t)| present.narrow(1, m, 1)?.broadcast_as((b, t.dim(2)?)))
                    .collect::<Result<Vec<_>>>()?;
                let keep = Tensor::cat(&per_token, 1)?;
                Some(((1.0 - keep)? * MASKED)?)
            }
        };
        let tokens_bias = match &bias {
            Some(bias) => Some(
                bias.reshape((b, 1, 1, g))?
                    .broadcast_as((b, s, 1, g))?
                    .reshape((b * s, 1, 1, g))?,
            ),
            None => None,
        };
        let pool_bias = match &bias {
            Some(bias) => Some(
                bias.reshape((b, 1, g))?
                    .broadcast_as((b, s, g))?
                    .reshape((b * s, g))?,
            ),
            None => None,
        };
        let spatial =
            self.fusion_layer
                .forward(&all.reshape((b * s, g, d))?, tokens_bias.as_ref(), train)?;
        let fused = self
            .group_pool
            .forward(&spatial, pool_bias.as_ref(), train)?
            .reshape((b, s, d))?;
        let mut xs = fused.clone();
        for layer in &self.joint {
            xs = layer.forward(&xs, None, train)?;
        }
        let pooled = self.time_pool.forward(&xs, None, train)?;
        let logits = self.head.forward(&self.norm.forward(&pooled, train)?)?;
        Ok(FusionOutput { logits, fused })
    }

    /// Monolithic forward: every modality's `[B, T, C]` input, optional presence mask `[B, M]`.
    pub fn forward(
        &self,
        inputs: &[Tensor],
        present: Option<&Tensor>,
        train: Train,
    ) -> Result<FusionOutput> {
        let tokens = inputs
            .iter()
            .enumerate()
            .map(|(m, xs)| self.encode(m, xs, train))
            .collect::<Result<Vec<_>>>()?;
        self.fuse(&tokens, present, train)
    }

    /// Fusion with some modalities missing (`None`): zero tokens, masked.
    pub fn fuse_available(&self, tokens: &[Option<Tensor>], train: Train) -> Result<FusionOutput> {
        let reference = tokens
            .iter()
            .flatten()
            .next()
            .ok_or_else(|| candle_core::Error::msg("no modality present"))?;
        let (b, s, _, d) = reference.dims4()?;
        let mut full = Vec::with_capacity(tokens.len());
        let mut present = Vec::with_capacity(tokens.len());
        for (m, t) in tokens.iter().enumerate() {
            let g = self.config.modalities[m].groups.len();
            full.push(match t {
                Some(t) => t.clone(),
                None => Tensor::zeros((b, s, g, d), DType::F32, &Device::Cpu)?,
            });
            present.push(if t.is_some() { 1f32 } else { 0f32 });
        }
        let mask = Tensor::from_vec(present, (1, tokens.len()), &Device::Cpu)?
            .broadcast_as((b, tokens.len()))?
            .contiguous()?;
        self.fuse(&full, Some(&mask), train)
    }
}

/// Class probabilities from logits (softmax over the last dimension).
pub fn probabilities(logits: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax(logits, D::Minus1)
}
