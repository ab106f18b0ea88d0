//! Compression (seed S3): pruning removes the intended structures and keeps the kept ones
//! exact; the data-free synthesis lowers its objective; the fine-tuning lowers its feature
//! loss and leaves the head untouched. Models here are random (no data involved).

use std::collections::HashMap;
use std::path::Path;

use candle_nn::VarMap;
use har_core::preprocess::{ChannelStats, Normalizer};
use har_core::rng::Rng;
use har_model::artifact::candle_model;
use har_model::compress::mimic::{is_head_parameter, mimic, MimicConfig};
use har_model::compress::prune::prune;
use har_model::compress::stats::ActivationStats;
use har_model::compress::synthesis::{synthesise, SynthesisConfig};
use har_model::data::TensorData;
use har_model::dmft::{Dmft, DmftConfig, ModalitySpec};
use har_model::init::seeded_var_builder;
use har_model::runtime::varmap_weights;
use har_runtime::weights::{WeightTensor, Weights};

fn spec(name: &str) -> ModalitySpec {
    ModalitySpec {
        name: name.into(),
        channels: 3,
        groups: vec![vec![0, 1, 2]],
        skeleton: None,
    }
}

/// A 4-head, 16-wide model of two 3-axis sensors, 16-sample windows, 3 classes.
fn config() -> DmftConfig {
    DmftConfig {
        dim: 16,
        heads: 4,
        modality_layers: 1,
        joint_layers: 1,
        ..DmftConfig::teacher(vec![spec("acc"), spec("gyro")], 16, 3)
    }
}

fn random_tensors(config: &DmftConfig, seed: u64) -> HashMap<String, WeightTensor> {
    let varmap = VarMap::new();
    Dmft::new(config, seeded_var_builder(&varmap, seed)).unwrap();
    varmap_weights(&varmap).unwrap().tensors().clone()
}

fn runtime(
    config: &DmftConfig,
    tensors: &HashMap<String, WeightTensor>,
) -> har_runtime::dmft::Dmft {
    let weights = Weights::new(Path::new("<test>"), tensors.clone()).unwrap();
    har_runtime::dmft::Dmft::load(config, &weights).unwrap()
}

/// The candle model of `config` with `tensors` (and its variables).
fn candle(config: &DmftConfig, tensors: &HashMap<String, WeightTensor>) -> (Dmft, VarMap) {
    candle_model(
        config,
        &Weights::new(Path::new("<test>"), tensors.clone()).unwrap(),
    )
    .unwrap()
}

fn scale_rows(t: &mut WeightTensor, rows: impl Iterator<Item = usize>, by: f32) {
    let cols = t.shape[1];
    for r in rows {
        t.values[r * cols..(r + 1) * cols]
            .iter_mut()
            .for_each(|v| *v *= by);
    }
}

fn scale_columns(t: &mut WeightTensor, cols: &[usize], by: f32) {
    let width = t.shape[1];
    for row in t.values.chunks_exact_mut(width) {
        cols.iter().for_each(|&c| row[c] *= by);
    }
}

