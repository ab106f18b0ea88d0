//! `har sql`: SQL (DataFusion) over the log tables the dataflow's log node writes.
//!
//! Tables, each registered over every run's sealed files under the log folder:
//! `predictions` (`<dir>/predictions/run_id=*/part-*.parquet`), `windows`, `node_health`,
//! `segments` and `scenes`;
//! their columns are those of `schemas/log_*.json`. Files still being written end in
//! `.inprogress` and are never read.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use arrow::array::RecordBatch;
use clap::{Args, ValueEnum};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use har_core::schema::SchemaName;

/// The log tables; each is registered under its folder's name.
const TABLES: [SchemaName; 5] = [
    SchemaName::LogPredictions,
    SchemaName::LogWindows,
    SchemaName::LogNodeHealth,
    SchemaName::LogSegments,
    SchemaName::LogScenes,
];

fn table_names() -> Vec<&'static str> {
    TABLES.iter().filter_map(|t| t.log_folder()).collect()
}

/// Output format of the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of row objects.
    Json,
}

/// `har sql` arguments.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query, e.g. "SELECT predicted_name, count(*) FROM predictions GROUP BY 1".
    pub query: String,
    /// Log folder (the log node's HAR_LOG_DIR).
    #[arg(long, default_value = "logs")]
    pub log_dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Runs the query and prints the result.
pub fn sql_command(args: &SqlArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the query runtime")?;
    let batches = runtime.block_on(query(&args.log_dir, &args.query))?;
    let mut out = std::io::stdout().lock();
    write_batches(&batches, args.format, &mut out)
}

/// Registers the log tables found under `log_dir` and runs `sql`.
pub async fn query(log_dir: &Path, sql: &str) -> Result<Vec<RecordBatch>> {
    let mut config = SessionConfig::new();
    config
        .options_mut()
        .execution
        .listing_table_ignore_subdirectory = false;
    let ctx = SessionContext::new_with_config(config);
    let mut registered = Vec::new();
    for table in table_names() {
        let folder = log_dir.join(table);
        if !has_parquet(&folder) {
            continue;
        }
        let url = format!("{}/", folder.canonicalize()?.display());
        ctx.register_parquet(table, &url, ParquetReadOptions::default())
            .await
            .with_context(|| format!("registering {}", folder.display()))?;
        registered.push(table);
    }
    if registered.is_empty() {
        bail!(
            "no log tables under {} (expected {:?} folders with .parquet files; run the dataflow first)",
            log_dir.display(),
            table_names()
        );
    }
    let frame = ctx
        .sql(sql)
        .await
        .with_context(|| format!("query over the tables {registered:?}"))?;
    Ok(frame.collect().await?)
}

/// True when a folder holds at least one sealed Parquet file (at any depth).
fn has_parquet(folder: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        path.extension().is_some_and(|x| x == "parquet") || (path.is_dir() && has_parquet(&path))
    })
}

/// Writes batches as a table, CSV or JSON.
pub fn write_batches(
    batches: &[RecordBatch],
    format: Format,
    out: &mut impl std::io::Write,
) -> Result<()> {
    match format {
        Format::Table => writeln!(
            out,
            "{}",
            arrow::util::pretty::pretty_format_batches(batches)?
        )?,
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for batch in batches {
                writer.write(batch)?;
            }
        }
        Format::Json => {
            let mut writer = arrow::json::ArrayWriter::new(out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            writer.write_batches(&refs)?;
            writer.finish()?;
            writeln!(writer.into_inner())?;
        }
    }
    Ok(())
}
