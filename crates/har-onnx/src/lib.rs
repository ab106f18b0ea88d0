//! Exports a HAR model directory as a standard ONNX model (opset 17, IR 8), so the model runs
//! anywhere ONNX does (onnxruntime from Python, tract, a phone's runtime).
//!
//! The graph takes one input per modality, named after it: raw windows `[batch, T, C]` as
//! preprocessing hands them to the encoders (aligned on the model's rate, skeletons centred
//! and scaled), *before* the per-channel standardisation, which is inside the graph. With
//! `with_mask` it also takes `present` (`[batch, M]`, 1.0 where the modality is there, 0.0
//! where not; feed zeros for a missing modality's window). It returns `logits` and
//! `probabilities` (`[batch, K]`). Class names, the normaliser's statistics and the whole model
//! card are in the metadata (`har.classes`, `har.normalizer`, `har.card`).
//!
//! - [`proto`]: the protobuf messages, written by hand (no protobuf dependency).
//! - [`graph`]: the graph builder and the layers as standard operators.
//! - [`dmft`]: the DMFT architecture, from the runtime's weights under the runtime's names.
//! - [`fusion`]: its fusion schemes (mid, cross-modal, skeleton-guided).
//! - [`segmenter`]: the per-step segmentation model (input `steps`, per-step outputs).

pub mod dmft;
pub mod fusion;
pub mod graph;
pub mod proto;
pub mod segmenter;

use std::path::Path;

use har_runtime::card::read_card;
use har_runtime::model_dir::{read_normalizer, read_weights};

/// What can go wrong exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The model directory does not load (card, weights, normaliser).
    #[error(transparent)]
    Model(#[from] har_runtime::RuntimeError),
    /// The ONNX file could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The output file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Result of the exporter.
pub type Result<T> = std::result::Result<T, ExportError>;

/// Export choices.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportOptions {
    /// Add the `present` input masking missing modalities out of fusion.
    pub with_mask: bool,
}

/// An exported model in memory.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The ONNX file's bytes.
    pub bytes: Vec<u8>,
    /// Graph inputs in order (modalities, then `present` when asked).
    pub inputs: Vec<String>,
    /// Weight values stored.
    pub parameters: usize,
    /// The model's id (role and checksum prefix).
    pub model_id: String,
}

/// Exports the model directory `dir`. Every weight of the checkpoint must be used by the
/// graph, as when the runtime loads it.
pub fn export(dir: &Path, options: ExportOptions) -> Result<Exported> {
    let card = read_card(dir)?;
    let weights = read_weights(dir, &card)?;
    let normalizer = read_normalizer(dir, &card)?;
    let mut inputs: Vec<String> = card
        .config
        .modalities
        .iter()
        .map(|m| m.name.clone())
        .collect();
    if options.with_mask {
        inputs.push(dmft::MASK_INPUT.to_string());
    }
    let metadata = vec![
        ("har.model_id".to_string(), card.model_id()),
        ("har.classes".to_string(), to_json(&card.classes)),
        ("har.normalizer".to_string(), to_json(&normalizer)),
        ("har.card".to_string(), to_json(&card)),
        (
            "har.inputs".to_string(),
            format!(
                "one input per modality, [batch, {}, channels], raw values after alignment \
                 (standardised inside the graph){}",
                card.config.window_len,
                if options.with_mask {
                    "; `present` [batch, modalities]: 1 present, 0 missing (feed zeros)"
                } else {
                    ""
                }
            ),
        ),
    ];
    let (bytes, parameters) = export_weights(
        &card.config,
        &weights,
        &normalizer,
        options,
        &card.model_id(),
        &metadata,
    )?;
    Ok(Exported {
        bytes,
        inputs,
        parameters,
        model_id: card.model_id(),
    })
}

/// The ONNX bytes of a DMFT of `config` with `weights` and `normalizer` (every weight must be
/// used), and the number of weight values stored: what [`export`] does once it has read a
/// model directory.
pub fn export_weights(
    config: &har_runtime::config::DmftConfig,
    weights: &har_runtime::weights::Weights,
    normalizer: &har_core::preprocess::Normalizer,
    options: ExportOptions,
    name: &str,
    metadata: &[(String, String)],
) -> Result<(Vec<u8>, usize)> {
    config
        .validate()
        .map_err(har_runtime::RuntimeError::Invalid)?;
    let mut graph = graph::Graph::default();
    dmft::emit(
        &mut graph,
        config,
        &weights.root(),
        normalizer,
        options.with_mask,
    )?;
    weights.finish()?;
    let parameters = graph.parameters;
    Ok((graph.finish(name, metadata), parameters))
}

/// Exports `dir` and writes the ONNX file to `out`.
pub fn export_to_file(dir: &Path, out: &Path, options: ExportOptions) -> Result<Exported> {
    let exported = export(dir, options)?;
    std::fs::write(out, &exported.bytes).map_err(|source| ExportError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(exported)
}

/// A metadata value as JSON.
fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("model metadata serialises")
}
