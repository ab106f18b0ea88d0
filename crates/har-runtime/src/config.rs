//! The shape of a DMFT model (seed S1; its layers are described in [`crate::dmft`]): the
//! modalities and their channel groups, the token options and the depths. Both engines read
//! it: the candle training crate builds its trainable model from it, this crate its forward.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::layer_widths::LayerWidths;

/// One input modality: its name, channels and channel groups (one token per group).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModalitySpec {
    /// Modality name (as in the dataset).
    pub name: String,
    /// Channels per sample (C).
    pub channels: usize,
    /// Channel indices of each token group.
    pub groups: Vec<Vec<usize>>,
    /// Skeleton layout of a skeleton modality: streaming preprocessing centres and scales its
    /// frames as training did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skeleton: Option<har_core::recording::SkeletonLayout>,
}

/// How each modality's window becomes its tokens `[S, G, D]`; fusion, pooling and head are
/// the same for every encoder, so the encode and fuse nodes run any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Encoder {
    /// DMFT (seed S1): one token per patch and channel group (with the token options), group
    /// and position embeddings, spatial and temporal transformer layers.
    #[default]
    Patch,
    /// The plain transformer of seed S4: one token per sample (the patch path with
    /// `patch_len = 1`, the modality as one group, no token options), temporal layers only.
    Transformer,
    /// DMFT's patch encoder behind a multi-view fusion module (seed S6, MVFNet): on a share of
    /// the channels, a depthwise convolution along time and one across channels (for a
    /// skeleton, across joints, each axis apart) are summed, standardised over the window,
    /// scaled, shifted and activated; the untouched channels pass as they are.
    Mvf,
    /// A recurrent encoder (seed S4's baseline): `modality_layers` stacked LSTM or GRU layers
    /// of width `dim`, their hidden states the modality's tokens (one group).
    Recurrent {
        /// The recurrent cell.
        cell: RecurrentCell,
        /// What one recurrent step reads.
        over: RecurrentInput,
    },
}

/// A recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecurrentCell {
    /// Long short-term memory (gates i, f, g, o).
    Lstm,
    /// Gated recurrent unit (gates r, z, n).
    Gru,
}

/// What one recurrent step reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecurrentInput {
    /// One sample (`C` values) per step; the token of each patch is the hidden state after its
    /// last sample.
    Samples,
    /// One patch (`P·C` values) per step; each step's hidden state is a token.
    Patches,
}

/// How the modalities' tokens meet after their encoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fusion {
    /// DMFT's temporal mid-fusion (seed S1): at each time step a layer across the tokens of
    /// all modalities, pooled into one fused token; `joint_layers` temporal layers over the
    /// fused tokens; attention pooling over time.
    #[default]
    Mid,
    /// Cross-modal self-attention with gated multi-level fusion (seed S9, CMSA): the encoder
    /// hands over its tokens after each of its `modality_layers` layers (the levels); at each
    /// level `joint_layers` self-attention layers run over the joint token set of all present
    /// modalities (every step and group, so each modality attends to the others' tokens), and
    /// an attention pool gives one feature per level; a learned sigmoid gate per level weighs
    /// its feature before the levels are summed.
    CrossModal,
    /// Skeleton-guided two-level attention (seed S2, SGA), for a skeleton and motion sensors:
    /// at each step the skeleton's joint tokens are scored (softmax within each body part of
    /// [`har_core::recording::SkeletonLayout::body_parts`]) and the body parts are scored;
    /// each joint also gathers the motion tokens of the step it attends to (the motion near
    /// that joint), and the same two levels of scores weigh those motion features. Mid-fusion
    /// sums the skeleton and motion step features before `joint_layers` temporal layers;
    /// `late` gives each branch its own temporal layers and head and mixes the two branches'
    /// logits by learned weights. Without the skeleton, the motion tokens are attention-pooled.
    SkeletonGuided {
        /// Late fusion of a skeleton and a motion branch, instead of mid-fusion.
        late: bool,
    },
}

impl Fusion {
    fn is_mid(&self) -> bool {
        *self == Fusion::Mid
    }
}

