//! The model card (`model.json`): everything needed to use a model's weights — its shape,
//! classes, the preprocessing its windows had, checksums and training provenance. The card is
//! readable on its own, without the weights (the preprocess node needs nothing else).

use std::path::Path;

use har_core::dataset::ClassInfo;
use har_core::preprocess::PreprocessConfig;
use serde::{Deserialize, Serialize};

use crate::config::DmftConfig;
use crate::error::{Result, RuntimeError};

/// Card file name.
pub const CARD_FILE: &str = "model.json";
/// Weights file name.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Normaliser file name.
pub const NORMALIZER_FILE: &str = "normalizer.json";
/// Per-epoch metrics file name.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// Where a model's training data came from and how it was trained. The optimisation and
/// distillation settings are the training crate's types, kept here as JSON so that reading a
/// model never needs the training stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Dataset name.
    pub dataset: String,
    /// Checksum of the dataset's downloaded source, if any.
    pub dataset_source_sha256: Option<String>,
    /// SHA-256 of the exact training windows.
    pub train_windows_sha256: String,
    /// Stride of the training windows in samples, when it differs from the preprocessing
    /// stride (denser windows as time-shift augmentation); `None`: the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_stride: Option<usize>,
    /// Training windows.
    pub train_windows: usize,
    /// Validation windows.
    pub validation_windows: usize,
    /// Subjects held out for validation.
    pub validation_subjects: Vec<String>,
    /// The leave-subjects-out fold held out (`K/N`), when validation was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_fold: Option<String>,
    /// The kept weights' score on the validation subjects: what a recipe is chosen by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_score: Option<ValidationScore>,
    /// Optimisation settings (the training crate's `TrainConfig`).
    pub settings: serde_json::Value,
    /// The teacher's id and the distillation settings (`DistillConfig`), for a student.
    pub distilled_from: Option<(String, serde_json::Value)>,
    /// The model this one was compressed from (its id) and how (`har compress`: the pruning
    /// ratio, the fine-tuning, the quantisation), for a compressed model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compressed_from: Option<(String, serde_json::Value)>,
    /// Epochs run.
    pub epochs_run: usize,
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
    /// Training wall time.
    pub seconds: f64,
    /// The command that produced the model.
    pub command: String,
}

/// A model's accuracy and macro-F1 on held-out training subjects.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValidationScore {
    /// Share of validation windows classified right.
    pub accuracy: f64,
    /// Unweighted mean of the per-class F1.
    pub macro_f1: f64,
}

/// `model.json`: everything needed to use the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// `teacher`, `student` or another role name.
    pub role: String,
    /// Model shape.
    pub config: DmftConfig,
    /// Output classes in order.
    pub classes: Vec<ClassInfo>,
    /// Preprocessing that produced the training windows (apply the same at inference).
    pub preprocess: PreprocessConfig,
    /// Trainable parameters.
    pub parameters: usize,
    /// FLOPs per window (all modalities).
    pub flops_per_window: u64,
    /// SHA-256 of `model.safetensors`.
    pub weights_sha256: String,
    /// Training provenance.
    pub provenance: Provenance,
}

impl ModelCard {
    /// A short identifier: architecture, role and the first 12 hex digits of the weights'
    /// checksum (`dmft-student@a574de582200`, `lstm-student-scratch@…`).
    pub fn model_id(&self) -> String {
        format!(
            "{}-{}@{}",
            self.config.arch_name(),
            self.role,
            &self.weights_sha256[..12.min(self.weights_sha256.len())]
        )
    }

    /// Checks the card against itself: a valid config, preprocessing windows of the model's
    /// length with a positive stride, one class name per output, distinct class ids, a
    /// SHA-256 in hex. `path` names the card in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        self.config
            .validate()
            .map_err(|e| RuntimeError::field(path, "config", e))?;
        if self.classes.len() != self.config.num_classes {
            return Err(RuntimeError::field(
                path,
                "classes",
                format!(
                    "{} class names for a head of {} outputs (config.num_classes)",
                    self.classes.len(),
                    self.config.num_classes
                ),
            ));
        }
        let window = &self.preprocess.window;
        if window.length != self.config.window_len {
            return Err(RuntimeError::field(
                path,
                "preprocess.window.length",
                format!(
                    "{} samples, the model's windows are {} (config.window_len)",
                    window.length, self.config.window_len
                ),
            ));
        }
        if window.stride == 0 {
            return Err(RuntimeError::field(
                path,
                "preprocess.window.stride",
                "is 0",
            ));
        }
        let mut ids: Vec<i32> = self.classes.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(RuntimeError::field(
                path,
                "classes",
                format!("class id {} appears twice", w[0]),
            ));
        }
        let sha = &self.weights_sha256;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RuntimeError::field(
                path,
                "weights_sha256",
                format!("`{sha}` is not a SHA-256 in hex"),
            ));
        }
        Ok(())
    }

    /// Writes the card as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| RuntimeError::file(path, format!("serialising the card: {e}")))?;
        std::fs::write(path, text + "\n").map_err(|e| RuntimeError::file(path, e))
    }
}

/// Reads and validates a model directory's card (no weights are read).
pub fn read_card(dir: &Path) -> Result<ModelCard> {
    let path = dir.join(CARD_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| RuntimeError::file(&path, e))?;
    let card: ModelCard = serde_json::from_str(&text)
        .map_err(|e| RuntimeError::file(&path, format!("line {}: {e}", e.line())))?;
    card.validate(&path)?;
    Ok(card)
}
