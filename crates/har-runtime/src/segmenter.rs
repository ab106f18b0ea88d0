//! The per-step segmentation model (seed S10's counterpart for sensor streams), candle-free:
//! one time step per patch of `patch_len` samples of every modality's channels, then
//!
//! 1. a dense embedding of the patch (GELU) and a **causal convolution** over the last
//!    `kernel` embeddings (side by side into a dense layer, GELU), residual;
//! 2. **local self-attention** over the last `local_window` steps, residual and layer norm;
//! 3. a **GRU**;
//! 4. **global self-attention** over earlier steps (all of them, or the last
//!    `global_window`), residual and layer norm;
//! 5. a dense head per step.
//!
//! Every part only looks back, so the model runs one step at a time: [`SegmenterStream`]
//! keeps a stream's state (the last embeddings, the attention caches, the GRU state), and
//! [`Segmenter::forward`] steps a whole sequence through a fresh stream — one code path for
//! offline evaluation and the dataflow node. The training crate describes the same model in
//! candle under the names of [`crate::names::segmenter`].
//!
//! A model directory holds `segmenter.json` ([`SegmenterCard`]) and `segmenter.safetensors`.

use std::path::Path;

use har_core::dataset::ClassInfo;
use har_core::preprocess::AlignConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};
use crate::kernels::gelu;
use crate::layers::{CausalAttention, Dense, Gru, KvCache, LayerNorm, StepScratch};
use crate::names::segmenter as names;
use crate::weights::{Params, Weights};

/// The card's file name in a segmenter directory.
pub const CARD_FILE: &str = "segmenter.json";
/// The weights' file name in a segmenter directory.
pub const WEIGHTS_FILE: &str = "segmenter.safetensors";

/// The segmenter's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmenterConfig {
    /// Input channels of all modalities together, in modality order.
    pub channels: usize,
    /// Samples per time step.
    pub patch_len: usize,
    /// Width of every layer.
    pub dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// Steps the causal convolution reads.
    pub kernel: usize,
    /// Steps the local attention reads (the current one and those before it).
    pub local_window: usize,
    /// Whether the local attention is there.
    pub local: bool,
    /// Whether the global attention is there.
    pub global: bool,
    /// Steps the global attention reads (`None`: every earlier step of the sequence).
    #[serde(default)]
    pub global_window: Option<usize>,
    /// Output classes.
    pub num_classes: usize,
}

impl SegmenterConfig {
    /// Values per step: `patch_len · channels`.
    pub fn step_width(&self) -> usize {
        self.patch_len * self.channels
    }

    /// Refuses shapes no model has (zero widths, heads not dividing the width).
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("channels", self.channels),
            ("patch_len", self.patch_len),
            ("dim", self.dim),
            ("heads", self.heads),
            ("kernel", self.kernel),
            ("local_window", self.local_window),
            ("num_classes", self.num_classes),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(RuntimeError::Invalid(format!(
                "segmenter config: {name} must be positive"
            )));
        }
        if self.dim % self.heads != 0 {
            return Err(RuntimeError::Invalid(format!(
                "segmenter config: {} heads do not divide dim {}",
                self.heads, self.dim
            )));
        }
        if self.global_window == Some(0) {
            return Err(RuntimeError::Invalid(
                "segmenter config: global_window must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Per-channel standardisation of the training samples, channels in modality order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardiser {
    /// Mean per channel.
    pub mean: Vec<f32>,
    /// Standard deviation per channel.
    pub std: Vec<f32>,
}

/// One input modality: its stream name and channel count (in the step's channel order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmenterModality {
    /// Stream name (`acc`, `gyro`, ...).
    pub name: String,
    /// Channels per sample.
    pub channels: usize,
}

/// What a segmenter directory holds besides its weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmenterCard {
    /// Shape.
    pub config: SegmenterConfig,
    /// Classes in output order.
    pub classes: Vec<ClassInfo>,
    /// Input standardisation.
    pub standardiser: Standardiser,
    /// Alignment of the recordings.
    pub align: AlignConfig,
    /// The modalities whose channels make a step, in order (empty in cards written before
    /// they were recorded: such a model cannot run on a stream).
    #[serde(default)]
    pub modalities: Vec<SegmenterModality>,
    /// How it was trained.
    pub provenance: serde_json::Value,
}