#[test]
fn pruning_removes_the_weakest_units_and_keeps_the_rest_exact() {
    let config = config();
    let mut tensors = random_tensors(&config, 3);
    // Hand-made weak units: head 2 of the acc encoder's layer, feed-forward units 5 and 7 of
    // the joint layer.
    let hd = config.head_dim();
    let qkv = tensors
        .get_mut("enc.acc.temporal0.attn.qkv.weight")
        .unwrap();
    let head2 = (0..3).flat_map(|part| (part * 4 + 2) * hd..(part * 4 + 3) * hd);
    scale_rows(qkv, head2, 0.01);
    let out = tensors
        .get_mut("enc.acc.temporal0.attn.out.weight")
        .unwrap();
    scale_columns(out, &(2 * hd..3 * hd).collect::<Vec<_>>(), 0.01);
    scale_rows(
        tensors.get_mut("fuse.joint0.ffn_in.weight").unwrap(),
        [5, 7].into_iter(),
        0.01,
    );
    scale_columns(
        tensors.get_mut("fuse.joint0.ffn_out.weight").unwrap(),
        &[5, 7],
        0.01,
    );

    let pruned = prune(&config, &tensors, 0.25).unwrap();
    // Every transformer layer: 4 → 3 heads, 32 → 24 feed-forward units.
    assert_eq!(pruned.plan.len(), config.transformer_layers().len());
    for layer in &pruned.plan {
        assert_eq!(
            (layer.heads.len(), layer.ffn.len()),
            (3, 24),
            "{}",
            layer.layer
        );
        let widths = pruned.config.layer_widths(&layer.layer);
        assert_eq!((widths.heads, widths.ffn), (3, 24));
    }
    let plan = |name: &str| pruned.plan.iter().find(|p| p.layer == name).unwrap();
    assert_eq!(plan("enc.acc.temporal0").heads, vec![0, 1, 3]);
    assert!(!plan("fuse.joint0").ffn.iter().any(|&u| u == 5 || u == 7));
    assert_eq!(
        pruned.tensors["enc.acc.temporal0.attn.qkv.weight"].shape,
        vec![3 * 3 * hd, 16]
    );
    assert_eq!(
        pruned.tensors["fuse.joint0.ffn_out.weight"].shape,
        vec![16, 24]
    );
    // The head and everything outside the layers is untouched.
    for name in [
        "fuse.head.weight",
        "fuse.norm.weight",
        "enc.acc.patch0.weight",
    ] {
        assert_eq!(pruned.tensors[name], tensors[name], "{name}");
    }
    assert!(pruned.config.flops_per_window() < config.flops_per_window());

    // Exact: the pruned model computes what the unpruned one does with the removed units'
    // outputs zeroed (their output columns are their only way into the residual stream).
    let mut masked = tensors.clone();
    for layer in &pruned.plan {
        let removed_heads: Vec<usize> = (0..layer.heads_before)
            .filter(|h| !layer.heads.contains(h))
            .flat_map(|h| h * hd..(h + 1) * hd)
            .collect();
        let removed_units: Vec<usize> = (0..layer.ffn_before)
            .filter(|u| !layer.ffn.contains(u))
            .collect();
        let out = masked
            .get_mut(&format!("{}.attn.out.weight", layer.layer))
            .unwrap();
        scale_columns(out, &removed_heads, 0.0);
        let contract = masked
            .get_mut(&format!("{}.ffn_out.weight", layer.layer))
            .unwrap();
        scale_columns(contract, &removed_units, 0.0);
    }
    let mut full = runtime(&config, &masked);
    let mut narrow = runtime(&pruned.config, &pruned.tensors);
    let mut rng = Rng::new(9);
    for _ in 0..4 {
        let inputs: Vec<Vec<f32>> = (0..2)
            .map(|_| (0..16 * 3).map(|_| rng.normal() as f32).collect())
            .collect();
        let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let (a, b) = (full.predict(&refs).unwrap(), narrow.predict(&refs).unwrap());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }
    // Unmasked, the removed units did matter: the test can tell.
    let mut original = runtime(&config, &tensors);
    let inputs: Vec<Vec<f32>> = (0..2)
        .map(|_| (0..16 * 3).map(|_| rng.normal() as f32).collect())
        .collect();
    let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    let (a, b) = (
        original.predict(&refs).unwrap(),
        narrow.predict(&refs).unwrap(),
    );
    assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-4));

    // Bad ratios are errors.
    assert!(prune(&config, &tensors, 1.0).is_err());
    assert!(prune(&config, &tensors, -0.1).is_err());
}

/// A short fine-tuning: enough for the loss to fall on a tiny model.
const SHORT_MIMIC: MimicConfig = MimicConfig {
    epochs: 8,
    batch_size: 16,
    learning_rate: 3e-3,
    seed: 1,
};

