//! Fitting the transfer parameters ([`har_runtime::fewshot::Transfer`]) on the base classes.
//!
//! Every fit uses *pseudo-novel episodes*: one base class `c` plays the new class — its row is
//! rebuilt from K of its training windows (and, for the graph, from the other base classes'
//! rows) — and queries of every base class are scored against the head with that row in place
//! of `c`'s. The loss is the cross-entropy over all base classes: what enrolment needs is a
//! row that competes fairly with the others.

use har_core::rng::Rng;
use har_runtime::fewshot::{
    aggregate, dot, mean, message, softmax, ActivityGraph, GraphTransfer, Imprint, Transfer,
};
use serde::Serialize;

use super::{sample, Embedded};
use crate::error::{ModelError, Result};

/// How the fit runs.
#[derive(Debug, Clone, Serialize)]
pub struct FitSettings {
    /// Episodes per optimisation step (graph) and in the temperature grid.
    pub episodes: usize,
    /// Adam steps for the graph transfer.
    pub steps: usize,
    /// Support sizes drawn per episode.
    pub shots: Vec<usize>,
    /// Queries per base class per episode.
    pub queries: usize,
    /// Seed.
    pub seed: u64,
    /// [`Transfer::claim_budget`].
    pub claim_budget: f32,
}

impl Default for FitSettings {
    fn default() -> Self {
        Self {
            episodes: 16,
            steps: 300,
            shots: vec![1, 5],
            queries: 8,
            seed: 1,
            claim_budget: CLAIM_BUDGET,
        }
    }
}

/// The base head and the base classes' training embeddings.
pub struct BaseClasses<'a> {
    /// Class names in head order.
    pub names: Vec<String>,
    /// Dataset label id of each head class.
    pub ids: Vec<i32>,
    /// Head rows `[C][D]`.
    pub weights: &'a [Vec<f32>],
    /// Head biases `[C]`.
    pub biases: &'a [f32],
    /// Training windows' embeddings (labels are dataset ids).
    pub windows: &'a Embedded,
}

impl BaseClasses<'_> {
    /// The head's logit of class `c` for embedding `q`.
    fn logit(&self, c: usize, q: &[f32]) -> f32 {
        dot(&self.weights[c], q) + self.biases[c]
    }

    /// The best logit at `q` over the base classes but `except`.
    fn best_other(&self, except: usize, q: &[f32]) -> f32 {
        (0..self.names.len())
            .filter(|&j| j != except)
            .map(|j| self.logit(j, q))
            .fold(f32::NEG_INFINITY, f32::max)
    }

    fn pools(&self) -> Result<Vec<Vec<usize>>> {
        self.ids
            .iter()
            .zip(&self.names)
            .map(|(&id, name)| {
                let pool = self.windows.of_label(id, None);
                if pool.len() < 2 {
                    return Err(ModelError::Invalid(format!(
                        "few-shot fit: base class `{name}` has {} training windows (2 needed)",
                        pool.len()
                    )));
                }
                Ok(pool)
            })
            .collect()
    }
}

/// Least squares `W_c ≈ a·p_c + u` over the base classes.
pub fn fit_imprint(prototypes: &[Vec<f32>], weights: &[Vec<f32>]) -> Imprint {
    let (p_mean, w_mean) = (mean(prototypes), mean(weights));
    let (mut num, mut den) = (0f32, 0f32);
    for (p, w) in prototypes.iter().zip(weights) {
        for d in 0..p.len() {
            let dp = p[d] - p_mean[d];
            num += dp * (w[d] - w_mean[d]);
            den += dp * dp;
        }
    }
    let scale = if den > 0.0 { num / den } else { 0.0 };
    Imprint {
        offset: w_mean
            .iter()
            .zip(&p_mean)
            .map(|(w, p)| w - scale * p)
            .collect(),
        scale,
    }
}

