//! Skeleton-guided two-level attention (seed S2, `sga` / `sga-late`), the trainable twin of
//! the runtime's `fusion::skeleton_guided` (which spells the scheme out step by step). Here
//! every window of the batch runs both paths a missing side could need (the guided motion
//! and the plain motion pool), and the presence mask picks: a missing skeleton's zero tokens
//! and a missing motion sensor's masked keys never reach the result.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Init, Module, VarBuilder};
use har_runtime::names::dmft as names;

use super::{token_keep, Head};
use crate::dmft::{DmftConfig, FusionOutput, MASKED};
use crate::layers::{linear, softmax, AttentionPool, Linear, Train, TransformerLayer};

/// Temporal layers and a pool over time.
#[derive(Debug, Clone)]
struct Branch {
    layers: Vec<TransformerLayer>,
    time_pool: AttentionPool,
}

impl Branch {
    fn new(
        config: &DmftConfig,
        vb: &VarBuilder,
        layer: fn(usize) -> String,
        pool: &str,
    ) -> Result<Self> {
        let d = config.dim;
        Ok(Self {
            layers: (0..config.joint_layers)
                .map(|l| TransformerLayer::new(config, vb.pp(layer(l))))
                .collect::<Result<_>>()?,
            time_pool: AttentionPool::new(d, vb.pp(pool))?,
        })
    }

    /// Step features `[B, S, D]` → pooled `[B, D]`.
    fn forward(&self, steps: &Tensor, train: Train) -> Result<Tensor> {
        let mut xs = steps.clone();
        for layer in &self.layers {
            xs = layer.forward(&xs, None, train)?;
        }
        self.time_pool.forward(&xs, None, train)
    }
}

/// The late scheme's motion branch and mixing logits.
#[derive(Debug, Clone)]
struct Late {
    motion: Branch,
    head: Head,
    mix: Tensor,
}

/// The skeleton-guided fusion (its head is the fusion part's).
#[derive(Debug, Clone)]
pub(super) struct SkeletonGuided {
    skeleton: usize,
    /// The other (motion) modalities, in order.
    motion: Vec<usize>,
    /// Joint indices part by part (`u32`), and each part's size.
    order: Tensor,
    part_sizes: Vec<usize>,
    joint_pool: AttentionPool,
    part_pool: AttentionPool,
    joint_query: Linear,
    motion_key: Linear,
    motion_pool: AttentionPool,
    branch: Branch,
    late: Option<Late>,
}

/// Per-window presence `[B]` (1 or 0) of the skeleton and of any motion modality, and the
/// motion tokens' score bias `[B, K]`.
struct Presence {
    skeleton: Tensor,
    motion: Tensor,
    motion_bias: Tensor,
}

impl SkeletonGuided {
    /// The scheme of `config` under the fusion part's `vb`.
    pub(super) fn new(config: &DmftConfig, vb: &VarBuilder, late: bool) -> Result<Self> {
        let d = config.dim;
        let (skeleton, parts) = config
            .skeleton_guided_parts()
            .map_err(candle_core::Error::msg)?;
        let order: Vec<u32> = parts.iter().flatten().map(|&j| j as u32).collect();
        let late = late
            .then(|| -> Result<Late> {
                Ok(Late {
                    motion: Branch::new(config, vb, names::motion_layer, names::MOTION_TIME_POOL)?,
                    head: Head::new(config, vb, names::MOTION_NORM, names::MOTION_HEAD)?,
                    mix: vb.get_with_hints(2, names::BRANCH_MIX, Init::Const(0.0))?,
                })
            })
            .transpose()?;
        Ok(Self {
            skeleton,
            motion: (0..config.modalities.len())
                .filter(|&m| m != skeleton)
                .collect(),
            order: Tensor::new(order, &Device::Cpu)?,
            part_sizes: parts.iter().map(Vec::len).collect(),
            joint_pool: AttentionPool::new(d, vb.pp(names::JOINT_POOL))?,
            part_pool: AttentionPool::new(d, vb.pp(names::PART_POOL))?,
            joint_query: linear(d, d, vb.pp(names::JOINT_QUERY))?,
            motion_key: linear(d, d, vb.pp(names::MOTION_KEY))?,
            motion_pool: AttentionPool::new(d, vb.pp(names::MOTION_POOL))?,
            branch: Branch::new(config, vb, names::joint_layer, names::TIME_POOL)?,
            late,
        })
    }

