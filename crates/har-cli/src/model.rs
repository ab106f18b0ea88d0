//! `har train`, `har distill`, `har eval`: DMFT models on imported datasets.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use har_model::augment::AugmentConfig;
use har_model::data::{ClassMap, Holdout, ModelPart};
use har_model::dmft::DmftConfig;
use har_model::pipeline::{self, DataOptions, LoadedTeacher, Prepared, Saved};
use har_model::train::{self, DistillConfig, EpochRecord, Observer, TrainConfig};
use har_runtime::config::ARCHITECTURES;
use indicatif::ProgressBar;

use crate::data::progress_bar;

/// Which data and windows a model is trained on.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Dataset folder (from `har data import`), or its name under data/.
    #[arg(long)]
    pub dataset: PathBuf,
    /// Class ids to learn (comma-separated) [default: all].
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<i32>,
    /// Window length in samples.
    #[arg(long, default_value_t = 128)]
    pub window: usize,
    /// Stride between windows in samples (the test split and the model card use it).
    #[arg(long, default_value_t = 64)]
    pub stride: usize,
    /// Stride of the training windows only [default: --stride]; a smaller one gives more,
    /// overlapping windows (time-shift augmentation).
    #[arg(long)]
    pub train_stride: Option<usize>,
    #[command(flatten)]
    holdout: HoldoutArgs,
}

/// Which training subjects validate (train and distill).
#[derive(Debug, Clone, Args)]
pub struct HoldoutArgs {
    /// Share of the training subjects held out for validation (epoch selection, early
    /// stopping); 0 trains on all of them for --epochs and keeps the last epoch.
    #[arg(long, default_value_t = 0.2)]
    val_fraction: f64,
    /// Hold out leave-subjects-out fold K of N instead (`2/3`): the same subjects for every
    /// seed and recipe, so recipes are chosen on the training subjects' folds. The kept
    /// weights' validation score goes in the card.
    #[arg(long, value_name = "K/N", value_parser = Holdout::parse_fold, conflicts_with = "val_fraction")]
    val_fold: Option<Holdout>,
}

impl HoldoutArgs {
    fn holdout(&self) -> Holdout {
        self.val_fold
            .unwrap_or(Holdout::Fraction(self.val_fraction))
    }
}

/// Optimisation and shape options shared by train and distill.
#[derive(Debug, Clone, Args)]
pub struct FitArgs {
    /// Output model directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Most epochs.
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Early-stopping patience in epochs.
    #[arg(long, default_value_t = 12)]
    pub patience: usize,
    /// Seed.
    #[arg(long, default_value_t = 17)]
    pub seed: u64,
    /// Probability of dropping a modality of a training window.
    #[arg(long, default_value_t = 0.1)]
    pub modality_dropout: f64,
    /// Train without augmentation.
    #[arg(long)]
    pub no_augment: bool,
    /// σ of the Gaussian jitter in normalised units (0: none).
    #[arg(long, default_value_t = 0.03)]
    pub jitter: f64,
    /// Largest random rotation of the inertial sensors' frame in degrees (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub rotate_deg: f64,
    /// Rotation axis of the sensor frame (x, y or z) [default: a random axis per window].
    #[arg(long, value_parser = ["x", "y", "z"])]
    pub rotate_axis: Option<String>,
    /// Largest relative change of each window's motion amplitude (0.2: ×0.8–1.2; 0: none).
    #[arg(long, default_value_t = 0.0)]
    pub amplitude_scale: f64,
    /// Architecture: the modality encoder (`dmft`: patch tokens + transformer; `mvf`: a
    /// multi-view convolution module in front; `transformer`: one token per sample; `lstm` /
    /// `gru`: recurrent over the samples; `lstm-patches` / `gru-patches`: recurrent over the
    /// patches) or the fusion (`cmsa`: cross-modal self-attention over every encoder level;
    /// `sga` / `sga-late`: skeleton-guided attention, mid or late fusion, for a skeleton with
    /// motion sensors) [default: dmft, or the teacher's for distill].
    #[arg(long, value_parser = ARCHITECTURES)]
    pub arch: Option<String>,
    /// Override: modality-specific layers (0 = early fusion; stacked recurrent layers for the
    /// recurrent encoders).
    #[arg(long)]
    pub modality_layers: Option<usize>,
    /// Override: joint layers after fusion (0 = late fusion).
    #[arg(long)]
    pub joint_layers: Option<usize>,
    /// Override: token dimension.
    #[arg(long)]
    pub dim: Option<usize>,
    /// Override: attention heads.
    #[arg(long)]
    pub heads: Option<usize>,
    /// Override: residual dropout while training.
    #[arg(long)]
    pub dropout: Option<f32>,
    /// Override: per-channel log standard deviation of each patch as extra token input.
    #[arg(long)]
    pub patch_stats: Option<bool>,
    /// Override: a spectral step (band powers of the whole window) after the patch steps.
    #[arg(long)]
    pub spectral_tokens: Option<bool>,
    /// Override: each patch's values standardised per window and channel as extra token input.
    #[arg(long)]
    pub window_detail: Option<bool>,
    /// Average the weights of every epoch from this one on and keep the average (stochastic
    /// weight averaging).
    #[arg(long)]
    pub average_from: Option<usize>,
    /// Share of each batch's windows blended with another window (mixup; labels blended
    /// alike, the teacher sees the blend too).
    #[arg(long, default_value_t = 0.0)]
    pub mixup: f64,
}

