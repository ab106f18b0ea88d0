//! `har`: the command line of the multi-modal HAR system, for everything that is not the
//! dataflow itself: datasets, training, evaluation, export and SQL over the dataflow's logs.

mod compress;
mod data;
mod export;
mod fewshot;
mod fuzz;
mod logs;
mod model;
mod plot;
mod scene;
mod segment;
mod sql;
mod timeline;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Multi-modal human activity recognition: datasets, models and logs.
#[derive(Debug, Parser)]
#[command(name = "har", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch, import and inspect datasets.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
    /// Train a DMFT teacher (or, with --student, a student from scratch).
    Train(model::TrainArgs),
    /// Distil a trained teacher into the lite student.
    Distill(model::DistillArgs),
    /// Evaluate a model directory on a dataset's test split.
    Eval(model::EvalArgs),
    /// Query the dataflow's log tables (predictions, windows, segments, node_health) in SQL.
    Sql(sql::SqlArgs),
    /// Draw pictures from the logs.
    Plot {
        #[command(subcommand)]
        command: PlotCommand,
    },
    /// Fuzz the file parsers (recording, .ts, MAT, BVH, HAPT CSV) with mutated inputs.
    Fuzz(fuzz::FuzzArgs),
    /// Shrink a trained model: structured pruning, data-free fine-tuning (seed S3).
    Compress {
        #[command(subcommand)]
        command: compress::CompressCommand,
    },
    /// Add a new activity class to a model from a few examples, no retraining (S7, S8).
    Enroll(fewshot::EnrollArgs),
    /// Few-shot enrolment: fit the transfer on the base classes, evaluate by episodes.
    Fewshot {
        #[command(subcommand)]
        command: fewshot::FewShotCommand,
    },
    /// Whole recordings to activity segments, scored with the action-segmentation metrics.
    Segment {
        #[command(subcommand)]
        command: segment::SegmentCommand,
    },
    /// The log tables' upkeep: compaction, synthetic tables at scale.
    Logs {
        #[command(subcommand)]
        command: logs::LogsCommand,
    },
    /// Several people at once: generate scenes, train and score the scene model.
    Scene {
        #[command(subcommand)]
        command: scene::SceneCommand,
    },
    /// Export a model for other runtimes.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
}

/// Formats a model can be exported to.
#[derive(Debug, Subcommand)]
enum ExportCommand {
    /// A standard ONNX file (opset 17, dynamic batch, one input per modality).
    Onnx(export::OnnxArgs),
}

/// Pictures drawn from the Parquet logs.
#[derive(Debug, Subcommand)]
enum PlotCommand {
    /// One device's predicted activity over time against the ground truth (PNG).
    Timeline(timeline::TimelineArgs),
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Data { command } => data::run(command),
        Command::Train(args) => model::train_command(&args),
        Command::Distill(args) => model::distill_command(&args),
        Command::Eval(args) => model::eval_command(&args),
        Command::Sql(args) => sql::sql_command(&args),
        Command::Fuzz(args) => fuzz::fuzz_command(&args),
        Command::Compress { command } => compress::run(command),
        Command::Enroll(args) => fewshot::enroll_command(&args),
        Command::Fewshot { command } => fewshot::run(command),
        Command::Segment { command } => segment::run(command),
        Command::Scene { command } => scene::run(command),
        Command::Logs { command } => logs::run(command),
        Command::Plot {
            command: PlotCommand::Timeline(args),
        } => timeline::timeline_command(&args),
        Command::Export {
            command: ExportCommand::Onnx(args),
        } => export::onnx_command(&args),
    }
}
