//! The exported ONNX graphs compute what the project's runtime computes: every shipped model,
//! run by tract (a pure-Rust ONNX runtime) on real sensor windows, gives the runtime's logits
//! and probabilities within 1e-4, with every modality and with one masked out, at more than
//! one batch size; the file declares opset 17 and carries classes and normaliser statistics.

use std::path::{Path, PathBuf};

use har_core::dataset::Dataset;
use har_core::recording::Recording;
use har_onnx::{export, ExportOptions};
use har_runtime::model_dir;
mod common;

use common::{mask, max_diff, run_onnx};
use tract_onnx::prelude::Framework;

const TOLERANCE: f32 = 1e-4;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shipped sample recording (HAPT test subject 2: acc + gyro at 50 Hz).
fn hapt_recording() -> Recording {
    let dataset = Dataset::open(&repo().join("samples/hapt-user02")).unwrap();
    dataset.read(&dataset.manifest.recordings[0]).unwrap()
}

/// `count` raw windows of `len` samples of `stream` from `recording`, spread over it.
fn windows(recording: &Recording, stream: &str, len: usize, count: usize) -> Vec<Vec<f32>> {
    let s = recording.stream(stream).unwrap();
    let c = s.info.channels();
    let step = (s.len() - len) / count.max(1);
    (0..count)
        .map(|k| s.values[k * step * c..(k * step + len) * c].to_vec())
        .collect()
}

/// Checks one model directory on `per_modality[m][window]` raw windows.
fn check_model(dir: &Path, per_modality: &[Vec<Vec<f32>>]) -> f32 {
    let mut loaded = model_dir::load(dir).unwrap();
    let config = loaded.card.config.clone();
    let m_count = config.modalities.len();
    let batch = per_modality[0].len();
    let exported = export(dir, ExportOptions { with_mask: true }).unwrap();
    let mut worst = 0f32;
    // Missing-modality patterns: all present, then each modality missing in turn.
    let mut patterns = vec![vec![true; m_count]];
    if m_count > 1 {
        patterns.extend((0..m_count).map(|gone| (0..m_count).map(|m| m != gone).collect()));
    }
    for present in &patterns {
        let mut inputs = Vec::new();
        for (m, spec) in config.modalities.iter().enumerate() {
            let data: Vec<f32> = per_modality[m]
                .iter()
                .flat_map(|w| {
                    if present[m] {
                        w.clone()
                    } else {
                        vec![0.0; w.len()]
                    }
                })
                .collect();
            inputs.push((vec![batch, config.window_len, spec.channels], data));
        }
        inputs.push((vec![batch, m_count], mask(&vec![present.clone(); batch])));
        let outputs = run_onnx(&exported.bytes, inputs);
        let (logits, probabilities) = (&outputs[0], &outputs[1]);
        let k = config.num_classes;
        for b in 0..batch {
            let normalised: Vec<Option<Vec<f32>>> = (0..m_count)
                .map(|m| {
                    present[m].then(|| {
                        let mut w = per_modality[m][b].clone();
                        loaded.normalizer.apply_modality(m, &mut w);
                        w
                    })
                })
                .collect();
            let refs: Vec<Option<&[f32]>> = normalised.iter().map(|w| w.as_deref()).collect();
            let expected = loaded.model.predict_available(&refs).unwrap();
            let diff = max_diff(&probabilities[b * k..(b + 1) * k], &expected);
            assert!(
                diff <= TOLERANCE,
                "{}: window {b}, present {present:?}: probabilities differ by {diff}",
                dir.display()
            );
            let sum: f32 = logits[b * k..(b + 1) * k].iter().map(|v| v.exp()).sum();
            let from_logits: Vec<f32> = logits[b * k..(b + 1) * k]
                .iter()
                .map(|v| v.exp() / sum)
                .collect();
            assert!(max_diff(&from_logits, &expected) <= TOLERANCE);
            worst = worst.max(diff);
        }
    }
    worst
}