/// One pseudo-novel episode: class `c`, its support, queries of every base class.
struct Episode {
    class: usize,
    support: Vec<Vec<f32>>,
    /// Mean of the support.
    centre: Vec<f32>,
    /// Mean over the support of the best other base class's logit.
    anchor: f32,
    /// (query embedding, head class index).
    queries: Vec<(Vec<f32>, usize)>,
}

impl Episode {
    /// The pseudo-novel class's logit for `q` with row `h` (anchored bias, margin `delta`).
    fn logit(&self, h: &[f32], q: &[f32], delta: f32) -> f32 {
        h.iter()
            .zip(q.iter().zip(&self.centre))
            .map(|(h, (q, c))| h * (q - c))
            .sum::<f32>()
            + self.anchor
            + delta
    }
}

fn draw_episode(
    rng: &mut Rng,
    base: &BaseClasses,
    pools: &[Vec<usize>],
    settings: &FitSettings,
) -> Episode {
    let class = (rng.next_u64() % pools.len() as u64) as usize;
    let shots = settings.shots[(rng.next_u64() % settings.shots.len() as u64) as usize];
    let support_idx = sample(rng, &pools[class], shots.min(pools[class].len() - 1));
    let mut queries = Vec::new();
    for (k, pool) in pools.iter().enumerate() {
        let rest: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|i| !support_idx.contains(i))
            .collect();
        for i in sample(rng, &rest, settings.queries) {
            queries.push((base.windows.embeddings[i].clone(), k));
        }
    }
    let support = base.windows.rows(&support_idx);
    let anchor = support
        .iter()
        .map(|s| base.best_other(class, s))
        .sum::<f32>()
        / support.len().max(1) as f32;
    Episode {
        class,
        centre: mean(&support),
        support,
        anchor,
        queries,
    }
}

/// Cross-entropy of `query` (true class `y`) when class `c` scores `logit_c`; returns
/// (loss, ∂loss/∂logit_c).
fn episode_loss(base: &BaseClasses, c: usize, logit_c: f32, query: &[f32], y: usize) -> (f32, f32) {
    let mut logits: Vec<f32> = (0..base.names.len())
        .map(|j| {
            if j == c {
                logit_c
            } else {
                base.logit(j, query)
            }
        })
        .collect();
    softmax(&mut logits);
    let loss = -logits[y].max(1e-12).ln();
    (loss, logits[c] - f32::from(u8::from(y == c)))
}

/// Mean episode loss of the imprinted row with margin `delta` and S7's aggregation at
/// temperature `tau` (no graph).
fn imprint_loss(
    base: &BaseClasses,
    transfer: &Transfer,
    episodes: &[Episode],
    delta: f32,
    tau: f32,
) -> f32 {
    let mut total = (0f32, 0usize);
    for e in episodes {
        let h = transfer.imprint_row(&e.centre);
        for (q, y) in &e.queries {
            let mut logit = e.logit(&h, q, delta);
            if tau > 0.0 && e.support.len() > 1 {
                let r = aggregate(q, &e.support, tau);
                logit += transfer.imprint.scale
                    * r.iter()
                        .zip(&e.centre)
                        .zip(q)
                        .map(|((r, p), q)| (r - p) * q)
                        .sum::<f32>();
            }
            total.0 += episode_loss(base, e.class, logit, q, *y).0;
            total.1 += 1;
        }
    }
    total.0 / total.1.max(1) as f32
}

/// The grid value with the lowest loss, and every value's loss.
fn best_on_grid(grid: &[f32], loss: impl Fn(f32) -> f32) -> (f32, Vec<(f32, f32)>) {
    let scores: Vec<(f32, f32)> = grid.iter().map(|&v| (v, loss(v))).collect();
    let best = scores
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(0.0, |s| s.0);
    (best, scores)
}

/// The base classes' relations (edge, similarity) to every other base class, from the graph;
/// classes missing from the graph relate to nothing.
fn base_relations(graph: &ActivityGraph, names: &[String]) -> Vec<Vec<[f32; 2]>> {
    names.iter().map(|n| graph.relations(n, names)).collect()
}