/// The architectures `har train --arch` knows, by name.
pub const ARCHITECTURES: [&str; 10] = [
    "dmft",
    "mvf",
    "transformer",
    "lstm",
    "gru",
    "lstm-patches",
    "gru-patches",
    "cmsa",
    "sga",
    "sga-late",
];

impl Encoder {
    /// The architecture's name (one of [`ARCHITECTURES`]).
    pub fn arch_name(&self) -> &'static str {
        match self {
            Encoder::Patch => "dmft",
            Encoder::Mvf => "mvf",
            Encoder::Transformer => "transformer",
            Encoder::Recurrent { cell, over } => match (cell, over) {
                (RecurrentCell::Lstm, RecurrentInput::Samples) => "lstm",
                (RecurrentCell::Gru, RecurrentInput::Samples) => "gru",
                (RecurrentCell::Lstm, RecurrentInput::Patches) => "lstm-patches",
                (RecurrentCell::Gru, RecurrentInput::Patches) => "gru-patches",
            },
        }
    }

    /// The encoder of architecture `name`.
    pub fn from_arch_name(name: &str) -> Option<Self> {
        let recurrent = |cell, over| Some(Encoder::Recurrent { cell, over });
        match name {
            "dmft" => Some(Encoder::Patch),
            "mvf" => Some(Encoder::Mvf),
            "transformer" => Some(Encoder::Transformer),
            "lstm" => recurrent(RecurrentCell::Lstm, RecurrentInput::Samples),
            "gru" => recurrent(RecurrentCell::Gru, RecurrentInput::Samples),
            "lstm-patches" => recurrent(RecurrentCell::Lstm, RecurrentInput::Patches),
            "gru-patches" => recurrent(RecurrentCell::Gru, RecurrentInput::Patches),
            _ => None,
        }
    }
}

/// Shape of a DMFT model (teacher or student).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DmftConfig {
    /// Input modalities, in order.
    pub modalities: Vec<ModalitySpec>,
    /// Window length in samples (T).
    pub window_len: usize,
    /// Patch length in samples (P); `T` must be a multiple.
    pub patch_len: usize,
    /// Token dimension (D).
    pub dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward width as a multiple of `dim`.
    pub ffn_mult: usize,
    /// Modality-specific blocks before fusion.
    pub modality_layers: usize,
    /// Joint temporal layers after fusion.
    pub joint_layers: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Residual dropout in every transformer layer while training.
    #[serde(default)]
    pub dropout: f32,
    /// Append each channel's log standard deviation within the patch to the patch's values
    /// before the projection (see [`crate::patch_input::patch_log_std`]). Models saved before
    /// this option read as `false`.
    #[serde(default)]
    pub patch_stats: bool,
    /// Add one *spectral step* after the patch steps: per channel group, a token projected
    /// from its channels' log band powers over the whole window (see [`crate::spectrum`]).
    /// Models saved before this option read as `false`.
    #[serde(default)]
    pub spectral_tokens: bool,
    /// Append to each patch its values standardised per window and channel (see
    /// [`crate::patch_input::standardise_window`]): the shape of the motion at one scale
    /// whatever its amplitude, so a still posture's micro-motion is as visible as a step.
    /// Models saved before this option read as `false`.
    #[serde(default)]
    pub window_detail: bool,
    /// The modality encoder (the architecture). Models saved before this option read as
    /// [`Encoder::Patch`].
    #[serde(default)]
    pub encoder: Encoder,
    /// How the modalities meet. Models saved before this option read as [`Fusion::Mid`]
    /// (which is not written, so their cards stay as they were).
    #[serde(default, skip_serializing_if = "Fusion::is_mid")]
    pub fusion: Fusion,
    /// Transformer layers narrowed by structured pruning, by weight prefix (see
    /// [`crate::layer_widths`]); layers not named have `heads` heads and a `dim · ffn_mult`
    /// feed-forward. Empty (and not written) for an unpruned model.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pruned: BTreeMap<String, LayerWidths>,
}

