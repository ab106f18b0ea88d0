//! The trainable fusion parts (the config's [`Fusion`]), the same functions as the runtime's
//! `har_runtime::fusion` under the same weight names: the modalities' tokens (missing ones
//! masked) → a pooled feature `[B, D]` and the mid-fusion features `[B, S, D]`.
//!
//! - Mid (DMFT, seed S1): at each step a layer across all modalities' tokens, attention
//!   pooling into one fused token, joint temporal layers, pooling over time.
//! - Cross-modal (seed S9, CMSA): at each encoder level, self-attention over the joint token
//!   set of all modalities, an attention pool per level, and a sigmoid gate per level before
//!   the levels are summed (gated multi-level fusion).
//! - Skeleton-guided (seed S2, SGA; [`skeleton_guided`]): the skeleton's joint and body-part
//!   scores weigh the motion near each joint; mid or late fusion of the two branches.

mod skeleton_guided;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Module, VarBuilder};
use har_runtime::names::dmft as names;

use crate::dmft::{DmftConfig, Fusion, FusionOutput, MASKED};
use crate::layers::{linear, AttentionPool, LayerNorm, Linear, Train, TransformerLayer};
use skeleton_guided::SkeletonGuided;

/// DMFT's temporal mid-fusion.
#[derive(Debug, Clone)]
struct MidFusion {
    layer: TransformerLayer,
    group_pool: AttentionPool,
    joint: Vec<TransformerLayer>,
    time_pool: AttentionPool,
}

/// One level of the cross-modal fusion: its layers over the joint token set, pool and gate.
#[derive(Debug, Clone)]
struct Level {
    layers: Vec<TransformerLayer>,
    pool: AttentionPool,
    gate: Linear,
}

#[derive(Debug, Clone)]
enum Scheme {
    Mid(MidFusion),
    CrossModal(Vec<Level>),
    SkeletonGuided(Box<SkeletonGuided>),
}

/// Layer norm and a linear head: pooled features `[B, D]` to class logits `[B, K]`.
#[derive(Debug, Clone)]
struct Head {
    norm: LayerNorm,
    head: Linear,
}

impl Head {
    /// The head under `vb` named `norm` and `head`.
    fn new(config: &DmftConfig, vb: &VarBuilder, norm: &str, head: &str) -> Result<Self> {
        Ok(Self {
            norm: LayerNorm::new(config.dim, vb.pp(norm))?,
            head: linear(config.dim, config.num_classes, vb.pp(head))?,
        })
    }

    fn forward(&self, pooled: &Tensor, train: Train) -> Result<Tensor> {
        self.head.forward(&self.norm.forward(pooled, train)?)
    }
}

/// The fusion part of the config: its scheme, then (the skeleton branch's, for late
/// skeleton-guided fusion) layer norm and head.
#[derive(Debug, Clone)]
pub struct FusionScheme {
    scheme: Scheme,
    head: Head,
    span: tracing::Span,
}

/// What a pooling fusion scheme gives the head.
struct Fused {
    /// Pooled feature `[B, D]`.
    pub pooled: Tensor,
    /// Mid-fusion features `[B, S, D]`.
    pub features: Tensor,
}

impl FusionScheme {
    /// Builds the scheme of `config` under `vb` (the `fuse` scope).
    pub fn new(config: &DmftConfig, vb: &VarBuilder) -> Result<Self> {
        let d = config.dim;
        let transformer = |name: String| TransformerLayer::new(config, vb.pp(name));
        let scheme = match config.fusion {
            Fusion::Mid => Scheme::Mid(MidFusion {
                layer: transformer(names::FUSION_LAYER.into())?,
                group_pool: AttentionPool::new(d, vb.pp(names::GROUP_POOL))?,
                joint: (0..config.joint_layers)
                    .map(|l| transformer(names::joint_layer(l)))
                    .collect::<Result<_>>()?,
                time_pool: AttentionPool::new(d, vb.pp(names::TIME_POOL))?,
            }),
            Fusion::CrossModal => Scheme::CrossModal(
                (0..config.token_levels())
                    .map(|l| {
                        Ok(Level {
                            layers: (0..config.joint_layers)
                                .map(|k| transformer(names::cross_layer(l, k)))
                                .collect::<Result<_>>()?,
                            pool: AttentionPool::new(d, vb.pp(names::level_pool(l)))?,
                            gate: linear(d, d, vb.pp(names::level_gate(l)))?,
                        })
                    })
                    .collect::<Result<_>>()?,
            ),
            Fusion::SkeletonGuided { late } => {
                Scheme::SkeletonGuided(Box::new(SkeletonGuided::new(config, vb, late)?))
            }
        };
        Ok(Self {
            scheme,
            head: Head::new(config, vb, names::NORM, names::HEAD)?,
            span: tracing::trace_span!("fusion"),
        })
    }