fn random_windows(n: usize, rng: &mut Rng) -> TensorData {
    TensorData {
        values: (0..2)
            .map(|_| (0..n * 16 * 3).map(|_| rng.normal() as f32).collect())
            .collect(),
        shapes: vec![(16, 3); 2],
        targets: (0..n).map(|i| (i % 3) as u32).collect(),
        rotatable: vec![None; 2],
    }
}

fn normalizer() -> Normalizer {
    let stats = |name: &str, mean: [f32; 3]| ChannelStats {
        modality: name.into(),
        channel_names: vec!["x".into(), "y".into(), "z".into()],
        mean: mean.to_vec(),
        std: vec![0.3; 3],
    };
    Normalizer {
        modalities: vec![stats("acc", [0.9, 0.1, 0.2]), stats("gyro", [0.0; 3])],
    }
}

#[test]
fn synthesis_lowers_its_objective_and_the_model_recognises_its_windows() {
    let config = config();
    let (model, _) = candle(&config, &random_tensors(&config, 5));
    let mut rng = Rng::new(2);
    let stats = ActivationStats::record(&model, &random_windows(32, &mut rng), 16).unwrap();
    assert_eq!(stats.sites.len(), 3);
    let settings = SynthesisConfig {
        windows: 12,
        batch_size: 6,
        steps: 40,
        ..Default::default()
    };
    let (windows, report) = synthesise(&model, &normalizer(), &stats, &settings).unwrap();
    assert_eq!(windows.len(), 12);
    assert_eq!(windows.values[0].len(), 12 * 16 * 3);
    assert!(windows.values.iter().flatten().all(|v| v.is_finite()));
    assert!(
        report.last < 0.5 * report.initial,
        "objective {} → {}",
        report.initial,
        report.last
    );
    assert!(report.assigned_accuracy > 0.9, "{report:?}");
    // Deterministic for a seed.
    let (again, _) = synthesise(&model, &normalizer(), &stats, &settings).unwrap();
    assert_eq!(again.values, windows.values);
}

#[test]
fn fine_tuning_lowers_the_feature_loss_and_keeps_the_head() {
    let config = config();
    let tensors = random_tensors(&config, 7);
    let teacher = candle(&config, &tensors).0;
    let pruned = prune(&config, &tensors, 0.5).unwrap();
    let (student, varmap) = candle(&pruned.config, &pruned.tensors);
    let mut rng = Rng::new(4);
    let report = mimic(
        &teacher,
        &student,
        &varmap,
        &random_windows(48, &mut rng),
        &SHORT_MIMIC,
        None,
    )
    .unwrap();
    assert!(
        report.last_epoch_loss < 0.7 * report.first_epoch_loss,
        "{report:?}"
    );
    let after = varmap_weights(&varmap).unwrap();
    let mut head = 0;
    for (name, tensor) in after.tensors() {
        if is_head_parameter(name) {
            assert_eq!(tensor, &pruned.tensors[name], "{name} changed");
            head += 1;
        } else if name.contains("ffn_in") {
            assert_ne!(tensor, &pruned.tensors[name], "{name} was not trained");
        }
    }
    assert_eq!(head, 4, "fuse.norm and fuse.head, weight and bias");
}

