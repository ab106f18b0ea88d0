//! `har scene`: several people at once (issue 20) — generate semi-synthetic scenes from a
//! real dataset, train the scene model (cross-subject context and the label-set decoder) on
//! a window classifier's features, and score it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use har_core::scenes::{generate, SceneManifest, SceneRole, SceneSettings};
use har_model::pipeline::open_dataset;
use har_model::scenes::data::moments;
use har_model::scenes::train::{
    evaluate, fit, load, runtime_model, save, SceneCard, SceneTraining,
};
use har_model::scenes::SceneConfig;

/// `har scene` steps.
#[derive(Debug, Subcommand)]
pub enum SceneCommand {
    /// Generate scenes from a dataset's real recordings (semi-synthetic: signals untouched,
    /// the composition scripted) as a new dataset with scenes.json.
    Generate(GenerateArgs),
    /// Train the scene model on the training scenes (epoch chosen on the validation scenes).
    Train(TrainArgs),
    /// Score a scene model on the test (or validation) scenes.
    Eval(EvalArgs),
}

/// Arguments of `har scene generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Source dataset (HAPT's activity ids).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Output dataset folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of every draw.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Scenes for training, validation and test.
    #[arg(long, value_delimiter = ',', default_values_t = [120, 30, 40])]
    pub scenes: Vec<usize>,
    /// Steps (of 10.24 s) per scene.
    #[arg(long, default_value_t = 12)]
    pub steps: usize,
}

/// Arguments of `har scene train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The generated scenes (`har scene generate`).
    #[arg(long)]
    pub scenes: PathBuf,
    /// The window classifier whose fused features the scene model reads.
    #[arg(long)]
    pub classifier: PathBuf,
    /// Output directory (scene.json, scene.safetensors, report.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Leave the cross-subject context out (ablation).
    #[arg(long)]
    pub no_context: bool,
    /// Width of every layer.
    #[arg(long, default_value_t = 32)]
    pub dim: usize,
    /// Passes over the training moments.
    #[arg(long, default_value_t = 15)]
    pub epochs: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Leave this modality out of every window (a dead sensor), in training and evaluation.
    #[arg(long)]
    pub drop_modality: Option<String>,
}

/// Arguments of `har scene eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The generated scenes.
    #[arg(long)]
    pub scenes: PathBuf,
    /// The window classifier the scene model was trained on.
    #[arg(long)]
    pub classifier: PathBuf,
    /// The scene model directory (`har scene train`).
    #[arg(long)]
    pub model: PathBuf,
    /// `test` or `validation` scenes.
    #[arg(long, default_value = "test", value_parser = ["test", "validation"])]
    pub split: String,
    /// Beam widths to decode with (1 = greedy).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 4, 8])]
    pub beam: Vec<usize>,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs a `har scene` step.
pub fn run(command: SceneCommand) -> Result<()> {
    match command {
        SceneCommand::Generate(args) => generate_command(&args),
        SceneCommand::Train(args) => train_command(&args),
        SceneCommand::Eval(args) => eval_command(&args),
    }
}

fn generate_command(args: &GenerateArgs) -> Result<()> {
    let dataset = open_dataset(&args.dataset)?;
    let [train, validation, test] = args.scenes[..] else {
        anyhow::bail!("--scenes takes three counts: train,validation,test");
    };
    let settings = SceneSettings {
        seed: args.seed,
        scenes: [train, validation, test],
        steps: args.steps,
        ..SceneSettings::default()
    };
    let manifest = generate(&dataset, &args.out, &settings)
        .with_context(|| format!("generating scenes into {}", args.out.display()))?;
    let members: usize = manifest.scenes.iter().map(|s| s.members.len()).sum();
    println!(
        "wrote {}: {} scenes ({} member recordings; train / validation / test subjects {:?} / {:?} / {:?})",
        args.out.display(),
        manifest.scenes.len(),
        members,
        manifest.subjects.get("train").map(Vec::len),
        manifest.subjects.get("validation").map(Vec::len),
        manifest.subjects.get("test").map(Vec::len),
    );
    Ok(())
}