    /// Fuses the tokens of every modality (`[B, L·S, G_m, D]` each) with the presence mask
    /// (`[B, M]`, 1 or 0; `None` = all present): logits and mid-fusion features.
    pub fn forward(
        &self,
        config: &DmftConfig,
        tokens: &[Tensor],
        present: Option<&Tensor>,
        train: Train,
    ) -> Result<FusionOutput> {
        let _enter = self.span.enter();
        let fused = match &self.scheme {
            Scheme::Mid(mid) => mid.forward(config, tokens, present, train)?,
            Scheme::CrossModal(levels) => cross_modal(levels, config, tokens, present, train)?,
            Scheme::SkeletonGuided(sga) => {
                return sga.forward(config, &self.head, tokens, present, train)
            }
        };
        Ok(FusionOutput {
            logits: self.head.forward(&fused.pooled, train)?,
            fused: fused.features,
        })
    }
}

/// Per-token keep mask `[B, N]` (1 or 0) over the tokens of every modality, `tokens_of(m)`
/// tokens for modality `m`, from the per-modality mask `[B, M]`.
fn token_keep(present: &Tensor, b: usize, tokens_of: impl Fn(usize) -> usize) -> Result<Tensor> {
    let per_token = (0..present.dim(1)?)
        .map(|m| present.narrow(1, m, 1)?.broadcast_as((b, tokens_of(m))))
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&per_token, 1)
}

impl MidFusion {
    fn forward(
        &self,
        config: &DmftConfig,
        tokens: &[Tensor],
        present: Option<&Tensor>,
        train: Train,
    ) -> Result<Fused> {
        let (b, s, _, d) = tokens[0].dims4()?;
        let all = Tensor::cat(tokens, 2)?;
        let g = all.dim(2)?;
        let bias = match present {
            None => None,
            Some(present) => {
                let keep = token_keep(present, b, |m| config.token_groups(m))?;
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
            self.layer
                .forward(&all.reshape((b * s, g, d))?, tokens_bias.as_ref(), train)?;
        let fused = self
            .group_pool
            .forward(&spatial, pool_bias.as_ref(), train)?
            .reshape((b, s, d))?;
        let mut xs = fused.clone();
        for layer in &self.joint {
            xs = layer.forward(&xs, None, train)?;
        }
        Ok(Fused {
            pooled: self.time_pool.forward(&xs, None, train)?,
            features: fused,
        })
    }
}

/// The cross-modal fusion: per level, the joint token set (modality by modality, `[S, G_m]`
/// each) through its layers and pool, gated; the levels summed. The features are the last
/// level's tokens averaged over the present groups of each step.
fn cross_modal(
    levels: &[Level],
    config: &DmftConfig,
    tokens: &[Tensor],
    present: Option<&Tensor>,
    train: Train,
) -> Result<Fused> {
    let (b, d, s) = (tokens[0].dim(0)?, config.dim, config.steps());
    let per_modality = |m: usize| s * config.token_groups(m);
    let n: usize = (0..tokens.len()).map(per_modality).sum();
    let keep = match present {
        Some(present) => token_keep(present, b, per_modality)?,
        None => Tensor::ones((b, n), DType::F32, &Device::Cpu)?,
    };
    let bias = present.map(|_| (1.0 - &keep)? * MASKED).transpose()?;
    let attention_bias = bias.as_ref().map(|x| x.reshape((b, 1, 1, n))).transpose()?;
    let mut pooled: Option<Tensor> = None;
    let mut joint = None;
    for (l, level) in levels.iter().enumerate() {
        let parts = tokens
            .iter()
            .enumerate()
            .map(|(m, t)| t.narrow(1, l * s, s)?.reshape((b, per_modality(m), d)))
            .collect::<Result<Vec<_>>>()?;
        let mut xs = Tensor::cat(&parts, 1)?;
        for layer in &level.layers {
            xs = layer.forward(&xs, attention_bias.as_ref(), train)?;
        }
        let feature = level.pool.forward(&xs, bias.as_ref(), train)?;
        let gate = (level.gate.forward(&feature)?.neg()?.exp()? + 1.0)?.recip()?;
        let gated = (feature * gate)?;
        pooled = Some(match pooled {
            Some(sum) => (sum + gated)?,
            None => gated,
        });
        joint = Some(xs);
    }
    let (pooled, joint) = match (pooled, joint) {
        (Some(p), Some(j)) => (p, j),
        _ => candle_core::bail!("cross-modal fusion without levels"),
    };
    // Masked mean per step over the groups of every present modality.
    let kept = joint.broadcast_mul(&keep.unsqueeze(2)?)?;
    let mut sum = Tensor::zeros((b, s, d), DType::F32, &Device::Cpu)?;
    let mut count = Tensor::zeros((b, 1, 1), DType::F32, &Device::Cpu)?;
    let mut offset = 0;
    for m in 0..tokens.len() {
        let g = config.token_groups(m);
        sum = (sum
            + kept
                .narrow(1, offset, s * g)?
                .reshape((b, s, g, d))?
                .sum(2)?)?;
        let groups = (keep.narrow(1, offset, 1)? * g as f64)?.reshape((b, 1, 1))?;
        count = (count + groups)?;
        offset += s * g;
    }
    Ok(Fused {
        pooled,
        features: sum.broadcast_div(&count)?,
    })
}
