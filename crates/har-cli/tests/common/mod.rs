//! What the `har` binary's end-to-end tests share: running it.
#![allow(dead_code)] // each test binary uses part of these helpers

pub mod flow;

use std::path::Path;
use std::process::{Command, Output};

/// Runs `har` with `args` (no backtraces in its errors).
pub fn har(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_har"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// Runs `har` and asserts it succeeded, showing its stderr otherwise.
pub fn har_ok(args: &[&str]) -> Output {
    let out = har(args);
    assert!(
        out.status.success(),
        "har {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A copy of the shipped HAPT student's directory at `dir/name`, without any enrolment.
pub fn shipped_student_copy(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let to = dir.join(name);
    std::fs::create_dir_all(&to).unwrap();
    let shipped = flow::repo().join("models/hapt-student");
    for entry in std::fs::read_dir(shipped).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    let _ = std::fs::remove_file(to.join("enrolled.json"));
    to
}

/// Runs the Python block marked `<!-- logs-READER -->` in docs/dataflow.md on `logs`.
pub fn run_docs_snippet(reader: &str, logs: &Path) -> String {
    let docs = std::fs::read_to_string(flow::repo().join("docs/dataflow.md")).unwrap();
    let marker = format!("<!-- logs-{reader} -->");
    let after = docs
        .split_once(&marker)
        .expect("the docs mark the snippet")
        .1;
    let code = after
        .split_once("```python\n")
        .unwrap()
        .1
        .split_once("```")
        .unwrap()
        .0;
    let out = Command::new("python3")
        .arg("-c")
        .arg(code)
        .arg(logs)
        .output()
        .expect("python3 runs (scripts/test.sh installs pyarrow, pandas, duckdb)");
    assert!(
        out.status.success(),
        "{reader} snippet failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
