//! Training the scene model on scene moments and scoring it on the runtime: per-member
//! accuracy (the window classifier alone, and the scene model), and for the scene label set
//! the example-based F1, subset accuracy and mAP — of the decoder at each beam width, and of
//! the baseline that thresholds independent per-label scores.

use std::path::Path;

use candle_core::{Device, Tensor, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use har_core::rng::Rng;
use har_runtime::scene::SceneModel as RuntimeScene;
use serde::{Deserialize, Serialize};

use super::data::Moment;
use super::{SceneConfig, SceneModel};
use crate::error::{ModelError, Result};
use crate::init::seeded_var_builder;
use crate::runtime::varmap_weights;
use crate::train::{restore, snapshot};

pub use har_runtime::scene::{SceneCard, CARD_FILE, WEIGHTS_FILE};

/// How the scene model is trained.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SceneTraining {
    /// Passes over the training moments.
    pub epochs: usize,
    /// Moments per batch.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// Seed.
    pub seed: u64,
}

/// Label-set scores of one decoder setting or the baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetScores {
    /// What decoded the sets (`beam 4`, `independent > 0.5`).
    pub method: String,
    /// Mean over moments of `2 |P ∩ T| / (|P| + |T|)`, %.
    pub example_f1: f64,
    /// Share of moments whose set is exactly right, %.
    pub subset_accuracy: f64,
    /// Mean over labels of the average precision of the label's scores, %.
    pub map: f64,
}

/// Everything `har scene eval` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SceneReport {
    /// Moments scored.
    pub moments: usize,
    /// Member windows scored.
    pub members: usize,
    /// The window classifier's own accuracy on the members' windows, %.
    pub classifier_accuracy: f64,
    /// The scene model's per-member accuracy, %.
    pub member_accuracy: f64,
    /// The label set, per decoder setting and the baseline.
    pub sets: Vec<SetScores>,
}

/// A batch as tensors: features `[B, K, E]`, mask `[B, K]`, activity targets `[B·K]`.
fn batch_tensors(moments: &[&Moment], input_dim: usize) -> Result<(Tensor, Tensor, Vec<u32>)> {
    let k_max = moments
        .iter()
        .map(|m| m.activities.len())
        .max()
        .unwrap_or(1);
    let b = moments.len();
    let mut features = vec![0f32; b * k_max * input_dim];
    let mut mask = vec![0f32; b * k_max];
    let mut targets = vec![0u32; b * k_max];
    for (i, m) in moments.iter().enumerate() {
        for (j, &a) in m.activities.iter().enumerate() {
            let at = (i * k_max + j) * input_dim;
            features[at..at + input_dim]
                .copy_from_slice(&m.features[j * input_dim..(j + 1) * input_dim]);
            mask[i * k_max + j] = 1.0;
            targets[i * k_max + j] = a as u32;
        }
    }
    Ok((
        Tensor::from_vec(features, (b, k_max, input_dim), &Device::Cpu)?,
        Tensor::from_vec(mask, (b, k_max), &Device::Cpu)?,
        targets,
    ))
}

/// The training loss of a batch: member cross-entropy + decoder loss + baseline BCE.
fn batch_loss(model: &SceneModel, moments: &[&Moment]) -> Result<Tensor> {
    let c = model.config();
    let (features, mask, targets) = batch_tensors(moments, c.input_dim)?;
    let out = model.encode(&features, &mask, true)?;
    let (b, k, a) = out.activity_logits.dims3()?;
    let logp = candle_nn::ops::log_softmax(&out.activity_logits.reshape((b * k, a))?, D::Minus1)?;
    let picked = logp
        .gather(&Tensor::from_vec(targets, (b * k, 1), &Device::Cpu)?, 1)?
        .squeeze(1)?;
    let flat_mask = mask.reshape(b * k)?;
    let member_loss = (picked.mul(&flat_mask)?.sum_all()?.neg()?
        / flat_mask.sum_all()?.to_scalar::<f32>()? as f64)?;
    let sets: Vec<Vec<usize>> = moments.iter().map(|m| m.labels.clone()).collect();
    let decoder_loss = model.decoder_loss(&out.memory, &mask, &sets)?;
    let mut hot = vec![0f32; b * c.labels];
    for (i, set) in sets.iter().enumerate() {
        for &l in set {
            hot[i * c.labels + l] = 1.0;
        }
    }
    let y = Tensor::from_vec(hot, (b, c.labels), &Device::Cpu)?;
    let x = &out.independent_logits;
    // Binary cross-entropy with logits: max(x, 0) − x·y + log(1 + e^{−|x|}).
    let bce = (x.relu()? - x.mul(&y)?)?
        .add(&x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)?
        .mean_all()?;
    Ok(((member_loss + decoder_loss)? + bce)?)
}

