//! The fusion parts a [`crate::dmft::Dmft`] can have (the config's [`Fusion`]): each turns the
//! present modalities' tokens into class logits and the mid-fusion features `[S, D]` that
//! distillation matches. A missing modality's tokens are left out — what the training model's
//! key mask computes.

mod skeleton_guided;

use skeleton_guided::SkeletonGuided;

use crate::config::{DmftConfig, Fusion};
use crate::error::Result;
use crate::layers::{AttentionPool, Dense, LayerNorm, Scratch, TransformerLayer};
use crate::names::dmft as names;
use crate::weights::Params;

/// DMFT's temporal mid-fusion: a layer across the tokens of each step, pooling into one fused
/// token per step, joint temporal layers, pooling over time.
#[derive(Debug, Clone)]
struct MidFusion {
    layer: TransformerLayer,
    group_pool: AttentionPool,
    joint: Vec<TransformerLayer>,
    time_pool: AttentionPool,
}

/// Cross-modal self-attention at every level with gated multi-level fusion (seed S9).
#[derive(Debug, Clone)]
struct CrossModalFusion {
    /// Per level: its layers over the joint token set, its pool and its gate.
    levels: Vec<(Vec<TransformerLayer>, AttentionPool, Dense)>,
}

#[derive(Debug, Clone)]
enum Scheme {
    Mid(Box<MidFusion>),
    CrossModal(CrossModalFusion),
    SkeletonGuided(Box<SkeletonGuided>),
}

/// Layer norm and a linear head: a pooled feature `[D]` to class logits.
#[derive(Debug, Clone)]
struct Head {
    norm: LayerNorm,
    head: Dense,
}

impl Head {
    /// The head under `p` named `norm` and `head`.
    fn load(config: &DmftConfig, p: &Params, norm: &str, head: &str) -> Result<Self> {
        Ok(Self {
            norm: LayerNorm::load(&p.pp(norm), config.dim)?,
            head: Dense::load(&p.pp(head), config.dim, config.num_classes)?,
        })
    }

    /// Class logits of a pooled feature; copies the head's input (the normalised pooled
    /// feature: the window's embedding for few-shot enrolment) into `embedding` when asked.
    fn logits(&self, pooled: &[f32], embedding: Option<&mut Vec<f32>>) -> Vec<f32> {
        let mut normed = Vec::with_capacity(pooled.len());
        self.norm.apply(pooled, &mut normed);
        let mut logits = Vec::new();
        self.head.apply(&normed, 1, &mut logits);
        if let Some(embedding) = embedding {
            *embedding = normed;
        }
        logits
    }
}

/// The fusion part: the config's scheme, then (the skeleton branch's, for late skeleton-
/// guided fusion) layer norm and head.
#[derive(Debug, Clone)]
pub struct FusionPart {
    scheme: Scheme,
    head: Head,
}

/// The present modalities' tokens of one window: `tokens[m]` is `levels × S × G_m × D`.
pub struct Present<'a> {
    /// Token sets, `None` for a missing modality.
    pub tokens: &'a [Option<&'a [f32]>],
    /// Token groups of each modality.
    pub groups: &'a [usize],
}

impl Present<'_> {
    fn groups_present(&self) -> usize {
        self.tokens
            .iter()
            .zip(self.groups)
            .filter(|(t, _)| t.is_some())
            .map(|(_, g)| g)
            .sum()
    }
}

impl FusionPart {
    /// Loads the fusion part of `config` from `p` (the `fuse` scope).
    pub fn load(config: &DmftConfig, p: &Params) -> Result<Self> {
        let d = config.dim;
        let transformer = |name: String| TransformerLayer::configured(&p.pp(name), config);
        let scheme = match config.fusion {
            Fusion::Mid => Scheme::Mid(Box::new(MidFusion {
                layer: transformer(names::FUSION_LAYER.into())?,
                group_pool: AttentionPool::load(&p.pp(names::GROUP_POOL), d)?,
                joint: (0..config.joint_layers)
                    .map(|l| transformer(names::joint_layer(l)))
                    .collect::<Result<_>>()?,
                time_pool: AttentionPool::load(&p.pp(names::TIME_POOL), d)?,
            })),
            Fusion::CrossModal => Scheme::CrossModal(CrossModalFusion {
                levels: (0..config.token_levels())
                    .map(|l| {
                        Ok((
                            (0..config.joint_layers)
                                .map(|k| transformer(names::cross_layer(l, k)))
                                .collect::<Result<_>>()?,
                            AttentionPool::load(&p.pp(names::level_pool(l)), d)?,
                            Dense::load(&p.pp(names::level_gate(l)), d, d)?,
                        ))
                    })
                    .collect::<Result<_>>()?,
            }),
            Fusion::SkeletonGuided { late } => {
                Scheme::SkeletonGuided(Box::new(SkeletonGuided::load(config, p, late)?))
            }
        };
        Ok(Self {
            scheme,
            head: Head::load(config, p, names::NORM, names::HEAD)?,
        })
    }