/// Adam state for a flat parameter vector.
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    fn new(n: usize) -> Self {
        Self {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32) {
        let (b1, b2) = (0.9f32, 0.999f32);
        self.t += 1;
        for i in 0..params.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * grads[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * grads[i] * grads[i];
            let mh = self.m[i] / (1.0 - b1.powi(self.t));
            let vh = self.v[i] / (1.0 - b2.powi(self.t));
            params[i] -= lr * mh / (vh.sqrt() + 1e-8);
        }
    }
}

/// The graph transfer's loss over `episodes` and its gradient with respect to
/// `params = [g (D) ; θ_e ; θ_s]` (`κ = σ(g)`).
fn graph_loss(
    base: &BaseClasses,
    transfer: &Transfer,
    relations: &[Vec<[f32; 2]>],
    episodes: &[Episode],
    params: &[f32],
) -> (f32, Vec<f32>) {
    let n = params.len() - 2;
    let keep: Vec<f32> = params[..n]
        .iter()
        .map(|g| 1.0 / (1.0 + (-g).exp()))
        .collect();
    let (te, ts) = (params[n], params[n + 1]);
    let mut grad = vec![0f32; params.len()];
    let mut total = (0f32, 0usize);
    for e in episodes {
        // Senders: every base class but the pseudo-novel one.
        let senders: Vec<usize> = (0..base.names.len()).filter(|&j| j != e.class).collect();
        let rel: Vec<[f32; 2]> = senders.iter().map(|&j| relations[e.class][j]).collect();
        let mut att: Vec<f32> = rel.iter().map(|r| te * r[0] + ts * r[1]).collect();
        softmax(&mut att);
        let rows: Vec<Vec<f32>> = senders.iter().map(|&j| base.weights[j].clone()).collect();
        let m = message(&att, &rows);
        let h0 = transfer.imprint_row(&e.centre);
        let h: Vec<f32> = (0..n)
            .map(|d| keep[d] * h0[d] + (1.0 - keep[d]) * m[d])
            .collect();
        for (q, y) in &e.queries {
            // The logit is h·(q − centre) + anchor + δ.
            let x: Vec<f32> = q.iter().zip(&e.centre).map(|(q, c)| q - c).collect();
            let logit = e.logit(&h, q, transfer.margin);
            let (loss, delta) = episode_loss(base, e.class, logit, q, *y);
            total.0 += loss;
            total.1 += 1;
            // ∂/∂g_d and ∂/∂m.
            let mut dm = vec![0f32; n];
            for d in 0..n {
                grad[d] += delta * (h0[d] - m[d]) * x[d] * keep[d] * (1.0 - keep[d]);
                dm[d] = delta * (1.0 - keep[d]) * x[d];
            }
            for (k, row) in rows.iter().enumerate() {
                let dz: f32 = att[k] * (0..n).map(|d| (row[d] - m[d]) * dm[d]).sum::<f32>();
                grad[n] += dz * rel[k][0];
                grad[n + 1] += dz * rel[k][1];
            }
        }
    }
    let count = total.1.max(1) as f32;
    grad.iter_mut().for_each(|g| *g /= count);
    (total.0 / count, grad)
}

/// The share of base exemplars one new class may take ([`Transfer::claim_budget`]): 0.1 %,
/// so that five enrolled classes stay within half a point of the base classes' windows.
pub const CLAIM_BUDGET: f32 = 0.001;

/// Exemplars kept per base class for the bias guard.
pub const EXEMPLARS_PER_CLASS: usize = 100;

/// Up to [`EXEMPLARS_PER_CLASS`] embeddings of each base class, drawn from its fit windows.
fn exemplars(rng: &mut Rng, base: &BaseClasses, pools: &[Vec<usize>]) -> Vec<Vec<f32>> {
    pools
        .iter()
        .flat_map(|pool| base.windows.rows(&sample(rng, pool, EXEMPLARS_PER_CLASS)))
        .collect()
}

