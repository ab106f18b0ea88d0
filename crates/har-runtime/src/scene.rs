//! The scene model (issue 20), candle-free: several people's windows of one moment in, each
//! person's activity and the scene's label set out.
//!
//! - **Cross-subject context** (seed S5's counterpart): each member's fused feature (the
//!   window classifier's embedding) is projected, `h_i = gelu(W e_i)`; member `i` attends
//!   over the *other* members (`c_i`), the scene summary is the members' mean (`s`, the
//!   "mixture"), and `z_i = norm(h_i + W_mix [c_i; s])`; without context `z_i = norm(h_i)`.
//!   A head gives each member's activity logits.
//! - **The label-set decoder** (seed S11's counterpart): an LSTM over the labels decoded so
//!   far (a learned embedding per label, a start token first) whose state queries the
//!   members' `z` by attention; `[h; context]` gives the next label's logits and the end
//!   token's (last). [`crate::beam::search`] decodes sets (width 1: greedy).
//! - **The baseline**: independent per-label logits from the members' mean and max `z`,
//!   thresholded.
//!
//! Names: [`crate::names::scene`]; the training crate describes the same model in candle.

use std::path::Path;

use har_core::dataset::ClassInfo;
use serde::{Deserialize, Serialize};

use crate::beam::{self, BeamResult};
use crate::error::{Result, RuntimeError};
use crate::kernels::{self, gelu};
use crate::layers::{Dense, LayerNorm, Lstm};
use crate::names::{scene as names, transformer};
use crate::weights::{Params, Weights};

/// The card's file name in a scene model directory.
pub const CARD_FILE: &str = "scene.json";
/// The weights' file name in a scene model directory.
pub const WEIGHTS_FILE: &str = "scene.safetensors";

/// What a scene model directory holds besides its weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SceneCard {
    /// Shape.
    pub config: SceneConfig,
    /// The activities, in the head's order (the window classifier's classes).
    pub activities: Vec<ClassInfo>,
    /// The label set's labels, in the decoder's order.
    pub labels: Vec<ClassInfo>,
    /// The window classifier whose features it reads (model id).
    pub classifier: String,
    /// The modality left out of the classifier's windows in training (a dead sensor), if any:
    /// evaluation leaves it out too.
    #[serde(default)]
    pub dropped_modality: Option<String>,
    /// The baseline's threshold on its per-label probabilities (chosen on validation).
    pub threshold: f32,
    /// How it was trained.
    pub provenance: serde_json::Value,
}

/// The scene model's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneConfig {
    /// Width of a member's input feature (the window classifier's embedding).
    pub input_dim: usize,
    /// Width of every layer.
    pub dim: usize,
    /// Attention heads of the cross-subject context.
    pub heads: usize,
    /// Activities per member.
    pub activities: usize,
    /// Labels of the scene label set (activities and group labels).
    pub labels: usize,
    /// Whether the cross-subject context is there.
    pub context: bool,
    /// Most labels a decoded set holds.
    pub max_labels: usize,
}

impl SceneConfig {
    /// Refuses shapes no model has.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            self.input_dim,
            self.dim,
            self.heads,
            self.activities,
            self.labels,
            self.max_labels,
        ];
        if sizes.contains(&0) || self.dim % self.heads != 0 {
            return Err(RuntimeError::Invalid(format!("scene config {self:?}")));
        }
        Ok(())
    }
}

/// What the model says about one moment of a scene.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneOutput {
    /// Each member's activity logits (`members × activities`).
    pub activity_logits: Vec<f32>,
    /// The members' features after context (`members × dim`): the decoder's memory.
    pub memory: Vec<f32>,
    /// The baseline's independent per-label logits.
    pub independent_logits: Vec<f32>,
}

/// The decoder's state between labels: the LSTM's and which labels were decoded (they are
/// not offered again: the softmax runs over the others and the end token, in training too).
#[derive(Debug, Clone)]
pub struct DecoderState {
    h: Vec<f32>,
    c: Vec<f32>,
    emitted: Vec<bool>,
}

/// The model with its weights.
#[derive(Debug, Clone)]
pub struct SceneModel {
    config: SceneConfig,
    input: Dense,
    cross_qkv: Option<Dense>,
    cross_out: Option<Dense>,
    mix: Option<Dense>,
    norm: LayerNorm,
    head: Dense,
    label_embedding: Vec<f32>,
    lstm: Lstm,
    query: Dense,
    out: Dense,
    independent: Dense,
}