    /// Class logits of one window (token sets already checked against the config); copies
    /// the mid-fusion features `[S, D]` into `features` and the head's input `[D]` into
    /// `embedding` when asked (late skeleton-guided fusion has two heads and leaves
    /// `embedding` empty).
    pub fn logits(
        &self,
        config: &DmftConfig,
        present: &Present,
        features: Option<&mut Vec<f32>>,
        embedding: Option<&mut Vec<f32>>,
        scratch: &mut Scratch,
    ) -> Vec<f32> {
        let pooled = match &self.scheme {
            Scheme::Mid(mid) => mid.apply(config, present, features, scratch),
            Scheme::CrossModal(cross) => cross.apply(config, present, features, scratch),
            Scheme::SkeletonGuided(sga) => {
                return sga.logits(config, &self.head, present, features, embedding, scratch)
            }
        };
        self.head.logits(&pooled, embedding)
    }
}

impl MidFusion {
    /// The pooled feature `[D]` of one window.
    fn apply(
        &self,
        config: &DmftConfig,
        present: &Present,
        features: Option<&mut Vec<f32>>,
        scratch: &mut Scratch,
    ) -> Vec<f32> {
        let (s_len, d) = (config.steps(), config.dim);
        let n = present.groups_present();
        // All present tokens as [S, G_present, D]: one fusion layer call over S sequences.
        let mut step_tokens = Vec::with_capacity(s_len * n * d);
        for s in 0..s_len {
            for (t, &g) in present.tokens.iter().zip(present.groups) {
                if let Some(t) = t {
                    step_tokens.extend_from_slice(&t[s * g * d..(s + 1) * g * d]);
                }
            }
        }
        self.layer.apply(&mut step_tokens, n, scratch);
        let mut fused = vec![0f32; s_len * d];
        let mut scores = Vec::new();
        for (s, step) in step_tokens.chunks_exact(n * d).enumerate() {
            self.group_pool
                .apply(step, n, &mut scores, &mut fused[s * d..(s + 1) * d]);
        }
        if let Some(features) = features {
            features.clone_from(&fused);
        }
        for layer in &self.joint {
            layer.apply(&mut fused, s_len, scratch);
        }
        let mut pooled = vec![0f32; d];
        self.time_pool
            .apply(&fused, s_len, &mut scores, &mut pooled);
        pooled
    }
}

impl CrossModalFusion {
    /// The gated sum of the levels' pooled features `[D]`; the features are the last level's
    /// tokens averaged over the present groups of each step.
    fn apply(
        &self,
        config: &DmftConfig,
        present: &Present,
        features: Option<&mut Vec<f32>>,
        scratch: &mut Scratch,
    ) -> Vec<f32> {
        let (s_len, d) = (config.steps(), config.dim);
        let n = s_len * present.groups_present();
        let mut out = vec![0f32; d];
        let (mut joint, mut scores, mut feature, mut gate) = (
            Vec::with_capacity(n * d),
            Vec::new(),
            vec![0f32; d],
            Vec::new(),
        );
        for (l, (layers, pool, gate_layer)) in self.levels.iter().enumerate() {
            // The joint token set: each present modality's level-l tokens, in modality order.
            joint.clear();
            for (t, &g) in present.tokens.iter().zip(present.groups) {
                if let Some(t) = t {
                    let size = s_len * g * d;
                    joint.extend_from_slice(&t[l * size..(l + 1) * size]);
                }
            }
            for layer in layers {
                layer.apply(&mut joint, n, scratch);
            }
            pool.apply(&joint, n, &mut scores, &mut feature);
            gate_layer.apply(&feature, 1, &mut gate);
            for ((o, f), g) in out.iter_mut().zip(&feature).zip(&gate) {
                *o += f / (1.0 + (-g).exp());
            }
        }
        if let Some(features) = features {
            *features = step_means(&joint, present, s_len, d);
        }
        out
    }
}

/// Per step, the mean over the present groups of a joint token set laid out modality by
/// modality as `[S, G_m, D]`.
fn step_means(joint: &[f32], present: &Present, s_len: usize, d: usize) -> Vec<f32> {
    let mut means = vec![0f32; s_len * d];
    let mut offset = 0;
    for (t, &g) in present.tokens.iter().zip(present.groups) {
        if t.is_none() {
            continue;
        }
        for s in 0..s_len {
            for k in 0..g {
                let token = &joint[offset + (s * g + k) * d..offset + (s * g + k + 1) * d];
                for (m, v) in means[s * d..(s + 1) * d].iter_mut().zip(token) {
                    *m += v;
                }
            }
        }
        offset += s_len * g * d;
    }
    let count = present.groups_present() as f32;
    for m in &mut means {
        *m /= count;
    }
    means
}
