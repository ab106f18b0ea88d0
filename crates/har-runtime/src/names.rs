//! The names of every weight, in one place for both engines: the candle training crate creates
//! its parameters under these names (and so saves them), this crate looks them up. A name is a
//! dotted path, one segment per module, as candle's `VarBuilder::pp` builds it:
//! `enc.acc.temporal0.attn.qkv.weight`.
//!
//! ```text
//! enc.<modality>.patch<g>            Dense   patch projection of channel group g
//! enc.<modality>.spectral<g>         Dense   spectral projection of group g (spectral_tokens)
//! enc.<modality>.group_embedding     [G, D]
//! enc.<modality>.position_embedding  [S, D]
//! enc.<modality>.spatial<l>          TransformerLayer across groups (G > 1 only)
//! enc.<modality>.temporal<l>         TransformerLayer across time steps
//! fuse.spatial                       TransformerLayer across all modalities' tokens of a step
//! fuse.group_pool                    AttentionPool of those tokens
//! fuse.joint<l>                      TransformerLayer across the fused steps
//! fuse.time_pool                     AttentionPool over time
//! fuse.norm                          LayerNorm
//! fuse.head                          Dense to the classes
//! fuse.level<l>.{cross<k>,pool,gate}  cross-modal fusion (cmsa, seed S9)
//! fuse.{joint_pool,part_pool,joint_query,motion_key,motion_pool}
//!                                    skeleton-guided fusion (sga, seed S2); sga-late adds
//! fuse.{motion<l>,motion_time_pool,motion_norm,motion_head,branch_mix}
//! ```
//!
//! Inside a layer: Dense `weight` `[out, in]`, `bias` `[out]`; LayerNorm `weight`, `bias`;
//! AttentionPool `query` `[D, 1]`; TransformerLayer `norm1`, `attn.qkv`, `attn.out`, `norm2`,
//! `ffn_in`, `ffn_out`; depthwise convolution `weight` `[C, 1, K]`, `bias` `[C]`; separable
//! convolution `depthwise`, `pointwise`; LSTM / GRU `weight_ih_l0`, `weight_hh_l0`,
//! `bias_ih_l0`, `bias_hh_l0`.

/// Joins a prefix and a name with a dot (the prefix may be empty).
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Dense layer: the weight `[out, in]`.
pub const WEIGHT: &str = "weight";
/// Dense and layer norm: the bias `[out]`.
pub const BIAS: &str = "bias";
/// Attention pooling: the learned query `[D, 1]`.
pub const QUERY: &str = "query";

/// A dense layer quantised to int8 (`har compress quantize`): its `weight` is stored as I8
/// `[out, in]` next to these scales (both F32, positive).
pub mod quantized {
    /// Scale of each output channel `[out]`: `w ≈ weight_scale[o] · q[o, i]`.
    pub const WEIGHT_SCALE: &str = "weight_scale";
    /// Calibrated scale of the layer's input `[1]`: `x ≈ input_scale · q_x`.
    pub const INPUT_SCALE: &str = "input_scale";
}

/// Pre-norm transformer layer parts.
pub mod transformer {
    /// Layer norm before attention.
    pub const NORM1: &str = "norm1";
    /// The attention block.
    pub const ATTENTION: &str = "attn";
    /// Inside the attention block: the joint query/key/value projection `[3D, D]`.
    pub const QKV: &str = "qkv";
    /// Inside the attention block: the output projection `[D, D]`.
    pub const OUT: &str = "out";
    /// Layer norm before the feed-forward block.
    pub const NORM2: &str = "norm2";
    /// Feed-forward expansion `[F, D]`.
    pub const FFN_IN: &str = "ffn_in";
    /// Feed-forward contraction `[D, F]`.
    pub const FFN_OUT: &str = "ffn_out";
}

