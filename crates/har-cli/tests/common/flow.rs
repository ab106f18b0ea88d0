//! A dataflow run for the end-to-end tests: the repository's `dataflow.yml` in a temporary
//! folder with prebuilt binaries, absolute paths and settings overridden, run by the dora CLI,
//! its Parquet logs read back with `har sql`.
#![allow(dead_code)] // each test binary uses part of these helpers

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// dora runs one at a time: parallel runs would compete for the two cores and timings.
pub static DORA: Mutex<()> = Mutex::new(());

pub const NODES: [&str; 7] = [
    "har-sensor-ingest",
    "har-preprocess",
    "har-encode",
    "har-fuse",
    "har-segment",
    "har-scene",
    "har-log",
];

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_har"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The repository's dataflow in a temporary folder: prebuilt binaries, absolute data and
/// model paths, logs in the folder, and `settings` (env name, value) replaced.
pub struct Flow {
    /// The temporary folder holding the yml and the logs.
    pub dir: tempfile::TempDir,
}

impl Flow {
    /// The repository's `dataflow.yml`.
    pub fn new(settings: &[(&str, &str)]) -> Self {
        Self::from_yml("dataflow.yml", settings)
    }

    /// The graph `yml` (relative to the repository; `dataflows/*.yml` name their paths from
    /// that folder, `../models/...`).
    pub fn from_yml(yml_path: &str, settings: &[(&str, &str)]) -> Self {
        for node in NODES {
            assert!(
                bin_dir().join(node).exists(),
                "{} missing: build the nodes first (`cargo build --workspace`, as scripts/test.sh does)",
                bin_dir().join(node).display()
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let repo = repo();
        let mut yml = String::new();
        for line in std::fs::read_to_string(repo.join(yml_path))
            .unwrap()
            .lines()
        {
            let trimmed = line.trim_start();
            if trimmed.starts_with("build:") {
                continue;
            }
            let indent = &line[..line.len() - trimmed.len()];
            let mut line = line
                .replace("path: ../target/debug/", "path: target/debug/")
                .replace(": ../samples/", ": samples/")
                .replace(": ../models/", ": models/")
                .replace("HAR_LOG_DIR: ../logs", "HAR_LOG_DIR: logs")
                .replace(
                    "path: target/debug/",
                    &format!("path: {}/", bin_dir().display()),
                )
                .replace(": samples/", &format!(": {}/samples/", repo.display()))
                .replace(": models/", &format!(": {}/models/", repo.display()))
                .replace(
                    "HAR_LOG_DIR: logs",
                    &format!("HAR_LOG_DIR: {}/logs", dir.path().display()),
                );
            for (name, value) in settings {
                if trimmed.starts_with(&format!("{name}:")) {
                    line = format!("{indent}{name}: \"{value}\"");
                }
            }
            yml.push_str(&line);
            yml.push('\n');
        }
        for (name, _) in settings {
            assert!(
                yml.contains(&format!("{name}: ")),
                "{yml_path} has no setting {name}"
            );
        }
        std::fs::write(dir.path().join("dataflow.yml"), yml).unwrap();
        Self { dir }
    }

    pub fn yml(&self) -> PathBuf {
        self.dir.path().join("dataflow.yml")
    }

    pub fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    pub fn dora(&self, extra: &[&str]) -> Command {
        let mut command = Command::new("dora");
        command
            .arg("run")
            .arg(self.yml())
            .args(extra)
            .current_dir(self.dir.path())
            .env("RUST_BACKTRACE", "0");
        command
    }

    /// Starts the dataflow in the background, stopping it after `stop_after`.
    pub fn spawn(&self, stop_after: &str) -> std::process::Child {
        self.dora(&["--stop-after", stop_after])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the dora CLI is not on PATH: pip install dora-rs-cli==1.1.0")
    }

    /// Runs the dataflow to its end and asserts it succeeded.
    pub fn run(&self) {
        let out = self
            .dora(&[])
            .output()
            .expect("the dora CLI is not on PATH: pip install dora-rs-cli==1.1.0");
        assert!(
            out.status.success(),
            "dora run failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `har sql` over the logs, as JSON rows.
    pub fn sql(&self, query: &str) -> Vec<Value> {
        let out = super::har_ok(&[
            "sql",
            query,
            "--log-dir",
            self.logs().to_str().unwrap(),
            "--format",
            "json",
        ]);
        let text = String::from_utf8(out.stdout).unwrap();
        match serde_json::from_str(text.trim()).unwrap() {
            Value::Array(rows) => rows,
            other => panic!("not a JSON array: {other}"),
        }
    }
}
/// Processes of node binary `binary` (e.g. `har-log`) running for this flow (dora starts
/// them in the folder of the yml).
pub fn node_pids(flow: &Flow, binary: &str) -> Vec<u32> {
    let dir = flow.dir.path().canonicalize().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
            String::from_utf8_lossy(&cmdline).contains(binary) && cwd.as_deref() == Some(&dir)
        })
        .collect()
}

pub fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            parquet_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "parquet") {
            out.push(path);
        }
    }
}
/// Waits until the flow has sealed prediction files (it is running).
pub fn wait_for_predictions(flow: &Flow) {
    let started = Instant::now();
    loop {
        let mut files = Vec::new();
        parquet_files(&flow.logs().join("predictions"), &mut files);
        if !files.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no log files appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts every sealed file of the log table `folder` exists and fits `schema` (the table's
/// contract, `schemas/log_*.json`).
pub fn assert_table_schema(flow: &Flow, folder: &str, schema: har_core::schema::SchemaName) {
    let mut files = Vec::new();
    parquet_files(&flow.logs().join(folder), &mut files);
    assert!(!files.is_empty(), "no {folder} files");
    for file in &files {
        let (batches, _) = har_core::recording::read_parquet(file).unwrap();
        for batch in &batches {
            har_core::schema::check_batch(schema, batch)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        }
    }
}
