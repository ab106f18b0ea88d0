//! `har compress`: shrink a trained model (seed S3, `har_model::compress`). `stats` records a
//! model's feature statistics where the training data is; `prune` narrows the backbone and,
//! with `--data-free`, fine-tunes it on synthesised windows without reading any data.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use har_model::compress::mimic::MimicConfig;
use har_model::compress::synthesis::SynthesisConfig;
use har_model::compress::{
    prune_model, quantize_model, record_stats, CalibrationData, FineTune, PruneOptions,
};

/// The compression steps.
#[derive(Debug, Subcommand)]
pub enum CompressCommand {
    /// Record a model's feature statistics on a dataset's training split (written into the
    /// model directory; data-free fine-tuning reads them later).
    Stats(StatsArgs),
    /// Structured pruning of the backbone (heads, feed-forward units), optionally fine-tuned.
    Prune(PruneArgs),
    /// Int8 dense layers (weights per output channel, calibrated input scales).
    Quantize(QuantizeArgs),
}

/// Arguments of `har compress quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// Model directory (f32).
    #[arg(long)]
    pub model: PathBuf,
    /// The new model directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Calibrate on windows synthesised from the model (reads no data; needs the model's
    /// activation_stats.json).
    #[arg(long, conflicts_with = "dataset")]
    pub data_free: bool,
    /// Calibrate on this dataset's training windows instead.
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Calibration windows (synthesised, or taken evenly from the dataset).
    #[arg(long, default_value_t = 256)]
    pub calibration_windows: usize,
    /// Optimisation steps per batch of synthetic windows.
    #[arg(long, default_value_t = SynthesisConfig::default().steps)]
    pub synthesis_steps: usize,
    /// Random seed of the synthesis.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Arguments of `har compress stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Dataset folder (its training split is read).
    #[arg(long)]
    pub dataset: PathBuf,
}

/// Arguments of `har compress prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Model directory to compress.
    #[arg(long)]
    pub model: PathBuf,
    /// Share of each transformer layer's heads and feed-forward units removed (0 ≤ R < 1).
    #[arg(long)]
    pub ratio: f64,
    /// The new model directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Also narrow the residual width (token / projection channels) to this many channels: a
    /// multiple of the head width that holds every layer's remaining heads (e.g. 16 after
    /// --ratio 0.5 on the shipped student).
    #[arg(long)]
    pub width: Option<usize>,
    /// Fine-tune on windows synthesised from the model itself (reads no data; needs the
    /// model's activation_stats.json).
    #[arg(long, conflicts_with = "dataset")]
    pub data_free: bool,
    /// Fine-tune on this dataset's training split instead (the upper bound).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Windows to synthesise.
    #[arg(long, default_value_t = SynthesisConfig::default().windows)]
    pub synthetic_windows: usize,
    /// Optimisation steps per batch of synthetic windows.
    #[arg(long, default_value_t = SynthesisConfig::default().steps)]
    pub synthesis_steps: usize,
    /// Gravity in the accelerometer's units (default: 9.81 or 1 from the stored mean).
    #[arg(long)]
    pub gravity: Option<f64>,
    /// Fine-tuning epochs.
    #[arg(long, default_value_t = MimicConfig::default().epochs)]
    pub epochs: usize,
    /// Fine-tuning learning rate.
    #[arg(long, default_value_t = MimicConfig::default().learning_rate)]
    pub learning_rate: f64,
    /// Random seed (synthesis and fine-tuning).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs a `har compress` step.
pub fn run(command: CompressCommand) -> Result<()> {
    match command {
        CompressCommand::Stats(args) => {
            let stats = record_stats(&args.model, &args.dataset).with_context(|| {
                format!("recording feature statistics of {}", args.model.display())
            })?;
            println!(
                "wrote {} sites over {} windows into {}",
                stats.sites.len(),
                stats.windows,
                args.model.display()
            );
            Ok(())
        }
        CompressCommand::Prune(args) => prune_command(&args),
        CompressCommand::Quantize(args) => quantize_command(&args),
    }
}

/// A compression step writes a new model directory, never over an existing model.
fn refuse_existing_model(out: &std::path::Path) -> Result<()> {
    if out.join(har_runtime::card::CARD_FILE).exists() {
        bail!(
            "{} already holds a model; choose a new --out",
            out.display()
        );
    }
    Ok(())
}

fn quantize_command(args: &QuantizeArgs) -> Result<()> {
    refuse_existing_model(&args.out)?;
    let calibration = match (&args.dataset, args.data_free) {
        (Some(dataset), _) => CalibrationData::Real {
            dataset: dataset.clone(),
            windows: args.calibration_windows,
        },
        (None, true) => CalibrationData::DataFree(SynthesisConfig {
            windows: args.calibration_windows,
            steps: args.synthesis_steps,
            seed: args.seed,
            ..Default::default()
        }),
        (None, false) => bail!("give --data-free or --dataset for the calibration windows"),
    };
    let outcome = quantize_model(&args.model, &calibration, &args.out)
        .with_context(|| format!("quantising {}", args.model.display()))?;
    println!(
        "{} → {} in {}: {} dense layers int8, weights {} → {} bytes, calibrated on {} windows",
        outcome.source,
        outcome.model_id,
        args.out.display(),
        outcome.layers,
        outcome.weight_bytes.0,
        outcome.weight_bytes.1,
        outcome.calibration_windows
    );
    Ok(())
}

fn prune_command(args: &PruneArgs) -> Result<()> {
    refuse_existing_model(&args.out)?;
    let fine_tune = match (&args.dataset, args.data_free) {
        (Some(dataset), _) => FineTune::Real {
            dataset: dataset.clone(),
        },
        (None, true) => FineTune::DataFree(SynthesisConfig {
            windows: args.synthetic_windows,
            steps: args.synthesis_steps,
            gravity: args.gravity,
            seed: args.seed,
            ..Default::default()
        }),
        (None, false) => FineTune::None,
    };
    let outcome = prune_model(&PruneOptions {
        model: args.model.clone(),
        ratio: args.ratio,
        width: args.width,
        fine_tune,
        mimic: MimicConfig {
            epochs: args.epochs,
            learning_rate: args.learning_rate,
            seed: args.seed,
            ..Default::default()
        },
        out: args.out.clone(),
    })
    .with_context(|| format!("pruning {}", args.model.display()))?;
    println!(
        "{} → {} in {}: {} → {} parameters, {} → {} FLOPs per window",
        outcome.source,
        outcome.model_id,
        args.out.display(),
        outcome.parameters.0,
        outcome.parameters.1,
        outcome.flops_per_window.0,
        outcome.flops_per_window.1
    );
    for layer in &outcome.plan {
        println!(
            "  {}: heads {}/{} {:?}, feed-forward {}/{}",
            layer.layer,
            layer.heads.len(),
            layer.heads_before,
            layer.heads,
            layer.ffn.len(),
            layer.ffn_before
        );
    }
    if let Some(s) = &outcome.synthesis {
        println!(
            "  synthesis: objective {:.3} → {:.3}, the model assigns {:.1} % of the windows to their class",
            s.initial,
            s.last,
            100.0 * s.assigned_accuracy
        );
    }
    if let Some(m) = &outcome.mimic {
        println!(
            "  fine-tuning: feature loss {:.4} → {:.4} ({} parameters, {:.0} s)",
            m.first_epoch_loss, m.last_epoch_loss, m.trained_parameters, m.seconds
        );
    }
    Ok(())
}