impl SceneModel {
    /// Loads the model of `config` from `p`, checking every shape.
    pub fn load(p: &Params, config: &SceneConfig) -> Result<Self> {
        config.validate()?;
        let d = config.dim;
        let cross = p.pp(names::CROSS);
        Ok(Self {
            config: config.clone(),
            input: Dense::load(&p.pp(names::INPUT), config.input_dim, d)?,
            cross_qkv: config
                .context
                .then(|| Dense::load(&cross.pp(transformer::QKV), d, 3 * d))
                .transpose()?,
            cross_out: config
                .context
                .then(|| Dense::load(&cross.pp(transformer::OUT), d, d))
                .transpose()?,
            mix: config
                .context
                .then(|| Dense::load(&p.pp(names::MIX), 2 * d, d))
                .transpose()?,
            norm: LayerNorm::load(&p.pp(names::NORM), d)?,
            head: Dense::load(&p.pp(names::HEAD), d, config.activities)?,
            label_embedding: p.get(names::LABEL_EMBEDDING, &[config.labels + 1, d])?,
            lstm: Lstm::load(&p.pp(names::LSTM), d, d)?,
            query: Dense::load(&p.pp(names::QUERY), d, d)?,
            out: Dense::load(&p.pp(names::OUT), 2 * d, config.labels + 1)?,
            independent: Dense::load(&p.pp(names::INDEPENDENT), 2 * d, config.labels)?,
        })
    }

    /// Reads a scene model directory: the card (classes as many as the outputs) and the
    /// weights (every shape checked, none left over).
    pub fn read_dir(dir: &Path) -> Result<(SceneCard, Self)> {
        let path = dir.join(CARD_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| RuntimeError::file(&path, e))?;
        let card: SceneCard =
            serde_json::from_str(&text).map_err(|e| RuntimeError::file(&path, e))?;
        let field = |field: &str, problem: String| RuntimeError::Field {
            path: path.clone(),
            field: field.into(),
            problem,
        };
        if card.activities.len() != card.config.activities {
            return Err(field(
                "activities",
                format!(
                    "{} for {} outputs",
                    card.activities.len(),
                    card.config.activities
                ),
            ));
        }
        if card.labels.len() != card.config.labels {
            return Err(field(
                "labels",
                format!("{} for {} outputs", card.labels.len(), card.config.labels),
            ));
        }
        let weights = Weights::read(&dir.join(WEIGHTS_FILE))?;
        let model = Self::load(&weights.root(), &card.config)?;
        weights.finish()?;
        Ok((card, model))
    }

    /// The model's shape.
    pub fn config(&self) -> &SceneConfig {
        &self.config
    }

    /// The members' activities and features of one moment: `features` holds one
    /// `input_dim` feature per member (at least one member).
    pub fn forward(&self, features: &[f32]) -> Result<SceneOutput> {
        let (e, d) = (self.config.input_dim, self.config.dim);
        if features.is_empty() || features.len() % e != 0 {
            return Err(RuntimeError::Invalid(format!(
                "scene input of {} values is not whole members of {e}",
                features.len()
            )));
        }
        let k = features.len() / e;
        let mut h = Vec::new();
        self.input.apply(features, k, &mut h);
        h.iter_mut().for_each(|v| *v = gelu(*v));
        let mut z = h.clone();
        if let (Some(qkv_layer), Some(out_layer), Some(mix)) =
            (&self.cross_qkv, &self.cross_out, &self.mix)
        {
            let mut qkv = Vec::new();
            qkv_layer.apply(&h, k, &mut qkv);
            let mut summary = vec![0f32; d];
            for row in h.chunks_exact(d) {
                kernels::axpy(&mut summary, row, 1.0 / k as f32);
            }
            let (mut keys, mut values, mut scores) = (Vec::new(), Vec::new(), Vec::new());
            let (mut attended, mut context, mut mixed) = (vec![0f32; d], Vec::new(), Vec::new());
            let mut both = vec![0f32; 2 * d];
            for i in 0..k {
                // The other members' keys and values.
                keys.clear();
                values.clear();
                for j in (0..k).filter(|&j| j != i) {
                    keys.extend_from_slice(&qkv[j * 3 * d + d..j * 3 * d + 2 * d]);
                    values.extend_from_slice(&qkv[j * 3 * d + 2 * d..(j + 1) * 3 * d]);
                }
                kernels::attend_query(
                    &qkv[i * 3 * d..i * 3 * d + d],
                    &keys,
                    &values,
                    self.config.heads,
                    &mut scores,
                    &mut attended,
                );
                if k > 1 {
                    out_layer.apply(&attended, 1, &mut context);
                } else {
                    // Alone in the scene: no other member to attend to.
                    context.clear();
                    context.resize(d, 0.0);
                }
                both[..d].copy_from_slice(&context);
                both[d..].copy_from_slice(&summary);
                mix.apply(&both, 1, &mut mixed);
                z[i * d..(i + 1) * d]
                    .iter_mut()
                    .zip(&mixed)
                    .for_each(|(zv, m)| *zv += m);
            }
        }
        let mut memory = Vec::new();
        self.norm.apply(&z, &mut memory);
        let mut activity_logits = Vec::new();
        self.head.apply(&memory, k, &mut activity_logits);
        let mut pooled = vec![0f32; 2 * d];
        pooled[d..].fill(f32::NEG_INFINITY);
        for row in memory.chunks_exact(d) {
            for (c, &v) in row.iter().enumerate() {
                pooled[c] += v / k as f32;
                pooled[d + c] = pooled[d + c].max(v);
            }
        }
        let mut independent_logits = Vec::new();
        self.independent.apply(&pooled, 1, &mut independent_logits);
        Ok(SceneOutput {
            activity_logits,
            memory,
            independent_logits,
        })
    }

