//! Skeleton-guided two-level attention (seed S2, `sga` / `sga-late`; the config's
//! [`crate::config::Fusion::SkeletonGuided`] documents the scheme). At each step, for the skeleton's joint
//! tokens `x_j` and the present motion tokens `u_k`:
//!
//! - joint scores `a_j`: an attention pool's scores, softmax within each body part;
//! - part features `P_p = Σ_{j∈p} a_j x_j`, part scores `b_p` (softmax over parts);
//! - skeleton feature `Σ_p b_p P_p`;
//! - motion near joint `j`: `m_j = Σ_k softmax_k(q_j · k_k / √D) u_k`, `q_j` the joint's
//!   query, `k_k` the motion token's key;
//! - motion feature `Σ_p b_p Σ_{j∈p} a_j m_j` (the skeleton's scores weigh the motion), or,
//!   without the skeleton, the motion tokens attention-pooled.
//!
//! Mid: the two step features summed, then temporal layers, a pool over time and the head.
//! Late: each branch its own layers, pool and head, the logits mixed by softmax weights over
//! the present branches.

use super::{Head, Present};
use crate::config::DmftConfig;
use crate::error::Result;
use crate::kernels::{axpy, dot, softmax_in_place};
use crate::layers::{AttentionPool, Dense, Scratch, TransformerLayer};
use crate::names::dmft as names;
use crate::weights::Params;

/// Temporal layers and a pool over time: a branch's step features to its pooled feature.
#[derive(Debug, Clone)]
struct Branch {
    layers: Vec<TransformerLayer>,
    time_pool: AttentionPool,
}

impl Branch {
    fn load(
        config: &DmftConfig,
        p: &Params,
        layer: fn(usize) -> String,
        pool: &str,
    ) -> Result<Self> {
        let d = config.dim;
        Ok(Self {
            layers: (0..config.joint_layers)
                .map(|l| TransformerLayer::configured(&p.pp(layer(l)), config))
                .collect::<Result<_>>()?,
            time_pool: AttentionPool::load(&p.pp(pool), d)?,
        })
    }

    /// Pools the step features `[S, D]` (consumed as the layers' buffer).
    fn apply(&self, mut steps: Vec<f32>, s_len: usize, scratch: &mut Scratch) -> Vec<f32> {
        for layer in &self.layers {
            layer.apply(&mut steps, s_len, scratch);
        }
        let mut pooled = vec![0f32; steps.len() / s_len.max(1)];
        let mut scores = Vec::new();
        self.time_pool
            .apply(&steps, s_len, &mut scores, &mut pooled);
        pooled
    }
}

/// The late scheme's motion branch and mixing logits.
#[derive(Debug, Clone)]
struct Late {
    motion: Branch,
    head: Head,
    mix: Vec<f32>,
}

/// The skeleton-guided fusion part (its head is the fusion part's).
#[derive(Debug, Clone)]
pub(super) struct SkeletonGuided {
    /// The skeleton modality.
    skeleton: usize,
    /// Joint indices part by part, and each part's size.
    order: Vec<usize>,
    part_sizes: Vec<usize>,
    joint_pool: AttentionPool,
    part_pool: AttentionPool,
    joint_query: Dense,
    motion_key: Dense,
    motion_pool: AttentionPool,
    /// Mid: the fused steps' branch; late: the skeleton branch.
    branch: Branch,
    late: Option<Late>,
}

/// One step's features from each present side.
struct StepFeatures {
    skeleton: Option<Vec<f32>>,
    motion: Option<Vec<f32>>,
}

impl SkeletonGuided {
    /// Loads the scheme under the fusion part's `p`.
    pub(super) fn load(config: &DmftConfig, p: &Params, late: bool) -> Result<Self> {
        let d = config.dim;
        let (skeleton, parts) = config
            .skeleton_guided_parts()
            .map_err(crate::error::RuntimeError::Invalid)?;
        let late = late
            .then(|| -> Result<Late> {
                Ok(Late {
                    motion: Branch::load(config, p, names::motion_layer, names::MOTION_TIME_POOL)?,
                    head: Head::load(config, p, names::MOTION_NORM, names::MOTION_HEAD)?,
                    mix: p.get(names::BRANCH_MIX, &[2])?,
                })
            })
            .transpose()?;
        Ok(Self {
            skeleton,
            order: parts.iter().flatten().copied().collect(),
            part_sizes: parts.iter().map(Vec::len).collect(),
            joint_pool: AttentionPool::load(&p.pp(names::JOINT_POOL), d)?,
            part_pool: AttentionPool::load(&p.pp(names::PART_POOL), d)?,
            joint_query: Dense::load(&p.pp(names::JOINT_QUERY), d, d)?,
            motion_key: Dense::load(&p.pp(names::MOTION_KEY), d, d)?,
            motion_pool: AttentionPool::load(&p.pp(names::MOTION_POOL), d)?,
            branch: Branch::load(config, p, names::joint_layer, names::TIME_POOL)?,
            late,
        })
    }

