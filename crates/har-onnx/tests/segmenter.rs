//! The exported segmentation model computes what the runtime computes: run by tract on raw
//! steps, its per-step logits equal the runtime's step-by-step forward within 1e-4 — the
//! shipped HAPT segmenter on two stretches of the shipped recording (batch of two), and
//! seeded models whose global attention has a window of its own or sees every earlier step.

use std::path::{Path, PathBuf};

use candle_nn::VarMap;
use har_core::dataset::{ClassInfo, Dataset};
use har_core::rng::Rng;
use har_model::init::seeded_var_builder;
use har_model::segmenter::train::{read_recordings, save};
use har_model::segmenter::{Segmenter as CandleSegmenter, SegmenterConfig};
use har_onnx::segmenter::{export, STEPS_INPUT};
use har_runtime::segmenter::{Segmenter, SegmenterCard, SegmenterModality, Standardiser};

mod common;
use common::{max_diff, run_onnx_fixed};

const TOLERANCE: f32 = 1e-4;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Raw values of standardised steps (the graph standardises itself).
fn raw(steps: &[f32], s: &Standardiser) -> Vec<f32> {
    let c = s.mean.len();
    steps
        .iter()
        .enumerate()
        .map(|(i, v)| v * s.std[i % c] + s.mean[i % c])
        .collect()
}

/// Checks the exported `dir` on `sequences` (standardised, equal lengths) as one batch.
fn check(dir: &Path, sequences: &[Vec<f32>]) {
    let (card, runtime) = Segmenter::read_dir(dir).unwrap();
    let exported = export(dir).unwrap();
    assert_eq!(exported.inputs, [STEPS_INPUT]);
    let width = card.config.step_width();
    let steps = sequences[0].len() / width;
    let input: Vec<f32> = sequences
        .iter()
        .flat_map(|s| raw(s, &card.standardiser))
        .collect();
    let outputs = run_onnx_fixed(
        &exported.bytes,
        vec![(vec![sequences.len(), steps, width], input)],
    );
    let k = card.config.num_classes;
    let per_sequence = steps * k;
    for (b, seq) in sequences.iter().enumerate() {
        let want = runtime.forward(seq).unwrap();
        let got = &outputs[0][b * per_sequence..(b + 1) * per_sequence];
        let diff = max_diff(got, &want);
        assert!(diff < TOLERANCE, "sequence {b}: max difference {diff}");
        for row in outputs[1][b * per_sequence..(b + 1) * per_sequence].chunks_exact(k) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
    }
}

#[test]
fn the_shipped_segmenter_exports_exactly() {
    let dir = repo().join("models/hapt-segmenter");
    let (card, _) = Segmenter::read_dir(&dir).unwrap();
    let dataset = Dataset::open(&repo().join("samples/hapt-user02")).unwrap();
    let (recordings, _) = read_recordings(
        &dataset,
        dataset.manifest.recordings[0].split,
        None,
        card.config.patch_len,
        &card.classes,
        Some(&card.standardiser),
    )
    .unwrap();
    let seq = &recordings.sequences[0].inputs;
    let width = card.config.step_width();
    let steps = 160;
    assert!(seq.len() >= 1200 * width);
    check(
        &dir,
        &[
            seq[..steps * width].to_vec(),
            seq[1000 * width..(1000 + steps) * width].to_vec(),
        ],
    );
}

#[test]
fn seeded_models_with_and_without_a_global_window_export_exactly() {
    for global_window in [Some(6), None] {
        check_seeded(global_window);
    }
}

fn check_seeded(global_window: Option<usize>) {
    let config = SegmenterConfig {
        channels: 4,
        patch_len: 3,
        dim: 8,
        heads: 2,
        kernel: 4,
        local_window: 3,
        local: true,
        global: true,
        global_window,
        num_classes: 3,
    };
    let varmap = VarMap::new();
    let _model = CandleSegmenter::new(&config, seeded_var_builder(&varmap, 11)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let card = SegmenterCard {
        config: config.clone(),
        classes: ClassInfo::numbered(&["a", "b", "c"], 1),
        standardiser: Standardiser {
            mean: vec![0.5, -1.0, 0.0, 2.0],
            std: vec![1.0, 2.0, 0.5, 3.0],
        },
        align: Default::default(),
        modalities: vec![SegmenterModality {
            name: "acc".into(),
            channels: 4,
        }],
        provenance: serde_json::json!({"test": true}),
    };
    save(dir.path(), &card, &varmap).unwrap();
    let mut rng = Rng::new(3);
    let sequences: Vec<Vec<f32>> = (0..2)
        .map(|_| {
            (0..20 * config.step_width())
                .map(|_| rng.normal() as f32)
                .collect()
        })
        .collect();
    check(dir.path(), &sequences);
}
