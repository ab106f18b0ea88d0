//! DMFT's forward pass in the runtime, assembled from [`crate::layers`] by its config (the
//! architecture, seed S1, is described in full in the training crate's `dmft` module; the
//! two are tested equal to 1e-4 over random configurations).
//!
//! Per modality ([`Dmft::encode`], one encode node each in the dataflow): patch tokens (and
//! the spectral step) of each channel group, plus group and position embeddings, then
//! `modality_layers` × (spatial layer across groups when there are several, temporal layer
//! across steps). Fusion ([`Dmft::fuse`], the fuse node; [`crate::fusion`] has the schemes):
//! at each step a layer across the tokens of all present modalities and attention pooling
//! into one fused token; joint temporal layers; attention pooling over time; layer norm; the
//! head. A missing modality's tokens are left out of fusion — exactly what the training
//! model's key mask computes.

use tracing::trace_span;

use crate::config::DmftConfig;
use crate::encoders::ModalityEncoder;
use crate::error::{Result, RuntimeError};
use crate::fusion::{FusionPart, Present};
use crate::kernels::softmax_in_place;
use crate::layers::Scratch;
use crate::names::dmft as names;
use crate::weights::Weights;

/// The fusion part's result for one window.
#[derive(Debug, Clone, PartialEq)]
pub struct FusionOutput {
    /// Class logits (before the softmax).
    pub logits: Vec<f32>,
    /// Mid-fusion features `S × D`, row-major: one fused token per time step.
    pub fused: Vec<f32>,
}

/// The fusion part's result with the window's embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    /// Class logits (before the softmax).
    pub logits: Vec<f32>,
    /// The head's input `[D]`: the normalised pooled feature.
    pub embedding: Vec<f32>,
}

/// A DMFT ready to run one window at a time.
#[derive(Debug, Clone)]
pub struct Dmft {
    config: DmftConfig,
    encoders: Vec<ModalityEncoder>,
    /// Token groups of each modality (read once, not per window).
    groups: Vec<usize>,
    fusion: FusionPart,
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
        let fusion = FusionPart::load(config, &root.pp(names::FUSION))?;
        weights.finish()?;
        Ok(Self {
            config: config.clone(),
            encoders,
            groups: (0..config.modalities.len())
                .map(|m| config.token_groups(m))
                .collect(),
            fusion,
            scratch: Scratch::default(),
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &DmftConfig {
        &self.config
    }

    /// Encoder part of modality `m` for one window `x` (`T × C`, normalised): tokens
    /// `L × S × G × D`, row-major (`G` = [`DmftConfig::token_groups`], `L` =
    /// [`DmftConfig::token_levels`]: 1 but for the multi-level cross-modal fusion).
    pub fn encode(&mut self, m: usize, x: &[f32]) -> Result<Vec<f32>> {
        let _span = trace_span!("dmft.encode", m).entered();
        let enc = self
            .encoders
            .get(m)
            .ok_or_else(|| RuntimeError::Invalid(format!("no modality {m}")))?;
        let (t, c) = (self.config.window_len, self.config.modalities[m].channels);
        if x.len() != t * c {
            return Err(RuntimeError::Invalid(format!(
                "modality `{}`: {} values, expected {t} × {c}",
                self.config.modalities[m].name,
                x.len()
            )));
        }
        Ok(enc.encode(&self.config, x, &mut self.scratch))
    }

    /// Fusion part for one window: each modality's tokens (`None` when missing); returns the
    /// class probabilities.
    pub fn fuse(&mut self, tokens: &[Option<&[f32]>]) -> Result<Vec<f32>> {
        let mut logits = self.fuse_logits(tokens, None, None)?;
        softmax_in_place(&mut logits);
        Ok(logits)
    }

    /// Fusion part for one window, returning the class logits and the mid-fusion features
    /// (what distillation needs from a teacher).
    pub fn fuse_with_features(&mut self, tokens: &[Option<&[f32]>]) -> Result<FusionOutput> {
        let mut fused = Vec::new();
        let logits = self.fuse_logits(tokens, Some(&mut fused), None)?;
        Ok(FusionOutput { logits, fused })
    }

    /// Fusion part for one window, returning the class logits and the window's embedding:
    /// the head's input (what few-shot enrolment compares windows by). An error for late
    /// skeleton-guided fusion, whose two branches have a head each.
    pub fn fuse_embedded(&mut self, tokens: &[Option<&[f32]>]) -> Result<Embedded> {
        let mut embedding = Vec::new();
        let logits = self.fuse_logits(tokens, None, Some(&mut embedding))?;
        if embedding.is_empty() {
            return Err(RuntimeError::Invalid(format!(
                "{}: late fusion has a head per branch, so no single embedding per window",
                self.config.arch_name()
            )));
        }
        Ok(Embedded { logits, embedding })
    }

    /// [`Dmft::fuse_embedded`] from the inputs of the present modalities (`inputs[m]` is
    /// `T × C_m` or `None`).
    pub fn embed_available(&mut self, inputs: &[Option<&[f32]>]) -> Result<Embedded> {
        let tokens = self.encode_available(inputs)?;
        let refs: Vec<Option<&[f32]>> = tokens.iter().map(|t| t.as_deref()).collect();
        self.fuse_embedded(&refs)
    }

    /// The class logits of one window; copies the mid-fusion features into `features` and
    /// the head's input into `embedding` when asked (inference does not pay for the copies).
    fn fuse_logits(
        &mut self,
        tokens: &[Option<&[f32]>],
        features: Option<&mut Vec<f32>>,
        embedding: Option<&mut Vec<f32>>,
    ) -> Result<Vec<f32>> {
        let _span = trace_span!("dmft.fuse").entered();
        if tokens.len() != self.encoders.len() || tokens.iter().all(|t| t.is_none()) {
            return Err(RuntimeError::Invalid(format!(
                "fuse needs {} token sets with at least one present",
                self.encoders.len()
            )));
        }
        for (m, t) in tokens.iter().enumerate() {
            let expected = self.config.tokens_per_window(m) * self.config.dim;
            if let Some(t) = t {
                if t.len() != expected {
                    return Err(RuntimeError::Invalid(format!(
                        "modality {m}: {} token values, expected {expected}",
                        t.len()
                    )));
                }
            }
        }
        let present = Present {
            tokens,
            groups: &self.groups,
        };
        Ok(self.fusion.logits(
            &self.config,
            &present,
            features,
            embedding,
            &mut self.scratch,
        ))
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
        let tokens = self.encode_available(inputs)?;
        let refs: Vec<Option<&[f32]>> = tokens.iter().map(|t| t.as_deref()).collect();
        self.fuse(&refs)
    }

    /// The tokens of every present modality.
    fn encode_available(&mut self, inputs: &[Option<&[f32]>]) -> Result<Vec<Option<Vec<f32>>>> {
        inputs
            .iter()
            .enumerate()
            .map(|(m, x)| x.map(|x| self.encode(m, x)).transpose())
            .collect()
    }
}
