//! Training and evaluating the [`Segmenter`] on whole recordings: each valid stretch of a
//! recording (on the common clock) becomes a sequence of steps of `patch_len` samples, every
//! channel standardised by statistics of the training samples; a step's label is the label of
//! most of its samples when at least half are annotated, else it is not scored (HAPT's
//! unannotated stretches). Training reads fixed-length chunks; evaluation runs every
//! sequence whole and scores it with [`crate::segmentation`]'s metrics.

use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use har_core::dataset::{ClassInfo, Dataset, Split};
use har_core::preprocess::{align, AlignConfig};
use har_core::recording::UNLABELLED;
use har_core::rng::Rng;
use har_core::segments::{SegmentRule, Span};
use serde::{Deserialize, Serialize};

use super::{Segmenter, SegmenterConfig};
use crate::error::{ModelError, Result};
use crate::init::seeded_var_builder;
use crate::segmentation::{report, score, SegmentationReport, SlidingSettings, TruthTrack};
use crate::train::{restore, snapshot};

/// One valid stretch of a recording as steps.
#[derive(Debug, Clone)]
pub struct Sequence {
    /// Recording id.
    pub recording: String,
    /// Subject.
    pub subject: String,
    /// Steps × (patch_len · channels), standardised.
    pub inputs: Vec<f32>,
    /// Class index per step, `-1` when not scored.
    pub targets: Vec<i64>,
    /// Start time of each step and the step length (ns).
    pub step_start_ns: Vec<i64>,
    /// Step length (ns).
    pub step_ns: i64,
}

/// Every sequence of a recording set, with the per-grid truth for scoring.
#[derive(Debug, Clone)]
pub struct Recordings {
    /// The sequences.
    pub sequences: Vec<Sequence>,
    /// Per recording: id, grid labels, grid timestamps, grid period.
    pub truth: Vec<(String, Vec<i32>, Vec<i64>, i64)>,
    /// The modalities whose channels make a step, in order.
    pub modalities: Vec<SegmenterModality>,
}

pub use har_runtime::segmenter::{SegmenterCard, SegmenterModality, Standardiser};

/// Reads every recording of `split` (only `subjects`, when given) as sequences.
pub fn read_recordings(
    dataset: &Dataset,
    split: Split,
    subjects: Option<&[String]>,
    patch_len: usize,
    classes: &[ClassInfo],
    standardiser: Option<&Standardiser>,
) -> Result<(Recordings, Standardiser)> {
    let mut sequences = Vec::new();
    let mut truth = Vec::new();
    let mut raw: Vec<Vec<f32>> = Vec::new();
    let mut modalities: Vec<SegmenterModality> = Vec::new();
    for entry in dataset.entries(split) {
        if subjects.is_some_and(|s| !s.contains(&entry.subject_id)) {
            continue;
        }
        let recording = dataset.read(entry)?;
        let aligned = align(&recording, &AlignConfig::default())?;
        let period = (1e9 / aligned.rate_hz).round() as i64;
        let channels: usize = aligned.streams.iter().map(|(i, _)| i.channels()).sum();
        let these: Vec<SegmenterModality> = aligned
            .streams
            .iter()
            .map(|(i, _)| SegmenterModality {
                name: i.name.clone(),
                channels: i.channels(),
            })
            .collect();
        if modalities.is_empty() {
            modalities = these;
        } else if modalities != these {
            return Err(ModelError::Invalid(format!(
                "recording {}: modalities {these:?} differ from the first recording's {modalities:?}",
                recording.id
            )));
        }
        for range in &aligned.segments {
            let steps = (range.end - range.start) / patch_len;
            if steps < 8 {
                continue;
            }
            let mut inputs = Vec::with_capacity(steps * patch_len * channels);
            let mut targets = Vec::with_capacity(steps);
            let mut starts = Vec::with_capacity(steps);
            for s in 0..steps {
                let first = range.start + s * patch_len;
                for g in first..first + patch_len {
                    for (info, values) in &aligned.streams {
                        let c = info.channels();
                        inputs.extend_from_slice(&values[g * c..(g + 1) * c]);
                    }
                }
                let labels = &aligned.labels[first..first + patch_len];
                let annotated = labels.iter().filter(|&&l| l != UNLABELLED).count();
                let majority = har_core::segments::majority(labels, labels[patch_len / 2]);
                let index = classes.iter().position(|c| c.id == majority);
                targets.push(match index {
                    Some(i) if 2 * annotated >= patch_len && majority != UNLABELLED => i as i64,
                    _ => -1,
                });
                starts.push(aligned.timestamps_ns[first]);
            }
            raw.push(inputs.clone());
            sequences.push(Sequence {
                recording: recording.id.clone(),
                subject: recording.subject_id.clone(),
                inputs,
                targets,
                step_start_ns: starts,
                step_ns: patch_len as i64 * period,
            });
        }
        truth.push((
            recording.id.clone(),
            aligned.labels,
            aligned.timestamps_ns,
            period,
        ));
    }
    if sequences.is_empty() {
        return Err(ModelError::Invalid(format!(
            "no {split} recordings to segment"
        )));
    }
    let channels = sequences[0].inputs.len() / (sequences[0].targets.len() * patch_len);
    let fitted = match standardiser {
        Some(s) => s.clone(),
        None => fit_standardiser(&raw, channels),
    };
    for seq in &mut sequences {
        for (i, v) in seq.inputs.iter_mut().enumerate() {
            let c = i % channels;
            *v = (*v - fitted.mean[c]) / fitted.std[c];
        }
    }
    Ok((
        Recordings {
            sequences,
            truth,
            modalities,
        },
        fitted,
    ))
}

