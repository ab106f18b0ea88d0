//! `har compress` end to end on a tiny model of a generated (SYNTHETIC) dataset: statistics
//! recorded where the data is, then pruning with data-free fine-tuning and int8 quantisation
//! while the dataset is gone, and the results evaluated and exported like any model.

use std::path::Path;

mod common;
use common::{har, har_ok};

fn card(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap()
}

fn accuracy(model: &Path, data: &Path) -> f64 {
    let out = har_ok(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--dataset",
        data.to_str().unwrap(),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["accuracy"].as_f64().unwrap()
}

#[test]
fn prune_with_data_free_fine_tuning_needs_no_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("synthetic");
    let path = |p: &Path| p.to_str().unwrap().to_string();
    har_ok(&["data", "import", "synthetic", "--out", &path(&data)]);
    let model = dir.path().join("model");
    har_ok(&[
        "train",
        "--dataset",
        &path(&data),
        "--out",
        &path(&model),
        "--window",
        "100",
        "--stride",
        "50",
        "--epochs",
        "2",
        "--dim",
        "16",
        "--heads",
        "2",
    ]);

    // Without recorded statistics, data-free pruning says what to run.
    let refused = dir.path().join("refused");
    let out = har(&[
        "compress",
        "prune",
        "--model",
        &path(&model),
        "--ratio",
        "0.5",
        "--data-free",
        "--out",
        &path(&refused),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("har compress stats") && !err.contains("panicked"),
        "{err}"
    );
    har_ok(&[
        "compress",
        "stats",
        "--model",
        &path(&model),
        "--dataset",
        &path(&data),
    ]);
    assert!(model.join("activation_stats.json").exists());

    // The dataset goes away: the data-free command must not need it.
    let parked = dir.path().join("parked");
    std::fs::rename(&data, &parked).unwrap();
    let pruned = dir.path().join("pruned");
    let out = har_ok(&[
        "compress",
        "prune",
        "--model",
        &path(&model),
        "--ratio",
        "0.5",
        "--data-free",
        "--synthetic-windows",
        "24",
        "--synthesis-steps",
        "5",
        "--epochs",
        "2",
        "--out",
        &path(&pruned),
    ]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("synthesis") && printed.contains("fine-tuning"),
        "{printed}"
    );
    // Int8 on top, calibrated on synthetic windows, still without the dataset.
    let int8 = dir.path().join("int8");
    let out = har_ok(&[
        "compress",
        "quantize",
        "--model",
        &path(&model),
        "--data-free",
        "--calibration-windows",
        "12",
        "--synthesis-steps",
        "5",
        "--out",
        &path(&int8),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("int8"));
    std::fs::rename(&parked, &data).unwrap();
    let weight_bytes = |dir: &Path| {
        std::fs::metadata(dir.join("model.safetensors"))
            .unwrap()
            .len()
    };
    // (The tiny model's f32 embeddings and head weigh much; the student's file shrinks 2.5×.)
    assert!(weight_bytes(&int8) < weight_bytes(&model) * 3 / 4);
    assert_eq!(card(&int8)["role"], "teacher-int8");
    assert!((accuracy(&int8, &data) - accuracy(&model, &data)).abs() < 0.1);
    har_ok(&[
        "export",
        "onnx",
        "--model",
        &path(&int8),
        "--out",
        &path(&dir.path().join("int8.onnx")),
    ]);

    let (before, after) = (card(&model), card(&pruned));
    assert!(after["parameters"].as_u64() < before["parameters"].as_u64());
    assert!(after["flops_per_window"].as_u64() < before["flops_per_window"].as_u64());
    assert_eq!(after["role"], "teacher-pruned");
    let compressed = &after["provenance"]["compressed_from"];
    assert!(compressed[0].as_str().unwrap().starts_with("dmft-teacher@"));
    assert_eq!(compressed[1]["ratio"], 0.5);
    assert!(
        compressed[1]["fine_tune"]["data-free"].is_object(),
        "{compressed}"
    );
    // Every layer of the 2-head, 32-unit teacher lost one head and half its units.
    let layers = after["config"]["pruned"].as_object().unwrap();
    assert!(!layers.is_empty());
    for (layer, widths) in layers {
        assert_eq!(widths["heads"], 1, "{layer}");
        assert_eq!(widths["ffn"], 16, "{layer}");
    }

    // A normal model: it evaluates and exports.
    assert!((0.0..=1.0).contains(&accuracy(&pruned, &data)));
    let onnx = dir.path().join("pruned.onnx");
    har_ok(&[
        "export",
        "onnx",
        "--model",
        &path(&pruned),
        "--out",
        &path(&onnx),
    ]);
    assert!(std::fs::metadata(&onnx).unwrap().len() > 1000);

    // An existing model directory is never overwritten.
    let out = har(&[
        "compress",
        "prune",
        "--model",
        &path(&model),
        "--ratio",
        "0.3",
        "--out",
        &path(&pruned),
    ]);
    assert!(!out.status.success());
    // A ratio out of range is an error, not a panic.
    let out = har(&[
        "compress",
        "prune",
        "--model",
        &path(&model),
        "--ratio",
        "1.5",
        "--out",
        &path(&dir.path().join("bad")),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("ratio"), "{err}");
}