/// Recurrent layers ([`crate::layers::Lstm`], [`crate::layers::Gru`]): the names candle-nn's
/// `lstm` / `gru` give a single-layer cell, gates stacked in PyTorch's order (LSTM `i, f, g,
/// o`; GRU `r, z, n`).
pub mod recurrent {
    /// Input-to-hidden weights `[G·H, I]` (G = 4 gates for LSTM, 3 for GRU).
    pub const WEIGHT_IH: &str = "weight_ih_l0";
    /// Hidden-to-hidden weights `[G·H, H]`.
    pub const WEIGHT_HH: &str = "weight_hh_l0";
    /// Input-to-hidden bias `[G·H]`.
    pub const BIAS_IH: &str = "bias_ih_l0";
    /// Hidden-to-hidden bias `[G·H]`.
    pub const BIAS_HH: &str = "bias_hh_l0";
}

/// Separable convolution parts ([`crate::layers::SeparableConv1d`]).
pub mod separable {
    /// The depthwise convolution (`weight` `[C, 1, K]`, `bias` `[C]`).
    pub const DEPTHWISE: &str = "depthwise";
    /// The pointwise projection across channels (a dense layer `[C_out, C]`).
    pub const POINTWISE: &str = "pointwise";
}

/// The multi-view fusion module (see [`crate::layers::MultiView`]).
pub mod multiview {
    /// Depthwise convolution along time (a [`super::WEIGHT`] `[C_s, 1, 5]` and a bias).
    pub const TIME: &str = "time";
    /// Depthwise convolution across channels, per axis (`[A, 1, 3]` and a bias).
    pub const CHANNEL: &str = "channel";
    /// Per-channel scale after standardisation `[C_s]`.
    pub const SCALE: &str = "scale";
    /// Per-channel shift after standardisation `[C_s]`.
    pub const SHIFT: &str = "shift";
    /// Taps of the convolution along time.
    pub const TIME_KERNEL: usize = 5;
    /// Taps of the convolution across channels.
    pub const CHANNEL_KERNEL: usize = 3;
}

/// DMFT (see [`crate::dmft`]).
pub mod dmft {
    /// The encoder of a modality.
    pub fn encoder(modality: &str) -> String {
        format!("enc.{modality}")
    }
    /// Patch projection of channel group `g` (inside an encoder).
    pub fn patch_projection(g: usize) -> String {
        format!("patch{g}")
    }
    /// Spectral projection of channel group `g` (inside an encoder).
    pub fn spectral_projection(g: usize) -> String {
        format!("spectral{g}")
    }
    /// Learned embedding of each channel group `[G, D]` (inside an encoder).
    pub const GROUP_EMBEDDING: &str = "group_embedding";
    /// Learned embedding of each time step `[S, D]` (inside an encoder).
    pub const POSITION_EMBEDDING: &str = "position_embedding";
    /// Modality layer `l` across channel groups (inside an encoder).
    pub fn spatial_layer(l: usize) -> String {
        format!("spatial{l}")
    }
    /// Modality layer `l` across time steps (inside an encoder).
    pub fn temporal_layer(l: usize) -> String {
        format!("temporal{l}")
    }
    /// The multi-view fusion module in front of the patch tokeniser (inside an encoder).
    pub const MULTIVIEW: &str = "mvf";
    /// Recurrent layer `l` of a recurrent encoder (inside an encoder; its tensors are named
    /// as in [`super::recurrent`]).
    pub fn recurrent_layer(l: usize) -> String {
        format!("recurrent{l}")
    }
    /// The fusion part.
    pub const FUSION: &str = "fuse";
    /// Inside the fusion part: the layer across all modalities' tokens of a step.
    pub const FUSION_LAYER: &str = "spatial";
    /// Inside the fusion part: pooling of a step's tokens into one.
    pub const GROUP_POOL: &str = "group_pool";
    /// Inside the fusion part: joint temporal layer `l`.
    pub fn joint_layer(l: usize) -> String {
        format!("joint{l}")
    }
    /// Inside the fusion part: pooling over time.
    pub const TIME_POOL: &str = "time_pool";
    /// Inside the fusion part: the final layer norm.
    pub const NORM: &str = "norm";
    /// Inside the fusion part: the classification head.
    pub const HEAD: &str = "head";
    /// Cross-modal self-attention layer `k` of level `l` (the `cmsa` fusion, seed S9).
    pub fn cross_layer(l: usize, k: usize) -> String {
        format!("level{l}.cross{k}")
    }
    /// Attention pool of level `l` over its joint token set (`cmsa`).
    pub fn level_pool(l: usize) -> String {
        format!("level{l}.pool")
    }
    /// Sigmoid gate of level `l`'s feature (`cmsa`).
    pub fn level_gate(l: usize) -> String {
        format!("level{l}.gate")
    }
    /// Scores of the skeleton's joints within each body part (an attention pool's query;
    /// `sga`, seed S2).
    pub const JOINT_POOL: &str = "joint_pool";
    /// Scores of the body parts (an attention pool's query; `sga`).
    pub const PART_POOL: &str = "part_pool";
    /// A joint token's query for the motion tokens near it (Dense `[D, D]`; `sga`).
    pub const JOINT_QUERY: &str = "joint_query";
    /// A motion token's key (Dense `[D, D]`; `sga`).
    pub const MOTION_KEY: &str = "motion_key";
    /// Pooling of a step's motion tokens when the skeleton is missing (`sga`).
    pub const MOTION_POOL: &str = "motion_pool";
    /// Temporal layer `l` of the motion branch (`sga-late`; the skeleton branch uses
    /// [`joint_layer`], [`TIME_POOL`], [`NORM`] and [`HEAD`]).
    pub fn motion_layer(l: usize) -> String {
        format!("motion{l}")
    }
    /// The motion branch's pooling over time (`sga-late`).
    pub const MOTION_TIME_POOL: &str = "motion_time_pool";
    /// The motion branch's layer norm (`sga-late`).
    pub const MOTION_NORM: &str = "motion_norm";
    /// The motion branch's head (`sga-late`).
    pub const MOTION_HEAD: &str = "motion_head";
    /// The branches' mixing logits `[2]` (skeleton, motion; softmax over the present ones;
    /// `sga-late`).
    pub const BRANCH_MIX: &str = "branch_mix";
}