/// The runtime model of `varmap`'s current weights.
pub fn runtime_model(varmap: &VarMap, config: &SceneConfig) -> Result<RuntimeScene> {
    let weights = varmap_weights(varmap)?;
    let model = RuntimeScene::load(&weights.root(), config)?;
    weights.finish()?;
    Ok(model)
}

/// Trains on `train`, keeping the epoch whose validation score (per-member accuracy plus
/// greedy example-F1) is best; returns the weights and the per-epoch records.
pub fn fit(
    config: &SceneConfig,
    train: &[Moment],
    validation: &[Moment],
    settings: &SceneTraining,
) -> Result<(VarMap, Vec<serde_json::Value>)> {
    if train.is_empty() {
        return Err(ModelError::Invalid("no training moments".into()));
    }
    let varmap = VarMap::new();
    let model = SceneModel::new(config, seeded_var_builder(&varmap, settings.seed))?;
    let mut optimizer = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: settings.learning_rate,
            weight_decay: 0.01,
            ..Default::default()
        },
    )?;
    let mut rng = Rng::new(settings.seed ^ 0x5CE);
    let (mut best, mut best_weights, mut history) = (f64::MIN, None, Vec::new());
    for epoch in 1..=settings.epochs {
        let mut order: Vec<usize> = (0..train.len()).collect();
        rng.shuffle(&mut order);
        let mut losses = Vec::new();
        for batch in order.chunks(settings.batch_size) {
            let moments: Vec<&Moment> = batch.iter().map(|&i| &train[i]).collect();
            let loss = batch_loss(&model, &moments)?;
            losses.push(f64::from(loss.to_scalar::<f32>()?));
            optimizer.backward_step(&loss)?;
        }
        let train_loss = losses.iter().sum::<f64>() / losses.len().max(1) as f64;
        let report = evaluate(&runtime_model(&varmap, config)?, validation, &[1], &[0.5])?;
        let score = report.member_accuracy + report.sets[0].example_f1;
        tracing::info!(
            epoch,
            train_loss,
            member_accuracy = report.member_accuracy,
            example_f1 = report.sets[0].example_f1,
            "scene epoch"
        );
        history.push(serde_json::json!({
            "epoch": epoch, "train_loss": train_loss,
            "validation_member_accuracy": report.member_accuracy,
            "validation_greedy_example_f1": report.sets[0].example_f1,
        }));
        if score > best {
            best = score;
            best_weights = Some(snapshot(&varmap)?);
        }
    }
    if let Some(weights) = best_weights {
        restore(&varmap, &weights)?;
    }
    Ok((varmap, history))
}

fn set_f1(predicted: &[usize], truth: &[usize]) -> f64 {
    if predicted.is_empty() && truth.is_empty() {
        return 1.0;
    }
    let both = predicted.iter().filter(|l| truth.contains(l)).count();
    2.0 * both as f64 / (predicted.len() + truth.len()) as f64
}

/// Mean average precision over the labels with at least one positive: `scores[i][l]` ranks
/// moments for label `l`.
fn mean_average_precision(scores: &[Vec<f32>], truth: &[Vec<usize>], labels: usize) -> f64 {
    let mut aps = Vec::new();
    for l in 0..labels {
        let mut ranked: Vec<(f32, bool)> = scores
            .iter()
            .zip(truth)
            .map(|(s, t)| (s[l], t.contains(&l)))
            .collect();
        let positives = ranked.iter().filter(|r| r.1).count();
        if positives == 0 {
            continue;
        }
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut hits, mut sum) = (0usize, 0f64);
        for (rank, (_, positive)) in ranked.iter().enumerate() {
            if *positive {
                hits += 1;
                sum += hits as f64 / (rank + 1) as f64;
            }
        }
        aps.push(sum / positives as f64);
    }
    100.0 * aps.iter().sum::<f64>() / aps.len().max(1) as f64
}