    fn presence(
        &self,
        config: &DmftConfig,
        present: Option<&Tensor>,
        b: usize,
        k: usize,
    ) -> Result<Presence> {
        let Some(present) = present else {
            return Ok(Presence {
                skeleton: Tensor::ones(b, DType::F32, &Device::Cpu)?,
                motion: Tensor::ones(b, DType::F32, &Device::Cpu)?,
                motion_bias: Tensor::zeros((b, k), DType::F32, &Device::Cpu)?,
            });
        };
        let indices: Vec<u32> = self.motion.iter().map(|&m| m as u32).collect();
        let motion = present.index_select(&Tensor::new(indices, &Device::Cpu)?, 1)?;
        let keep = token_keep(&motion, b, |i| config.token_groups(self.motion[i]))?;
        Ok(Presence {
            skeleton: present.narrow(1, self.skeleton, 1)?.squeeze(1)?,
            motion: motion.max(1)?,
            motion_bias: ((1.0 - keep)? * MASKED)?,
        })
    }

    /// Logits and step features (the present sides summed) of a batch: tokens `[B, S, G_m,
    /// D]` per modality, presence `[B, M]`.
    pub(super) fn forward(
        &self,
        config: &DmftConfig,
        head: &Head,
        tokens: &[Tensor],
        present: Option<&Tensor>,
        train: Train,
    ) -> Result<FusionOutput> {
        let (b, s, j, d) = tokens[self.skeleton].dims4()?;
        let bs = b * s;
        let joints = tokens[self.skeleton]
            .reshape((bs, j, d))?
            .index_select(&self.order, 1)?;
        let motion: Vec<Tensor> = self.motion.iter().map(|&m| tokens[m].clone()).collect();
        let motion = Tensor::cat(&motion, 2)?;
        let k = motion.dim(2)?;
        let motion = motion.reshape((bs, k, d))?;
        let on = self.presence(config, present, b, k)?;
        let per_step = |x: &Tensor| -> Result<Tensor> {
            let cols = x.elem_count() / b;
            x.reshape((b, 1, cols))?
                .broadcast_as((b, s, cols))?
                .reshape((bs, cols))
        };
        let motion_bias = per_step(&on.motion_bias)?;
        // Each joint's motion: attention of its query over the step's motion keys.
        let queries = self.joint_query.forward(&joints)?;
        let keys = self.motion_key.forward(&motion)?;
        let scores = (queries.matmul(&keys.t()?)? / (d as f64).sqrt())?
            .broadcast_add(&motion_bias.unsqueeze(1)?)?;
        let near = softmax(&scores, train)?.matmul(&motion)?;
        // Level 1: joints within each part (their weights weigh the near motion too).
        let (mut part_skeleton, mut part_motion) = (Vec::new(), Vec::new());
        let mut start = 0;
        for &size in &self.part_sizes {
            let members = joints.narrow(1, start, size)?;
            let weights = self.joint_pool.weights(&members, None, train)?;
            part_skeleton.push(weights.matmul(&members)?);
            part_motion.push(weights.matmul(&near.narrow(1, start, size)?)?);
            start += size;
        }
        let part_skeleton = Tensor::cat(&part_skeleton, 1)?;
        let part_motion = Tensor::cat(&part_motion, 1)?;
        // Level 2: the parts.
        let weights = self.part_pool.weights(&part_skeleton, None, train)?;
        let skeleton = weights.matmul(&part_skeleton)?.reshape((b, s, d))?;
        let guided = weights.matmul(&part_motion)?.reshape((b, s, d))?;
        let pooled = self
            .motion_pool
            .forward(&motion, Some(&motion_bias), train)?
            .reshape((b, s, d))?;
        let sk = on.skeleton.reshape((b, 1, 1))?;
        let mo = on.motion.reshape((b, 1, 1))?;
        let motion = (guided.broadcast_mul(&sk)? + pooled.broadcast_mul(&(1.0 - &sk)?)?)?;
        let fused = (skeleton.broadcast_mul(&sk)? + motion.broadcast_mul(&mo)?)?;
        let Some(late) = &self.late else {
            return Ok(FusionOutput {
                logits: head.forward(&self.branch.forward(&fused, train)?, train)?,
                fused,
            });
        };
        let skeleton_logits = head.forward(&self.branch.forward(&skeleton, train)?, train)?;
        let motion_logits = late
            .head
            .forward(&late.motion.forward(&motion, train)?, train)?;
        // Softmax of the mixing logits over the present branches.
        let mix = late.mix.exp()?;
        let w_sk = (on.skeleton * mix.narrow(0, 0, 1)?.broadcast_as(b)?)?.unsqueeze(1)?;
        let w_mo = (on.motion * mix.narrow(0, 1, 1)?.broadcast_as(b)?)?.unsqueeze(1)?;
        let total = (&w_sk + &w_mo)?;
        let logits = (skeleton_logits.broadcast_mul(&w_sk)?
            + motion_logits.broadcast_mul(&w_mo)?)?
        .broadcast_div(&total)?;
        Ok(FusionOutput { logits, fused })
    }
}