fn fit_standardiser(raw: &[Vec<f32>], channels: usize) -> Standardiser {
    let (mut sum, mut sq, mut n) = (vec![0f64; channels], vec![0f64; channels], 0usize);
    for r in raw {
        for (i, v) in r.iter().enumerate() {
            sum[i % channels] += f64::from(*v);
            sq[i % channels] += f64::from(*v) * f64::from(*v);
        }
        n += r.len() / channels;
    }
    let n = n.max(1) as f64;
    Standardiser {
        mean: sum.iter().map(|s| (s / n) as f32).collect(),
        std: sq
            .iter()
            .zip(&sum)
            .map(|(q, s)| ((q / n - (s / n).powi(2)).max(1e-8).sqrt()) as f32)
            .collect(),
    }
}

/// How the segmenter is trained.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmenterTraining {
    /// Passes over the training chunks.
    pub epochs: usize,
    /// Steps per training chunk.
    pub chunk_steps: usize,
    /// Chunks per batch.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// Seed.
    pub seed: u64,
}

/// Per-step class probabilities of one sequence `[S][K]`.
pub fn predict(model: &Segmenter, seq: &Sequence) -> Result<Vec<Vec<f32>>> {
    let steps = seq.targets.len();
    let width = seq.inputs.len() / steps;
    let x = Tensor::from_slice(&seq.inputs, (1, steps, width), &Device::Cpu)?;
    let probs = candle_nn::ops::softmax_last_dim(&model.forward(&x, false)?)?;
    Ok(probs.squeeze(0)?.to_vec2()?)
}

/// Scores the model on `recordings` with the segment rule of `min_duration_s`.
pub fn evaluate(
    model: &Segmenter,
    recordings: &Recordings,
    classes: &[ClassInfo],
    min_duration_s: f64,
    boundary_labels: &[i32],
) -> Result<SegmentationReport> {
    let mut scored = Vec::new();
    let (mut errors, mut total) = (Vec::new(), 0);
    for (id, labels, times, period) in &recordings.truth {
        let mut spans = Vec::new();
        for seq in recordings.sequences.iter().filter(|s| &s.recording == id) {
            for (p, &start) in predict(model, seq)?.iter().zip(&seq.step_start_ns) {
                let (k, conf) = p
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or((0, 0.0), |(k, &c)| (k, c));
                spans.push(Span {
                    start_ns: start,
                    end_ns: start + seq.step_ns,
                    label: classes[k].id,
                    confidence: conf,
                });
            }
        }
        let rule = SegmentRule {
            min_duration_ns: (min_duration_s * 1e9) as i64,
            max_gap_ns: 4 * period * model.config().patch_len as i64,
        };
        let truth = TruthTrack {
            recording: id,
            labels,
            timestamps_ns: times,
            period_ns: *period,
        };
        let (s, found) = score(&spans, rule, &truth, boundary_labels);
        total += found.len();
        errors.extend(found.into_iter().flatten());
        scored.push(s);
    }
    let settings = SlidingSettings {
        stride: model.config().patch_len,
        smooth: 1,
        min_duration_s,
        boundary_labels: boundary_labels.to_vec(),
    };
    report(settings, scored, errors, total)
}

