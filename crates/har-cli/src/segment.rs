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
    /// Train the per-time-step segmentation model (seed S10: causal convolution, local
    /// attention, GRU, global attention) on a dataset's training recordings, then score it on
    /// the test recordings.
    Train(TrainArgs),
}

/// Arguments of `har segment train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset folder (whole recordings, every sample labelled or not).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Output directory (segmenter.json, segmenter.safetensors, report.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Passes over the training chunks.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Width of every layer.
    #[arg(long, default_value_t = 32)]
    pub dim: usize,
    /// Samples per time step.
    #[arg(long, default_value_t = 8)]
    pub patch_len: usize,
    /// Steps the local attention reads.
    #[arg(long, default_value_t = 16)]
    pub local_window: usize,
    /// Leave the local attention out (ablation).
    #[arg(long)]
    pub no_local: bool,
    /// Leave the global attention out (ablation).
    #[arg(long)]
    pub no_global: bool,
    /// Steps the global attention reads, online and offline: the training chunk's length by
    /// default (longer contexts, never seen in training, scored lower on the held-out
    /// subjects: docs/results.md); 0 = every earlier step of the sequence (a stream then
    /// keeps up to the segment node's context limit).
    #[arg(long, default_value_t = 256)]
    pub global_window: usize,
    /// Share of the training subjects held out to choose the epoch.
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f64,
    /// Segment rule for the scores: shortest run that becomes a segment (seconds).
    #[arg(long, default_value_t = 1.0)]
    pub min_duration: f64,
    /// Labels whose boundary errors are reported, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub boundary_labels: Vec<i32>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Arguments of `har segment eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model directory (a window classifier).
    #[arg(
        long,
        required_unless_present = "segmenter",
        conflicts_with = "segmenter"
    )]
    pub model: Option<PathBuf>,
    /// A segmentation model directory (`har segment train`) instead of a window classifier;
    /// --split validation reads its held-out subjects.
    #[arg(long)]
    pub segmenter: Option<PathBuf>,
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
    /// With --segmenter: the global attention reads only the last N steps (as a stream
    /// with that context limit does) [default: the model's own].
    #[arg(long)]
    pub global_window: Option<usize>,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs a `har segment` step.
pub fn run(command: SegmentCommand) -> Result<()> {
    match command {
        SegmentCommand::Eval(args) => eval_command(&args),
        SegmentCommand::Train(args) => train_command(&args),
    }
}

fn eval_command(args: &EvalArgs) -> Result<()> {
    let dataset = open_dataset(&args.dataset)?;
    if let Some(dir) = &args.segmenter {
        return segmenter_eval(args, &dataset, dir);
    }
    let model = args.model.as_ref().context("--model or --segmenter")?;
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
    let r = evaluate_sliding(model, &dataset, part, &settings).with_context(|| {
        format!(
            "segmenting {} with {}",
            args.dataset.display(),
            model.display()
        )
    })?;
    print_report(&r, args)
}

fn segmenter_eval(
    args: &EvalArgs,
    dataset: &har_core::dataset::Dataset,
    dir: &std::path::Path,
) -> Result<()> {
    use har_model::segmenter::train::{evaluate, load, read_recordings};
    let (card, mut model) = load(dir).with_context(|| format!("reading {}", dir.display()))?;
    if let Some(window) = args.global_window {
        model = model.with_global_window(Some(window));
    }
    let held: Option<Vec<String>> = (args.split == "validation")
        .then(|| serde_json::from_value(card.provenance["validation_subjects"].clone()))
        .transpose()
        .context("the segmenter's card names no validation subjects")?;
    let split = if held.is_some() {
        har_core::dataset::Split::Train
    } else {
        har_core::dataset::Split::Test
    };
    let (recordings, _) = read_recordings(
        dataset,
        split,
        held.as_deref(),
        card.config.patch_len,
        &card.classes,
        Some(&card.standardiser),
    )?;
    let r = evaluate(
        &model,
        &recordings,
        &card.classes,
        args.min_duration,
        &args.boundary_labels,
    )?;
    print_report(&r, args)
}

