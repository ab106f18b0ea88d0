//! The `har` binary end to end on a generated dataset.

use std::path::Path;

mod common;
use common::{har, har_ok};

#[test]
fn every_subcommand_has_help() {
    for args in [
        vec!["--help"],
        vec!["data", "--help"],
        vec!["data", "fetch", "--help"],
        vec!["data", "import", "--help"],
        vec!["data", "inspect", "--help"],
        vec!["export", "onnx", "--help"],
        vec!["compress", "--help"],
        vec!["compress", "stats", "--help"],
        vec!["compress", "prune", "--help"],
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
    har_ok(&[
        "data",
        "import",
        "synthetic",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let out = har_ok(&[
        "data",
        "inspect",
        out_dir.to_str().unwrap(),
        "--window",
        "100",
        "--stride",
        "50",
        "--json",
    ]);
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

#[test]
fn train_distill_and_eval_on_a_generated_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("synthetic");
    assert!(har(&[
        "data",
        "import",
        "synthetic",
        "--out",
        data.to_str().unwrap()
    ])
    .status
    .success());
    let (teacher, student) = (dir.path().join("teacher"), dir.path().join("student"));
    let common = [
        "--window", "100", "--stride", "50", "--epochs", "2", "--dim", "16", "--heads", "2",
    ];
    let mut args = vec![
        "train",
        "--dataset",
        data.to_str().unwrap(),
        "--out",
        teacher.to_str().unwrap(),
    ];
    args.extend(common);
    har_ok(&args);
    for file in [
        "model.json",
        "model.safetensors",
        "normalizer.json",
        "metrics.jsonl",
    ] {
        assert!(teacher.join(file).exists(), "{file}");
    }
    har_ok(&[
        "distill",
        "--teacher",
        teacher.to_str().unwrap(),
        "--dataset",
        data.to_str().unwrap(),
        "--out",
        student.to_str().unwrap(),
        "--epochs",
        "1",
        "--dim",
        "8",
    ]);
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(student.join("model.json")).unwrap()).unwrap();
    assert_eq!(card["role"], "student");
    assert!(card["provenance"]["distilled_from"][0]
        .as_str()
        .unwrap()
        .starts_with("dmft-teacher@"));
    let out = har_ok(&[
        "eval",
        "--model",
        student.to_str().unwrap(),
        "--dataset",
        data.to_str().unwrap(),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let accuracy = report["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy));
    assert_eq!(report["per_class"].as_array().unwrap().len(), 6);
    assert!(student.join("confusion.png").exists() && student.join("eval.json").exists());
    let out = har(&[
        "eval",
        "--model",
        student.to_str().unwrap(),
        "--dataset",
        data.to_str().unwrap(),
        "--drop",
        "wrist_acc,wrist_gyro",
    ]);
    assert!(
        out.status.success(),
        "dropping two of three modalities still predicts"
    );
    let out = har(&[
        "eval",
        "--model",
        student.to_str().unwrap(),
        "--dataset",
        data.to_str().unwrap(),
        "--drop",
        "sonar",
    ]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("sonar"));

    // A card with fewer class names than the head has outputs: an error naming the field,
    // not a panic.
    let card_path = student.join("model.json");
    let mut card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&card_path).unwrap()).unwrap();
    card["classes"].as_array_mut().unwrap().pop();
    std::fs::write(&card_path, card.to_string()).unwrap();
    let eval = |model: &Path| {
        har(&[
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--dataset",
            data.to_str().unwrap(),
        ])
    };
    let out = eval(&student);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("`classes`") && !err.contains("panicked"),
        "{err}"
    );

    // Weights overwritten with NaN: refused by checksum, for evaluation and as a teacher.
    let weights = teacher.join("model.safetensors");
    let tensors = candle_core::safetensors::load(&weights, &candle_core::Device::Cpu).unwrap();
    let nan: std::collections::HashMap<String, candle_core::Tensor> = tensors
        .into_iter()
        .map(|(name, t)| (name, (t.zeros_like().unwrap() + f64::NAN).unwrap()))
        .collect();
    candle_core::safetensors::save(&nan, &weights).unwrap();
    let out = eval(&teacher);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("SHA-256"), "{err}");
    let out = har(&[
        "distill",
        "--teacher",
        teacher.to_str().unwrap(),
        "--dataset",
        data.to_str().unwrap(),
        "--out",
        dir.path().join("nan-student").to_str().unwrap(),
        "--epochs",
        "1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("SHA-256"), "{err}");
    assert!(!dir.path().join("nan-student").exists());
}

#[test]
fn import_table_and_export_onnx_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // A table import needs its mapping, and other imports refuse one.
    let out = har(&["data", "import", "table"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --mapping"));
    let csv = dir.path().join("s1_walk.csv");
    let rows: String = (0..50)
        .map(|i| format!("{},{},0.5,1\n", i * 20, i % 7))
        .collect();
    std::fs::write(&csv, format!("t,x,y,z\n{rows}")).unwrap();
    std::fs::write(dir.path().join("s2_walk.csv"), format!("t,x,y,z\n{rows}")).unwrap();
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(
        &mapping,
        r#"
subject = { from_name = "s" }
[dataset]
name = "cli"
[files]
include = ["*.csv"]
name_pattern = '^(?P<s>s\d)_(?P<a>\w+)\.csv$'
[time]
column = "t"
unit = "ms"
[label]
source = { from_name = "a" }
[[modality]]
name = "acc"
units = "g"
columns = ["x", "y", "z"]
[split]
test_subjects = ["s2"]
"#,
    )
    .unwrap();
    let out_dir = dir.path().join("ds");
    let out = har_ok(&[
        "data",
        "import",
        "table",
        "--mapping",
        mapping.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("2 recordings from 2 files"), "{report}");
    assert!(report.contains("50.000 Hz"), "{report}");
    assert!(out_dir.join("dataset.json").exists());

    let onnx = dir.path().join("student.onnx");
    let out = har_ok(&[
        "export",
        "onnx",
        "--model",
        root.join("models/hapt-student").to_str().unwrap(),
        "--out",
        onnx.to_str().unwrap(),
        "--mask",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"present\""));
    assert!(std::fs::metadata(&onnx).unwrap().len() > 100_000);
    let out = har(&[
        "export",
        "onnx",
        "--model",
        dir.path().to_str().unwrap(),
        "--out",
        onnx.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "a folder without a model is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("model.json"));
}
