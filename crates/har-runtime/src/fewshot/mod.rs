//! Few-shot enrolment: new activity classes added to a trained model from K examples, with
//! no retraining (seeds S7 and S8).
//!
//! A window's *embedding* is the head's input ([`crate::dmft::Dmft::fuse_embedded`]). The
//! base head scores class `c` as `W_c·e + b_c`; an enrolled class gets a weight row in the same
//! space, so base and enrolled classes compete in one softmax:
//!
//! - **mean prototype (imprinting)**: `h⁰ = a·p + u` from the mean `p` of the K support
//!   embeddings, with `a`, `u` fitted by least squares so that the base classes' prototypes
//!   map onto their own head rows ([`Imprint`]).
//! - **anchored bias** (every method): a new class's bias puts its support windows a fitted
//!   margin `δ` above the best base class there, `b = mean_k(max_j z_j(s_k) − h·s_k) + δ` —
//!   a new activity lives among the base classes' embeddings, where a row from the prototype
//!   alone scores too low to ever win. The bias is then capped so that at most a budget
//!   (0.5 %) of stored base-class exemplar windows would be taken by the new class: the base
//!   classes keep their windows ([`Transfer::guarded_bias`]).
//! - **query-aware aggregation (S7)**: at prediction time the support is aggregated for each
//!   query `q`, `r(q) = Σ_k softmax_k(τ·cos(q, s_k))·s_k`, in place of `p`; `τ` fitted on
//!   base-class episodes (`τ = 0` is the mean).
//! - **knowledge-graph transfer (S8)**: the new node of the activity graph ([`graph`]) receives
//!   a message from the base classes' head rows, `m = Σ_j A_j·W_j` with
//!   `A = softmax_j(θ_e·edge(n, j) + θ_s·similarity(n, j))`, and a gate per dimension mixes
//!   it with the prototype's row: `h = κ ⊙ h⁰ + (1 − κ) ⊙ m`. `θ` and `κ` are fitted on base
//!   classes held out one at a time (`har fewshot fit`). Base rows never change, so the base
//!   classes keep their head.
//!
//! With both, an enrolled class scores `h·q + b + Σ_d κ_d·a·(r(q) − p)_d·q_d`.
//!
//! Files in the model directory: [`GRAPH_FILE`] (written by hand, documented in
//! `docs/fewshot.md`), [`TRANSFER_FILE`] (fitted), [`ENROLLED_FILE`] (what `har enroll`
//! adds; the fuse node re-reads it when it changes).

pub mod graph;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use graph::ActivityGraph;

use crate::card::ModelCard;
use crate::error::{Result, RuntimeError};
use crate::names::dmft as names;
use crate::weights::Weights;

/// The activity graph's file in a model directory.
pub const GRAPH_FILE: &str = "activity_graph.json";
/// The fitted transfer parameters' file.
pub const TRANSFER_FILE: &str = "fewshot.json";
/// The enrolled classes' file.
pub const ENROLLED_FILE: &str = "enrolled.json";

/// How an enrolled class's weights are made: the compared methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Imprinted from the mean of the support embeddings.
    Mean,
    /// S7: support aggregated per query.
    QueryAware,
    /// S8: the mean's row transferred along the activity graph.
    Graph,
    /// S7 + S8.
    QueryAwareGraph,
}

impl Method {
    /// Every method, in report order.
    pub const ALL: [Method; 4] = [
        Method::Mean,
        Method::QueryAware,
        Method::Graph,
        Method::QueryAwareGraph,
    ];

    /// Whether the support is aggregated per query (S7).
    pub fn query_aware(self) -> bool {
        matches!(self, Method::QueryAware | Method::QueryAwareGraph)
    }

    /// Whether the row is transferred along the graph (S8).
    pub fn graph(self) -> bool {
        matches!(self, Method::Graph | Method::QueryAwareGraph)
    }

    /// The name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Method::Mean => "mean",
            Method::QueryAware => "query-aware",
            Method::Graph => "graph",
            Method::QueryAwareGraph => "query-aware-graph",
        }
    }

    /// The method named `name` ([`Method::name`]).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Least-squares map from a class prototype to a head row: `w = a·p + u`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imprint {
    /// `a`.
    pub scale: f32,
    /// `u` `[D]`.
    pub offset: Vec<f32>,
}

/// The graph transfer's fitted parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphTransfer {
    /// `θ_e`: weight of an edge in the attention over senders.
    pub edge_weight: f32,
    /// `θ_s`: weight of the attribute similarity.
    pub similarity_weight: f32,
    /// `κ` `[D]` in (0, 1): the share of the prototype's row kept, per dimension.
    pub keep: Vec<f32>,
}

