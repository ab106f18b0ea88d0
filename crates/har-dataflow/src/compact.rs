//! Compaction of the log tables (`har logs compact`): the log node seals a file every flush
//! (2 s by default) per table and run, so a long run leaves thousands of small files, and a
//! query pays per file. Compaction rewrites each finished run's files of a table as a few
//! large files sorted by time, in place:
//!
//! ```text
//! <table>/run_id=<run>/part-00000.parquet … part-04999.parquet          (as the log writes)
//! <table>/run_id=<run>/day=<YYYY-MM-DD>/compact-00000.parquet …          (after compaction)
//! ```
//!
//! Still hive-partitioned Parquet (by run, then by the UTC day of the rows' wall-clock time),
//! every file checked against its table's schema, so any engine that reads a directory of
//! Parquet reads it unchanged; `har sql` reads nested folders.
//!
//! **Atomic.** The new files are written (and synced) into a staging folder beside the run,
//! which is then swapped with the run's folder in one `renameat2(RENAME_EXCHANGE)` — a reader
//! lists either every old file or every new one, never both, never neither — and the old
//! files are deleted after. A run still being written (a `.inprogress` file, or a file sealed
//! less than `min_age` ago) is left alone, and compacted files are named `compact-N`, never
//! `part-N`, so a log writer that resumes a run cannot overwrite them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::Int64Type;
use har_core::schema::{check_batch, schema, SchemaName};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{DataflowError, Result};
use crate::logsink::{IN_PROGRESS, PART_EXTENSION};

/// How compaction runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactSettings {
    /// Rows per compacted file at most (also the row group size).
    pub file_rows: usize,
    /// A run whose newest file is younger than this is still being written: left alone.
    pub min_age: Duration,
}

impl Default for CompactSettings {
    fn default() -> Self {
        Self {
            file_rows: 1 << 20,
            min_age: Duration::from_secs(60),
        }
    }
}

/// What compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// (table, run) partitions rewritten.
    pub compacted: usize,
    /// Partitions left alone because they are still being written.
    pub live: Vec<String>,
    /// Partitions already compact.
    pub already: usize,
    /// Files before and after, over the partitions rewritten.
    pub files: (usize, usize),
    /// Rows rewritten.
    pub rows: u64,
    /// Bytes before and after.
    pub bytes: (u64, u64),
}

/// The wall-clock column each table's rows are dated and sorted by.
fn time_column(table: SchemaName) -> &'static str {
    match table {
        SchemaName::LogPredictions => "logged_ts_ns",
        SchemaName::LogNodeHealth => "ts_ns",
        SchemaName::LogSegments | SchemaName::LogScenes => "closed_ts_ns",
        _ => "logged_ts_ns",
    }
}

/// Every sealed Parquet file under `dir` (any depth), and whether any file is in progress.
fn files_under(dir: &Path, files: &mut Vec<PathBuf>, in_progress: &mut bool) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| DataflowError::io(dir, e))? {
        let path = entry.map_err(|e| DataflowError::io(dir, e))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if path.is_dir() {
            files_under(&path, files, in_progress)?;
        } else if name.ends_with(IN_PROGRESS) {
            *in_progress = true;
        } else if path.extension().is_some_and(|x| x == PART_EXTENSION) {
            files.push(path);
        }
    }
    Ok(())
}

/// Compacts every finished run of every log table under `log_dir`.
pub fn compact(
    log_dir: &Path,
    tables: &[SchemaName],
    settings: &CompactSettings,
) -> Result<CompactReport> {
    let mut report = CompactReport::default();
    for &table in tables {
        let Some(folder) = table.log_folder() else {
            continue;
        };
        let table_dir = log_dir.join(folder);
        let Ok(entries) = std::fs::read_dir(&table_dir) else {
            continue;
        };
        let mut runs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("run_id="))
            })
            .collect();
        runs.sort();
        for run in runs {
            compact_run(table, &run, settings, &mut report)?;
        }
    }
    Ok(report)
}

fn compact_run(
    table: SchemaName,
    run: &Path,
    settings: &CompactSettings,
    report: &mut CompactReport,
) -> Result<()> {
    let (mut files, mut in_progress) = (Vec::new(), false);
    files_under(run, &mut files, &mut in_progress)?;
    // Sealing order: `part-9` before `part-10`.
    files.sort_by_key(|f| (f.as_os_str().len(), f.clone()));
    let newest = files
        .iter()
        .filter_map(|f| f.metadata().ok()?.modified().ok())
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let young = newest.elapsed().map_or(true, |age| age < settings.min_age);
    if in_progress || young {
        report.live.push(run.display().to_string());
        return Ok(());
    }
    let compacted_already = files.iter().all(|f| {
        f.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("compact-"))
    });
    if files.is_empty() || compacted_already {
        report.already += 1;
        return Ok(());
    }
    // Staging folder beside the run: day folders of compacted files.
    let name = run
        .file_name()
        .expect("run folder")
        .to_string_lossy()
        .to_string();
    let staging = run.with_file_name(format!(".{name}.compacting-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| DataflowError::io(&staging, e))?;
    }
    // The files in sealing order (the log writes them in time order), checked, gathered into
    // chunks of `file_rows`; each chunk sorted by time and written per day: memory stays
    // bounded by one chunk however long the run.
    let mut out = ChunkWriter {
        table,
        staging: staging.clone(),
        file_rows: settings.file_rows.max(1),
        buffer: Vec::new(),
        buffered: 0,
        written: 0,
        bytes: 0,
        rows: 0,
    };
    let mut bytes_before = 0;
    for f in &files {
        bytes_before += f.metadata().map_err(|e| DataflowError::io(f, e))?.len();
        let (read, _) = har_core::recording::read_parquet(f)?;
        for batch in read {
            check_batch(table, &batch)
                .map_err(|e| DataflowError::io(f, std::io::Error::other(e.to_string())))?;
            out.push(batch)?;
        }
    }
    out.flush()?;
    sync_dir(&staging)?;
    exchange(&staging, run)?;
    // `staging` now holds the old files.
    std::fs::remove_dir_all(&staging).map_err(|e| DataflowError::io(&staging, e))?;
    report.compacted += 1;
    report.files.0 += files.len();
    report.files.1 += out.written;
    report.rows += out.rows;
    report.bytes.0 += bytes_before;
    report.bytes.1 += out.bytes;
    Ok(())
}