impl SegmenterCard {
    /// Checks the card against itself: classes as many as the head's outputs, statistics
    /// finite, positive and one per channel, modalities (when listed) summing to the channels.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let field = |field: &str, problem: String| RuntimeError::Field {
            path: path.to_path_buf(),
            field: field.into(),
            problem,
        };
        self.config
            .validate()
            .map_err(|e| field("config", e.to_string()))?;
        let c = &self.config;
        if self.classes.len() != c.num_classes {
            return Err(field(
                "classes",
                format!(
                    "{} classes for {} outputs",
                    self.classes.len(),
                    c.num_classes
                ),
            ));
        }
        let s = &self.standardiser;
        if s.mean.len() != c.channels || s.std.len() != c.channels {
            return Err(field(
                "standardiser",
                format!(
                    "statistics for {} channels, config has {}",
                    s.mean.len(),
                    c.channels
                ),
            ));
        }
        if s.mean.iter().any(|v| !v.is_finite())
            || s.std.iter().any(|v| !(v.is_finite() && *v > 0.0))
        {
            return Err(field(
                "standardiser",
                "non-finite mean or non-positive standard deviation".into(),
            ));
        }
        let listed: usize = self.modalities.iter().map(|m| m.channels).sum();
        if !self.modalities.is_empty() && listed != c.channels {
            return Err(field(
                "modalities",
                format!("{listed} channels listed, config has {}", c.channels),
            ));
        }
        Ok(())
    }
}

/// An attention block: attention, then layer norm of the residual sum.
#[derive(Debug, Clone)]
struct AttentionBlock {
    attention: CausalAttention,
    norm: LayerNorm,
    /// Steps the block sees (`None`: the stream's context limit).
    window: Option<usize>,
}

impl AttentionBlock {
    fn load(p: &Params, config: &SegmenterConfig, window: Option<usize>) -> Result<Self> {
        Ok(Self {
            attention: CausalAttention::load(&p.pp(names::ATTENTION), config.dim, config.heads)?,
            norm: LayerNorm::load(&p.pp(names::NORM), config.dim)?,
            window,
        })
    }

    /// `h ← norm(h + attention(h))`, the step's key and value joining `cache`.
    fn step(&self, h: &mut Vec<f32>, cache: &mut KvCache, b: &mut Buffers) {
        self.attention
            .step(h, cache, &mut b.attention, &mut b.attended);
        h.iter_mut().zip(&b.attended).for_each(|(x, a)| *x += a);
        self.norm.apply(h, &mut b.normed);
        std::mem::swap(h, &mut b.normed);
    }
}

/// The model with its weights.
#[derive(Debug, Clone)]
pub struct Segmenter {
    config: SegmenterConfig,
    embed: Dense,
    conv: Dense,
    local: Option<AttentionBlock>,
    gru: Gru,
    global: Option<AttentionBlock>,
    head: Dense,
}

/// Buffers reused from step to step.
#[derive(Debug, Clone, Default)]
struct Buffers {
    embedded: Vec<f32>,
    conv: Vec<f32>,
    attended: Vec<f32>,
    normed: Vec<f32>,
    attention: StepScratch,
    gates: Vec<f32>,
    recurrent: Vec<f32>,
    h: Vec<f32>,
}

/// One stream's state: the last `kernel` embeddings, the attention caches and the GRU state.
#[derive(Debug, Clone)]
pub struct SegmenterStream {
    /// The last `kernel` embeddings, oldest first (zeros before the first step).
    recent: Vec<f32>,
    local: Option<KvCache>,
    global: Option<KvCache>,
    /// Whether the global cache's capacity is the stream's limit rather than the model's
    /// window (then its drops are a degrade).
    global_limited: bool,
    gru: Vec<f32>,
    steps: u64,
    buffers: Buffers,
}

impl SegmenterStream {
    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Steps the global attention no longer sees because the stream outgrew its context
    /// limit (always 0 when the model sets its own `global_window`: that is the model, not a
    /// degrade).
    pub fn context_dropped(&self) -> u64 {
        match &self.global {
            Some(cache) if self.global_limited => cache.dropped(),
            _ => 0,
        }
    }
}

impl Segmenter {
    /// Loads the model of `config` from `params`, checking every shape.
    pub fn load(params: &Params, config: &SegmenterConfig) -> Result<Self> {
        config.validate()?;
        let d = config.dim;
        Ok(Self {
            config: config.clone(),
            embed: Dense::load(&params.pp(names::EMBED), config.step_width(), d)?,
            conv: Dense::load(&params.pp(names::CONV), config.kernel * d, d)?,
            local: config
                .local
                .then(|| {
                    AttentionBlock::load(
                        &params.pp(names::LOCAL),
                        config,
                        Some(config.local_window),
                    )
                })
                .transpose()?,
            gru: Gru::load(&params.pp(names::GRU), d, d)?,
            global: config
                .global
                .then(|| {
                    AttentionBlock::load(&params.pp(names::GLOBAL), config, config.global_window)
                })
                .transpose()?,
            head: Dense::load(&params.pp(names::HEAD), d, config.num_classes)?,
        })
    }