fn train_command(args: &TrainArgs) -> Result<()> {
    let manifest = SceneManifest::load(&args.scenes)?;
    let mut classifier = har_runtime::model_dir::load(&args.classifier)
        .with_context(|| format!("loading {}", args.classifier.display()))?;
    let dropped = args.drop_modality.as_deref();
    let train = moments(
        &args.scenes,
        &manifest,
        &mut classifier,
        SceneRole::Train,
        dropped,
    )?;
    let validation = moments(
        &args.scenes,
        &manifest,
        &mut classifier,
        SceneRole::Validation,
        dropped,
    )?;
    let labels = manifest.label_space();
    let config = SceneConfig {
        input_dim: train[0].features.len() / train[0].activities.len(),
        dim: args.dim,
        heads: 2,
        activities: classifier.card.classes.len(),
        labels: labels.len(),
        context: !args.no_context,
        max_labels: manifest.settings.members_max + 1,
    };
    let training = SceneTraining {
        epochs: args.epochs,
        batch_size: 32,
        learning_rate: 2e-3,
        seed: args.seed,
    };
    tracing::info!(
        train = train.len(),
        validation = validation.len(),
        "scene moments"
    );
    let started = std::time::Instant::now();
    let (varmap, history) = fit(&config, &train, &validation, &training)?;
    let seconds = started.elapsed().as_secs_f64();
    // The baseline's threshold, chosen on the validation scenes by example-F1.
    let thresholds = [0.3f32, 0.4, 0.5, 0.6, 0.7];
    let model = runtime_model(&varmap, &config)?;
    let report = evaluate(&model, &validation, &[1], &thresholds)?;
    let (threshold, _) = thresholds
        .iter()
        .zip(&report.sets[1..])
        .max_by(|a, b| a.1.example_f1.total_cmp(&b.1.example_f1))
        .map(|(t, s)| (*t, s.example_f1))
        .unwrap_or((0.5, 0.0));
    let card = SceneCard {
        config,
        activities: classifier.card.classes.clone(),
        labels,
        classifier: classifier.card.model_id(),
        dropped_modality: args.drop_modality.clone(),
        threshold,
        provenance: serde_json::json!({
            "scenes": args.scenes, "training": training, "history": history,
            "seconds": seconds, "train_moments": train.len(),
            "validation_moments": validation.len(),
        }),
    };
    save(&args.out, &card, &varmap)?;
    println!(
        "trained in {seconds:.0} s; validation: member accuracy {:.2} % (classifier alone {:.2} %), greedy example-F1 {:.2}; baseline threshold {threshold}",
        report.member_accuracy, report.classifier_accuracy, report.sets[0].example_f1
    );
    Ok(())
}

fn eval_command(args: &EvalArgs) -> Result<()> {
    let manifest = SceneManifest::load(&args.scenes)?;
    let mut classifier = har_runtime::model_dir::load(&args.classifier)
        .with_context(|| format!("loading {}", args.classifier.display()))?;
    let (card, model) = load(&args.model)?;
    if card.classifier != classifier.card.model_id() {
        anyhow::bail!(
            "{} was trained on the features of {}, not {}",
            args.model.display(),
            card.classifier,
            classifier.card.model_id()
        );
    }
    let role = if args.split == "validation" {
        SceneRole::Validation
    } else {
        SceneRole::Test
    };
    let moments = moments(
        &args.scenes,
        &manifest,
        &mut classifier,
        role,
        card.dropped_modality.as_deref(),
    )?;
    let report = evaluate(&model, &moments, &args.beam, &[card.threshold])?;
    println!(
        "{} {} moments, {} member windows: member accuracy {:.2} % (the classifier alone {:.2} %)",
        report.moments,
        args.split,
        report.members,
        report.member_accuracy,
        report.classifier_accuracy
    );
    for s in &report.sets {
        println!(
            "  {:<22} example-F1 {:6.2}  subset accuracy {:6.2}  mAP {:6.2}",
            s.method, s.example_f1, s.subset_accuracy, s.map
        );
    }
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
