//! N-way K-shot evaluation of enrolment on held-out subjects.
//!
//! Each episode splits the evaluation subjects at random into support subjects and query
//! subjects (disjoint), draws N novel classes that have K windows among the support subjects
//! and at least one among the query subjects, enrols them by every method from K support
//! windows each, and scores queries (up to Q per class) of the query subjects:
//!
//! - **novel**: N-way, only the novel classes compete;
//! - **generalised**: base and novel classes together — accuracy on the novel queries and on
//!   queries of the base classes (Q per base class, same query subjects);
//! - **base drop**: base-query accuracy of the head alone minus that with the novel classes.
//!
//! Each metric is reported as the mean over episodes with a 95 % interval (1.96·sd/√E).

use har_core::rng::Rng;
use har_runtime::fewshot::{dot, ActivityGraph, EnrolledClass, Method, Transfer};
use serde::Serialize;

use super::{sample, Embedded};
use crate::error::{ModelError, Result};

/// A method compared: an enrolment method, or fine-tuning the new rows on the support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Compared {
    /// One of [`Method`].
    Enrol(Method),
    /// The mean's rows trained by gradient descent on the K support embeddings (and the base
    /// prototypes as negatives), base rows frozen.
    FineTune,
}

impl Compared {
    /// Every compared method, in report order.
    pub fn all() -> Vec<Compared> {
        let mut all: Vec<Compared> = Method::ALL.into_iter().map(Compared::Enrol).collect();
        all.push(Compared::FineTune);
        all
    }

    /// Report name.
    pub fn name(self) -> &'static str {
        match self {
            Compared::Enrol(m) => m.name(),
            Compared::FineTune => "fine-tune",
        }
    }
}

/// How the episodes are drawn.
#[derive(Debug, Clone, Serialize)]
pub struct EpisodeSettings {
    /// N: novel classes per episode.
    pub ways: usize,
    /// K: support windows per novel class.
    pub shots: usize,
    /// Q: query windows per class at most.
    pub queries: usize,
    /// Episodes.
    pub episodes: usize,
    /// Evaluation subjects that give the support in each episode (the rest give queries).
    pub support_subjects: usize,
    /// Seed.
    pub seed: u64,
}

/// Mean and 95 % half-width over episodes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Interval {
    /// Mean (%).
    pub mean: f64,
    /// 1.96·sd/√n (%).
    pub ci95: f64,
}

impl Interval {
    fn of(values: &[f64]) -> Self {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        Self {
            mean,
            ci95: 1.96 * (var / n).sqrt(),
        }
    }
}

/// One method's scores.
#[derive(Debug, Clone, Serialize)]
pub struct MethodScores {
    /// The method.
    pub method: &'static str,
    /// N-way accuracy on novel queries (%).
    pub novel: Interval,
    /// Generalised: novel queries among base + novel (%).
    pub generalised_novel: Interval,
    /// Generalised: base queries among base + novel (%).
    pub generalised_base: Interval,
    /// Base-query accuracy lost by adding the novel classes (points).
    pub base_drop: Interval,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EpisodeReport {
    /// Settings.
    pub settings: EpisodeSettings,
    /// Episodes run (draws that found N classes with K support windows).
    pub episodes_run: usize,
    /// Base-query accuracy of the head alone (%).
    pub base_alone: Interval,
    /// Per method.
    pub methods: Vec<MethodScores>,
}

/// The evaluation's inputs.
pub struct EpisodeData<'a> {
    /// Evaluation windows' embeddings (base and novel labels).
    pub windows: &'a Embedded,
    /// Head rows and biases.
    pub head: (&'a [Vec<f32>], &'a [f32]),
    /// Dataset label id of each head class.
    pub base_ids: &'a [i32],
    /// Novel classes: (dataset label id, name as in the graph).
    pub novel: &'a [(i32, String)],
    /// Fitted transfer.
    pub transfer: &'a Transfer,
    /// The activity graph.
    pub graph: &'a ActivityGraph,
}

/// Fine-tuning settings (fixed before any evaluation, not tuned on it).
const FINE_TUNE_STEPS: usize = 100;
const FINE_TUNE_LR: f32 = 0.1;