/// Fits every transfer parameter for the base classes; `model_id` names the backbone.
pub fn fit(
    base: &BaseClasses,
    graph: &ActivityGraph,
    model_id: &str,
    settings: &FitSettings,
) -> Result<Transfer> {
    if settings.shots.is_empty() || settings.shots.contains(&0) || base.names.len() < 2 {
        return Err(ModelError::Invalid(
            "few-shot fit: shots must be ≥ 1 and the head must have ≥ 2 classes".into(),
        ));
    }
    let pools = base.pools()?;
    let prototypes: Vec<Vec<f32>> = pools.iter().map(|p| mean(&base.windows.rows(p))).collect();
    let imprint = fit_imprint(&prototypes, base.weights);
    let d = imprint.offset.len();
    let mut transfer = Transfer {
        model_id: model_id.to_string(),
        base_classes: base.names.clone(),
        base_prototypes: prototypes,
        base_exemplars: exemplars(&mut Rng::new(settings.seed ^ 0xE7), base, &pools),
        claim_budget: settings.claim_budget,
        imprint,
        margin: 0.0,
        query_temperature: 0.0,
        graph: GraphTransfer {
            edge_weight: 0.0,
            similarity_weight: 0.0,
            keep: vec![1.0; d],
        },
        provenance: serde_json::Value::Null,
    };
    let mut rng = Rng::new(settings.seed);

    // The margin δ, then S7's τ (support of ≥ 2 for the aggregation), each on a grid.
    let episodes: Vec<Episode> = (0..settings.episodes * 8)
        .map(|_| draw_episode(&mut rng, base, &pools, settings))
        .collect();
    let margins = [-4.0f32, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0];
    let (margin, margin_scores) = best_on_grid(&margins, |m| {
        imprint_loss(base, &transfer, &episodes, m, 0.0)
    });
    transfer.margin = margin;
    let s7 = FitSettings {
        shots: settings.shots.iter().map(|&k| k.max(2)).collect(),
        ..settings.clone()
    };
    let episodes: Vec<Episode> = (0..settings.episodes * 8)
        .map(|_| draw_episode(&mut rng, base, &pools, &s7))
        .collect();
    let taus = [0.0f32, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0];
    let (tau, tau_scores) = best_on_grid(&taus, |t| {
        imprint_loss(base, &transfer, &episodes, margin, t)
    });
    transfer.query_temperature = tau;
    tracing::info!(
        margin,
        ?margin_scores,
        tau,
        ?tau_scores,
        "margin and S7 temperature"
    );

    // S8: Adam over [g ; θ_e ; θ_s], κ = σ(g) starting at 0.88 (mostly the prototype).
    let relations = base_relations(graph, &base.names);
    let mut params = vec![2.0f32; d];
    params.extend([1.0, 1.0]);
    let mut adam = Adam::new(params.len());
    let (mut first, mut last) = (f32::NAN, f32::NAN);
    for step in 0..settings.steps {
        let batch: Vec<Episode> = (0..settings.episodes)
            .map(|_| draw_episode(&mut rng, base, &pools, settings))
            .collect();
        let (loss, grad) = graph_loss(base, &transfer, &relations, &batch, &params);
        if step == 0 {
            first = loss;
        }
        last = loss;
        adam.step(&mut params, &grad, 0.05);
    }
    tracing::info!(first, last, "S8 graph transfer fitted");
    transfer.graph = GraphTransfer {
        keep: params[..d]
            .iter()
            .map(|g| 1.0 / (1.0 + (-g).exp()))
            .collect(),
        edge_weight: params[d],
        similarity_weight: params[d + 1],
    };
    transfer.provenance = serde_json::json!({
        "settings": settings,
        "margin_grid": margin_scores,
        "temperature_grid": tau_scores,
        "graph_loss": { "first_step": first, "last_step": last },
        "base_windows": base.windows.labels.len(),
    });
    Ok(transfer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SYNTHETIC base classes: 3 classes in 3 dimensions, noisy points around each axis.
    fn synthetic() -> (Vec<Vec<f32>>, Vec<f32>, Embedded) {
        let mut rng = Rng::new(3);
        let mut windows = Embedded::default();
        for c in 0..3 {
            for _ in 0..6 {
                let mut e: Vec<f32> = (0..3).map(|_| 0.4 * rng.normal() as f32).collect();
                e[c] += 1.0;
                windows.embeddings.push(e);
                windows.labels.push(c as i32 + 1);
                windows.subjects.push("s".into());
            }
        }
        let weights = (0..3)
            .map(|c| (0..3).map(|d| if d == c { 2.0 } else { -0.5 }).collect())
            .collect();
        (weights, vec![0.1, -0.2, 0.0], windows)
    }

    fn graph() -> ActivityGraph {
        serde_json::from_str(
            r#"{"attributes": ["k"],
                "activities": [{"name": "A", "attributes": {"k": "x"}},
                               {"name": "B", "attributes": {"k": "x"}},
                               {"name": "C", "attributes": {"k": "y"}}],
                "edges": [{"from": "A", "to": "C", "relation": "r"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn the_graph_gradient_matches_finite_differences() {
        let (w, b, windows) = synthetic();
        let base = BaseClasses {
            names: vec!["A".into(), "B".into(), "C".into()],
            ids: vec![1, 2, 3],
            weights: &w,
            biases: &b,
            windows: &windows,
        };
        let pools = base.pools().unwrap();
        let prototypes: Vec<Vec<f32>> = pools.iter().map(|p| mean(&windows.rows(p))).collect();
        let transfer = Transfer {
            model_id: "t".into(),
            base_classes: base.names.clone(),
            base_prototypes: prototypes.clone(),
            base_exemplars: Vec::new(),
            claim_budget: CLAIM_BUDGET,
            imprint: fit_imprint(&prototypes, &w),
            margin: 0.5,
            query_temperature: 0.0,
            graph: GraphTransfer {
                edge_weight: 0.0,
                similarity_weight: 0.0,
                keep: vec![],
            },
            provenance: serde_json::Value::Null,
        };
        let settings = FitSettings::default();
        let mut rng = Rng::new(5);
        let episodes: Vec<Episode> = (0..4)
            .map(|_| draw_episode(&mut rng, &base, &pools, &settings))
            .collect();
        let relations = base_relations(&graph(), &base.names);
        let params = vec![0.3, -0.2, 0.5, 0.7, 0.4];
        let (_, grad) = graph_loss(&base, &transfer, &relations, &episodes, &params);
        for i in 0..params.len() {
            let h = 1e-2;
            let (mut up, mut down) = (params.clone(), params.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (graph_loss(&base, &transfer, &relations, &episodes, &up).0
                - graph_loss(&base, &transfer, &relations, &episodes, &down).0)
                / (2.0 * h);
            assert!(
                (numeric - grad[i]).abs() < 2e-3 + 0.05 * numeric.abs(),
                "parameter {i}: analytic {} numeric {numeric}",
                grad[i]
            );
        }
    }

    #[test]
    fn the_imprint_maps_prototypes_onto_rows_by_least_squares() {
        // Rows exactly 3·p + u: recovered.
        let p = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 1.0]];
        let u = [0.5, -1.0];
        let w: Vec<Vec<f32>> = p
            .iter()
            .map(|p| p.iter().zip(&u).map(|(p, u)| 3.0 * p + u).collect())
            .collect();
        let imprint = fit_imprint(&p, &w);
        assert!((imprint.scale - 3.0).abs() < 1e-5);
        assert!((imprint.offset[0] - 0.5).abs() < 1e-5 && (imprint.offset[1] + 1.0).abs() < 1e-5);
    }
}