/// `har train` arguments.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    fit: FitArgs,
    /// Train the student shape from scratch (no teacher) instead of the teacher shape.
    #[arg(long)]
    student: bool,
}

/// `har distill` arguments.
#[derive(Debug, Args)]
pub struct DistillArgs {
    /// The trained teacher's model directory.
    #[arg(long)]
    teacher: PathBuf,
    /// Dataset folder [default: the one the teacher was trained on must be given].
    #[arg(long)]
    dataset: PathBuf,
    #[command(flatten)]
    fit: FitArgs,
    /// Softmax temperature.
    #[arg(long, default_value_t = 4.0)]
    temperature: f64,
    /// Weight of the hard-label loss.
    #[arg(long, default_value_t = 0.5)]
    alpha: f64,
    /// Weight of the mid-fusion feature matching.
    #[arg(long, default_value_t = 0.1)]
    feature_weight: f64,
    #[command(flatten)]
    holdout: HoldoutArgs,
    /// Stride of the training windows only [default: the teacher's preprocessing stride].
    #[arg(long)]
    train_stride: Option<usize>,
}

/// `har eval` arguments.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model directory.
    #[arg(long)]
    model: PathBuf,
    /// Dataset folder or name under data/; its test split is evaluated.
    #[arg(long)]
    dataset: PathBuf,
    /// Evaluate with these modalities missing (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    drop: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Evaluate on `test` (the test split) or on `validation`: the training subjects the
    /// model's card says were held out from its training (where choices are made).
    #[arg(long, default_value = "test", value_parser = ["test", "validation"])]
    split: String,
    /// Confusion-matrix PNG path [default: MODEL/confusion.png].
    #[arg(long)]
    png: Option<PathBuf>,
    /// Also write every test window's prediction to this CSV (recording, subject, start,
    /// true and predicted class, one probability column per class).
    #[arg(long)]
    predictions: Option<PathBuf>,
}

impl DataArgs {
    fn options(&self) -> DataOptions {
        DataOptions {
            dataset: self.dataset.clone(),
            classes: self.classes.clone(),
            window: self.window,
            stride: self.stride,
            train_stride: self.train_stride,
            holdout: self.holdout.holdout(),
        }
    }
}

/// The command line, recorded in the card's provenance.
fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

fn settings(fit: &FitArgs) -> TrainConfig {
    TrainConfig {
        epochs: fit.epochs,
        batch_size: fit.batch_size,
        learning_rate: fit.lr,
        patience: fit.patience,
        seed: fit.seed,
        modality_dropout: fit.modality_dropout,
        augment: !fit.no_augment,
        augmentation: AugmentConfig {
            jitter_std: fit.jitter,
            rotation_deg: fit.rotate_deg,
            rotation_axis: fit.rotate_axis.as_deref().map(|a| match a {
                "x" => 0,
                "y" => 1,
                _ => 2,
            }),
            amplitude_scale: fit.amplitude_scale,
        },
        average_from_epoch: fit.average_from,
        mixup: fit.mixup,
        ..Default::default()
    }
}