/// Runs the episodes.
pub fn evaluate(data: &EpisodeData, settings: &EpisodeSettings) -> Result<EpisodeReport> {
    if settings.ways == 0 || settings.shots == 0 || settings.ways > data.novel.len() {
        return Err(ModelError::Invalid(format!(
            "episodes: {} ways of {} novel classes, {} shots",
            settings.ways,
            data.novel.len(),
            settings.shots
        )));
    }
    let mut subjects: Vec<String> = data.windows.subjects.clone();
    subjects.sort();
    subjects.dedup();
    if settings.support_subjects == 0 || settings.support_subjects >= subjects.len() {
        return Err(ModelError::Invalid(format!(
            "episodes: {} support subjects of {} evaluation subjects (needs 1 to {})",
            settings.support_subjects,
            subjects.len(),
            subjects.len().saturating_sub(1)
        )));
    }
    let methods = Compared::all();
    let mut rng = Rng::new(settings.seed);
    let mut base_alone = Vec::new();
    let mut scores = vec![[Vec::new(), Vec::new(), Vec::new(), Vec::new()]; methods.len()];
    let mut run = 0;
    let mut attempts = 0;
    while run < settings.episodes {
        attempts += 1;
        if attempts > settings.episodes * 50 {
            return Err(ModelError::Invalid(format!(
                "episodes: only {run} of {} draws found {} novel classes with {} support windows",
                settings.episodes, settings.ways, settings.shots
            )));
        }
        let order = sample(
            &mut rng,
            &(0..subjects.len()).collect::<Vec<_>>(),
            subjects.len(),
        );
        let (support_s, query_s): (Vec<String>, Vec<String>) = {
            let s: Vec<String> = order.iter().map(|&i| subjects[i].clone()).collect();
            let (a, b) = s.split_at(settings.support_subjects);
            (a.to_vec(), b.to_vec())
        };
        let eligible: Vec<usize> = (0..data.novel.len())
            .filter(|&n| {
                let id = data.novel[n].0;
                data.windows.of_label(id, Some(&support_s)).len() >= settings.shots
                    && !data.windows.of_label(id, Some(&query_s)).is_empty()
            })
            .collect();
        if eligible.len() < settings.ways {
            continue;
        }
        run += 1;
        let chosen = sample(&mut rng, &eligible, settings.ways);
        let supports: Vec<Vec<Vec<f32>>> = chosen
            .iter()
            .map(|&n| {
                let pool = data.windows.of_label(data.novel[n].0, Some(&support_s));
                data.windows.rows(&sample(&mut rng, &pool, settings.shots))
            })
            .collect();
        let mut novel_queries = Vec::new();
        for (k, &n) in chosen.iter().enumerate() {
            let pool = data.windows.of_label(data.novel[n].0, Some(&query_s));
            for i in sample(&mut rng, &pool, settings.queries) {
                novel_queries.push((i, k));
            }
        }
        let mut base_queries = Vec::new();
        for (c, &id) in data.base_ids.iter().enumerate() {
            let pool = data.windows.of_label(id, Some(&query_s));
            for i in sample(&mut rng, &pool, settings.queries) {
                base_queries.push((i, c));
            }
        }
        let base_logits = |i: usize| -> Vec<f32> {
            let q = &data.windows.embeddings[i];
            data.head
                .0
                .iter()
                .zip(data.head.1)
                .map(|(w, b)| dot(w, q) + b)
                .collect()
        };
        let alone = accuracy(
            base_queries
                .iter()
                .map(|&(i, c)| (argmax(&base_logits(i)), c)),
        );
        base_alone.push(alone);
        for (method, score) in methods.iter().zip(scores.iter_mut()) {
            let classes = enrol_all(data, *method, &chosen, &supports)?;
            let novel_logits = |i: usize| -> Vec<f32> {
                classes
                    .iter()
                    .map(|c| c.logit(&data.windows.embeddings[i]))
                    .collect()
            };
            let nb = data.base_ids.len();
            score[0].push(accuracy(
                novel_queries
                    .iter()
                    .map(|&(i, k)| (argmax(&novel_logits(i)), k)),
            ));
            let joint = |i: usize| {
                let mut l = base_logits(i);
                l.extend(novel_logits(i));
                argmax(&l)
            };
            score[1].push(accuracy(
                novel_queries.iter().map(|&(i, k)| (joint(i), nb + k)),
            ));
            let with = accuracy(base_queries.iter().map(|&(i, c)| (joint(i), c)));
            score[2].push(with);
            score[3].push(alone - with);
        }
    }
    Ok(EpisodeReport {
        settings: settings.clone(),
        episodes_run: run,
        base_alone: Interval::of(&base_alone),
        methods: methods
            .iter()
            .zip(&scores)
            .map(|(m, s)| MethodScores {
                method: m.name(),
                novel: Interval::of(&s[0]),
                generalised_novel: Interval::of(&s[1]),
                generalised_base: Interval::of(&s[2]),
                base_drop: Interval::of(&s[3]),
            })
            .collect(),
    })
}