/// Trains on `train`, keeping the epoch of best frame accuracy on `validation`; returns the
/// model, its weights and the per-epoch records.
pub fn fit(
    config: &SegmenterConfig,
    train: &Recordings,
    validation: &Recordings,
    classes: &[ClassInfo],
    settings: &SegmenterTraining,
) -> Result<(Segmenter, VarMap, Vec<serde_json::Value>)> {
    let varmap = VarMap::new();
    let model = Segmenter::new(config, seeded_var_builder(&varmap, settings.seed))?;
    let mut optimizer = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: settings.learning_rate,
            weight_decay: 0.01,
            ..Default::default()
        },
    )?;
    let chunks: Vec<(usize, usize)> = train
        .sequences
        .iter()
        .enumerate()
        .filter(|(_, s)| s.targets.len() >= settings.chunk_steps)
        .flat_map(|(i, s)| {
            let n = s.targets.len();
            let last = n - settings.chunk_steps;
            (0..=last)
                .step_by(settings.chunk_steps / 2)
                .chain(std::iter::once(last))
                .map(move |start| (i, start))
        })
        .collect();
    if chunks.is_empty() {
        return Err(ModelError::Invalid(format!(
            "no training sequence of {} steps",
            settings.chunk_steps
        )));
    }
    let width = train.sequences[0].inputs.len() / train.sequences[0].targets.len();
    let mut rng = Rng::new(settings.seed ^ 0x5E6);
    let (mut best, mut best_weights, mut history) = (f64::MIN, None, Vec::new());
    for epoch in 1..=settings.epochs {
        let started = Instant::now();
        let mut order: Vec<usize> = (0..chunks.len()).collect();
        rng.shuffle(&mut order);
        let mut losses = Vec::new();
        for batch in order.chunks(settings.batch_size) {
            let (mut xs, mut ys) = (Vec::new(), Vec::new());
            for &c in batch {
                let (i, start) = chunks[c];
                let seq = &train.sequences[i];
                let n = settings.chunk_steps;
                xs.extend_from_slice(&seq.inputs[start * width..(start + n) * width]);
                ys.extend_from_slice(&seq.targets[start..start + n]);
            }
            let scored: Vec<u32> = (0..ys.len() as u32)
                .filter(|&i| ys[i as usize] >= 0)
                .collect();
            if scored.is_empty() {
                continue;
            }
            let x = Tensor::from_vec(xs, (batch.len(), settings.chunk_steps, width), &Device::Cpu)?;
            let logits = model.forward(&x, true)?;
            let k = logits.dim(D::Minus1)?;
            let idx = Tensor::from_slice(&scored, scored.len(), &Device::Cpu)?;
            let flat = logits.reshape((ys.len(), k))?.index_select(&idx, 0)?;
            let target: Vec<u32> = scored.iter().map(|&i| ys[i as usize] as u32).collect();
            let target = Tensor::from_vec(target, scored.len(), &Device::Cpu)?;
            let loss = candle_nn::loss::cross_entropy(&flat, &target)?;
            losses.push(f64::from(loss.to_scalar::<f32>()?));
            optimizer.backward_step(&loss)?;
        }
        let report = evaluate(&model, validation, classes, 0.0, &[])?;
        let train_loss = losses.iter().sum::<f64>() / losses.len().max(1) as f64;
        tracing::info!(
            epoch,
            train_loss,
            frame_accuracy = report.frame_accuracy,
            "segmenter epoch"
        );
        history.push(serde_json::json!({
            "epoch": epoch, "train_loss": train_loss,
            "validation_frame_accuracy": report.frame_accuracy, "validation_edit": report.edit,
            "seconds": started.elapsed().as_secs_f64(),
        }));
        if report.frame_accuracy > best {
            best = report.frame_accuracy;
            best_weights = Some(snapshot(&varmap)?);
        }
    }
    if let Some(weights) = best_weights {
        restore(&varmap, &weights)?;
    }
    Ok((model, varmap, history))
}

/// Writes `segmenter.json` and `segmenter.safetensors` into `dir`.
pub fn save(dir: &Path, card: &SegmenterCard, varmap: &VarMap) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ModelError::Invalid(format!("{}: {e}", dir.display())))?;
    let json =
        serde_json::to_string_pretty(card).map_err(|e| ModelError::Invalid(e.to_string()))?;
    std::fs::write(dir.join("segmenter.json"), json)
        .map_err(|e| ModelError::Invalid(format!("{}: {e}", dir.display())))?;
    varmap.save(dir.join("segmenter.safetensors"))?;
    Ok(())
}

/// Reads a directory [`save`] wrote.
pub fn load(dir: &Path) -> Result<(SegmenterCard, Segmenter)> {
    let path = dir.join("segmenter.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ModelError::Invalid(format!("{}: {e}", path.display())))?;
    let card: SegmenterCard = serde_json::from_str(&text)
        .map_err(|e| ModelError::Invalid(format!("{}: {e}", path.display())))?;
    let mut varmap = VarMap::new();
    let model = Segmenter::new(&card.config, seeded_var_builder(&varmap, 0))?;
    varmap.load(dir.join("segmenter.safetensors"))?;
    Ok((card, model))
}
