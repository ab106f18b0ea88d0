//! `har data inspect`: what a dataset folder holds, and the windows it yields per class/split.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use har_core::dataset::{Dataset, Split};
use har_core::preprocess::{dataset_windows, LabelPolicy, PreprocessConfig, WindowConfig};
use har_core::recording::ModalityKind;

/// Label policy names on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// Every sample of the window has the same label.
    Pure,
    /// The most frequent label covers at least --min-fraction of the window.
    Majority,
}

/// Arguments of `har data inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Dataset folder (holding dataset.json).
    pub dataset: PathBuf,
    /// Window length in samples of the common clock.
    #[arg(long, default_value_t = 128)]
    pub window: usize,
    /// Stride between window starts, in samples.
    #[arg(long, default_value_t = 64)]
    pub stride: usize,
    /// Label policy.
    #[arg(long, value_enum, default_value_t = PolicyArg::Pure)]
    pub policy: PolicyArg,
    /// Smallest share of the majority label (majority policy).
    #[arg(long, default_value_t = 0.5)]
    pub min_fraction: f32,
    /// Common clock rate in Hz [default: highest modality rate].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Count only windows of these class ids (comma-separated), e.g. 1,2,3,4,5,6.
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<i32>,
    /// Also list every recording.
    #[arg(long)]
    pub recordings: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `har data inspect`.
pub fn inspect(args: &InspectArgs) -> Result<()> {
    let dataset = Dataset::open(&args.dataset)?;
    let m = &dataset.manifest;
    let mut config = PreprocessConfig {
        window: WindowConfig {
            length: args.window,
            stride: args.stride,
            label_policy: match args.policy {
                PolicyArg::Pure => LabelPolicy::Pure,
                PolicyArg::Majority => LabelPolicy::Majority {
                    min_fraction: args.min_fraction,
                },
            },
        },
        ..Default::default()
    };
    config.align.rate_hz = args.rate;
    if let Some(unknown) = args
        .classes
        .iter()
        .find(|c| !m.classes.iter().any(|k| k.id == **c))
    {
        bail!(
            "--classes: class id {unknown} is not in {}",
            args.dataset.display()
        );
    }

    let mut per_split = BTreeMap::new();
    for split in [Split::Train, Split::Test] {
        let (mut windows, report) = dataset_windows(&dataset, split, &config)?;
        if !args.classes.is_empty() {
            let labels = windows.labels.clone();
            windows.retain(|i| args.classes.contains(&labels[i]));
        }
        per_split.insert(split, (windows, report));
    }

    if args.json {
        let splits: BTreeMap<String, serde_json::Value> = per_split
            .iter()
            .map(|(split, (windows, report))| {
                let counts: BTreeMap<String, usize> = windows
                    .class_counts()
                    .into_iter()
                    .map(|(id, n)| (m.class_name(id), n))
                    .collect();
                (
                    split.to_string(),
                    serde_json::json!({
                        "recordings": dataset.entries(*split).count(),
                        "subjects": m.subjects(*split).len(),
                        "windows": windows.len(),
                        "windows_per_class": counts,
                        "align": report,
                    }),
                )
            })
            .collect();
        let out = serde_json::json!({
            "name": m.name, "synthetic": m.synthetic, "licence": m.licence, "source": m.source,
            "modalities": m.modalities, "preprocess": config, "splits": splits,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }

    println!(
        "dataset {} — {}{}",
        m.name,
        m.description,
        if m.synthetic { " [SYNTHETIC]" } else { "" }
    );
    println!("licence: {}", m.licence);
    if let Some(source) = &m.source {
        println!(
            "source: {} ({}, sha256 {})",
            source.origin, source.file, source.sha256
        );
    }
    println!("\nmodalities:");
    for info in &m.modalities {
        let kind = match &info.kind {
            ModalityKind::Inertial => "inertial".to_string(),
            ModalityKind::Skeleton(layout) => format!("skeleton, {} joints", layout.joints.len()),
        };
        println!(
            "  {:<10} {:<22} {:>7.1} Hz  {:>3} channels  [{}]",
            info.name,
            kind,
            info.sample_rate_hz,
            info.channels(),
            info.units
        );
    }
    if args.recordings {
        println!("\nrecordings:");
        for r in &m.recordings {
            let samples: Vec<String> = r.samples.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "  {:<16} subject {:<8} {:<5} {:>8.1} s  {}",
                r.id,
                r.subject_id,
                r.split,
                r.duration_s,
                samples.join(" ")
            );
        }
    }
    let policy = match config.window.label_policy {
        LabelPolicy::Pure => "pure".to_string(),
        LabelPolicy::Majority { min_fraction } => format!("majority ≥ {min_fraction}"),
    };
    println!(
        "\nwindows: length {} stride {} ({policy}){}",
        args.window,
        args.stride,
        if args.classes.is_empty() {
            String::new()
        } else {
            format!(", classes {:?}", args.classes)
        }
    );
    println!(
        "  {:<5} {:>10} {:>8} {:>10} {:>9}",
        "split", "recordings", "subjects", "duration", "windows"
    );
    for (split, (windows, _)) in &per_split {
        let duration = dataset.entries(*split).map(|r| r.duration_s).sum::<f64>() + 0.0;
        println!(
            "  {:<5} {:>10} {:>8} {:>9.0}s {:>9}",
            split,
            dataset.entries(*split).count(),
            m.subjects(*split).len(),
            duration,
            windows.len()
        );
    }
    println!(
        "\n  {:>4} {:<22} {:>9} {:>9}",
        "id", "class", "train", "test"
    );
    for class in &m.classes {
        let count = |s: Split| {
            per_split[&s]
                .0
                .class_counts()
                .get(&class.id)
                .copied()
                .unwrap_or(0)
        };
        let (train, test) = (count(Split::Train), count(Split::Test));
        if args.classes.is_empty() || args.classes.contains(&class.id) {
            println!(
                "  {:>4} {:<22} {:>9} {:>9}",
                class.id, class.name, train, test
            );
        }
    }
    for (split, (_, report)) in &per_split {
        println!(
            "  {split}: {} grid samples, {} NaN-filled, {} invalid (gaps / long NaN runs)",
            report.grid_samples, report.nan_filled, report.invalid
        );
    }
    Ok(())
}
