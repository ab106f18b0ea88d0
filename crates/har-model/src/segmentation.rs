//! Whole recordings to activity segments, scored with the action-segmentation metrics
//! (issue 19): the sliding-window baseline — a window classifier run every `stride` samples
//! over each recording, each window's label given to its central hop, majority smoothing over
//! `smooth` windows, then the segment rule ([`har_core::segments`]) — against the ground
//! truth's label runs on the common clock (unlabelled stretches are gaps: not scored as
//! frames, never part of a true segment).

use std::path::Path;

use har_core::dataset::{Dataset, Split};
use har_core::preprocess::{align, skeleton};
use har_core::recording::UNLABELLED;
use har_core::segments::{
    boundary_errors, edit_score, f1_at, label_runs, labelled_regions, majority_smooth, restrict_to,
    segments, Segment, SegmentRule, Span,
};
use har_runtime::{batch, model_dir};
use serde::Serialize;

use crate::data::ModelPart;
use crate::error::{ModelError, Result};

/// How the baseline runs.
#[derive(Debug, Clone, Serialize)]
pub struct SlidingSettings {
    /// Samples between window starts (on the common clock).
    pub stride: usize,
    /// Majority smoothing over this many consecutive windows (1: none).
    pub smooth: usize,
    /// The segment rule.
    pub min_duration_s: f64,
    /// Labels whose true segments' boundary errors are reported (e.g. postural transitions).
    pub boundary_labels: Vec<i32>,
}

/// One recording's scores.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingScores {
    /// Recording id.
    pub recording: String,
    /// Labelled grid steps.
    pub frames: usize,
    /// Of them, predicted right.
    pub frames_right: usize,
    /// Segmental edit score.
    pub edit: f64,
    /// F1 at IoU 0.10, 0.25, 0.50.
    pub f1: [f64; 3],
    /// Predicted and true segments.
    pub segments: (usize, usize),
}

/// The evaluation over a split.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentationReport {
    /// Settings.
    pub settings: SlidingSettings,
    /// Frame-wise accuracy over every labelled step of every recording (%).
    pub frame_accuracy: f64,
    /// Mean over recordings of the edit score.
    pub edit: f64,
    /// Mean over recordings of F1@{10, 25, 50}.
    pub f1: [f64; 3],
    /// Boundary error (s) of the matched true segments of `boundary_labels`: mean, median.
    pub boundary_error_s: (f64, f64),
    /// True segments of `boundary_labels`, and how many were matched.
    pub boundary_segments: (usize, usize),
    /// Per recording.
    pub recordings: Vec<RecordingScores>,
}

/// Runs the sliding-window baseline of the model at `dir` over every recording of `part`:
/// the test split, or the training recordings of the card's validation subjects (where the
/// smoothing and the rule are chosen). Predicted segments are scored on the annotated
/// stretches only.
pub fn evaluate_sliding(
    dir: &Path,
    dataset: &Dataset,
    part: ModelPart,
    settings: &SlidingSettings,
) -> Result<SegmentationReport> {
    if settings.stride == 0 || settings.smooth == 0 {
        return Err(ModelError::Invalid(
            "stride and smoothing must be ≥ 1".into(),
        ));
    }
    let loaded = model_dir::load(dir)?;
    let card = &loaded.card;
    let length = card.config.window_len;
    let mut workers = batch::workers(&loaded.model, batch::available_threads(8));
    let mut recordings = Vec::new();
    let mut errors = Vec::new();
    let mut boundary_total = 0;
    let held = &card.provenance.validation_subjects;
    let (split, only_held) = match part {
        ModelPart::Test => (Split::Test, false),
        ModelPart::Validation if !held.is_empty() => (Split::Train, true),
        _ => {
            return Err(ModelError::Invalid(format!(
                "{}: segment the test split or the validation subjects the card holds out ({})",
                card.model_id(),
                if held.is_empty() { "none" } else { "some" }
            )))
        }
    };
    for entry in dataset
        .entries(split)
        .filter(|e| !only_held || held.contains(&e.subject_id))
    {
        let recording = dataset.read(entry)?;
        let mut aligned = align(&recording, &card.preprocess.align)?;
        skeleton::normalise_skeletons(&mut aligned);
        let period = (1e9 / aligned.rate_hz).round() as i64;
        // Every window of every valid range, normalised as the model takes it.
        let mut starts = Vec::new();
        for range in &aligned.segments {
            let mut s = range.start;
            while s + length <= range.end {
                starts.push(s);
                s += settings.stride;
            }
        }
        let inputs: Vec<Vec<Vec<f32>>> = starts
            .iter()
            .map(|&s| {
                aligned
                    .streams
                    .iter()
                    .enumerate()
                    .map(|(m, (info, values))| {
                        let c = info.channels();
                        let mut w = values[s * c..(s + length) * c].to_vec();
                        loaded.normalizer.apply_modality(m, &mut w);
                        w
                    })
                    .collect()
            })
            .collect();
        let probabilities = batch::map_windows(&mut workers, inputs.len(), |model, i| {
            let refs: Vec<&[f32]> = inputs[i].iter().map(Vec::as_slice).collect();
            model.predict(&refs)
        })?;
        let best: Vec<(usize, f32)> = probabilities
            .iter()
            .map(|p| {
                p.iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or((0, 0.0), |(i, &v)| (i, v))
            })
            .collect();
        let labels: Vec<i32> = best.iter().map(|&(i, _)| card.classes[i].id).collect();
        let smoothed = majority_smooth(&labels, settings.smooth);
        // Each window speaks for its central hop.
        let hop = settings.stride.min(length);
        let offset = (length - hop) / 2;
        let spans: Vec<Span> = starts
            .iter()
            .zip(&smoothed)
            .zip(&best)
            .map(|((&s, &label), &(_, confidence))| Span {
                start_ns: aligned.timestamps_ns[s + offset],
                end_ns: aligned.timestamps_ns[s + offset] + hop as i64 * period,
                label,
                confidence,
            })
            .collect();
        let rule = SegmentRule {
            min_duration_ns: (settings.min_duration_s * 1e9) as i64,
            max_gap_ns: 2 * hop as i64 * period,
        };
        let truth = TruthTrack {
            recording: &recording.id,
            labels: &aligned.labels,
            timestamps_ns: &aligned.timestamps_ns,
            period_ns: period,
        };
        let (scores, found) = score(&spans, rule, &truth, &settings.boundary_labels);
        boundary_total += found.len();
        errors.extend(found.into_iter().flatten());
        recordings.push(scores);
    }
    report(settings.clone(), recordings, errors, boundary_total)
}

