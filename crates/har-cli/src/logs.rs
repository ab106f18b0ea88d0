//! `har logs`: the log tables' upkeep — compaction of finished runs into large sorted files
//! (`har_dataflow::compact`), and synthetic tables at scale to measure queries
//! (`har_dataflow::synth_logs`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use har_core::schema::SchemaName;
use har_dataflow::compact::{compact, CompactSettings};
use har_dataflow::synth_logs::{synthesise, SynthSettings};

/// `har logs` steps.
#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Rewrite every finished run's small files as large files sorted by time, per run and
    /// UTC day (`run_id=<run>/day=<YYYY-MM-DD>/compact-N.parquet`), atomically.
    Compact(CompactArgs),
    /// Write SYNTHETIC prediction and health tables at scale (to measure queries; never
    /// evidence about people).
    Synth(SynthArgs),
}

/// Arguments of `har logs compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Log folder (the log node's HAR_LOG_DIR).
    #[arg(long, default_value = "logs")]
    pub log_dir: PathBuf,
    /// Rows per compacted file at most (memory holds one such chunk).
    #[arg(long, default_value_t = 1 << 20)]
    pub file_rows: usize,
    /// A run with a file sealed less than this many seconds ago is still being written.
    #[arg(long, default_value_t = 60.0)]
    pub min_age_s: f64,
}

/// Arguments of `har logs synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Log folder to write into.
    #[arg(long)]
    pub log_dir: PathBuf,
    /// Prediction rows in all.
    #[arg(long, default_value_t = 10_000_000)]
    pub rows: u64,
    /// Files per run (as a run's 2-second flushes leave them).
    #[arg(long, default_value_t = 5_000)]
    pub files: u64,
    /// Runs.
    #[arg(long, default_value_t = 1)]
    pub runs: u64,
    /// Devices per run.
    #[arg(long, default_value_t = 32)]
    pub devices: u64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs a `har logs` step.
pub fn run(command: LogsCommand) -> Result<()> {
    match command {
        LogsCommand::Compact(args) => {
            if !(0.0..=1e9).contains(&args.min_age_s) {
                anyhow::bail!("--min-age-s {} is outside 0–1e9", args.min_age_s);
            }
            let started = Instant::now();
            let report = compact(
                &args.log_dir,
                &SchemaName::ALL,
                &CompactSettings {
                    file_rows: args.file_rows,
                    min_age: Duration::from_secs_f64(args.min_age_s),
                },
            )
            .with_context(|| format!("compacting {}", args.log_dir.display()))?;
            println!(
                "compacted {} run tables in {:.1} s: {} files -> {}, {} rows, {:.1} MB -> {:.1} MB; {} already compact; {} still being written{}",
                report.compacted,
                started.elapsed().as_secs_f64(),
                report.files.0,
                report.files.1,
                report.rows,
                report.bytes.0 as f64 / 1e6,
                report.bytes.1 as f64 / 1e6,
                report.already,
                report.live.len(),
                if report.live.is_empty() { String::new() } else { format!(" ({})", report.live.join(", ")) }
            );
            Ok(())
        }
        LogsCommand::Synth(args) => {
            let started = Instant::now();
            let (predictions, health) = synthesise(
                &args.log_dir,
                &SynthSettings {
                    rows: args.rows,
                    files_per_run: args.files,
                    runs: args.runs,
                    devices: args.devices,
                    seed: args.seed,
                    start_ns: 1_764_460_800_000_000_000,
                },
            )
            .with_context(|| format!("writing {}", args.log_dir.display()))?;
            println!(
                "wrote SYNTHETIC logs under {}: {predictions} prediction rows, {health} health rows in {:.1} s",
                args.log_dir.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}
