//! The model directory: one self-describing folder per trained model.
//!
//! ```text
//! <dir>/model.json          ModelCard: config, classes, preprocessing, training provenance
//! <dir>/model.safetensors   weights
//! <dir>/normalizer.json     per-channel statistics fitted on the training windows
//! <dir>/metrics.jsonl       one EpochRecord per line
//! <dir>/eval.json           written by `har eval`
//! ```

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use har_core::dataset::ClassInfo;
use har_core::preprocess::{Normalizer, PreprocessConfig};
use serde::{Deserialize, Serialize};

use crate::dmft::{Dmft, DmftConfig};
use crate::error::{ModelError, Result};
use crate::init::seeded_var_builder;
use crate::train::{DistillConfig, EpochRecord, TrainConfig};

/// Card file name.
pub const CARD_FILE: &str = "model.json";
/// Weights file name.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Normaliser file name.
pub const NORMALIZER_FILE: &str = "normalizer.json";
/// Per-epoch metrics file name.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// Where a model's training data came from and how it was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Dataset name.
    pub dataset: String,
    /// Checksum of the dataset's downloaded source, if any.
    pub dataset_source_sha256: Option<String>,
    /// SHA-256 of the exact training windows (see `data::windows_checksum`).
    pub train_windows_sha256: String,
    /// Stride of the training windows in samples, when it differs from the preprocessing
    /// stride (denser windows as time-shift augmentation); `None`: the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_stride: Option<usize>,
    /// Training / validation window counts.
    pub train_windows: usize,
    /// Validation windows.
    pub validation_windows: usize,
    /// Subjects held out for validation.
    pub validation_subjects: Vec<String>,
    /// Optimisation settings.
    pub settings: TrainConfig,
    /// Distillation settings and the teacher's id, for a student.
    pub distilled_from: Option<(String, DistillConfig)>,
    /// Epochs run and the one kept.
    pub epochs_run: usize,
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
    /// Training wall time.
    pub seconds: f64,
    /// The command that produced the model.
    pub command: String,
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
    /// A short identifier: role and the first 12 hex digits of the weights' checksum.
    pub fn model_id(&self) -> String {
        format!(
            "dmft-{}@{}",
            self.role,
            &self.weights_sha256[..12.min(self.weights_sha256.len())]
        )
    }
}

/// A loaded model directory.
pub struct ModelDir {
    /// The card.
    pub card: ModelCard,
    /// The model with its weights.
    pub model: Dmft,
    /// Input normalisation.
    pub normalizer: Normalizer,
}

fn artifact_error(path: &Path, problem: impl std::fmt::Display) -> ModelError {
    ModelError::Artifact {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    }
}

/// Number of scalar parameters in a var map.
pub fn parameter_count(varmap: &VarMap) -> usize {
    varmap.all_vars().iter().map(|v| v.elem_count()).sum()
}

/// Writes a model directory; fills in `card.weights_sha256` and `card.parameters`.
pub fn save(
    dir: &Path,
    card: &mut ModelCard,
    varmap: &VarMap,
    normalizer: &Normalizer,
    history: &[EpochRecord],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| artifact_error(dir, e))?;
    let weights = dir.join(WEIGHTS_FILE);
    varmap.save(&weights)?;
    card.weights_sha256 = har_core::import::sha256_file(&weights)?;
    card.parameters = parameter_count(varmap);
    card.flops_per_window = card.config.flops_per_window();
    let card_path = dir.join(CARD_FILE);
    std::fs::write(
        &card_path,
        serde_json::to_string_pretty(card).expect("card serialises") + "\n",
    )
    .map_err(|e| artifact_error(&card_path, e))?;
    normalizer.save(&dir.join(NORMALIZER_FILE))?;
    let metrics_path = dir.join(METRICS_FILE);
    let lines: String = history
        .iter()
        .map(|r| serde_json::to_string(r).expect("record serialises") + "\n")
        .collect();
    std::fs::write(&metrics_path, lines).map_err(|e| artifact_error(&metrics_path, e))?;
    Ok(())
}

/// Loads the weights of `path` into a model of `config`: every parameter must be present with
/// its shape, and no unknown tensor may be there; errors name the tensor.
pub fn load_weights(config: &DmftConfig, path: &Path) -> Result<(Dmft, VarMap)> {
    let varmap = VarMap::new();
    let model = Dmft::new(config, seeded_var_builder(&varmap, 0))?;
    let tensors: HashMap<String, Tensor> = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| artifact_error(path, format!("unreadable safetensors: {e}")))?;
    let checkpoint_error = |tensor: &str, problem: String| ModelError::Checkpoint {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        problem,
    };
    {
        let vars = varmap.data().lock().expect("varmap lock");
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for name in names {
            let tensor = tensors
                .get(name)
                .ok_or_else(|| checkpoint_error(name, "missing from the checkpoint".into()))?;
            let var = &vars[name];
            if tensor.dims() != var.dims() {
                return Err(checkpoint_error(
                    name,
                    format!(
                        "shape {:?} in the checkpoint, the config needs {:?}",
                        tensor.dims(),
                        var.dims()
                    ),
                ));
            }
            var.set(&tensor.to_dtype(candle_core::DType::F32)?)?;
        }
        if let Some(extra) = tensors.keys().find(|k| !vars.contains_key(*k)) {
            return Err(checkpoint_error(
                extra,
                "not a parameter of this config".into(),
            ));
        }
    }
    Ok((model, varmap))
}

/// Reads and validates a model directory's card.
pub fn read_card(dir: &Path) -> Result<ModelCard> {
    let card_path = dir.join(CARD_FILE);
    let text = std::fs::read_to_string(&card_path).map_err(|e| artifact_error(&card_path, e))?;
    let card: ModelCard = serde_json::from_str(&text)
        .map_err(|e| artifact_error(&card_path, format!("line {}: {e}", e.line())))?;
    card.config
        .validate()
        .map_err(|e| artifact_error(&card_path, e))?;
    Ok(card)
}

/// Loads a model directory.
pub fn load(dir: &Path) -> Result<ModelDir> {
    let card = read_card(dir)?;
    let (model, _) = load_weights(&card.config, &dir.join(WEIGHTS_FILE))?;
    let normalizer = Normalizer::load(&dir.join(NORMALIZER_FILE))?;
    Ok(ModelDir {
        card,
        model,
        normalizer,
    })
}

/// Loads a model directory for the plain-Rust forward pass (what the dataflow runs).
pub fn load_fast(dir: &Path) -> Result<(ModelCard, crate::fast::FastDmft, Normalizer)> {
    let card = read_card(dir)?;
    let (_, varmap) = load_weights(&card.config, &dir.join(WEIGHTS_FILE))?;
    let fast = crate::fast::FastDmft::new(&card.config, &crate::fast::varmap_tensors(&varmap))?;
    let normalizer = Normalizer::load(&dir.join(NORMALIZER_FILE))?;
    Ok((card, fast, normalizer))
}
