//! Writing a model directory (the layout and the card are the runtime's:
//! [`har_runtime::model_dir`], [`har_runtime::card`]), and reading one back into a trainable
//! candle model through the runtime's checked loading.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use har_core::preprocess::Normalizer;
use har_runtime::card::{self, ModelCard, CARD_FILE, METRICS_FILE, NORMALIZER_FILE, WEIGHTS_FILE};
use har_runtime::{model_dir, weights::Weights};

use crate::dmft::{Dmft, DmftConfig};
use crate::error::{ModelError, Result};
use crate::init::seeded_var_builder;
use crate::train::EpochRecord;

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

/// Writes a model directory; fills in `card.weights_sha256`, `card.parameters` and
/// `card.flops_per_window`. Refuses non-finite weights (a diverged training) before writing.
pub fn save(
    dir: &Path,
    card: &mut ModelCard,
    varmap: &VarMap,
    normalizer: &Normalizer,
    history: &[EpochRecord],
) -> Result<()> {
    crate::runtime::varmap_weights(varmap)?;
    std::fs::create_dir_all(dir).map_err(|e| artifact_error(dir, e))?;
    let weights = dir.join(WEIGHTS_FILE);
    varmap.save(&weights)?;
    card.weights_sha256 = har_core::hash::sha256_file(&weights)?;
    card.parameters = parameter_count(varmap);
    card.flops_per_window = card.config.flops_per_window();
    card.save(&dir.join(CARD_FILE))?;
    normalizer.save(&dir.join(NORMALIZER_FILE))?;
    let metrics_path = dir.join(METRICS_FILE);
    let lines: String = history
        .iter()
        .map(|r| serde_json::to_string(r).expect("record serialises") + "\n")
        .collect();
    std::fs::write(&metrics_path, lines).map_err(|e| artifact_error(&metrics_path, e))?;
    Ok(())
}

/// A candle model of `config` holding `weights` (already checked by the runtime: every
/// parameter present with its shape, finite, nothing left over).
pub fn candle_model(config: &DmftConfig, weights: &Weights) -> Result<(Dmft, VarMap)> {
    // The runtime assembles its model from the same names and shapes: that is the check.
    har_runtime::dmft::Dmft::load(config, weights)?;
    let varmap = VarMap::new();
    let model = Dmft::new(config, seeded_var_builder(&varmap, 0))?;
    {
        let vars = varmap.data().lock().expect("varmap lock");
        for (name, var) in vars.iter() {
            let tensor = weights
                .f32_tensor(name)
                .ok_or_else(|| ModelError::Checkpoint {
                    path: weights.path().to_path_buf(),
                    tensor: name.clone(),
                    problem: "missing from the checkpoint".into(),
                })?;
            var.set(
                &Tensor::from_slice(&tensor.values, tensor.shape.as_slice(), &Device::Cpu)?
                    .to_dtype(DType::F32)?,
            )?;
        }
    }
    Ok((model, varmap))
}

/// A loaded model directory as a trainable candle model (for fine-tuning and tests).
pub struct CandleModelDir {
    /// The card.
    pub card: ModelCard,
    /// The model with its weights.
    pub model: Dmft,
    /// Its parameters.
    pub varmap: VarMap,
    /// Input normalisation.
    pub normalizer: Normalizer,
}

/// Loads a model directory into candle, with every check of [`model_dir::load`].
pub fn load_candle(dir: &Path) -> Result<CandleModelDir> {
    let card = card::read_card(dir)?;
    let weights = model_dir::read_weights(dir, &card)?;
    let (model, varmap) = candle_model(&card.config, &weights)?;
    let normalizer = model_dir::read_normalizer(dir, &card)?;
    Ok(CandleModelDir {
        card,
        model,
        varmap,
        normalizer,
    })
}

/// Reads a weights file that has no card (named tensors only) into a candle model of
/// `config`, checking names, shapes and values.
pub fn load_weights(config: &DmftConfig, path: &Path) -> Result<(Dmft, VarMap)> {
    candle_model(config, &Weights::read(path)?)
}