#[test]
fn an_int8_model_round_trips_through_its_file_and_predicts_like_the_f32_one() {
    let config = config();
    let tensors = random_tensors(&config, 11);
    let weights = Weights::new(Path::new("<test>"), tensors.clone()).unwrap();
    let mut f32_model = runtime(&config, &tensors);
    let mut rng = Rng::new(6);
    let windows = random_windows(24, &mut rng);
    let window = |data: &TensorData, i: usize| -> Vec<Vec<f32>> {
        data.values
            .iter()
            .map(|v| v[i * 48..(i + 1) * 48].to_vec())
            .collect()
    };
    let input_max = har_runtime::quantize::calibrate(&mut f32_model, |model| {
        for i in 0..windows.len() {
            let w = window(&windows, i);
            let refs: Vec<&[f32]> = w.iter().map(Vec::as_slice).collect();
            model.predict(&refs)?;
        }
        Ok(())
    })
    .unwrap();
    let layers = har_runtime::quantize::quantizable_layers(&config);
    assert_eq!(layers.len(), 2 + 4 * config.transformer_layers().len());
    let quantized = har_runtime::quantize::quantize(&config, &weights, &input_max).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    quantized.write(&path).unwrap();
    // int8 weights take a quarter of the bytes the f32 ones took.
    let f32_bytes: usize = layers
        .iter()
        .map(|l| 4 * tensors[&format!("{l}.weight")].values.len())
        .sum();
    let int8_bytes: usize = quantized.quantized.values().map(|q| q.values.len()).sum();
    assert_eq!(4 * int8_bytes, f32_bytes);

    let read = Weights::read(&path).unwrap();
    assert!(read.is_quantized());
    let mut int8_model = har_runtime::dmft::Dmft::load(&config, &read).unwrap();
    // Read as f32 (training crate, ONNX), a weight comes back dequantised: within half a
    // step of its channel's scale.
    let qkv = "enc.acc.temporal0.attn.qkv.weight";
    let original = &tensors[qkv];
    let max = original.values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let dequantised = candle_model(&config, &read).unwrap().1;
    let back = varmap_weights(&dequantised).unwrap();
    for (a, b) in back.tensors()[qkv].values.iter().zip(&original.values) {
        assert!((a - b).abs() <= max / 127.0, "{a} vs {b}");
    }
    // Predictions on fresh windows stay close to the f32 model's.
    let fresh = random_windows(8, &mut rng);
    let mut worst = 0f32;
    let mut differs = false;
    for i in 0..fresh.len() {
        let w = window(&fresh, i);
        let refs: Vec<&[f32]> = w.iter().map(Vec::as_slice).collect();
        let (a, b) = (
            f32_model.predict(&refs).unwrap(),
            int8_model.predict(&refs).unwrap(),
        );
        for (x, y) in a.iter().zip(&b) {
            worst = worst.max((x - y).abs());
            differs |= x != y;
        }
    }
    assert!(worst < 0.03, "probabilities differ by {worst}");
    assert!(differs, "the int8 kernel ran");
}

#[test]
fn width_pruning_keeps_the_strongest_channels_and_the_fine_tuning_repairs_the_rest() {
    let config = config();
    let mut tensors = random_tensors(&config, 5);
    // Residual channel 2 carries the largest layer-norm gains everywhere: it must stay.
    for (name, t) in tensors.iter_mut() {
        if name.contains("norm") && name.ends_with("weight") {
            t.values[2] *= 50.0;
        }
    }
    let headed = prune(&config, &tensors, 0.5).unwrap();
    assert!(har_model::compress::width::prune_width(headed.clone(), 6).is_err());
    let (narrow, kept) = har_model::compress::width::prune_width(headed, 8).unwrap();
    assert_eq!(kept.len(), 8);
    assert!(kept.contains(&2), "{kept:?}");
    assert!(kept.windows(2).all(|w| w[0] < w[1]));
    assert_eq!((narrow.config.dim, narrow.config.heads), (8, 2));
    assert_eq!(narrow.config.head_dim(), config.head_dim());
    // The narrower model loads in both engines, every tensor of its new shape.
    let mut rt = runtime(&narrow.config, &narrow.tensors);
    let x: Vec<Vec<f32>> = (0..2).map(|m| vec![0.1 * m as f32 + 0.2; 16 * 3]).collect();
    let refs: Vec<&[f32]> = x.iter().map(Vec::as_slice).collect();
    assert!(rt.predict(&refs).unwrap().iter().all(|p| p.is_finite()));
    let (student, varmap) = candle(&narrow.config, &narrow.tensors);
    let (teacher, _) = candle(&config, &tensors);
    let mut rng = Rng::new(9);
    let report = mimic(
        &teacher,
        &student,
        &varmap,
        &random_windows(48, &mut rng),
        &SHORT_MIMIC,
        Some(&kept),
    )
    .unwrap();
    assert!(
        report.last_epoch_loss < 0.7 * report.first_epoch_loss,
        "{report:?}"
    );
}
