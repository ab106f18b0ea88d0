//! `har segment eval`: whole recordings to activity segments with the sliding-window
//! baseline (`har_model::segmentation`), scored with frame accuracy, segmental edit score,
//! F1@{10, 25, 50} and the boundary error of chosen labels.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use har_model::data::ModelPart;
use har_model::pipeline::open_dataset;
use har_model::segmentation::{evaluate_sliding, SlidingSettings};

/// `har segment` steps.
#[derive(Debug, Subcommand)]
pub enum SegmentCommand {
    /// Segment every recording of a split with a window classifier (sliding windows, majority
    /// smoothing, the segment rule) and score it against the ground truth.
    Eval(EvalArgs),
}

/// Arguments of `har segment eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model directory (a window classifier).
    #[arg(long)]
    pub model: PathBuf,
    /// Dataset folder.
    #[arg(long)]
    pub dataset: PathBuf,
    /// Recordings segmented: `test` (the test split) or `validation` (the training
    /// recordings of the model's held-out subjects, where settings are chosen).
    #[arg(long, default_value = "test", value_parser = ["test", "validation"])]
    pub split: String,
    /// Samples between window starts.
    #[arg(long, default_value_t = 32)]
    pub stride: usize,
    /// Majority smoothing over this many windows (1: none).
    #[arg(long, default_value_t = 5)]
    pub smooth: usize,
    /// Shortest run that becomes a segment of its own (seconds); shorter runs are absorbed.
    #[arg(long, default_value_t = 1.5)]
    pub min_duration: f64,
    /// Labels whose boundary errors are reported, comma-separated [default: none].
    #[arg(long, value_delimiter = ',')]
    pub boundary_labels: Vec<i32>,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs a `har segment` step.
pub fn run(command: SegmentCommand) -> Result<()> {
    match command {
        SegmentCommand::Eval(args) => eval_command(&args),
    }
}

fn eval_command(args: &EvalArgs) -> Result<()> {
    let dataset = open_dataset(&args.dataset)?;
    let part = if args.split == "validation" {
        ModelPart::Validation
    } else {
        ModelPart::Test
    };
    let settings = SlidingSettings {
        stride: args.stride,
        smooth: args.smooth,
        min_duration_s: args.min_duration,
        boundary_labels: args.boundary_labels.clone(),
    };
    let r = evaluate_sliding(&args.model, &dataset, part, &settings).with_context(|| {
        format!(
            "segmenting {} with {}",
            args.dataset.display(),
            args.model.display()
        )
    })?;
    println!(
        "{} recordings: frame accuracy {:.2} %, edit {:.2}, F1@10/25/50 {:.2} / {:.2} / {:.2}",
        r.recordings.len(),
        r.frame_accuracy,
        r.edit,
        r.f1[0],
        r.f1[1],
        r.f1[2]
    );
    if !settings.boundary_labels.is_empty() {
        println!(
            "boundaries of labels {:?}: {} of {} true segments found, error mean {:.2} s, median {:.2} s",
            settings.boundary_labels,
            r.boundary_segments.1,
            r.boundary_segments.0,
            r.boundary_error_s.0,
            r.boundary_error_s.1
        );
    }
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&r)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