#[test]
fn shipped_hapt_and_basic_motions_models_match_the_runtime_on_real_windows() {
    let recording = hapt_recording();
    for (model, count) in [
        ("hapt-student", 6),
        ("hapt-teacher", 3),
        ("basic-motions-student", 4),
        ("basic-motions-teacher", 2),
    ] {
        let dir = repo().join("models").join(model);
        let card = har_runtime::card::read_card(&dir).unwrap();
        let len = card.config.window_len;
        let per_modality: Vec<Vec<Vec<f32>>> = card
            .config
            .modalities
            .iter()
            .map(|m| windows(&recording, &m.name, len, count))
            .collect();
        let worst = check_model(&dir, &per_modality);
        eprintln!("{model}: largest probability difference {worst:e}");
    }
}

#[test]
fn the_synthetic_skeleton_model_matches_the_runtime() {
    // The skeleton + wrist IMU model, on windows of the SYNTHETIC paired set (its own data).
    let dir = tempfile::tempdir().unwrap();
    let config = har_core::import::synthetic::SyntheticConfig {
        subjects: 1,
        sessions_per_subject: 1,
        ..Default::default()
    };
    let dataset = har_core::import::synthetic::generate(&config, &dir.path().join("syn")).unwrap();
    let recording = dataset.read(&dataset.manifest.recordings[0]).unwrap();
    let model = repo().join("models/synthetic-student");
    let card = har_runtime::card::read_card(&model).unwrap();
    let per_modality: Vec<Vec<Vec<f32>>> = card
        .config
        .modalities
        .iter()
        .map(|m| windows(&recording, &m.name, card.config.window_len, 3))
        .collect();
    let worst = check_model(&model, &per_modality);
    eprintln!("synthetic-student: largest probability difference {worst:e}");
}

#[test]
fn the_batch_dimension_is_dynamic_and_the_file_carries_its_metadata() {
    let dir = repo().join("models/hapt-student");
    let exported = export(&dir, ExportOptions::default()).unwrap();
    assert_eq!(exported.inputs, ["acc", "gyro"]);
    let recording = hapt_recording();
    let mut loaded = model_dir::load(&dir).unwrap();
    let acc = windows(&recording, "acc", 128, 5);
    let gyro = windows(&recording, "gyro", 128, 5);
    for batch in [1, 5] {
        let inputs = vec![
            (vec![batch, 128, 3], acc[..batch].concat()),
            (vec![batch, 128, 3], gyro[..batch].concat()),
        ];
        let probabilities = &run_onnx(&exported.bytes, inputs)[1];
        assert_eq!(probabilities.len(), batch * 6);
        let (mut a, mut g) = (acc[batch - 1].clone(), gyro[batch - 1].clone());
        loaded.normalizer.apply_modality(0, &mut a);
        loaded.normalizer.apply_modality(1, &mut g);
        let expected = loaded.model.predict(&[&a, &g]).unwrap();
        assert!(max_diff(&probabilities[(batch - 1) * 6..], &expected) <= TOLERANCE);
    }
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut &exported.bytes[..])
        .unwrap();
    assert_eq!(proto.opset_import[0].version, 17);
    let meta = |key: &str| {
        proto
            .metadata_props
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.clone())
            .unwrap_or_else(|| panic!("metadata {key}"))
    };
    let classes: serde_json::Value = serde_json::from_str(&meta("har.classes")).unwrap();
    assert_eq!(classes[0]["name"], "WALKING");
    let normalizer: serde_json::Value = serde_json::from_str(&meta("har.normalizer")).unwrap();
    assert_eq!(normalizer["modalities"][1]["modality"], "gyro");
    let graph = proto.graph.unwrap();
    let input_names: Vec<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(input_names, ["acc", "gyro"]);
}

#[test]
fn a_model_directory_with_changed_weights_is_refused() {
    let src = repo().join("models/hapt-student");
    let dir = tempfile::tempdir().unwrap();
    for file in ["model.json", "model.safetensors", "normalizer.json"] {
        std::fs::copy(src.join(file), dir.path().join(file)).unwrap();
    }
    let weights = dir.path().join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    let err = export(dir.path(), ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("SHA-256"), "{err}");
}
