//! The `har` binary end to end on a generated dataset.

use std::process::Command;

fn har(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_har"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        vec!["--help"],
        vec!["data", "--help"],
        vec!["data", "fetch", "--help"],
        vec!["data", "import", "--help"],
        vec!["data", "inspect", "--help"],
    ] {
        let out = har(&args);
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[test]
fn import_then_inspect_a_synthetic_dataset_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("synthetic");
    let out = har(&[
        "data",
        "import",
        "synthetic",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = har(&[
        "data",
        "inspect",
        out_dir.to_str().unwrap(),
        "--window",
        "100",
        "--stride",
        "50",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["synthetic"], true);
    assert_eq!(summary["modalities"].as_array().unwrap().len(), 3);
    for split in ["train", "test"] {
        let s = &summary["splits"][split];
        assert_eq!(s["recordings"], 8);
        assert_eq!(s["subjects"], 4);
        let per_class = s["windows_per_class"].as_object().unwrap();
        assert_eq!(per_class.len(), 6, "every activity has windows in {split}");
        let total: u64 = per_class.values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(total, s["windows"].as_u64().unwrap());
        assert!(total > 300, "{split}: {total} windows");
    }
    // Text output names the synthetic marker.
    let out = har(&[
        "data",
        "inspect",
        out_dir.to_str().unwrap(),
        "--classes",
        "0,1",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("[SYNTHETIC]"));
}

#[test]
fn bad_input_gives_a_clear_error_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let out = har(&["data", "inspect", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dataset.json") && !err.contains("panicked"),
        "{err}"
    );

    let out = har(&[
        "data",
        "import",
        "hapt",
        "--src",
        dir.path().to_str().unwrap(),
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("csv") && !err.contains("panicked"), "{err}");

    let synthetic = dir.path().join("s");
    assert!(har(&[
        "data",
        "import",
        "synthetic",
        "--out",
        synthetic.to_str().unwrap()
    ])
    .status
    .success());
    let out = har(&[
        "data",
        "inspect",
        synthetic.to_str().unwrap(),
        "--classes",
        "42",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("class id 42"));
}