/// The shape with the command line's architecture and overrides (checked when the model is
/// built: an option the architecture does not have is refused there).
fn apply_overrides(mut config: DmftConfig, fit: &FitArgs) -> DmftConfig {
    if let Some(arch) = fit.arch.as_deref().and_then(|name| config.with_arch(name)) {
        config = arch;
    }
    config.modality_layers = fit.modality_layers.unwrap_or(config.modality_layers);
    config.joint_layers = fit.joint_layers.unwrap_or(config.joint_layers);
    config.dim = fit.dim.unwrap_or(config.dim);
    config.heads = fit.heads.unwrap_or(config.heads);
    config.dropout = fit.dropout.unwrap_or(config.dropout);
    config.patch_stats = fit.patch_stats.unwrap_or(config.patch_stats);
    config.spectral_tokens = fit.spectral_tokens.unwrap_or(config.spectral_tokens);
    config.window_detail = fit.window_detail.unwrap_or(config.window_detail);
    config
}

/// A validation figure, or `-` without a validation split.
fn show(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"))
}

/// Shows epochs and batches with indicatif.
struct Progress {
    bar: ProgressBar,
}

impl Observer for Progress {
    fn epoch_started(&self, epoch: usize, batches: usize) {
        self.bar.reset();
        self.bar.set_length(batches as u64);
        self.bar.set_message(format!("epoch {epoch}"));
    }
    fn batch_done(&self) {
        self.bar.inc(1);
    }
    fn epoch_done(&self, r: &EpochRecord) {
        self.bar.println(format!(
            "epoch {:>3}  lr {:.2e}  train loss {:.4}  val loss {}  val acc {}  val macro-F1 {}  ({:.1}s)",
            r.epoch,
            r.learning_rate,
            r.train_loss,
            show(r.val_loss),
            show(r.val_accuracy),
            show(r.val_macro_f1),
            r.seconds
        ));
    }
}

fn fit_and_save(
    role: &str,
    config: DmftConfig,
    prepared: Prepared,
    settings: &TrainConfig,
    teacher: Option<LoadedTeacher>,
    out: &Path,
) -> Result<()> {
    let progress = Progress {
        bar: progress_bar(0, "training"),
    };
    let saved: Saved =
        pipeline::fit_and_save(role, config, prepared, settings, teacher, out, &progress)?;
    progress.bar.finish_and_clear();
    let card = &saved.card;
    let best = &saved.history[saved.best_epoch - 1];
    println!(
        "saved {} to {}: {} parameters, {} FLOPs/window, best epoch {} of {} (val acc {}, macro-F1 {}), {:.0}s",
        card.model_id(),
        out.display(),
        card.parameters,
        card.flops_per_window,
        saved.best_epoch,
        saved.history.len(),
        show(best.val_accuracy),
        show(best.val_macro_f1),
        card.provenance.seconds
    );
    Ok(())
}

/// Runs `har train`.
pub fn train_command(args: &TrainArgs) -> Result<()> {
    let settings = settings(&args.fit);
    let prepared = pipeline::prepare(&args.data.options(), &settings, &command_line())?;
    let teacher = DmftConfig::teacher(
        prepared.modalities.clone(),
        args.data.window,
        prepared.classes.classes.len(),
    );
    let (role, base) = if args.student {
        ("student-scratch", teacher.student())
    } else {
        ("teacher", teacher)
    };
    fit_and_save(
        role,
        apply_overrides(base, &args.fit),
        prepared,
        &settings,
        None,
        &args.fit.out,
    )
}

/// Runs `har distill`.
pub fn distill_command(args: &DistillArgs) -> Result<()> {
    let distill = DistillConfig {
        temperature: args.temperature,
        alpha: args.alpha,
        feature_weight: args.feature_weight,
    };
    let teacher = pipeline::load_teacher(&args.teacher, distill)
        .with_context(|| format!("loading teacher {}", args.teacher.display()))?;
    let card = &teacher.card;
    let settings = settings(&args.fit);
    let data = DataOptions {
        dataset: args.dataset.clone(),
        classes: card.classes.iter().map(|c| c.id).collect(),
        window: card.preprocess.window.length,
        stride: card.preprocess.window.stride,
        train_stride: args.train_stride,
        holdout: args.holdout.holdout(),
    };
    let prepared = pipeline::prepare(&data, &settings, &command_line())?;
    if prepared.provenance.dataset != card.provenance.dataset {
        bail!(
            "teacher was trained on `{}`, not `{}`",
            card.provenance.dataset,
            prepared.provenance.dataset
        );
    }
    let student = apply_overrides(card.config.student(), &args.fit);
    if student.steps() != card.config.steps() && args.feature_weight != 0.0 {
        bail!(
            "the {} student has {} token steps, the {} teacher {}: their mid-fusion features \
             cannot be matched; pass --feature-weight 0 to distil from the logits alone",
            student.arch_name(),
            student.steps(),
            card.config.arch_name(),
            card.config.steps()
        );
    }
    fit_and_save(
        "student",
        student,
        prepared,
        &settings,
        Some(teacher),
        &args.fit.out,
    )
}