/// What `har fewshot fit` learns on the base classes, for one backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    /// The backbone it was fitted on ([`ModelCard::model_id`]).
    pub model_id: String,
    /// Base class names in head order.
    pub base_classes: Vec<String>,
    /// Mean embedding of each base class over its fit windows `[C][D]`.
    pub base_prototypes: Vec<Vec<f32>>,
    /// Exemplar embeddings of the base classes (a sample of the fit windows, all classes
    /// together): the windows the bias guard keeps with their base class.
    pub base_exemplars: Vec<Vec<f32>>,
    /// Share of the exemplars a new class may take (the guard's budget).
    pub claim_budget: f32,
    /// Prototype → row.
    pub imprint: Imprint,
    /// `δ`: how far above the best base class a new class puts its own support windows.
    pub margin: f32,
    /// S7's `τ`.
    pub query_temperature: f32,
    /// S8's parameters.
    pub graph: GraphTransfer,
    /// How it was fitted (episodes, shots, seed, validation scores), for the record.
    pub provenance: serde_json::Value,
}

/// One class added by enrolment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrolledClass {
    /// Label id of the new class (after the base classes').
    pub id: i32,
    /// Its name.
    pub name: String,
    /// How its row was made.
    pub method: Method,
    /// The K support embeddings `[K][D]`.
    pub support: Vec<Vec<f32>>,
    /// The static row `h` `[D]` and its bias.
    pub weight: Vec<f32>,
    /// Bias of the static row.
    pub bias: f32,
    /// `κ_d·a` per dimension for the query-aware term (empty when not query-aware).
    pub correction: Vec<f32>,
    /// S7's `τ` (0 when not query-aware).
    pub temperature: f32,
    /// Where the examples came from (files, windows).
    pub examples: Vec<String>,
}

/// Every class enrolled into one backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrollment {
    /// The backbone ([`ModelCard::model_id`]); a file for another model is refused.
    pub model_id: String,
    /// Enrolled classes in label order.
    pub classes: Vec<EnrolledClass>,
}

/// The base head's rows `[C][D]` and biases `[C]`, read from a model's weights.
pub fn base_head(card: &ModelCard, weights: &Weights) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
    let (c, d) = (card.config.num_classes, card.config.dim);
    let head = weights.root().pp(names::FUSION).pp(names::HEAD);
    let w = head.get(crate::names::WEIGHT, &[c, d])?;
    let b = head.get(crate::names::BIAS, &[c])?;
    Ok((w.chunks_exact(d).map(<[f32]>::to_vec).collect(), b))
}

/// Mean of equally long vectors.
pub fn mean(rows: &[Vec<f32>]) -> Vec<f32> {
    let mut m = vec![0f32; rows.first().map_or(0, Vec::len)];
    for r in rows {
        m.iter_mut().zip(r).for_each(|(a, b)| *a += b);
    }
    let n = rows.len().max(1) as f32;
    m.iter_mut().for_each(|a| *a /= n);
    m
}

/// Dot product.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Softmax of `scores` in place (max-shifted).
pub fn softmax(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    scores.iter_mut().for_each(|s| *s /= sum);
}

/// S7: the support aggregated for `query` with temperature `tau`:
/// `Σ_k softmax_k(τ·cos(q, s_k))·s_k`.
pub fn aggregate(query: &[f32], support: &[Vec<f32>], tau: f32) -> Vec<f32> {
    let mut r = vec![0f32; query.len()];
    for (s, w) in support.iter().zip(support_weights(query, support, tau)) {
        r.iter_mut().zip(s).for_each(|(a, b)| *a += w * b);
    }
    r
}

/// S7's weights of the support examples for `query`: `softmax_k(τ·cos(q, s_k))`.
fn support_weights(query: &[f32], support: &[Vec<f32>], tau: f32) -> Vec<f32> {
    let norm = |v: &[f32]| dot(v, v).sqrt().max(1e-12);
    let qn = norm(query);
    let mut weights: Vec<f32> = support
        .iter()
        .map(|s| tau * dot(query, s) / (qn * norm(s)))
        .collect();
    softmax(&mut weights);
    weights
}

impl Transfer {
    /// The attention of a new class over the base classes (`relations` from
    /// [`ActivityGraph::relations`]).
    pub fn attention(&self, relations: &[[f32; 2]]) -> Vec<f32> {
        let g = &self.graph;
        let mut a: Vec<f32> = relations
            .iter()
            .map(|r| g.edge_weight * r[0] + g.similarity_weight * r[1])
            .collect();
        softmax(&mut a);
        a
    }

    /// The imprinted row `a·p + u` of a prototype.
    pub fn imprint_row(&self, prototype: &[f32]) -> Vec<f32> {
        let i = &self.imprint;
        prototype
            .iter()
            .zip(&i.offset)
            .map(|(p, u)| i.scale * p + u)
            .collect()
    }