/// A recording's ground truth on its common clock.
pub struct TruthTrack<'a> {
    /// Recording id.
    pub recording: &'a str,
    /// Label per grid step (`UNLABELLED` where unannotated).
    pub labels: &'a [i32],
    /// Grid timestamps.
    pub timestamps_ns: &'a [i64],
    /// Grid period.
    pub period_ns: i64,
}

/// Segments `spans` by `rule` and scores them against `truth` on its annotated stretches;
/// returns the recording's scores and the boundary error of each true segment of
/// `boundary_labels` (`None`: missed).
pub fn score(
    spans: &[Span],
    rule: SegmentRule,
    truth: &TruthTrack,
    boundary_labels: &[i32],
) -> (RecordingScores, Vec<Option<f64>>) {
    let (labels, times) = (truth.labels, truth.timestamps_ns);
    let predicted = restrict_to(
        &segments(spans, rule),
        &labelled_regions(labels, times, truth.period_ns),
    );
    let true_segments = label_runs(labels, times, truth.period_ns);
    let (frames, frames_right) = frame_counts(labels, times, &predicted);
    let found = boundary_errors(&predicted, &true_segments, boundary_labels);
    (
        RecordingScores {
            recording: truth.recording.to_string(),
            frames,
            frames_right,
            edit: edit_score(&predicted, &true_segments),
            f1: [0.10, 0.25, 0.50].map(|k| f1_at(&predicted, &true_segments, k)),
            segments: (predicted.len(), true_segments.len()),
        },
        found,
    )
}

/// The report over recordings.
pub fn report(
    settings: SlidingSettings,
    recordings: Vec<RecordingScores>,
    mut errors: Vec<f64>,
    boundary_total: usize,
) -> Result<SegmentationReport> {
    if recordings.is_empty() {
        return Err(ModelError::Invalid("no recording to score".into()));
    }
    let n = recordings.len() as f64;
    let (frames, right) = recordings
        .iter()
        .fold((0, 0), |(f, r), s| (f + s.frames, r + s.frames_right));
    errors.sort_by(f64::total_cmp);
    Ok(SegmentationReport {
        settings,
        frame_accuracy: 100.0 * right as f64 / frames.max(1) as f64,
        edit: recordings.iter().map(|r| r.edit).sum::<f64>() / n,
        f1: [0, 1, 2].map(|k| recordings.iter().map(|r| r.f1[k]).sum::<f64>() / n),
        boundary_error_s: (
            errors.iter().sum::<f64>() / errors.len().max(1) as f64,
            errors.get(errors.len() / 2).copied().unwrap_or(f64::NAN),
        ),
        boundary_segments: (boundary_total, errors.len()),
        recordings,
    })
}

/// Labelled grid steps, and those whose predicted segment has their label.
fn frame_counts(labels: &[i32], timestamps: &[i64], predicted: &[Segment]) -> (usize, usize) {
    let (mut frames, mut right, mut k) = (0, 0, 0);
    for (&l, &t) in labels.iter().zip(timestamps) {
        if l == UNLABELLED {
            continue;
        }
        frames += 1;
        while k < predicted.len() && predicted[k].end_ns <= t {
            k += 1;
        }
        if predicted
            .get(k)
            .is_some_and(|s| s.start_ns <= t && s.label == l)
        {
            right += 1;
        }
    }
    (frames, right)
}
