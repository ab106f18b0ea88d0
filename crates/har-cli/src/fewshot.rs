//! `har enroll` and `har fewshot`: new activity classes from a few examples (seeds S7, S8;
//! `har_model::fewshot`). `fewshot fit` learns the transfer on the base classes once per
//! model; `enroll` adds a class with no retraining (a running fuse node picks it up);
//! `fewshot eval` runs N-way K-shot episodes on held-out subjects.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use har_model::data::ModelPart;
use har_model::fewshot::{
    enroll_model, evaluate_model, fit_model, EpisodeReport, EpisodeSettings, Examples, FitSettings,
};
use har_model::pipeline::open_dataset;
use har_runtime::fewshot::Method;

/// `har fewshot` steps.
#[derive(Debug, Subcommand)]
pub enum FewShotCommand {
    /// Fit the transfer (imprint map, S7 temperature, S8 graph attention and gate) on the
    /// model's base classes; writes fewshot.json into the model directory.
    Fit(FitArgs),
    /// N-way K-shot episodes on a dataset's test subjects, every method compared.
    Eval(EvalArgs),
}

/// Arguments of `har fewshot fit`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// Model directory (needs activity_graph.json).
    #[arg(long)]
    pub model: PathBuf,
    /// The dataset the model was trained on (its training windows are read).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Adam steps of the graph transfer.
    #[arg(long, default_value_t = FitSettings::default().steps)]
    pub steps: usize,
    /// Share of the stored base exemplars one enrolled class may take (the bias guard;
    /// 1 turns it off).
    #[arg(long, default_value_t = FitSettings::default().claim_budget)]
    pub claim_budget: f32,
    /// Seed of the episodes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Arguments of `har fewshot eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model directory (fitted with `har fewshot fit`).
    #[arg(long)]
    pub model: PathBuf,
    /// Dataset (its test split is read).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Novel classes: dataset label ids, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub novel: Vec<i32>,
    /// N: novel classes per episode.
    #[arg(long, default_value_t = 5)]
    pub ways: usize,
    /// K values, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,5")]
    pub shots: Vec<usize>,
    /// Q: queries per class at most.
    #[arg(long, default_value_t = 15)]
    pub queries: usize,
    /// Episodes per K.
    #[arg(long, default_value_t = 600)]
    pub episodes: usize,
    /// Test subjects giving the support in each episode (the others give the queries).
    #[arg(long, default_value_t = 4)]
    pub support_subjects: usize,
    /// Window stride of the evaluation windows [default: the card's].
    #[arg(long)]
    pub stride: Option<usize>,
    /// Episodes on `test` (the test split) or on `validation`: the model's held-out
    /// training subjects, where choices are made.
    #[arg(long, default_value = "test", value_parser = ["test", "validation"])]
    pub split: String,
    /// Split support from queries by recording, not by subject (datasets without subjects;
    /// --support-subjects then counts recordings).
    #[arg(long)]
    pub by_recording: bool,
    /// Seed of the episodes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Arguments of `har enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// Model directory (fitted with `har fewshot fit`); enrolled.json is written there.
    #[arg(long)]
    pub model: PathBuf,
    /// Name of the new class (the graph methods need it in activity_graph.json).
    #[arg(long)]
    pub name: String,
    /// Label id of the new class [default: the examples' label, or one above every id taken].
    #[arg(long)]
    pub id: Option<i32>,
    /// How the class's weights are made: mean, query-aware (S7), graph (S8),
    /// query-aware-graph (S7 + S8). The default is the best of the four on HAPT's validation
    /// episodes (level with the mean there; docs/results.md).
    #[arg(long, default_value = "query-aware", value_parser = parse_method)]
    pub method: Method,
    /// Dataset holding the examples (imported with `har data import`).
    #[arg(long)]
    pub examples: PathBuf,
    /// Label id of the examples in that dataset.
    #[arg(long)]
    pub label: i32,
    /// Only windows of these subjects, comma-separated [default: all].
    #[arg(long, value_delimiter = ',')]
    pub subjects: Vec<String>,
    /// K: example windows drawn.
    #[arg(long, default_value_t = 5)]
    pub shots: usize,
    /// Window stride for cutting the examples [default: the card's].
    #[arg(long)]
    pub stride: Option<usize>,
    /// Seed of the draw.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