/// Largest window length a config may declare (samples).
pub const MAX_WINDOW_LEN: usize = 1 << 16;
/// Largest token dimension.
pub const MAX_WIDTH: usize = 1 << 14;
/// Largest feed-forward multiple.
pub const MAX_FFN_MULT: usize = 64;
/// Most layers on either side of fusion.
pub const MAX_LAYERS: usize = 256;
/// Most classes.
pub const MAX_CLASSES: usize = 1 << 16;
/// Most modalities.
pub const MAX_MODALITIES: usize = 64;
/// Most channels (and channel groups) per modality.
pub const MAX_CHANNELS: usize = 4096;

/// Where the modalities meet, derived from the depths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FusionStage {
    /// Right after tokenisation.
    Early,
    /// Between modality-specific and joint layers.
    Mid,
    /// After all layers.
    Late,
}

impl DmftConfig {
    /// The patch length giving about 16 time steps: the divisor `P` of `window_len` with
    /// `window_len / P` closest to 16 (8 for 128-sample windows, 5 for 100).
    pub fn default_patch_len(window_len: usize) -> usize {
        (1..=window_len)
            .filter(|p| window_len % p == 0)
            .min_by_key(|p| ((window_len / p) as i64 - 16).abs())
            .unwrap_or(1)
    }

    /// The teacher's shape for these modalities.
    pub fn teacher(modalities: Vec<ModalitySpec>, window_len: usize, num_classes: usize) -> Self {
        Self {
            modalities,
            window_len,
            patch_len: Self::default_patch_len(window_len),
            dim: 64,
            heads: 4,
            ffn_mult: 2,
            modality_layers: 2,
            joint_layers: 2,
            num_classes,
            dropout: 0.0,
            patch_stats: false,
            spectral_tokens: false,
            window_detail: false,
            encoder: Encoder::Patch,
            fusion: Fusion::Mid,
            pruned: BTreeMap::new(),
        }
    }

    /// The lite student: half the width, half the heads, one layer on each side of the fusion
    /// (unpruned).
    pub fn student(&self) -> Self {
        Self {
            dim: 32,
            heads: 2,
            modality_layers: 1,
            joint_layers: 1,
            pruned: BTreeMap::new(),
            ..self.clone()
        }
    }

    /// This shape with architecture `encoder`: the transformer reads one sample per token with
    /// each modality as one group; the transformer and the recurrent encoders drop the patch
    /// token options (spectral step, window detail, patch statistics).
    pub fn with_encoder(&self, encoder: Encoder) -> Self {
        let mut config = Self {
            encoder,
            ..self.clone()
        };
        if !matches!(encoder, Encoder::Patch | Encoder::Mvf) {
            config.spectral_tokens = false;
            config.window_detail = false;
            config.patch_stats = false;
        }
        if encoder == Encoder::Transformer {
            config.patch_len = 1;
            for m in &mut config.modalities {
                m.groups = vec![(0..m.channels).collect()];
            }
        }
        config
    }

    /// This shape as architecture `name` (one of [`ARCHITECTURES`]): its encoder (see
    /// [`Self::with_encoder`]) and its fusion; `None` for an unknown name.
    pub fn with_arch(&self, name: &str) -> Option<Self> {
        let (encoder, fusion) = match name {
            "cmsa" => (Encoder::Patch, Fusion::CrossModal),
            "sga" => (Encoder::Patch, Fusion::SkeletonGuided { late: false }),
            "sga-late" => (Encoder::Patch, Fusion::SkeletonGuided { late: true }),
            other => (Encoder::from_arch_name(other)?, Fusion::Mid),
        };
        Some(Self {
            fusion,
            ..self.with_encoder(encoder)
        })
    }