    /// Reads a segmenter directory: the card (checked) and the weights (finite, every shape
    /// checked, none left over).
    pub fn read_dir(dir: &Path) -> Result<(SegmenterCard, Self)> {
        let path = dir.join(CARD_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| RuntimeError::file(&path, e))?;
        let card: SegmenterCard =
            serde_json::from_str(&text).map_err(|e| RuntimeError::file(&path, e))?;
        card.validate(&path)?;
        let weights = Weights::read(&dir.join(WEIGHTS_FILE))?;
        let model = Self::load(&weights.root(), &card.config)?;
        weights.finish()?;
        Ok((card, model))
    }

    /// The model's shape.
    pub fn config(&self) -> &SegmenterConfig {
        &self.config
    }

    /// A fresh stream whose global attention keeps at most `context_limit` steps when the
    /// model itself sets no `global_window` (memory per stream: `2 · limit · dim` floats).
    pub fn stream(&self, context_limit: usize) -> SegmenterStream {
        let d = self.config.dim;
        let cache =
            |block: &AttentionBlock| block.attention.cache(block.window.unwrap_or(context_limit));
        SegmenterStream {
            recent: vec![0.0; self.config.kernel * d],
            local: self.local.as_ref().map(cache),
            global: self.global.as_ref().map(cache),
            global_limited: self.config.global_window.is_none(),
            gru: vec![0.0; self.gru.hidden_dim()],
            steps: 0,
            buffers: Buffers::default(),
        }
    }

    /// The class logits (`num_classes`) of the next step `x` (`patch_len · channels`,
    /// standardised, sample-major) of `stream` into `logits`.
    pub fn step(
        &self,
        stream: &mut SegmenterStream,
        x: &[f32],
        logits: &mut Vec<f32>,
    ) -> Result<()> {
        let c = &self.config;
        if x.len() != c.step_width() {
            return Err(RuntimeError::Invalid(format!(
                "segmenter step of {} values, expected {} ({} samples × {} channels)",
                x.len(),
                c.step_width(),
                c.patch_len,
                c.channels
            )));
        }
        let d = c.dim;
        let b = &mut stream.buffers;
        self.embed.apply(x, 1, &mut b.embedded);
        b.embedded.iter_mut().for_each(|v| *v = gelu(*v));
        stream.recent.copy_within(d.., 0);
        let last = stream.recent.len() - d;
        stream.recent[last..].copy_from_slice(&b.embedded);
        self.conv.apply(&stream.recent, 1, &mut b.conv);
        b.h.clear();
        b.h.extend(b.embedded.iter().zip(&b.conv).map(|(e, v)| e + gelu(*v)));
        let mut h = std::mem::take(&mut b.h);
        if let (Some(block), Some(cache)) = (&self.local, &mut stream.local) {
            block.step(&mut h, cache, b);
        }
        self.gru
            .step(&h, &mut stream.gru, &mut b.gates, &mut b.recurrent);
        h.clear();
        h.extend_from_slice(&stream.gru);
        if let (Some(block), Some(cache)) = (&self.global, &mut stream.global) {
            block.step(&mut h, cache, b);
        }
        self.head.apply(&h, 1, logits);
        b.h = h;
        stream.steps += 1;
        Ok(())
    }

    /// Per-step logits (`steps × num_classes`) of a whole sequence (`steps × step_width`)
    /// from a fresh stream that sees every earlier step: what the candle engine computes.
    pub fn forward(&self, inputs: &[f32]) -> Result<Vec<f32>> {
        let w = self.config.step_width();
        if inputs.len() % w != 0 {
            return Err(RuntimeError::Invalid(format!(
                "segmenter input of {} values is not whole steps of {w}",
                inputs.len()
            )));
        }
        let steps = inputs.len() / w;
        let mut stream = self.stream(steps.max(1));
        let mut out = Vec::with_capacity(steps * self.config.num_classes);
        let mut logits = Vec::new();
        for x in inputs.chunks_exact(w) {
            self.step(&mut stream, x, &mut logits)?;
            out.extend_from_slice(&logits);
        }
        Ok(out)
    }
}
