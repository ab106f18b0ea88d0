//! `har export onnx`: a model directory as a standard ONNX file (see the `har_onnx` crate and
//! docs/onnx.md for its inputs, outputs and metadata).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use har_onnx::{export_to_file, ExportOptions};

/// Arguments of `har export onnx`.
#[derive(Debug, Args)]
pub struct OnnxArgs {
    /// Model directory (model.json, model.safetensors, normalizer.json), or a segmenter
    /// directory (segmenter.json, segmenter.safetensors: input `steps`, per-step outputs).
    #[arg(long)]
    pub model: PathBuf,
    /// Output ONNX file.
    #[arg(long)]
    pub out: PathBuf,
    /// Add the `present` input ([batch, modalities], 1 present / 0 missing) that leaves
    /// missing modalities out of fusion.
    #[arg(long)]
    pub mask: bool,
}

/// Runs `har export onnx`.
pub fn onnx_command(args: &OnnxArgs) -> Result<()> {
    let segmenter = args.model.join(har_runtime::segmenter::CARD_FILE).exists();
    if segmenter && args.mask {
        anyhow::bail!("--mask: a segmenter takes every modality in one `steps` input");
    }
    let exported = if segmenter {
        let exported = har_onnx::segmenter::export(&args.model)
            .with_context(|| format!("exporting {}", args.model.display()))?;
        std::fs::write(&args.out, &exported.bytes)
            .with_context(|| format!("writing {}", args.out.display()))?;
        exported
    } else {
        export_to_file(
            &args.model,
            &args.out,
            ExportOptions {
                with_mask: args.mask,
            },
        )
        .with_context(|| format!("exporting {}", args.model.display()))?
    };
    println!(
        "wrote {} ({} bytes, {} weights, opset {}): inputs {:?}, outputs [\"logits\", \"probabilities\"]",
        args.out.display(),
        exported.bytes.len(),
        exported.parameters,
        har_onnx::graph::OPSET,
        exported.inputs
    );
    Ok(())
}