    /// Class logits of one window; the step features (the present sides summed) go to
    /// `features` when asked.
    pub(super) fn logits(
        &self,
        config: &DmftConfig,
        head: &Head,
        present: &Present,
        features: Option<&mut Vec<f32>>,
        embedding: Option<&mut Vec<f32>>,
        scratch: &mut Scratch,
    ) -> Vec<f32> {
        let (s_len, d) = (config.steps(), config.dim);
        let mut skeleton = Vec::with_capacity(s_len * d);
        let mut motion = Vec::with_capacity(s_len * d);
        for s in 0..s_len {
            let step = self.step(present, s, d);
            skeleton.extend(step.skeleton.unwrap_or_default());
            motion.extend(step.motion.unwrap_or_default());
        }
        let sum: Vec<f32> = match (skeleton.is_empty(), motion.is_empty()) {
            (false, false) => skeleton.iter().zip(&motion).map(|(a, b)| a + b).collect(),
            (false, true) => skeleton.clone(),
            _ => motion.clone(),
        };
        if let Some(features) = features {
            features.clone_from(&sum);
        }
        let Some(late) = &self.late else {
            return head.logits(&self.branch.apply(sum, s_len, scratch), embedding);
        };
        let mut branches = Vec::with_capacity(2);
        if !skeleton.is_empty() {
            let logits = head.logits(&self.branch.apply(skeleton, s_len, scratch), None);
            branches.push((late.mix[0], logits));
        }
        if !motion.is_empty() {
            let logits = late
                .head
                .logits(&late.motion.apply(motion, s_len, scratch), None);
            branches.push((late.mix[1], logits));
        }
        let mut weights: Vec<f32> = branches.iter().map(|(w, _)| *w).collect();
        softmax_in_place(&mut weights);
        let mut logits = vec![0f32; config.num_classes];
        for ((_, branch), w) in branches.iter().zip(weights) {
            axpy(&mut logits, branch, w);
        }
        logits
    }

    /// The skeleton and motion features of step `s`.
    fn step(&self, present: &Present, s: usize, d: usize) -> StepFeatures {
        let step_tokens = |m: usize| {
            present.tokens[m]
                .map(|t| &t[s * present.groups[m] * d..(s + 1) * present.groups[m] * d])
        };
        let motion: Vec<f32> = (0..present.tokens.len())
            .filter(|&m| m != self.skeleton)
            .filter_map(step_tokens)
            .flatten()
            .copied()
            .collect();
        let k = motion.len() / d;
        let mut scores = Vec::new();
        let Some(joints) = step_tokens(self.skeleton) else {
            let mut pooled = vec![0f32; d];
            self.motion_pool.apply(&motion, k, &mut scores, &mut pooled);
            return StepFeatures {
                skeleton: None,
                motion: Some(pooled),
            };
        };
        let near = (k > 0).then(|| self.motion_near_joints(joints, &motion, k, d));
        // Level 1: joints within each part; level 2: the parts.
        let parts = self.part_sizes.len();
        let (mut part_skeleton, mut part_motion) = (vec![0f32; parts * d], vec![0f32; parts * d]);
        let mut rows = Vec::new();
        let mut start = 0;
        for (p, &size) in self.part_sizes.iter().enumerate() {
            let members = &self.order[start..start + size];
            start += size;
            rows.clear();
            for &j in members {
                rows.extend_from_slice(&joints[j * d..(j + 1) * d]);
            }
            let out = &mut part_skeleton[p * d..(p + 1) * d];
            self.joint_pool.apply(&rows, size, &mut scores, out);
            if let Some(near) = &near {
                for (&j, &a) in members.iter().zip(&scores) {
                    axpy(
                        &mut part_motion[p * d..(p + 1) * d],
                        &near[j * d..(j + 1) * d],
                        a,
                    );
                }
            }
        }
        let mut skeleton = vec![0f32; d];
        self.part_pool
            .apply(&part_skeleton, parts, &mut scores, &mut skeleton);
        let motion = near.map(|_| {
            let mut feature = vec![0f32; d];
            for (p, &b) in scores.iter().enumerate() {
                axpy(&mut feature, &part_motion[p * d..(p + 1) * d], b);
            }
            feature
        });
        StepFeatures {
            skeleton: Some(skeleton),
            motion,
        }
    }

    /// Per joint, the motion tokens it attends to: `[J, D]`.
    fn motion_near_joints(&self, joints: &[f32], motion: &[f32], k: usize, d: usize) -> Vec<f32> {
        let j_count = joints.len() / d;
        let (mut queries, mut keys) = (Vec::new(), Vec::new());
        self.joint_query.apply(joints, j_count, &mut queries);
        self.motion_key.apply(motion, k, &mut keys);
        let scale = 1.0 / (d as f32).sqrt();
        let mut near = vec![0f32; j_count * d];
        let mut weights = vec![0f32; k];
        for j in 0..j_count {
            let q = &queries[j * d..(j + 1) * d];
            for (w, key) in weights.iter_mut().zip(keys.chunks_exact(d)) {
                *w = dot(q, key) * scale;
            }
            softmax_in_place(&mut weights);
            for (u, &w) in motion.chunks_exact(d).zip(&weights) {
                axpy(&mut near[j * d..(j + 1) * d], u, w);
            }
        }
        near
    }
}