/// The per-step segmentation model (see [`crate::segmenter`]): `embed`, `conv` (Dense),
/// `local.attn` / `local.norm`, `gru` (a GRU, [`super::recurrent`]), `global.attn` /
/// `global.norm`, `head`.
pub mod segmenter {
    /// Dense embedding of a step's samples.
    pub const EMBED: &str = "embed";
    /// The causal convolution (a Dense over the last `kernel` embeddings side by side).
    pub const CONV: &str = "conv";
    /// The local attention block.
    pub const LOCAL: &str = "local";
    /// The recurrent layer.
    pub const GRU: &str = "gru";
    /// The global attention block.
    pub const GLOBAL: &str = "global";
    /// Inside an attention block: the attention (its `qkv` and `out` as in a transformer
    /// layer).
    pub const ATTENTION: &str = "attn";
    /// Inside an attention block: the layer norm after the residual.
    pub const NORM: &str = "norm";
    /// The per-step classification head.
    pub const HEAD: &str = "head";
}

/// The scene model (see [`crate::scene`]).
pub mod scene {
    /// Dense projection of a member's feature.
    pub const INPUT: &str = "input";
    /// The cross-subject attention (its `qkv` and `out` as in a transformer layer).
    pub const CROSS: &str = "cross";
    /// Dense from `[context; summary]` to the residual.
    pub const MIX: &str = "mix";
    /// Layer norm of the members' features.
    pub const NORM: &str = "norm";
    /// Per-member activity head.
    pub const HEAD: &str = "head";
    /// The decoder's label embeddings `[labels + 1, D]` (the start token last).
    pub const LABEL_EMBEDDING: &str = "label_embedding";
    /// The decoder's LSTM (named as in [`super::recurrent`]).
    pub const LSTM: &str = "lstm";
    /// The decoder's query of the members' features.
    pub const QUERY: &str = "query";
    /// The decoder's output: `[h; context]` to the labels and the end token.
    pub const OUT: &str = "out";
    /// The baseline's independent per-label logits from the pooled features.
    pub const INDEPENDENT: &str = "independent";
}