fn argmax(xs: &[f32]) -> usize {
    xs.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// Scores `model` on `moments`: the decoder at each of `beams`, and the baseline at each of
/// `thresholds`.
pub fn evaluate(
    model: &RuntimeScene,
    moments: &[Moment],
    beams: &[usize],
    thresholds: &[f32],
) -> Result<SceneReport> {
    let c = model.config();
    let (mut members, mut classifier_right, mut model_right) = (0usize, 0usize, 0usize);
    let truth: Vec<Vec<usize>> = moments.iter().map(|m| m.labels.clone()).collect();
    let mut decoded: Vec<Vec<Vec<usize>>> = vec![Vec::new(); beams.len()];
    let mut decoder_scores: Vec<Vec<Vec<f32>>> = vec![Vec::new(); beams.len()];
    let mut independent: Vec<Vec<f32>> = Vec::new();
    for m in moments {
        let out = model.forward(&m.features)?;
        for (j, &a) in m.activities.iter().enumerate() {
            members += 1;
            let own = &m.classifier_logits[j * c.activities..(j + 1) * c.activities];
            classifier_right += usize::from(argmax(own) == a);
            let scene = &out.activity_logits[j * c.activities..(j + 1) * c.activities];
            model_right += usize::from(argmax(scene) == a);
        }
        for (b, &width) in beams.iter().enumerate() {
            let result = model.decode(&out.memory, width);
            let path = result
                .hypotheses
                .first()
                .map(|h| h.labels.clone())
                .unwrap_or_default();
            decoder_scores[b].push(model.label_scores(&out.memory, &path));
            decoded[b].push(result.best_set());
        }
        independent.push(
            out.independent_logits
                .iter()
                .map(|x| 1.0 / (1.0 + (-x).exp()))
                .collect(),
        );
    }
    let n = moments.len().max(1) as f64;
    let score_sets = |method: String, sets: &[Vec<usize>], scores: &[Vec<f32>]| SetScores {
        method,
        example_f1: 100.0
            * sets
                .iter()
                .zip(&truth)
                .map(|(p, t)| set_f1(p, t))
                .sum::<f64>()
            / n,
        subset_accuracy: 100.0 * sets.iter().zip(&truth).filter(|(p, t)| p == t).count() as f64 / n,
        map: mean_average_precision(scores, &truth, c.labels),
    };
    let mut sets = Vec::new();
    for (b, &width) in beams.iter().enumerate() {
        sets.push(score_sets(
            format!("beam {width}"),
            &decoded[b],
            &decoder_scores[b],
        ));
    }
    for &threshold in thresholds {
        let chosen: Vec<Vec<usize>> = independent
            .iter()
            .map(|p| (0..c.labels).filter(|&l| p[l] > threshold).collect())
            .collect();
        sets.push(score_sets(
            format!("independent > {threshold}"),
            &chosen,
            &independent,
        ));
    }
    let members_f = members.max(1) as f64;
    Ok(SceneReport {
        moments: moments.len(),
        members,
        classifier_accuracy: 100.0 * classifier_right as f64 / members_f,
        member_accuracy: 100.0 * model_right as f64 / members_f,
        sets,
    })
}

/// Writes `scene.json` and `scene.safetensors` into `dir`.
pub fn save(dir: &Path, card: &SceneCard, varmap: &VarMap) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ModelError::Invalid(format!("{}: {e}", dir.display())))?;
    let json =
        serde_json::to_string_pretty(card).map_err(|e| ModelError::Invalid(e.to_string()))?;
    std::fs::write(dir.join(CARD_FILE), json)
        .map_err(|e| ModelError::Invalid(format!("{}: {e}", dir.display())))?;
    varmap.save(dir.join(WEIGHTS_FILE))?;
    Ok(())
}

/// Reads a directory [`save`] wrote, for the runtime.
pub fn load(dir: &Path) -> Result<(SceneCard, RuntimeScene)> {
    Ok(RuntimeScene::read_dir(dir)?)
}
