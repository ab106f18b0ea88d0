//! DMFT model tests: shapes and masks, determinism, split == monolithic forward, missing
//! modalities, the distillation loss by hand, save/load, and checkpoint errors.

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use har_model::artifact::load_weights;
use har_model::dmft::{Dmft, DmftConfig, ModalitySpec};
use har_model::init::seeded_var_builder;
use har_model::layers::Linear;
use har_model::train::{distillation_loss, DistillConfig};

fn config() -> DmftConfig {
    let imu = ModalitySpec {
        name: "acc".into(),
        channels: 3,
        groups: vec![vec![0, 1, 2]],
        skeleton: None,
    };
    let skeleton = ModalitySpec {
        name: "skeleton".into(),
        channels: 6,
        groups: vec![vec![0, 1, 2], vec![3, 4, 5]],
        skeleton: None,
    };
    // Patch statistics, window detail and the spectral step on, so every test below covers
    // them (the dataflow tests cover the plain path).
    DmftConfig {
        dim: 16,
        heads: 2,
        dropout: 0.0,
        patch_stats: true,
        spectral_tokens: true,
        window_detail: true,
        ..DmftConfig::teacher(vec![imu, skeleton], 32, 3)
    }
}

fn model(seed: u64) -> (Dmft, VarMap) {
    let varmap = VarMap::new();
    (
        Dmft::new(&config(), seeded_var_builder(&varmap, seed)).unwrap(),
        varmap,
    )
}