    /// `bias` capped by the guard: the largest bias at which at most
    /// [`Transfer::claim_budget`] of the base exemplars would score the new class above the
    /// best base class (`base` is the head; `score` the new class's logit without its bias).
    pub fn guarded_bias(
        &self,
        bias: f32,
        base: (&[Vec<f32>], &[f32]),
        score: impl Fn(&[f32]) -> f32,
    ) -> f32 {
        if self.base_exemplars.is_empty() {
            return bias;
        }
        let mut thresholds: Vec<f32> = self
            .base_exemplars
            .iter()
            .map(|e| best_logit(base, e) - score(e))
            .collect();
        thresholds.sort_by(f32::total_cmp);
        let allowed = (self.claim_budget.clamp(0.0, 1.0) * thresholds.len() as f32) as usize;
        bias.min(thresholds[allowed.min(thresholds.len() - 1)])
    }

    /// The anchored bias of a row `w` with support `support`, the best competing class's
    /// logit at each support window given: `mean_k(best_k − w·s_k) + δ`.
    pub fn anchored_bias(&self, w: &[f32], support: &[Vec<f32>], best: &[f32]) -> f32 {
        let n = support.len().max(1) as f32;
        support
            .iter()
            .zip(best)
            .map(|(s, b)| b - dot(w, s))
            .sum::<f32>()
            / n
            + self.margin
    }

    /// A new class from its support embeddings: its rows by `method`. `base` is the head
    /// (`[C][D]`, `[C]`); `graph` is needed for the graph methods and must name `name`.
    #[allow(clippy::too_many_arguments)]
    pub fn enroll(
        &self,
        id: i32,
        name: &str,
        method: Method,
        support: Vec<Vec<f32>>,
        base: (&[Vec<f32>], &[f32]),
        graph: Option<&ActivityGraph>,
        examples: Vec<String>,
    ) -> Result<EnrolledClass> {
        let d = self.imprint.offset.len();
        if support.is_empty() || support.iter().any(|s| s.len() != d) {
            return Err(RuntimeError::Invalid(format!(
                "enrolling `{name}`: {} support embeddings, each must have {d} values",
                support.len()
            )));
        }
        let mut row = self.imprint_row(&mean(&support));
        let mut keep = vec![1f32; d];
        if method.graph() {
            let graph = graph.ok_or_else(|| {
                RuntimeError::Invalid(format!(
                    "method `{}` needs the model directory's {GRAPH_FILE}",
                    method.name()
                ))
            })?;
            if !graph.contains(name) {
                return Err(RuntimeError::Invalid(format!(
                    "`{name}` is not an activity of {GRAPH_FILE}: add it (attributes and \
                     edges) or enrol with --method mean / query-aware"
                )));
            }
            let attention = self.attention(&graph.relations(name, &self.base_classes));
            let message = message(&attention, base.0);
            keep.clone_from(&self.graph.keep);
            for ((h, m), k) in row.iter_mut().zip(&message).zip(&keep) {
                *h = k * *h + (1.0 - k) * m;
            }
        }
        let best: Vec<f32> = support.iter().map(|s| best_logit(base, s)).collect();
        let anchored = self.anchored_bias(&row, &support, &best);
        let (correction, temperature) = if method.query_aware() {
            let correction = keep.iter().map(|k| k * self.imprint.scale).collect();
            (correction, self.query_temperature)
        } else {
            (Vec::new(), 0.0)
        };
        let mut class = EnrolledClass {
            id,
            name: name.to_string(),
            method,
            support,
            weight: row,
            bias: 0.0,
            correction,
            temperature,
            examples,
        };
        class.bias = self.guarded_bias(anchored, base, |e| class.logit(e));
        Ok(class)
    }
}

/// The head's best logit for embedding `e`.
pub fn best_logit((w, b): (&[Vec<f32>], &[f32]), e: &[f32]) -> f32 {
    w.iter()
        .zip(b)
        .map(|(w, b)| dot(w, e) + b)
        .fold(f32::NEG_INFINITY, f32::max)
}

/// `Σ_j A_j·W_j`.
pub fn message(attention: &[f32], w: &[Vec<f32>]) -> Vec<f32> {
    let mut m = vec![0f32; w.first().map_or(0, Vec::len)];
    for (a, row) in attention.iter().zip(w) {
        m.iter_mut().zip(row).for_each(|(x, y)| *x += a * y);
    }
    m
}

