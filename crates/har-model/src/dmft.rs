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
//! 6. **Other encoders** ([`crate::encoders`], the config's [`Encoder`]): the plain
//!    per-sample transformer and LSTM / GRU encoders (seed S4) replace steps 1–2 and feed the
//!    same fusion part.
//! 7. **Other fusion** ([`crate::fusion`], the config's [`Fusion`]): cross-modal
//!    self-attention over the joint token set at every encoder level with gated multi-level
//!    fusion (seed S9) replaces step 3's per-step fusion; so does skeleton-guided two-level
//!    attention (seed S2), mid or late.
//!
//! A missing modality is given as zero tokens with its mask off; masked scores are −1e9, whose
//! softmax weight is exactly 0 in f32, so the prediction equals one computed without those
//! tokens at all.

use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::VarBuilder;
use har_runtime::names::dmft as names;

use crate::encoders::ModalityEncoder;
use crate::fusion::FusionScheme;
use crate::layers::Train;

pub use har_runtime::config::{
    DmftConfig, Encoder, Fusion, FusionStage, ModalitySpec, RecurrentCell, RecurrentInput,
};

/// Score bias of a masked token.
pub const MASKED: f64 = -1e9;

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
    fusion: FusionScheme,
    span: tracing::Span,
}

impl Dmft {
    /// Builds the model; parameters come from `vb` (seeded init or a checkpoint).
    pub fn new(config: &DmftConfig, vb: VarBuilder) -> Result<Self> {
        config.validate().map_err(candle_core::Error::msg)?;
        let encoders = config
            .modalities
            .iter()
            .enumerate()
            .map(|(i, m)| ModalityEncoder::new(config, i, vb.pp(names::encoder(&m.name))))
            .collect::<Result<_>>()?;
        Ok(Self {
            config: config.clone(),
            encoders,
            fusion: FusionScheme::new(config, &vb.pp(names::FUSION))?,
            span: tracing::trace_span!("fuse"),
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &DmftConfig {
        &self.config
    }

    /// Encoder part of modality `m`: `[B, T, C]` → tokens `[B, L·S, G_m, D]` (`L` =
    /// [`DmftConfig::token_levels`]: 1 but for the multi-level cross-modal fusion).
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
        self.fusion.forward(&self.config, tokens, present, train)
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
        // `s` counts every level's steps (the encoders' output).
        let mut present = Vec::with_capacity(tokens.len());
        for (m, t) in tokens.iter().enumerate() {
            let g = self.config.token_groups(m);
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
