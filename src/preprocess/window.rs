//! Sliding windows over an aligned recording, with a label policy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::align::AlignedRecording;
use crate::error::{HarError, Result};
use crate::recording::{ModalityInfo, UNLABELLED};

/// How a window's label is derived from its samples' labels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum LabelPolicy {
    /// Every sample carries the same (known) label; other windows are left out.
    Pure,
    /// The most frequent label, if known and covering at least `min_fraction` of the window.
    Majority {
        /// Smallest share of the window the majority label must cover, in (0, 1].
        min_fraction: f32,
    },
}

/// Window length, stride (both in samples of the common clock) and label policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowConfig {
    /// Samples per window (T).
    pub length: usize,
    /// Samples between consecutive window starts.
    pub stride: usize,
    /// Label policy.
    pub label_policy: LabelPolicy,
}

impl Default for WindowConfig {
    /// HAPT's standard: 128 samples (2.56 s at 50 Hz), stride 64 (50 % overlap), pure windows.
    fn default() -> Self {
        Self {
            length: 128,
            stride: 64,
            label_policy: LabelPolicy::Pure,
        }
    }
}

impl WindowConfig {
    /// Checks length, stride and policy.
    pub fn validate(&self) -> Result<()> {
        if self.length == 0 || self.stride == 0 {
            return Err(HarError::invalid(
                "window config",
                "length/stride",
                "must be positive",
            ));
        }
        if self.length > MAX_WINDOW || self.stride > MAX_WINDOW {
            return Err(HarError::invalid(
                "window config",
                "length/stride",
                format!(
                    "{} / {} samples: at most {MAX_WINDOW} (a window is one model input)",
                    self.length, self.stride
                ),
            ));
        }
        if let LabelPolicy::Majority { min_fraction } = self.label_policy {
            if !(min_fraction > 0.0 && min_fraction <= 1.0) {
                return Err(HarError::invalid(
                    "window config",
                    "min_fraction",
                    format!("{min_fraction} is not in (0, 1]"),
                ));
            }
        }
        Ok(())
    }
}

/// Longest window or stride, in grid samples (about 5.8 hours at 50 Hz; models take
/// seconds).
pub const MAX_WINDOW: usize = 1 << 20;

/// The label of a window under `policy`, or `None` when the window is left out.
pub fn window_label(labels: &[i32], policy: LabelPolicy) -> Option<i32> {
    let first = *labels.first()?;
    match policy {
        LabelPolicy::Pure => {
            (first != UNLABELLED && labels.iter().all(|&l| l == first)).then_some(first)
        }
        LabelPolicy::Majority { min_fraction } => {
            let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
            for &l in labels {
                *counts.entry(l).or_default() += 1;
            }
            // Highest count wins; among equal counts the smaller id (BTreeMap order, max_by_key keeps the last max).
            let (&label, &count) = counts.iter().rev().max_by_key(|(_, &c)| c)?;
            (label != UNLABELLED && count as f32 >= min_fraction * labels.len() as f32)
                .then_some(label)
        }
    }
}

/// Windows of one or many recordings, stored as one contiguous tensor per modality.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowSet {
    /// Modalities, in tensor order.
    pub modalities: Vec<ModalityInfo>,
    /// Steps per window (T).
    pub length: usize,
    /// Per modality: windows × T × C, row-major.
    pub values: Vec<Vec<f32>>,
    /// Label per window.
    pub labels: Vec<i32>,
    /// Subject per window.
    pub subjects: Vec<String>,
    /// Recording per window.
    pub recordings: Vec<String>,
    /// Timestamp of each window's first sample.
    pub start_ns: Vec<i64>,
}

impl WindowSet {
    /// An empty set for these modalities and window length.
    pub fn new(modalities: Vec<ModalityInfo>, length: usize) -> Self {
        Self {
            values: vec![Vec::new(); modalities.len()],
            modalities,
            length,
            ..Default::default()
        }
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there is no window.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The T × C values of window `i`, modality `m`.
    pub fn window(&self, i: usize, m: usize) -> &[f32] {
        let size = self.length * self.modalities[m].channels();
        &self.values[m][i * size..(i + 1) * size]
    }

    /// Windows per label.
    pub fn class_counts(&self) -> BTreeMap<i32, usize> {
        let mut counts = BTreeMap::new();
        for &l in &self.labels {
            *counts.entry(l).or_default() += 1;
        }
        counts
    }

    /// Keeps only the windows for which `keep(index)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let kept: Vec<usize> = (0..self.len()).filter(|&i| keep(i)).collect();
        for m in 0..self.modalities.len() {
            let size = self.length * self.modalities[m].channels();
            self.values[m] = kept
                .iter()
                .flat_map(|&i| self.values[m][i * size..(i + 1) * size].iter().copied())
                .collect();
        }
        self.labels = kept.iter().map(|&i| self.labels[i]).collect();
        self.subjects = kept.iter().map(|&i| self.subjects[i].clone()).collect();
        self.recordings = kept.iter().map(|&i| self.recordings[i].clone()).collect();
        self.start_ns = kept.iter().map(|&i| self.start_ns[i]).collect();
    }

    /// Appends the windows of another set of the same modalities and length.
    pub fn append(&mut self, other: WindowSet) -> Result<()> {
        if self.modalities.is_empty() && self.is_empty() {
            *self = other;
            return Ok(());
        }
        let names = |s: &WindowSet| {
            s.modalities
                .iter()
                .map(|m| m.channel_names.clone())
                .collect::<Vec<_>>()
        };
        if other.length != self.length || names(&other) != names(self) {
            return Err(HarError::invalid(
                "window set",
                "modalities",
                "cannot append windows of another shape",
            ));
        }
        for (mine, theirs) in self.values.iter_mut().zip(other.values) {
            mine.extend(theirs);
        }
        self.labels.extend(other.labels);
        self.subjects.extend(other.subjects);
        self.recordings.extend(other.recordings);
        self.start_ns.extend(other.start_ns);
        Ok(())
    }
}

/// Lays windows from the start of each valid segment and keeps those the label policy accepts.
pub fn extract_windows(aligned: &AlignedRecording, config: &WindowConfig) -> Result<WindowSet> {
    config.validate()?;
    let modalities: Vec<ModalityInfo> = aligned
        .streams
        .iter()
        .map(|(info, _)| info.clone())
        .collect();
    let mut set = WindowSet::new(modalities, config.length);
    for segment in &aligned.segments {
        let mut start = segment.start;
        while start + config.length <= segment.end {
            let span = start..start + config.length;
            if let Some(label) = window_label(&aligned.labels[span.clone()], config.label_policy) {
                for (m, (info, values)) in aligned.streams.iter().enumerate() {
                    let c = info.channels();
                    set.values[m].extend_from_slice(&values[span.start * c..span.end * c]);
                }
                set.labels.push(label);
                set.subjects.push(aligned.subject_id.clone());
                set.recordings.push(aligned.recording_id.clone());
                set.start_ns.push(aligned.timestamps_ns[start]);
            }
            start += config.stride;
        }
    }
    Ok(set)
}