fn print_report(r: &har_model::segmentation::SegmentationReport, args: &EvalArgs) -> Result<()> {
    println!(
        "{} recordings: frame accuracy {:.2} %, edit {:.2}, F1@10/25/50 {:.2} / {:.2} / {:.2}",
        r.recordings.len(),
        r.frame_accuracy,
        r.edit,
        r.f1[0],
        r.f1[1],
        r.f1[2]
    );
    if !args.boundary_labels.is_empty() {
        println!(
            "boundaries of labels {:?}: {} of {} true segments found, error mean {:.2} s, median {:.2} s",
            args.boundary_labels,
            r.boundary_segments.1,
            r.boundary_segments.0,
            r.boundary_error_s.0,
            r.boundary_error_s.1
        );
    }
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(r)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

fn train_command(args: &TrainArgs) -> Result<()> {
    use har_model::segmenter::train::{
        evaluate, fit, read_recordings, save, SegmenterCard, SegmenterTraining,
    };
    use har_model::segmenter::SegmenterConfig;
    let dataset = open_dataset(&args.dataset)?;
    let classes = dataset.manifest.classes.clone();
    let mut subjects: Vec<String> = dataset
        .manifest
        .subjects(har_core::dataset::Split::Train)
        .into_iter()
        .collect();
    let mut rng = har_core::rng::Rng::new(args.seed);
    rng.shuffle(&mut subjects);
    let held =
        ((subjects.len() as f64 * args.val_fraction).round() as usize).clamp(1, subjects.len() - 1);
    let (validation_subjects, training_subjects) = subjects.split_at(held);
    let split = har_core::dataset::Split::Train;
    let (train, standardiser) = read_recordings(
        &dataset,
        split,
        Some(training_subjects),
        args.patch_len,
        &classes,
        None,
    )?;
    let (validation, _) = read_recordings(
        &dataset,
        split,
        Some(validation_subjects),
        args.patch_len,
        &classes,
        Some(&standardiser),
    )?;
    let (test, _) = read_recordings(
        &dataset,
        har_core::dataset::Split::Test,
        None,
        args.patch_len,
        &classes,
        Some(&standardiser),
    )?;
    let config = SegmenterConfig {
        channels: standardiser.mean.len(),
        patch_len: args.patch_len,
        dim: args.dim,
        heads: 2,
        kernel: 3,
        local_window: args.local_window,
        local: !args.no_local,
        global: !args.no_global,
        global_window: (args.global_window > 0).then_some(args.global_window),
        num_classes: classes.len(),
    };
    let training = SegmenterTraining {
        epochs: args.epochs,
        chunk_steps: 256,
        batch_size: 16,
        learning_rate: 2e-3,
        seed: args.seed,
    };
    let started = std::time::Instant::now();
    let (model, varmap, history) = fit(&config, &train, &validation, &classes, &training)?;
    let seconds = started.elapsed().as_secs_f64();
    let report = evaluate(
        &model,
        &test,
        &classes,
        args.min_duration,
        &args.boundary_labels,
    )?;
    let card = SegmenterCard {
        config,
        classes,
        standardiser,
        align: har_core::preprocess::AlignConfig::default(),
        modalities: train.modalities.clone(),
        provenance: serde_json::json!({
            "dataset": dataset.manifest.name,
            "training": training,
            "validation_subjects": validation_subjects,
            "history": history,
            "seconds": seconds,
        }),
    };
    save(&args.out, &card, &varmap)?;
    std::fs::write(
        args.out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!(
        "test: {} recordings, frame accuracy {:.2} %, edit {:.2}, F1@10/25/50 {:.2} / {:.2} / {:.2}; {} of {} boundary segments found, error mean {:.2} s ({:.0} s training)",
        report.recordings.len(),
        report.frame_accuracy,
        report.edit,
        report.f1[0],
        report.f1[1],
        report.f1[2],
        report.boundary_segments.1,
        report.boundary_segments.0,
        report.boundary_error_s.0,
        seconds
    );
    Ok(())
}
