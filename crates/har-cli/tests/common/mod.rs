//! What the `har` binary's end-to-end tests share: running it.
#![allow(dead_code)] // each test binary uses part of these helpers

pub mod flow;

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
