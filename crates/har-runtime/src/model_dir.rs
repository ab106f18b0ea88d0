//! The model directory, read for inference:
//!
//! ```text
//! <dir>/model.json          ModelCard: config, classes, preprocessing, checksums, provenance
//! <dir>/model.safetensors   weights (F32), named as in `names`
//! <dir>/normalizer.json     per-channel statistics fitted on the training windows
//! <dir>/metrics.jsonl       one record per training epoch (not read here)
//! <dir>/eval.json           written by `har eval` (not read here)
//! ```
//!
//! Loading checks what it loads: the weights' SHA-256 against the card, finite weights and
//! normaliser statistics, a class list as long as the head, every tensor's shape against the
//! config, no tensor left over, and a normaliser for the card's modalities and channels.

use std::path::Path;

use har_core::preprocess::Normalizer;

use crate::card::{read_card, ModelCard, NORMALIZER_FILE, WEIGHTS_FILE};
use crate::dmft::Dmft;
use crate::error::{Result, RuntimeError};
use crate::weights::Weights;

/// A model directory loaded for inference.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    /// The card.
    pub card: ModelCard,
    /// The forward pass with its weights.
    pub model: Dmft,
    /// Input standardisation.
    pub normalizer: Normalizer,
}

/// Reads the weights of a model directory, verifying their SHA-256 against `card`.
pub fn read_weights(dir: &Path, card: &ModelCard) -> Result<Weights> {
    let path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&path).map_err(|e| RuntimeError::file(&path, e))?;
    let sha = har_core::hash::sha256_hex(&bytes);
    if sha != card.weights_sha256 {
        return Err(RuntimeError::file(
            &path,
            format!(
                "SHA-256 {sha} differs from the card's weights_sha256 {} ({}): the weights were \
                 changed or belong to another model",
                card.weights_sha256,
                dir.join(crate::card::CARD_FILE).display()
            ),
        ));
    }
    Weights::parse(&path, &bytes)
}

/// Reads a model directory's normaliser and checks it against the card: finite statistics,
/// one entry per modality of the config, in order, with its channel count.
pub fn read_normalizer(dir: &Path, card: &ModelCard) -> Result<Normalizer> {
    let path = dir.join(NORMALIZER_FILE);
    let normalizer = Normalizer::load(&path)?;
    let modalities = &card.config.modalities;
    if normalizer.modalities.len() != modalities.len() {
        return Err(RuntimeError::field(
            &path,
            "modalities",
            format!(
                "{} entries, the model has {} modalities",
                normalizer.modalities.len(),
                modalities.len()
            ),
        ));
    }
    for (i, (stats, spec)) in normalizer.modalities.iter().zip(modalities).enumerate() {
        if stats.modality != spec.name || stats.mean.len() != spec.channels {
            return Err(RuntimeError::field(
                &path,
                format!("modalities[{i}]"),
                format!(
                    "`{}` with {} channels, the model expects `{}` with {}",
                    stats.modality,
                    stats.mean.len(),
                    spec.name,
                    spec.channels
                ),
            ));
        }
        for (field, values) in [("mean", &stats.mean), ("std", &stats.std)] {
            if let Some(c) = values.iter().position(|v| !v.is_finite()) {
                return Err(RuntimeError::field(
                    &path,
                    format!("modalities[{i}].{field}[{c}]"),
                    format!("{} is not finite", values[c]),
                ));
            }
        }
    }
    Ok(normalizer)
}

/// Loads a model directory for inference, checking everything it reads.
pub fn load(dir: &Path) -> Result<LoadedModel> {
    let card = read_card(dir)?;
    let weights = read_weights(dir, &card)?;
    let model = Dmft::load(&card.config, &weights)?;
    let normalizer = read_normalizer(dir, &card)?;
    Ok(LoadedModel {
        card,
        model,
        normalizer,
    })
}