    /// The architecture's name (one of [`ARCHITECTURES`]).
    pub fn arch_name(&self) -> &'static str {
        match self.fusion {
            Fusion::CrossModal => "cmsa",
            Fusion::SkeletonGuided { late: false } => "sga",
            Fusion::SkeletonGuided { late: true } => "sga-late",
            Fusion::Mid => self.encoder.arch_name(),
        }
    }

    /// Token sets an encoder hands to fusion per window: one, or one per modality layer for
    /// the multi-level cross-modal fusion.
    pub fn token_levels(&self) -> usize {
        match self.fusion {
            Fusion::Mid | Fusion::SkeletonGuided { .. } => 1,
            Fusion::CrossModal => self.modality_layers,
        }
    }

    /// Tokens of modality `m` per window as the encode node sends them: levels × steps ×
    /// groups (each `dim` wide).
    pub fn tokens_per_window(&self, m: usize) -> usize {
        self.token_levels() * self.steps() * self.token_groups(m)
    }

    /// Token groups of modality `m` at each step: its channel groups for the patch encoders,
    /// one for a recurrent encoder.
    pub fn token_groups(&self, m: usize) -> usize {
        match self.encoder {
            Encoder::Recurrent { .. } => 1,
            Encoder::Patch | Encoder::Mvf | Encoder::Transformer => self.modalities[m].groups.len(),
        }
    }

    /// The multi-view module's channels of modality `m`: the shared channels (the first
    /// half, rounded up, of the joints of a skeleton or of the channels of a sensor) and the
    /// axes each cross-channel convolution runs over apart (3 for a skeleton, else 1).
    pub fn mvf_channels(&self, m: usize) -> (usize, usize) {
        let spec = &self.modalities[m];
        let axes = if spec.skeleton.is_some() && spec.channels % 3 == 0 {
            3
        } else {
            1
        };
        ((spec.channels / axes).div_ceil(2) * axes, axes)
    }

    /// Width of one recurrent step's input for modality `m` (`C` or `P·C`).
    pub fn recurrent_input_len(&self, m: usize, over: RecurrentInput) -> usize {
        let c = self.modalities[m].channels;
        match over {
            RecurrentInput::Samples => c,
            RecurrentInput::Patches => self.patch_len * c,
        }
    }

    /// Input width of recurrent layer `l` of modality `m` (the step's input for the first,
    /// the previous layer's hidden state `D` after it).
    pub fn recurrent_layer_input(&self, m: usize, l: usize, over: RecurrentInput) -> usize {
        if l == 0 {
            self.recurrent_input_len(m, over)
        } else {
            self.dim
        }
    }

    /// Patch steps (T / P).
    pub fn patch_steps(&self) -> usize {
        self.window_len / self.patch_len
    }

    /// Token steps S: the patch steps, plus the spectral step with `spectral_tokens`.
    pub fn steps(&self) -> usize {
        self.patch_steps() + usize::from(self.spectral_tokens)
    }

    /// Input width of the spectral projection of a group of `group_len` channels.
    pub fn spectral_input_len(&self, group_len: usize) -> usize {
        group_len * (crate::spectrum::band_edges(self.window_len).len() - 1)
    }

    /// Input width of the patch projection of a group of `group_len` channels: its `P·|g|`
    /// values, as many standardised values with `window_detail`, and `|g|` log standard
    /// deviations with `patch_stats`.
    pub fn patch_input_len(&self, group_len: usize) -> usize {
        self.patch_options().input_len(group_len)
    }

    /// What a patch token is projected from (patch length and the token options).
    pub fn patch_options(&self) -> crate::patch_input::PatchOptions {
        crate::patch_input::PatchOptions {
            patch_len: self.patch_len,
            window_detail: self.window_detail,
            patch_stats: self.patch_stats,
        }
    }

    /// Where fusion happens.
    pub fn fusion_stage(&self) -> FusionStage {
        match (self.modality_layers, self.joint_layers) {
            (0, _) => FusionStage::Early,
            (_, 0) => FusionStage::Late,
            _ => FusionStage::Mid,
        }
    }

    /// Checks the shape makes sense.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.modalities.is_empty() {
            return Err("no modalities".into());
        }
        // Sizes from a file are bounded before anything is computed or allocated from them,
        // so no product of them can overflow (every limit is far above any real model).
        let limits = [
            ("window_len", self.window_len, MAX_WINDOW_LEN),
            ("dim", self.dim, MAX_WIDTH),
            ("ffn_mult", self.ffn_mult, MAX_FFN_MULT),
            ("modality_layers", self.modality_layers, MAX_LAYERS),
            ("joint_layers", self.joint_layers, MAX_LAYERS),
            ("num_classes", self.num_classes, MAX_CLASSES),
            ("modalities", self.modalities.len(), MAX_MODALITIES),
        ];
        for (field, value, limit) in limits {
            if value == 0 && field != "modality_layers" && field != "joint_layers" {
                return Err(format!("{field} is 0"));
            }
            if value > limit {
                return Err(format!("{field} {value} is above the limit {limit}"));
            }
        }
        for m in &self.modalities {
            if m.channels == 0 || m.channels > MAX_CHANNELS || m.groups.len() > MAX_CHANNELS {
                return Err(format!(
                    "modality `{}`: {} channels in {} groups (1 to {MAX_CHANNELS} allowed)",
                    m.name,
                    m.channels,
                    m.groups.len()
                ));
            }
            if m.groups.iter().any(|g| g.len() > m.channels) {
                return Err(format!(
                    "modality `{}`: a group has more entries than its {} channels",
                    m.name, m.channels
                ));
            }
        }
        if self.patch_len == 0 || self.window_len % self.patch_len != 0 {
            return Err(format!(
                "window length {} is not a multiple of patch length {}",
                self.window_len, self.patch_len
            ));
        }
        if self.heads == 0 || self.dim % self.heads != 0 {
            return Err(format!(
                "dim {} is not divisible by {} heads",
                self.dim, self.heads
            ));
        }
        if self.num_classes < 2 {
            return Err("fewer than 2 classes".into());
        }
        for m in &self.modalities {
            if m.groups.is_empty() || m.groups.iter().flatten().any(|&c| c >= m.channels) {
                return Err(format!(
                    "modality `{}`: groups must be non-empty channel indices below {}",
                    m.name, m.channels
                ));
            }
        }
        let options = self.spectral_tokens || self.window_detail || self.patch_stats;
        match self.encoder {
            Encoder::Patch | Encoder::Mvf => {}
            Encoder::Transformer => {
                if self.patch_len != 1
                    || options
                    || self.modalities.iter().any(|m| m.groups.len() != 1)
                {
                    return Err(
                        "the transformer encoder reads one sample per token: patch_len 1, \
                                one group per modality, no token options"
                            .into(),
                    );
                }
            }
            Encoder::Recurrent { .. } => {
                if options {
                    return Err("the token options belong to the patch encoder".into());
                }
                if self.modality_layers == 0 {
                    return Err("a recurrent encoder needs modality_layers >= 1".into());
                }
            }
        }
        if self.fusion == Fusion::CrossModal
            && (self.encoder != Encoder::Patch
                || self.modality_layers == 0
                || self.joint_layers == 0)
        {
            return Err(
                "cross-modal fusion (cmsa) takes the patch encoder's tokens after each of its \
                 layers: encoder patch, modality_layers >= 1, joint_layers >= 1"
                    .into(),
            );
        }
        if let Fusion::SkeletonGuided { .. } = self.fusion {
            self.skeleton_guided_parts()?;
        }
        self.validate_pruned()
    }

    /// For the skeleton-guided fusion: the skeleton modality and its body parts (joint
    /// indices, each joint in one part). The scheme needs the patch encoder, exactly one
    /// skeleton modality whose token groups are its joints in order (`x, y, z` of joint `j`
    /// in group `j`), and at least one other (motion) modality.
    pub fn skeleton_guided_parts(&self) -> std::result::Result<(usize, Vec<Vec<usize>>), String> {
        let needs = "skeleton-guided fusion (sga) needs the patch encoder, exactly one skeleton \
                     modality with one token group per joint, and a motion modality";
        let skeletons: Vec<usize> = (0..self.modalities.len())
            .filter(|&m| self.modalities[m].skeleton.is_some())
            .collect();
        let (&[m], Encoder::Patch) = (skeletons.as_slice(), self.encoder) else {
            return Err(format!(
                "{needs}; this model has {} skeletons",
                skeletons.len()
            ));
        };
        let spec = &self.modalities[m];
        let joints = spec.skeleton.as_ref().map_or(0, |s| s.joints.len());
        let per_joint = spec.channels == 3 * joints
            && spec.groups.len() == joints
            && spec
                .groups
                .iter()
                .enumerate()
                .all(|(j, g)| g.as_slice() == [3 * j, 3 * j + 1, 3 * j + 2]);
        if !per_joint || self.modalities.len() < 2 {
            return Err(format!(
                "{needs}; modality `{}` does not qualify",
                spec.name
            ));
        }
        let parts = spec
            .skeleton
            .as_ref()
            .map(|s| s.body_parts())
            .unwrap_or_default();
        Ok((m, parts))
    }

    /// Multiply-add FLOPs (2 per multiply-add) of one window's forward pass with every modality.
    pub fn flops_per_window(&self) -> u64 {
        // The transformer layers, each at its own (possibly pruned) widths.
        let (s, d) = (self.steps() as u64, self.dim as u64);
        let pool = |n: u64, l: u64| n * 4 * l * d;
        let mut total = 0;
        let mut groups_total = 0;
        for (index, m) in self.modalities.iter().enumerate() {
            let g = m.groups.len() as u64;
            let patch_steps = self.patch_steps() as u64;
            // Standardising the window: two passes of sums and one of scaling per value.
            let standardise = if self.window_detail {
                4 * (self.window_len * m.channels) as u64
            } else {
                0
            };
            let mut tokenise: u64 = standardise
                + m.groups
                    .iter()
                    .map(|grp| 2 * patch_steps * self.patch_input_len(grp.len()) as u64 * d)
                    .sum::<u64>();
            if self.spectral_tokens {
                // DFT of every channel (cos and sin rows) and the spectral projections.
                let bins = *crate::spectrum::band_edges(self.window_len)
                    .last()
                    .unwrap_or(&1)
                    - 1;
                tokenise += 4 * (self.window_len * bins * m.channels) as u64;
                tokenise += m
                    .groups
                    .iter()
                    .map(|grp| 2 * self.spectral_input_len(grp.len()) as u64 * d)
                    .sum::<u64>();
            }
            if let Encoder::Recurrent { cell, over } = self.encoder {
                // Per step: the input and hidden products of every gate, and the cell.
                let gates = match cell {
                    RecurrentCell::Lstm => 4,
                    RecurrentCell::Gru => 3,
                };
                let (steps, input) = match over {
                    RecurrentInput::Samples => (self.window_len, m.channels),
                    RecurrentInput::Patches => (self.patch_steps(), self.patch_len * m.channels),
                };
                let step = |input: u64| 2 * gates * d * (input + d) + 10 * d;
                total += steps as u64
                    * (step(input as u64) + (self.modality_layers as u64 - 1) * step(d));
                groups_total += 1;
                continue;
            }
            if self.encoder == Encoder::Mvf {
                // Two convolutions (5 and 3 taps), standardisation, scale, GELU per value.
                let (shared, _) = self.mvf_channels(index);
                tokenise += (self.window_len * shared) as u64 * (2 * (5 + 3) + 12);
            }
            groups_total += g;
            total += tokenise;
        }
        let head = 2 * d * self.num_classes as u64;
        match self.fusion {
            Fusion::Mid => {
                total += pool(s, groups_total) + pool(1, s);
            }
            Fusion::CrossModal => {
                // Per level: the pool over all S·G tokens and the gate.
                let n = s * groups_total;
                let level = pool(1, n) + 2 * d * d;
                total += self.modality_layers as u64 * level;
            }
            Fusion::SkeletonGuided { late } => {
                // Per step: joint and part scores, the joints' queries, the motion tokens'
                // keys, each joint's attention over them, the two-level weighted sums.
                let joints = self
                    .skeleton_guided_parts()
                    .map_or(0, |(m, _)| self.modalities[m].groups.len())
                    as u64;
                let motion = groups_total.saturating_sub(joints);
                let step = pool(1, joints)
                    + 2 * (joints + motion) * d * d
                    + 4 * joints * motion * d
                    + 4 * joints * d;
                let branches = if late { 2 } else { 1 };
                total += s * step + branches * pool(1, s);
                total += (branches - 1) * 2 * d * self.num_classes as u64;
            }
        }
        total + head + self.transformer_flops()
    }
}