    /// The decoder's state after `token` (the start token is `labels`), and the
    /// log-probabilities of the next label (`labels + 1`, the end token last).
    pub fn decode_step(
        &self,
        memory: &[f32],
        state: &DecoderState,
        token: usize,
    ) -> (DecoderState, Vec<f32>) {
        let d = self.config.dim;
        let mut next = state.clone();
        if let Some(e) = next.emitted.get_mut(token) {
            *e = true;
        }
        let x = &self.label_embedding[token * d..(token + 1) * d];
        let (mut gates, mut recurrent) = (Vec::new(), Vec::new());
        self.lstm
            .step(x, &mut next.h, &mut next.c, &mut gates, &mut recurrent);
        let mut q = Vec::new();
        self.query.apply(&next.h, 1, &mut q);
        let (mut scores, mut attended) = (Vec::new(), vec![0f32; d]);
        // One head over the members' features as keys and values.
        kernels::attend_query(&q, memory, memory, 1, &mut scores, &mut attended);
        let mut both = next.h.clone();
        both.extend_from_slice(&attended);
        let mut logits = Vec::new();
        self.out.apply(&both, 1, &mut logits);
        // log-softmax over the labels not yet decoded and the end token.
        let max = logits
            .iter()
            .zip(next.emitted.iter().chain([&false]))
            .filter(|(_, &e)| !e)
            .map(|(v, _)| *v)
            .fold(f32::NEG_INFINITY, f32::max);
        let total: f32 = logits
            .iter()
            .zip(next.emitted.iter().chain([&false]))
            .filter(|(_, &e)| !e)
            .map(|(v, _)| (v - max).exp())
            .sum();
        let log_total = max + total.ln();
        let logp = logits
            .iter()
            .zip(next.emitted.iter().chain([&false]))
            .map(|(v, &e)| if e { f32::NEG_INFINITY } else { v - log_total })
            .collect();
        (next, logp)
    }

    /// The decoder's state before the start token.
    pub fn start(&self) -> DecoderState {
        let d = self.config.dim;
        DecoderState {
            h: vec![0.0; d],
            c: vec![0.0; d],
            emitted: vec![false; self.config.labels],
        }
    }

    /// A score per label for ranking metrics (mAP): along the decoded `labels` (in decoding
    /// order), the highest probability the label had at any step — its probability when it
    /// was decoded, or the best it reached while not chosen.
    pub fn label_scores(&self, memory: &[f32], labels: &[usize]) -> Vec<f32> {
        let mut scores = vec![0f32; self.config.labels];
        let (mut state, mut logp) = self.decode_step(memory, &self.start(), self.config.labels);
        for step in 0..=labels.len() {
            for (s, lp) in scores.iter_mut().zip(&logp) {
                *s = s.max(lp.exp());
            }
            if let Some(&token) = labels.get(step) {
                (state, logp) = self.decode_step(memory, &state, token);
            }
        }
        scores
    }

    /// Decodes the scene's label set with a beam of `width` (1: greedy).
    pub fn decode(&self, memory: &[f32], width: usize) -> BeamResult {
        let first = self.decode_step(memory, &self.start(), self.config.labels);
        beam::search(
            width,
            self.config.labels,
            self.config.max_labels,
            first,
            |state, token| self.decode_step(memory, state, token),
        )
    }
}