/// The episode's novel classes enrolled by `method` (ids are positions; only logits matter).
fn enrol_all(
    data: &EpisodeData,
    method: Compared,
    chosen: &[usize],
    supports: &[Vec<Vec<f32>>],
) -> Result<Vec<EnrolledClass>> {
    let enrol = |m: Method, k: usize| {
        let name = &data.novel[chosen[k]].1;
        data.transfer.enroll(
            k as i32,
            name,
            m,
            supports[k].clone(),
            data.head,
            Some(data.graph),
            Vec::new(),
        )
    };
    match method {
        Compared::Enrol(m) => Ok((0..chosen.len())
            .map(|k| enrol(m, k))
            .collect::<std::result::Result<_, _>>()?),
        Compared::FineTune => {
            let mut classes: Vec<EnrolledClass> = (0..chosen.len())
                .map(|k| enrol(Method::Mean, k))
                .collect::<std::result::Result<_, _>>()?;
            fine_tune(data, &mut classes);
            Ok(classes)
        }
    }
}

/// Gradient descent on the novel rows: cross-entropy over base + novel classes of the support
/// embeddings (labelled novel) and the base prototypes (labelled base).
fn fine_tune(data: &EpisodeData, classes: &mut [EnrolledClass]) {
    let nb = data.base_ids.len();
    let mut examples: Vec<(Vec<f32>, usize)> = Vec::new();
    for (k, c) in classes.iter().enumerate() {
        examples.extend(c.support.iter().map(|s| (s.clone(), nb + k)));
    }
    for (c, p) in data.transfer.base_prototypes.iter().enumerate() {
        examples.push((p.clone(), c));
    }
    let n = examples.len() as f32;
    for _ in 0..FINE_TUNE_STEPS {
        let mut grads: Vec<(Vec<f32>, f32)> = classes
            .iter()
            .map(|c| (vec![0f32; c.weight.len()], 0f32))
            .collect();
        for (x, y) in &examples {
            let (x, y) = (x.as_slice(), *y);
            let mut logits: Vec<f32> = data
                .head
                .0
                .iter()
                .zip(data.head.1)
                .map(|(w, b)| dot(w, x) + b)
                .collect();
            logits.extend(classes.iter().map(|c| dot(&c.weight, x) + c.bias));
            har_runtime::fewshot::softmax(&mut logits);
            for (k, g) in grads.iter_mut().enumerate() {
                let delta = logits[nb + k] - f32::from(u8::from(y == nb + k));
                g.0.iter_mut().zip(x).for_each(|(a, b)| *a += delta * b / n);
                g.1 += delta / n;
            }
        }
        for (c, g) in classes.iter_mut().zip(&grads) {
            c.weight
                .iter_mut()
                .zip(&g.0)
                .for_each(|(w, d)| *w -= FINE_TUNE_LR * d);
            c.bias -= FINE_TUNE_LR * g.1;
        }
    }
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

fn accuracy(pairs: impl Iterator<Item = (usize, usize)>) -> f64 {
    let (mut right, mut n) = (0usize, 0usize);
    for (p, y) in pairs {
        right += usize::from(p == y);
        n += 1;
    }
    100.0 * right as f64 / n.max(1) as f64
}
