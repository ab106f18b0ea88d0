//! `har fuzz`: the file parsers under the mutation fuzzer for longer than CI runs them
//! (`har_core::fuzz`); crashing inputs are saved where `tests/fuzz.rs` replays them.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use har_core::fuzz::{self, FuzzReport, Target};
use har_core::hash::sha256_hex;

/// Arguments of `har fuzz`.
#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// Parser to fuzz: recording, ts, mat, bvh, hapt-csv, or all.
    #[arg(long, default_value = "all")]
    target: String,
    /// Mutated inputs per target.
    #[arg(long, default_value_t = 100_000)]
    iterations: u64,
    /// Random seed of the mutations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder where crashing inputs are saved, one sub-folder per target.
    #[arg(long, default_value = "tests/fuzz-regressions")]
    save: PathBuf,
}

/// Runs the fuzzer; fails when any input crashed a parser.
pub fn fuzz_command(args: &FuzzArgs) -> Result<()> {
    let targets: Vec<Target> = if args.target == "all" {
        Target::ALL.to_vec()
    } else {
        vec![Target::from_name(&args.target)
            .with_context(|| format!("--target {}: no such parser", args.target))?]
    };
    let mut crashed = 0;
    for target in targets {
        let scratch = tempfile::tempdir()?;
        let progress = indicatif::ProgressBar::new(args.iterations);
        progress.set_message(target.name());
        let mut report = FuzzReport::default();
        let chunk = 1000.min(args.iterations.max(1));
        let mut done = 0;
        while done < args.iterations {
            let n = chunk.min(args.iterations - done);
            let part = fuzz::run(target, n, args.seed.wrapping_add(done), scratch.path())?;
            report.executions += part.executions;
            report.rejected += part.rejected;
            report.crashes.extend(part.crashes);
            done += n;
            progress.set_position(done);
        }
        progress.finish_and_clear();
        println!(
            "{}: {} inputs, {} rejected with an error, {} crashed",
            target.name(),
            report.executions,
            report.rejected,
            report.crashes.len()
        );
        let dir = args.save.join(target.name());
        for (input, message) in &report.crashes {
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!("crash-{}", &sha256_hex(input)[..16]));
            std::fs::write(&path, input)?;
            println!("  {message}: saved {}", path.display());
        }
        crashed += report.crashes.len();
    }
    if crashed > 0 {
        bail!("{crashed} inputs crashed a parser");
    }
    Ok(())
}