impl EnrolledClass {
    /// This class's logit for a window's embedding.
    pub fn logit(&self, embedding: &[f32]) -> f32 {
        let mut z = dot(&self.weight, embedding) + self.bias;
        if !self.correction.is_empty() && self.support.len() > 1 {
            // r(q) − p = Σ_k (α_k − 1/K)·s_k: one pass over the support, no mean kept.
            let uniform = 1.0 / self.support.len() as f32;
            let weights = support_weights(embedding, &self.support, self.temperature);
            for (s, w) in self.support.iter().zip(weights) {
                let share = w - uniform;
                z += share
                    * s.iter()
                        .zip(&self.correction)
                        .zip(embedding)
                        .map(|((s, c), q)| c * s * q)
                        .sum::<f32>();
            }
        }
        z
    }
}

impl Enrollment {
    /// Reads `dir`'s [`ENROLLED_FILE`] if there is one, checked against the model: its id,
    /// embedding width, unique names and ids not taken by the base classes.
    pub fn load(dir: &Path, card: &ModelCard) -> Result<Option<Self>> {
        let path = dir.join(ENROLLED_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Self::parse(&path, &bytes, card).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RuntimeError::file(&path, e)),
        }
    }

    /// Parses and checks the bytes of an enrolment file read from `path`.
    pub fn parse(path: &Path, bytes: &[u8], card: &ModelCard) -> Result<Self> {
        let enrollment: Self =
            serde_json::from_slice(bytes).map_err(|e| RuntimeError::file(path, e))?;
        enrollment
            .validate(card)
            .map_err(|e| RuntimeError::file(path, e))?;
        Ok(enrollment)
    }

    /// The checks [`Enrollment::load`] makes.
    pub fn validate(&self, card: &ModelCard) -> std::result::Result<(), String> {
        if self.model_id != card.model_id() {
            return Err(format!(
                "enrolled into {}, not this model ({})",
                self.model_id,
                card.model_id()
            ));
        }
        let d = card.config.dim;
        let mut names: Vec<&str> = card.classes.iter().map(|c| c.name.as_str()).collect();
        let mut ids: Vec<i32> = card.classes.iter().map(|c| c.id).collect();
        for c in &self.classes {
            let finite = c.weight.iter().chain(&c.correction).all(|v| v.is_finite())
                && c.bias.is_finite()
                && c.temperature.is_finite()
                && c.support.iter().flatten().all(|v| v.is_finite());
            if c.weight.len() != d
                || c.support.is_empty()
                || c.support.iter().any(|s| s.len() != d)
                || !(c.correction.is_empty() || c.correction.len() == d)
                || !finite
            {
                return Err(format!(
                    "class `{}`: rows must be {d} finite values with at least one support",
                    c.name
                ));
            }
            if names.contains(&c.name.as_str()) || ids.contains(&c.id) {
                return Err(format!("class `{}` (id {}) is already taken", c.name, c.id));
            }
            names.push(&c.name);
            ids.push(c.id);
        }
        Ok(())
    }

    /// Writes the file atomically (a temporary file renamed over it), so a watching fuse node
    /// never reads half of it.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(ENROLLED_FILE);
        let tmp = dir.join(format!(".{ENROLLED_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).map_err(|e| RuntimeError::file(&path, e))?;
        std::fs::write(&tmp, text).map_err(|e| RuntimeError::file(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| RuntimeError::file(&path, e))
    }

    /// The base logits extended by every enrolled class's logit.
    pub fn extend_logits(&self, embedding: &[f32], logits: &mut Vec<f32>) {
        logits.extend(self.classes.iter().map(|c| c.logit(embedding)));
    }
}

impl Transfer {
    /// Reads `dir`'s [`TRANSFER_FILE`], checked against the model.
    pub fn load(dir: &Path, card: &ModelCard) -> Result<Self> {
        let path = dir.join(TRANSFER_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            RuntimeError::file(
                &path,
                format!(
                    "{e} (fit it first: har fewshot fit --model {})",
                    dir.display()
                ),
            )
        })?;
        let t: Self = serde_json::from_str(&text).map_err(|e| RuntimeError::file(&path, e))?;
        let d = card.config.dim;
        let ok = t.model_id == card.model_id()
            && t.imprint.offset.len() == d
            && t.graph.keep.len() == d
            && t.base_classes.len() == card.classes.len()
            && t.base_prototypes.iter().all(|p| p.len() == d)
            && t.base_exemplars.iter().all(|p| p.len() == d);
        if !ok {
            return Err(RuntimeError::file(
                &path,
                format!("does not fit this model ({}, width {d})", card.model_id()),
            ));
        }
        Ok(t)
    }

    /// Writes the file.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(TRANSFER_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|e| RuntimeError::file(&path, e))?;
        std::fs::write(&path, text).map_err(|e| RuntimeError::file(&path, e))
    }
}