fn inputs(batch: usize) -> Vec<Tensor> {
    let wave = |c: usize, phase: f32| -> Tensor {
        let v: Vec<f32> = (0..batch * 32 * c)
            .map(|i| ((i as f32) * 0.37 + phase).sin())
            .collect();
        Tensor::from_vec(v, (batch, 32, c), &Device::Cpu).unwrap()
    };
    vec![wave(3, 0.0), wave(6, 1.0)]
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn shapes_of_tokens_features_and_logits() {
    let (m, _) = model(1);
    let c = config();
    assert_eq!(c.patch_steps(), 16, "32 samples in patches of 2");
    assert_eq!(c.steps(), 17, "16 patch steps and the spectral step");
    let x = inputs(5);
    assert_eq!(m.encode(0, &x[0], false).unwrap().dims(), &[5, 17, 1, 16]);
    assert_eq!(
        m.encode(1, &x[1], false).unwrap().dims(),
        &[5, 17, 2, 16],
        "one token per joint group"
    );
    let out = m.forward(&x, None, false).unwrap();
    assert_eq!(out.logits.dims(), &[5, 3]);
    assert_eq!(out.fused.dims(), &[5, 17, 16]);
    let plain = DmftConfig {
        spectral_tokens: false,
        ..c.clone()
    };
    assert_eq!(plain.steps(), 16);
    assert!(c.flops_per_window() > plain.flops_per_window());
    let wrong = Tensor::zeros((5, 31, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(m
        .encode(0, &wrong, false)
        .unwrap_err()
        .to_string()
        .contains("expected [B, 32, 3]"));
}

#[test]
fn a_fixed_seed_gives_the_same_model() {
    let x = inputs(3);
    let a = model(7).0.forward(&x, None, false).unwrap().logits;
    let b = model(7).0.forward(&x, None, false).unwrap().logits;
    let c = model(8).0.forward(&x, None, false).unwrap().logits;
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    assert!(max_abs_diff(&a, &c) > 1e-3);
}

#[test]
fn split_forward_equals_monolithic_forward() {
    let (m, _) = model(3);
    let x = inputs(4);
    let whole = m.forward(&x, None, false).unwrap();
    let tokens = vec![
        m.encode(0, &x[0], false).unwrap(),
        m.encode(1, &x[1], false).unwrap(),
    ];
    let split = m.fuse(&tokens, None, false).unwrap();
    assert_eq!(max_abs_diff(&whole.logits, &split.logits), 0.0);
    // One window at a time (as the dataflow runs it) gives the batch's rows.
    for b in 0..4 {
        let one: Vec<Tensor> = x.iter().map(|t| t.narrow(0, b, 1).unwrap()).collect();
        let tokens: Vec<Tensor> = one
            .iter()
            .enumerate()
            .map(|(i, t)| m.encode(i, t, false).unwrap())
            .collect();
        let logits = m.fuse(&tokens, None, false).unwrap().logits;
        assert!(max_abs_diff(&logits, &whole.logits.narrow(0, b, 1).unwrap()) < 1e-5);
    }
    // Training-mode (differentiable) ops compute the same function.
    let train_mode = m.forward(&x, None, true).unwrap();
    assert!(max_abs_diff(&whole.logits, &train_mode.logits) < 1e-4);
}

#[test]
fn a_missing_modality_is_masked_exactly_as_if_absent() {
    let (m, _) = model(4);
    let x = inputs(2);
    let acc = m.encode(0, &x[0], false).unwrap();
    let masked = m.fuse_available(&[Some(acc.clone()), None], false).unwrap();
    // The same fusion over the acc tokens alone (no skeleton tokens at all).
    let alone = m.fuse(std::slice::from_ref(&acc), None, false).unwrap();
    assert!(max_abs_diff(&masked.logits, &alone.logits) < 1e-5);
    // Whatever the masked modality's tokens hold, they do not matter.
    let garbage = (m.encode(1, &x[1], false).unwrap() * 1000.0).unwrap();
    let mask = Tensor::from_vec(vec![1f32, 0., 1., 0.], (2, 2), &Device::Cpu).unwrap();
    let with_garbage = m.fuse(&[acc, garbage], Some(&mask), false).unwrap();
    assert!(max_abs_diff(&masked.logits, &with_garbage.logits) < 1e-5);
    assert!(m.fuse_available(&[None, None], false).is_err());
}

#[test]
fn distillation_loss_matches_a_hand_computation() {
    let dev = Device::Cpu;
    let s = Tensor::new(&[[1.0f32, 0.0, -1.0], [0.5, 0.5, 0.0]], &dev).unwrap();
    let t = Tensor::new(&[[2.0f32, 0.0, 0.0], [0.0, 1.0, 0.0]], &dev).unwrap();
    let fs = Tensor::new(&[[[1.0f32, 2.0]], [[0.0, -1.0]]], &dev).unwrap(); // [B=2, S=1, 2]
    let ft = Tensor::new(&[[[2.0f32, 0.0, 1.0]], [[0.0, 0.0, 0.0]]], &dev).unwrap(); // teacher width 3
    let w = Tensor::new(&[[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0]], &dev).unwrap();
    let projection = Linear::new(w, None);
    let targets = Tensor::new(&[0u32, 1], &dev).unwrap();
    let config = DistillConfig {
        temperature: 2.0,
        alpha: 0.3,
        feature_weight: 0.5,
    };
    let loss = distillation_loss(&s, &t, &fs, &ft, &projection, &targets, &config)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();

    let softmax = |v: &[f64], temp: f64| -> Vec<f64> {
        let e: Vec<f64> = v.iter().map(|x| (x / temp).exp()).collect();
        let z: f64 = e.iter().sum();
        e.iter().map(|x| x / z).collect()
    };
    let (sv, tv) = (
        [[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]],
        [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
    );
    let ce = (-softmax(&sv[0], 1.0)[0].ln() - softmax(&sv[1], 1.0)[1].ln()) / 2.0;
    let kl: f64 = (0..2)
        .map(|b| {
            let (p, q) = (softmax(&tv[b], 2.0), softmax(&sv[b], 2.0));
            (0..3).map(|k| p[k] * (p[k] / q[k]).ln()).sum::<f64>()
        })
        .sum::<f64>()
        / 2.0;
    // Projected student features: [1, 2, 3] and [0, -1, -1]; squared errors 1+4+4 and 0+1+1.
    let mse = (1.0 + 4.0 + 4.0 + 0.0 + 1.0 + 1.0) / 6.0;
    let expected = 0.3 * ce + 0.7 * 4.0 * kl + 0.5 * mse;
    assert!(
        (loss as f64 - expected).abs() < 1e-5,
        "{loss} vs {expected}"
    );

    // Without the feature term, features of another number of steps (a student of another
    // architecture) are not compared at all.
    let other_steps = Tensor::zeros((2, 4, 2), candle_core::DType::F32, &dev).unwrap();
    let logits_only = DistillConfig {
        feature_weight: 0.0,
        ..config
    };
    let loss = distillation_loss(
        &s,
        &t,
        &other_steps,
        &ft,
        &projection,
        &targets,
        &logits_only,
    )
    .unwrap()
    .to_scalar::<f32>()
    .unwrap();
    let expected = 0.3 * ce + 0.7 * 4.0 * kl;
    assert!(
        (loss as f64 - expected).abs() < 1e-5,
        "{loss} vs {expected}"
    );
}

#[test]
fn checkpoints_load_identically_and_bad_ones_name_the_tensor() {
    let (m, varmap) = model(5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    varmap.save(&path).unwrap();
    let (loaded, _) = load_weights(&config(), &path).unwrap();
    let x = inputs(3);
    let a = m.forward(&x, None, false).unwrap().logits;
    let b = loaded.forward(&x, None, false).unwrap().logits;
    assert_eq!(max_abs_diff(&a, &b), 0.0);

    // A config with a wider head does not fit the checkpoint.
    let wider = DmftConfig {
        num_classes: 4,
        ..config()
    };
    let err = load_weights(&wider, &path).err().unwrap().to_string();
    assert!(err.contains("fuse.head.") && err.contains("shape"), "{err}");
    // A checkpoint missing a tensor.
    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    tensors.remove("fuse.time_pool.query");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let err = load_weights(&config(), &path).err().unwrap().to_string();
    assert!(
        err.contains("fuse.time_pool.query") && err.contains("missing"),
        "{err}"
    );
    // Not a safetensors file at all.
    std::fs::write(&path, b"garbage").unwrap();
    let err = load_weights(&config(), &path).err().unwrap().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
    // A model directory without its card.
    assert!(har_runtime::model_dir::load(dir.path())
        .err()
        .unwrap()
        .to_string()
        .contains("model.json"));
}

#[test]
fn flops_shrink_with_the_student() {
    let teacher = DmftConfig::teacher(config().modalities, 128, 6);
    let student = teacher.student();
    assert!(teacher.flops_per_window() >= 5 * student.flops_per_window());
    assert_eq!(DmftConfig::default_patch_len(128), 8);
    assert_eq!(DmftConfig::default_patch_len(100), 5);
}

#[test]
fn the_runtime_forward_computes_the_candle_model() {
    let (m, varmap) = model(9);
    let mut fast = har_model::runtime::runtime_dmft(&config(), &varmap).unwrap();
    let x = inputs(3);
    let expected = har_model::dmft::probabilities(&m.forward(&x, None, false).unwrap().logits)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for (b, expected_b) in expected.iter().enumerate() {
        let windows: Vec<Vec<f32>> = x
            .iter()
            .map(|t| t.get(b).unwrap().flatten_all().unwrap().to_vec1().unwrap())
            .collect();
        let refs: Vec<&[f32]> = windows.iter().map(Vec::as_slice).collect();
        let probabilities = fast.predict(&refs).unwrap();
        for (a, e) in probabilities.iter().zip(expected_b) {
            assert!(
                (a - e).abs() < 1e-4,
                "window {b}: {probabilities:?} vs {:?}",
                expected_b
            );
        }
        // Tokens of the split forward agree too, and a missing modality is handled alike.
        let tokens = fast.encode(0, refs[0]).unwrap();
        let candle_tokens = m
            .encode(0, &x[0].narrow(0, b, 1).unwrap(), false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(tokens
            .iter()
            .zip(&candle_tokens)
            .all(|(a, e)| (a - e).abs() < 1e-4));
        let alone = fast.fuse(&[Some(&tokens), None]).unwrap();
        let candle_alone = m
            .fuse_available(
                &[
                    Some(m.encode(0, &x[0].narrow(0, b, 1).unwrap(), false).unwrap()),
                    None,
                ],
                false,
            )
            .unwrap();
        let candle_alone = har_model::dmft::probabilities(&candle_alone.logits)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!(
            alone
                .iter()
                .zip(&candle_alone[0])
                .all(|(a, e)| (a - e).abs() < 1e-4),
            "{alone:?} vs {candle_alone:?}"
        );
    }
    assert!(fast.encode(0, &[0.0; 5]).is_err());
    assert!(fast.fuse(&[None, None]).is_err());
}

#[test]
fn the_teachers_batch_outputs_are_the_candle_models() {
    use har_model::distill::Teacher;
    let (m, varmap) = model(5);
    let fast = har_model::runtime::runtime_dmft(&config(), &varmap).unwrap();
    let mut teacher = Teacher::new(fast, DistillConfig::default());
    // Five windows (an odd count, split unevenly over the worker threads); window 1 lacks the
    // skeleton and window 3 the accelerometer.
    let x = inputs(5);
    let mask = [1f32, 1., 1., 0., 1., 1., 0., 1., 1., 1.];
    let present = Tensor::from_slice(&mask, (5, 2), &Device::Cpu).unwrap();
    for present in [None, Some(&present)] {
        let expected = m.forward(&x, present, false).unwrap();
        let got = teacher.outputs(&x, present).unwrap();
        assert_eq!(got.logits.dims(), expected.logits.dims());
        assert_eq!(got.fused.dims(), expected.fused.dims());
        assert!(max_abs_diff(&got.logits, &expected.logits) < 1e-4);
        assert!(max_abs_diff(&got.fused, &expected.fused) < 1e-4);
    }
    // A window with no modality at all is an error, not a guess.
    let none = Tensor::zeros((5, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(teacher.outputs(&x, Some(&none)).is_err());
}

#[test]
fn dropout_is_seeded_and_only_active_in_training() {
    let with_dropout = DmftConfig {
        dropout: 0.3,
        ..config()
    };
    let build = || Dmft::new(&with_dropout, seeded_var_builder(&VarMap::new(), 2)).unwrap();
    let x = inputs(2);
    let (a, b) = (build(), build());
    let train_a = a.forward(&x, None, true).unwrap().logits;
    assert_eq!(
        max_abs_diff(&train_a, &b.forward(&x, None, true).unwrap().logits),
        0.0
    );
    let infer = a.forward(&x, None, false).unwrap().logits;
    assert!(
        max_abs_diff(&train_a, &infer) > 1e-4,
        "dropout changed nothing in training"
    );
    assert_eq!(
        max_abs_diff(&infer, &b.forward(&x, None, false).unwrap().logits),
        0.0
    );
}