fn parse_method(text: &str) -> std::result::Result<Method, String> {
    Method::parse(text).ok_or_else(|| {
        let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
        format!("`{text}` is not one of {names:?}")
    })
}

/// Runs a `har fewshot` step.
pub fn run(command: FewShotCommand) -> Result<()> {
    match command {
        FewShotCommand::Fit(args) => fit_command(&args),
        FewShotCommand::Eval(args) => eval_command(&args),
    }
}

fn fit_command(args: &FitArgs) -> Result<()> {
    let dataset = open_dataset(&args.dataset)?;
    let settings = FitSettings {
        steps: args.steps,
        seed: args.seed,
        claim_budget: args.claim_budget,
        ..Default::default()
    };
    let t = fit_model(&args.model, &dataset, &settings)
        .with_context(|| format!("fitting few-shot transfer for {}", args.model.display()))?;
    println!(
        "{}: imprint scale {:.3}, S7 temperature {}, S8 edge weight {:.3}, similarity weight \
         {:.3}, mean gate {:.3} (share of the prototype's row kept)",
        t.model_id,
        t.imprint.scale,
        t.query_temperature,
        t.graph.edge_weight,
        t.graph.similarity_weight,
        t.graph.keep.iter().sum::<f32>() / t.graph.keep.len().max(1) as f32
    );
    Ok(())
}

fn eval_command(args: &EvalArgs) -> Result<()> {
    let dataset = open_dataset(&args.dataset)?;
    let mut reports = Vec::new();
    for &shots in &args.shots {
        let settings = EpisodeSettings {
            ways: args.ways,
            shots,
            queries: args.queries,
            episodes: args.episodes,
            support_subjects: args.support_subjects,
            seed: args.seed,
        };
        let report = evaluate_model(
            &args.model,
            &dataset,
            &args.novel,
            args.stride,
            args.by_recording,
            if args.split == "validation" {
                ModelPart::Validation
            } else {
                ModelPart::Test
            },
            &settings,
        )
        .with_context(|| format!("few-shot episodes on {}", args.dataset.display()))?;
        print_report(&report);
        reports.push(report);
    }
    if let Some(out) = &args.out {
        let text = serde_json::to_string_pretty(&reports)?;
        std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

fn print_report(r: &EpisodeReport) {
    let s = &r.settings;
    println!(
        "\n{}-way {}-shot, {} episodes (queries ≤ {} per class; base queries alone {:.2} ± {:.2} %)",
        s.ways, s.shots, r.episodes_run, s.queries, r.base_alone.mean, r.base_alone.ci95
    );
    println!(
        "| method | novel % | generalised: novel % | generalised: base % | base drop (points) |"
    );
    println!("|---|---|---|---|---|");
    for m in &r.methods {
        println!(
            "| {} | {:.2} ± {:.2} | {:.2} ± {:.2} | {:.2} ± {:.2} | {:.2} ± {:.2} |",
            m.method,
            m.novel.mean,
            m.novel.ci95,
            m.generalised_novel.mean,
            m.generalised_novel.ci95,
            m.generalised_base.mean,
            m.generalised_base.ci95,
            m.base_drop.mean,
            m.base_drop.ci95
        );
    }
}

/// `har enroll`.
pub fn enroll_command(args: &EnrollArgs) -> Result<()> {
    let examples = Examples {
        dataset: args.examples.clone(),
        label: args.label,
        subjects: args.subjects.clone(),
        shots: args.shots,
        seed: args.seed,
    };
    let class = enroll_model(
        &args.model,
        &args.name,
        args.id,
        args.method,
        &examples,
        args.stride,
    )
    .with_context(|| format!("enrolling `{}` into {}", args.name, args.model.display()))?;
    let path = args.model.join(har_runtime::fewshot::ENROLLED_FILE);
    println!(
        "enrolled `{}` as class {} ({}, {} examples) into {}",
        class.name,
        class.id,
        class.method.name(),
        class.support.len(),
        path.display()
    );
    Ok(())
}
