//! The segmentation model computes the same in both engines: candle's whole-sequence forward
//! with causal masks (`har_model::segmenter`) and the runtime's step-by-step stream
//! (`har_runtime::segmenter`), loaded from the same weights, agree to 1e-4 — for every
//! ablation variant, with a bounded global window, and for the shipped HAPT segmenter on the
//! shipped sample recording.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use har_core::dataset::{Dataset, Split};
use har_core::rng::Rng;
use har_model::init::seeded_var_builder;
use har_model::runtime::varmap_weights;
use har_model::segmenter::{train, Segmenter as CandleSegmenter, SegmenterConfig};
use har_runtime::segmenter::Segmenter;

mod common;
use common::{max_diff, randomise};

const TOLERANCE: f32 = 1e-4;

fn config(local: bool, global: bool, global_window: Option<usize>) -> SegmenterConfig {
    SegmenterConfig {
        channels: 6,
        patch_len: 4,
        dim: 16,
        heads: 2,
        kernel: 3,
        local_window: 5,
        local,
        global,
        global_window,
        num_classes: 5,
    }
}

fn candle_logits(model: &CandleSegmenter, inputs: &[f32], steps: usize) -> Vec<f32> {
    let width = inputs.len() / steps;
    let x = Tensor::from_slice(inputs, (1, steps, width), &Device::Cpu).unwrap();
    model
        .forward(&x, false)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn every_variant_agrees_step_by_step() {
    let steps = 40;
    for (local, global, window) in [
        (true, true, None),
        (true, true, Some(7)),
        (true, false, None),
        (false, true, None),
        (false, false, None),
    ] {
        let c = config(local, global, window);
        let varmap = VarMap::new();
        let candle = CandleSegmenter::new(&c, seeded_var_builder(&varmap, 5)).unwrap();
        randomise(&varmap, 0.3, 99);
        let weights = varmap_weights(&varmap).unwrap();
        let runtime = Segmenter::load(&weights.root(), &c).unwrap();
        weights.finish().unwrap();
        let mut rng = Rng::new(7);
        let inputs: Vec<f32> = (0..steps * c.step_width())
            .map(|_| rng.normal() as f32)
            .collect();
        let want = candle_logits(&candle, &inputs, steps);
        let got = runtime.forward(&inputs).unwrap();
        let diff = max_diff(&got, &want);
        assert!(
            diff < TOLERANCE,
            "local {local} global {global} window {window:?}: max difference {diff}"
        );
        // A stream whose context limit is shorter than the sequence drops old steps (counted)
        // and then differs from the whole-sequence forward — unless the model bounds its own
        // window, which the stream then follows exactly.
        let mut stream = runtime.stream(10);
        let mut logits = Vec::new();
        let mut streamed = Vec::new();
        for x in inputs.chunks_exact(c.step_width()) {
            runtime.step(&mut stream, x, &mut logits).unwrap();
            streamed.extend_from_slice(&logits);
        }
        let k = c.num_classes;
        assert!(max_diff(&streamed[..10 * k], &want[..10 * k]) < TOLERANCE);
        if global && window.is_none() {
            assert_eq!(stream.context_dropped(), (steps - 10) as u64);
            assert!(max_diff(&streamed, &want) > TOLERANCE);
        } else {
            assert_eq!(stream.context_dropped(), 0);
            assert!(max_diff(&streamed, &want) < TOLERANCE);
        }
    }
}

#[test]
fn a_step_of_the_wrong_width_is_refused() {
    let c = config(true, true, None);
    let varmap = VarMap::new();
    let _candle = CandleSegmenter::new(&c, seeded_var_builder(&varmap, 5)).unwrap();
    let weights = varmap_weights(&varmap).unwrap();
    let runtime = Segmenter::load(&weights.root(), &c).unwrap();
    let mut stream = runtime.stream(4);
    let err = runtime
        .step(&mut stream, &[0.0; 3], &mut Vec::new())
        .unwrap_err();
    assert!(err.to_string().contains("expected 24"), "{err}");
    assert!(runtime.forward(&[0.0; 25]).is_err());
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shipped segmenter on the shipped recording (HAPT test subject 2), read as training
/// and evaluation read it: the runtime's logits are candle's.
#[test]
fn the_shipped_segmenter_agrees_on_the_sample_recording() {
    let dir = repo().join("models/hapt-segmenter");
    let (card, candle) = train::load(&dir).unwrap();
    let (runtime_card, runtime) = Segmenter::read_dir(&dir).unwrap();
    assert_eq!(runtime_card.config, card.config);
    let dataset = Dataset::open(&repo().join("samples/hapt-user02")).unwrap();
    let split = dataset.manifest.recordings[0].split;
    let (recordings, _) = train::read_recordings(
        &dataset,
        split,
        None,
        card.config.patch_len,
        &card.classes,
        Some(&card.standardiser),
    )
    .unwrap();
    assert_eq!(split, Split::Test);
    let mut compared = 0;
    for seq in &recordings.sequences {
        let steps = seq.targets.len();
        let want = candle_logits(&candle, &seq.inputs, steps);
        let got = runtime.forward(&seq.inputs).unwrap();
        let diff = max_diff(&got, &want);
        assert!(diff < TOLERANCE, "{}: max difference {diff}", seq.recording);
        compared += steps;
    }
    assert!(compared > 1000, "{compared} steps compared");
}
