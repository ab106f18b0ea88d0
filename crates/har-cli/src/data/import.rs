//! `har data import`: raw files into a dataset folder in the recording format.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use har_core::dataset::SourceInfo;
use har_core::import::{basic_motions, bvh, hapt, synthetic, table, utd_mhad};
use indicatif::{ProgressBar, ProgressStyle};

use super::ImportKind;

/// Where Debian's `assimp-testmodels` installs its CMU BVH files.
pub const DEBIAN_BVH_DIR: &str = "/usr/share/assimp/models/BVH";

/// Reads the `source.json` that `har data fetch` left beside the raw files, if any.
fn read_source(src: &Path) -> Result<Option<SourceInfo>> {
    let path = src.join("source.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)?;
    Ok(Some(
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
    ))
}

/// A progress bar over `total` items.
pub fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Imports `dataset` from `src` into `out`.
pub fn import(dataset: ImportKind, src: &Path, out: &Path) -> Result<()> {
    let source = read_source(src)?;
    let imported = match dataset {
        ImportKind::Hapt => {
            let bar = progress_bar(0, "importing HAPT");
            let csv = src.join("csv");
            let dataset = hapt::import(&csv, out, source, &|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish();
            dataset
        }
        ImportKind::BasicMotions => basic_motions::import(
            &src.join("BasicMotions_TRAIN.ts"),
            &src.join("BasicMotions_TEST.ts"),
            out,
            source,
        )?,
        ImportKind::UtdMhad => {
            let (dataset, report) = utd_mhad::import(src, out)?;
            if !report.unpaired.is_empty() {
                println!(
                    "skipped {} files without their inertial/skeleton partner:",
                    report.unpaired.len()
                );
                for path in &report.unpaired {
                    println!("  {}", path.display());
                }
            }
            dataset
        }
        ImportKind::Bvh => {
            if !src.exists() {
                bail!(
                    "{} does not exist; install Debian's assimp-testmodels or pass --src",
                    src.display()
                );
            }
            let (dataset, skipped) = bvh::import(src, out)?;
            for path in &skipped {
                println!(
                    "skipped {} (other skeleton than the first file)",
                    path.display()
                );
            }
            dataset
        }
        ImportKind::Synthetic => synthetic::generate(&synthetic::SyntheticConfig::default(), out)?,
        ImportKind::SyntheticBenchmark => {
            synthetic::generate(&synthetic::SyntheticConfig::benchmark(), out)?
        }
        ImportKind::Table => bail!("a table import needs its mapping file: use import_table"),
    };
    println!(
        "imported {} recordings of `{}` into {}",
        imported.manifest.recordings.len(),
        imported.manifest.name,
        out.display()
    );
    Ok(())
}

/// `har data import table`: the tables `mapping` selects (under `src`, default the mapping's
/// folder) into a dataset at `out` (default `DATA_DIR/<dataset.name>`); prints the report.
pub fn import_table(
    mapping_path: &Path,
    src: Option<PathBuf>,
    out: Option<PathBuf>,
    data_dir: &Path,
) -> Result<()> {
    let mapping = table::TableMapping::from_path(mapping_path)?;
    let src = src.unwrap_or_else(|| match mapping_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    });
    let out = out.unwrap_or_else(|| data_dir.join(&mapping.dataset.name));
    let bar = progress_bar(0, "reading tables");
    let (dataset, report) = table::import(&mapping, mapping_path, &src, &out, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    print!("{report}");
    println!(
        "wrote `{}` to {} (check it with `har data inspect {}`)",
        dataset.manifest.name,
        out.display(),
        out.display()
    );
    Ok(())
}