/// Gathers rows into chunks and writes each chunk sorted by time, one file per day.
struct ChunkWriter {
    table: SchemaName,
    staging: PathBuf,
    file_rows: usize,
    buffer: Vec<RecordBatch>,
    buffered: usize,
    written: usize,
    bytes: u64,
    rows: u64,
}

impl ChunkWriter {
    fn push(&mut self, batch: RecordBatch) -> Result<()> {
        self.buffered += batch.num_rows();
        self.buffer.push(batch);
        if self.buffered >= self.file_rows {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let all = concat_batches(&schema(self.table)?, &self.buffer)?;
        self.buffer.clear();
        self.buffered = 0;
        let column = time_column(self.table);
        let time = all
            .column_by_name(column)
            .ok_or_else(|| {
                DataflowError::io(
                    &self.staging,
                    std::io::Error::other(format!("no `{column}` column")),
                )
            })?
            .clone();
        let order = lexsort_to_indices(
            &[SortColumn {
                values: time,
                options: None,
            }],
            None,
        )?;
        let sorted = take_record_batch(&all, &order)?;
        let times = sorted
            .column_by_name(column)
            .expect("sorting keeps the columns")
            .as_primitive::<Int64Type>()
            .clone();
        let mut start = 0usize;
        while start < sorted.num_rows() {
            let day = day_of(times.value(start));
            let mut end = start + 1;
            while end < sorted.num_rows() && day_of(times.value(end)) == day {
                end += 1;
            }
            let dir = self.staging.join(format!("day={day}"));
            std::fs::create_dir_all(&dir).map_err(|e| DataflowError::io(&dir, e))?;
            let path = dir.join(format!("compact-{:05}.{PART_EXTENSION}", self.written));
            let slice = sorted.slice(start, end - start);
            self.bytes += write_file(&path, self.table, &slice, self.file_rows)?;
            self.written += 1;
            self.rows += slice.num_rows() as u64;
            start = end;
        }
        Ok(())
    }
}

/// The UTC day `YYYY-MM-DD` of a wall-clock time in ns since the epoch (days before 1970
/// and after 9999 clamp to the range's ends).
pub fn day_of(ts_ns: i64) -> String {
    let days = ts_ns.div_euclid(86_400_000_000_000).clamp(0, 2_932_896);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Writes `batch` to `path` (zstd, row groups of `group_rows`), synced; returns its size.
fn write_file(
    path: &Path,
    table: SchemaName,
    batch: &RecordBatch,
    group_rows: usize,
) -> Result<u64> {
    let file = std::fs::File::create(path).map_err(|e| DataflowError::io(path, e))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(group_rows.max(1)))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema(table)?, Some(properties))?;
    writer.write(batch)?;
    let file = writer.into_inner()?;
    file.sync_all().map_err(|e| DataflowError::io(path, e))?;
    Ok(file
        .metadata()
        .map_err(|e| DataflowError::io(path, e))?
        .len())
}

fn sync_dir(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| DataflowError::io(dir, e))? {
        let path = entry.map_err(|e| DataflowError::io(dir, e))?.path();
        if path.is_dir() {
            sync_dir(&path)?;
        }
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| DataflowError::io(dir, e))
}

/// Swaps two folders atomically (`renameat2` with `RENAME_EXCHANGE`, Linux 3.15+).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|e| DataflowError::io(p, std::io::Error::other(e)))
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call; AT_FDCWD
    // makes them relative to the working directory as `std::fs` does.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc != 0 {
        return Err(DataflowError::io(b, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Elsewhere no atomic exchange exists: refuse rather than leave a window in which a reader
/// sees the run twice or not at all.
#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, b: &Path) -> Result<()> {
    Err(DataflowError::io(
        b,
        std::io::Error::other("compaction needs renameat2(RENAME_EXCHANGE) (Linux)"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(86_400_000_000_000 - 1), "1970-01-01");
        assert_eq!(day_of(1_764_460_800_000_000_000), "2025-11-30");
        assert_eq!(day_of(951_782_400_000_000_000), "2000-02-29");
        assert_eq!(day_of(-5), "1970-01-01", "clamped");
        assert_eq!(day_of(i64::MAX), "2262-04-11");
    }
}