/// Runs `har eval`: the test split through the runtime (the forward the dataflow runs).
pub fn eval_command(args: &EvalArgs) -> Result<()> {
    let dataset = pipeline::open_dataset(&args.dataset)?;
    let part = if args.split == "validation" {
        ModelPart::Validation
    } else {
        ModelPart::Test
    };
    let evaluation = pipeline::evaluate_on(&args.model, &dataset, &args.drop, part)?;
    let card = &evaluation.card;
    let metrics = &evaluation.metrics;
    let classes = ClassMap {
        classes: card.classes.clone(),
    };
    if let Some(path) = &args.predictions {
        write_predictions(
            path,
            &evaluation.windows,
            &classes,
            &evaluation.targets,
            &evaluation.probabilities,
        )
        .with_context(|| format!("writing predictions {}", path.display()))?;
    }
    let png = args
        .png
        .clone()
        .unwrap_or_else(|| args.model.join("confusion.png"));
    crate::plot::confusion_png(
        &png,
        metrics,
        &format!(
            "{} on {} {}",
            card.model_id(),
            dataset.manifest.name,
            args.split
        ),
    )?;
    let report = serde_json::json!({
        "model": card.model_id(),
        "dataset": dataset.manifest.name,
        "split": args.split,
        "test_windows": evaluation.targets.len(),
        "missing_modalities": args.drop,
        "accuracy": metrics.accuracy,
        "macro_f1": metrics.macro_f1,
        "per_class": metrics.per_class,
        "confusion": metrics.confusion,
        "parameters": card.parameters,
        "flops_per_window": card.flops_per_window,
        "fusion_stage": card.config.fusion_stage(),
        "seconds": evaluation.seconds,
        "confusion_png": png,
    });
    if args.drop.is_empty() {
        std::fs::write(
            args.model.join("eval.json"),
            serde_json::to_string_pretty(&report)? + "\n",
        )?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} on {} test ({} windows{})",
        card.model_id(),
        dataset.manifest.name,
        evaluation.targets.len(),
        if args.drop.is_empty() {
            String::new()
        } else {
            format!(", without {}", args.drop.join(","))
        }
    );
    println!(
        "accuracy {:.4}   macro-F1 {:.4}   parameters {}   FLOPs/window {}",
        metrics.accuracy, metrics.macro_f1, card.parameters, card.flops_per_window
    );
    println!(
        "  {:<22} {:>9} {:>9} {:>9} {:>8}",
        "class", "precision", "recall", "F1", "support"
    );
    for c in &metrics.per_class {
        println!(
            "  {:<22} {:>9.4} {:>9.4} {:>9.4} {:>8}",
            c.name, c.precision, c.recall, c.f1, c.support
        );
    }
    println!("confusion matrix: {}", png.display());
    Ok(())
}

/// Writes one CSV row per test window: where it is, its true and predicted class, and the
/// class probabilities.
fn write_predictions(
    path: &Path,
    windows: &har_core::preprocess::WindowSet,
    classes: &ClassMap,
    targets: &[u32],
    probabilities: &[Vec<f32>],
) -> Result<()> {
    use std::io::Write;
    let names = classes.names();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    write!(out, "recording,subject,start_ns,true_class,predicted_class")?;
    for name in &names {
        write!(out, ",p_{name}")?;
    }
    writeln!(out)?;
    let predicted = train::argmax(probabilities);
    for (i, p) in probabilities.iter().enumerate() {
        write!(
            out,
            "{},{},{},{},{}",
            windows.recordings[i],
            windows.subjects[i],
            windows.start_ns[i],
            names[targets[i] as usize],
            names[predicted[i] as usize]
        )?;
        for v in p {
            write!(out, ",{v:.6}")?;
        }
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}
