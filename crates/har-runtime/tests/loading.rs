//! Loading checks what it loads: each way a model directory can be broken gives an error
//! naming the file and the tensor or field — never a panic, never a quiet wrong answer.
//! Every case starts from a copy of the shipped HAPT student.

use std::path::{Path, PathBuf};

use har_runtime::card::{read_card, CARD_FILE, NORMALIZER_FILE, WEIGHTS_FILE};
use har_runtime::model_dir;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

fn shipped_student() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/hapt-student")
}

/// A fresh copy of the shipped student.
fn copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in [CARD_FILE, WEIGHTS_FILE, NORMALIZER_FILE] {
        std::fs::copy(shipped_student().join(file), dir.path().join(file)).unwrap();
    }
    dir
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

/// Rewrites the weights file through `edit` (name → values) and, when `update_card`, records
/// the new file's SHA-256 in the card, as a tool rewriting a model would.
fn edit_weights(dir: &Path, update_card: bool, edit: impl Fn(&str, &mut Vec<f32>)) {
    let path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let mut values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            edit(&name, &mut values);
            let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, view.shape().to_vec(), data)
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, shape, data)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    if update_card {
        let sha = har_core::hash::sha256_file(&path).unwrap();
        edit_json(&dir.join(CARD_FILE), |card| {
            card["weights_sha256"] = sha.into()
        });
    }
}

fn load_error(dir: &Path) -> String {
    match model_dir::load(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_shipped_models_load_and_the_card_reads_without_weights() {
    for name in [
        "hapt-student",
        "hapt-teacher",
        "basic-motions-student",
        "synthetic-student",
    ] {
        let dir = shipped_student().join("..").join(name);
        let loaded = model_dir::load(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(loaded.card.classes.len(), loaded.card.config.num_classes);
    }
    let dir = copy();
    std::fs::remove_file(dir.path().join(WEIGHTS_FILE)).unwrap();
    let card = read_card(dir.path()).unwrap();
    assert_eq!(card.role, "student");
    assert!(load_error(dir.path()).contains(WEIGHTS_FILE));
}

#[test]
fn weights_that_differ_from_the_card_are_refused_by_checksum() {
    let dir = copy();
    edit_weights(dir.path(), false, |_, values| values.fill(f32::NAN));
    let err = load_error(dir.path());
    assert!(
        err.contains(WEIGHTS_FILE) && err.contains("SHA-256") && err.contains("weights_sha256"),
        "{err}"
    );
}

#[test]
fn non_finite_weights_are_refused_naming_the_tensor() {
    let dir = copy();
    edit_weights(dir.path(), true, |name, values| {
        if name == "fuse.head.bias" {
            values[2] = f32::INFINITY;
        }
    });
    let err = load_error(dir.path());
    assert!(
        err.contains(WEIGHTS_FILE) && err.contains("fuse.head.bias") && err.contains("finite"),
        "{err}"
    );
}

#[test]
fn a_class_list_shorter_than_the_head_is_refused() {
    let dir = copy();
    edit_json(&dir.path().join(CARD_FILE), |card| {
        card["classes"].as_array_mut().unwrap().pop();
    });
    let err = load_error(dir.path());
    assert!(
        err.contains(CARD_FILE) && err.contains("`classes`") && err.contains("5 class names"),
        "{err}"
    );
    assert!(read_card(dir.path()).is_err());
}

#[test]
fn shapes_that_disagree_with_the_config_name_the_tensor() {
    // A card claiming a wider model than its weights.
    let dir = copy();
    edit_json(&dir.path().join(CARD_FILE), |card| {
        card["config"]["dim"] = 48.into();
    });
    let err = load_error(dir.path());
    assert!(
        err.contains(WEIGHTS_FILE)
            && err.contains("enc.acc.patch0.weight")
            && err.contains("shape"),
        "{err}"
    );
    // A card with one joint layer fewer than its weights: the extra tensors are refused.
    let dir = copy();
    edit_json(&dir.path().join(CARD_FILE), |card| {
        card["config"]["joint_layers"] = 0.into();
    });
    let err = load_error(dir.path());
    assert!(
        err.contains("fuse.joint0") && err.contains("not a parameter"),
        "{err}"
    );
}

#[test]
fn a_broken_normaliser_is_refused_naming_the_field() {
    let dir = copy();
    edit_json(&dir.path().join(NORMALIZER_FILE), |n| {
        n["modalities"][1]["mean"][2] = serde_json::Value::Null;
    });
    // JSON has no NaN: a null mean is a parse error naming the file.
    assert!(load_error(dir.path()).contains(NORMALIZER_FILE));
    let dir = copy();
    edit_json(&dir.path().join(NORMALIZER_FILE), |n| {
        n["modalities"][1]["mean"][2] = 1e300.into();
    });
    let err = load_error(dir.path());
    assert!(
        err.contains(NORMALIZER_FILE) && err.contains("modalities[1].mean[2]"),
        "{err}"
    );
    let dir = copy();
    edit_json(&dir.path().join(NORMALIZER_FILE), |n| {
        n["modalities"].as_array_mut().unwrap().pop();
    });
    let err = load_error(dir.path());
    assert!(
        err.contains(NORMALIZER_FILE) && err.contains("`modalities`"),
        "{err}"
    );
}

#[test]
fn garbage_and_missing_files_name_the_file() {
    let dir = copy();
    std::fs::write(dir.path().join(WEIGHTS_FILE), b"garbage").unwrap();
    edit_weights_sha(dir.path());
    assert!(load_error(dir.path()).contains("unreadable safetensors"));
    let dir = copy();
    std::fs::write(dir.path().join(CARD_FILE), b"{ not json").unwrap();
    assert!(load_error(dir.path()).contains(CARD_FILE));
    let empty = tempfile::tempdir().unwrap();
    assert!(load_error(empty.path()).contains(CARD_FILE));
}

/// Records the current weights file's checksum in the card.
fn edit_weights_sha(dir: &Path) {
    let sha = har_core::hash::sha256_file(&dir.join(WEIGHTS_FILE)).unwrap();
    edit_json(&dir.join(CARD_FILE), |card| {
        card["weights_sha256"] = sha.into()
    });
}

#[test]
fn hostile_sizes_in_the_card_are_refused_before_anything_is_allocated() {
    for (field, value) in [
        ("window_len", 1_000_000_000_000u64),
        ("dim", 1 << 40),
        ("num_classes", 1 << 40),
        ("joint_layers", 1 << 40),
    ] {
        let dir = copy();
        edit_json(&dir.path().join(CARD_FILE), |card| {
            card["config"][field] = value.into();
            if field == "window_len" {
                card["config"]["patch_len"] = value.into();
            }
        });
        let err = load_error(dir.path());
        assert!(
            err.contains(CARD_FILE) && err.contains(field) && err.contains("limit"),
            "{field}: {err}"
        );
    }
    // Streaming windows of another length than the model's.
    let dir = copy();
    edit_json(&dir.path().join(CARD_FILE), |card| {
        card["preprocess"]["window"]["length"] = 64.into();
    });
    assert!(load_error(dir.path()).contains("preprocess.window.length"));
}
