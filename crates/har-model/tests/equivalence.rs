//! The two engines compute the same function: over random configurations — modalities and
//! channel groups, window and patch lengths, widths, heads, depths (early, mid and late
//! fusion), token options, encoders (DMFT's patches, the plain per-sample transformer, LSTM and
//! GRU over samples or patches), batch sizes and missing modalities — the runtime's forward
//! ([`har_runtime::dmft::Dmft`]) equals the candle model's inference forward to 1e-4 in class
//! probabilities, logits and mid-fusion features.

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use har_core::recording::SkeletonLayout;
use har_core::rng::Rng;
use har_model::dmft::{probabilities, Dmft, DmftConfig, Encoder, Fusion, ModalitySpec};
use har_model::init::seeded_var_builder;
use har_model::runtime::runtime_dmft;
use har_runtime::config::{LayerWidths, ARCHITECTURES};

fn pick<T: Copy>(rng: &mut Rng, options: &[T]) -> T {
    options[(rng.next_u64() % options.len() as u64) as usize]
}

fn coin(rng: &mut Rng) -> bool {
    rng.next_u64() % 2 == 0
}

/// A random but valid configuration.
fn random_config(rng: &mut Rng, arch: &str) -> DmftConfig {
    let modalities = (0..pick(rng, &[1, 2, 3]))
        .map(|m| {
            let channels = pick(rng, &[1, 2, 3, 6]);
            // One group of every channel (an inertial sensor), or groups of up to 3 channels
            // (joints), in a shuffled order.
            let groups = if channels < 3 || coin(rng) {
                vec![(0..channels).collect()]
            } else {
                let mut order: Vec<usize> = (0..channels).collect();
                rng.shuffle(&mut order);
                order
                    .chunks(pick(rng, &[1, 2, 3]))
                    .map(<[usize]>::to_vec)
                    .collect()
            };
            // Some multiples of 3 are skeletons (joints × x, y, z: MVF mixes across joints).
            let skeleton = (channels % 3 == 0 && coin(rng)).then(|| {
                let joints = channels / 3;
                SkeletonLayout {
                    joints: (0..joints).map(|j| format!("j{j}")).collect(),
                    parents: (0..joints).map(|j| j.checked_sub(1)).collect(),
                    centre_joint: 0,
                    torso_top_joint: joints - 1,
                }
            });
            ModalitySpec {
                name: format!("m{m}"),
                channels,
                groups,
                skeleton,
            }
        })
        .collect();
    let modalities = if arch.starts_with("sga") {
        skeleton_and_motion(rng)
    } else {
        modalities
    };
    let window_len = pick(rng, &[16, 24, 32, 40]);
    let patch_len = pick(
        rng,
        &(1..=window_len / 2)
            .filter(|p| window_len % p == 0 && window_len / p <= 16)
            .collect::<Vec<_>>(),
    );
    // At least 4 features per head: a layer norm over 2 features maps nearly equal pairs to
    // ±1, so rounding differences of 1e-7 between the engines' products grow past 1e-4.
    let heads = pick(rng, &[1, 2, 4]);
    let config = DmftConfig {
        modalities,
        window_len,
        patch_len,
        dim: heads * pick(rng, &[4, 8, 16]),
        heads,
        ffn_mult: pick(rng, &[1, 2, 3]),
        modality_layers: pick(rng, &[0, 1, 2]),
        joint_layers: pick(rng, &[0, 1, 2]),
        num_classes: pick(rng, &[2, 3, 5]),
        dropout: 0.0,
        patch_stats: coin(rng),
        spectral_tokens: coin(rng),
        window_detail: coin(rng),
        encoder: Encoder::Patch,
        fusion: Fusion::Mid,
        pruned: Default::default(),
    };
    let mut config = config.with_arch(arch).unwrap();
    if config.encoder != Encoder::Patch && config.modality_layers == 0 {
        config.modality_layers = 1;
    }
    if config.fusion == Fusion::CrossModal {
        // Levels are the encoder's layers; each level has its own cross-modal layers.
        config.modality_layers = config.modality_layers.max(1);
        config.joint_layers = config.joint_layers.max(1);
    }
    // Half the configurations narrowed as structured pruning leaves them: random layers keep
    // fewer heads and a narrower feed-forward.
    if coin(rng) {
        for site in config.transformer_layers() {
            if coin(rng) {
                let full = config.layer_widths(&site.name);
                let narrower = |rng: &mut Rng, n: usize| 1 + (rng.next_u64() % n as u64) as usize;
                let widths = LayerWidths {
                    heads: narrower(rng, full.heads),
                    ffn: narrower(rng, full.ffn),
                };
                config.pruned.insert(site.name, widths);
            }
        }
    }
    config
}

/// For the skeleton-guided fusion: a skeleton of 2–6 joints (one group per joint, a random
/// tree, so body parts vary) and one or two motion sensors, in a random order.
fn skeleton_and_motion(rng: &mut Rng) -> Vec<ModalitySpec> {
    let joints = pick(rng, &[2, 3, 4, 6]);
    let mut all = vec![ModalitySpec {
        name: "skeleton".into(),
        channels: 3 * joints,
        groups: (0..joints)
            .map(|j| vec![3 * j, 3 * j + 1, 3 * j + 2])
            .collect(),
        skeleton: Some(SkeletonLayout {
            joints: (0..joints).map(|j| format!("j{j}")).collect(),
            parents: (0..joints)
                .map(|j| (j > 0).then(|| (rng.next_u64() % j as u64) as usize))
                .collect(),
            centre_joint: 0,
            torso_top_joint: joints - 1,
        }),
    }];
    for m in 0..pick(rng, &[1, 2]) {
        let channels = pick(rng, &[3, 6]);
        let groups = if coin(rng) {
            vec![(0..channels).collect()]
        } else {
            (0..channels)
                .collect::<Vec<_>>()
                .chunks(3)
                .map(<[usize]>::to_vec)
                .collect()
        };
        all.push(ModalitySpec {
            name: format!("imu{m}"),
            channels,
            groups,
            skeleton: None,
        });
    }
    if coin(rng) {
        all.rotate_left(1);
    }
    all
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn the_runtime_equals_candle_over_random_configurations() {
    let mut rng = Rng::new(2024);
    let mut cases = 0;
    let mut with_missing = 0;
    let mut pruned = 0;
    let mut architectures = std::collections::BTreeSet::new();
    for case in 0..40 {
        // Every architecture in turn, DMFT's patch encoder every other case.
        let arch = if case % 2 == 0 {
            "dmft"
        } else {
            ARCHITECTURES[1 + (case / 2) % (ARCHITECTURES.len() - 1)]
        };
        let config = random_config(&mut rng, arch);
        architectures.insert(config.arch_name());
        config.validate().unwrap();
        let varmap = VarMap::new();
        let candle = Dmft::new(&config, seeded_var_builder(&varmap, case as u64)).unwrap();
        // Parameters that start constant (the late branches' mix) get distinct values, so a
        // mix-up of their order would show.
        for (name, var) in varmap.data().lock().unwrap().iter() {
            if name.ends_with(har_runtime::names::dmft::BRANCH_MIX) {
                let values = Tensor::new(&[0.7f32, -0.4], &Device::Cpu).unwrap();
                var.set(&values).unwrap();
            }
        }
        let mut runtime = runtime_dmft(&config, &varmap).unwrap();
        let batch = pick(&mut rng, &[1, 2, 3, 5]);
        let m = config.modalities.len();
        // Inputs of a few units' range, like normalised sensor windows.
        let inputs: Vec<Vec<f32>> = config
            .modalities
            .iter()
            .map(|spec| {
                (0..batch * config.window_len * spec.channels)
                    .map(|_| (2.0 * rng.normal()) as f32)
                    .collect()
            })
            .collect();
        // Per window, which modalities are present (never none).
        let present: Vec<Vec<bool>> = (0..batch)
            .map(|_| {
                let mut row: Vec<bool> =
                    (0..m).map(|_| m == 1 || rng.next_u64() % 3 != 0).collect();
                if !row.iter().any(|p| *p) {
                    row[0] = true;
                }
                row
            })
            .collect();
        let tensors: Vec<Tensor> = inputs
            .iter()
            .zip(&config.modalities)
            .map(|(v, spec)| {
                Tensor::from_slice(v, (batch, config.window_len, spec.channels), &Device::Cpu)
                    .unwrap()
            })
            .collect();
        let mask: Vec<f32> = present
            .iter()
            .flatten()
            .map(|&p| f32::from(u8::from(p)))
            .collect();
        let mask = Tensor::from_vec(mask, (batch, m), &Device::Cpu).unwrap();
        let expected = candle.forward(&tensors, Some(&mask), false).unwrap();
        let expected_p = probabilities(&expected.logits)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let expected_logits = expected.logits.to_vec2::<f32>().unwrap();
        let expected_fused = expected.fused.to_vec3::<f32>().unwrap();
        for b in 0..batch {
            let windows: Vec<Option<&[f32]>> = inputs
                .iter()
                .zip(&config.modalities)
                .zip(&present[b])
                .map(|((v, spec), &on)| {
                    let size = config.window_len * spec.channels;
                    on.then(|| &v[b * size..(b + 1) * size])
                })
                .collect();
            let p = runtime.predict_available(&windows).unwrap();
            let tokens: Vec<Option<Vec<f32>>> = windows
                .iter()
                .enumerate()
                .map(|(i, w)| w.map(|w| runtime.encode(i, w).unwrap()))
                .collect();
            let refs: Vec<Option<&[f32]>> = tokens.iter().map(|t| t.as_deref()).collect();
            let out = runtime.fuse_with_features(&refs).unwrap();
            let fused: Vec<f32> = expected_fused[b].iter().flatten().copied().collect();
            let what = format!(
                "case {case}, window {b}, present {:?}: {config:?}",
                present[b]
            );
            assert!(max_diff(&p, &expected_p[b]) < 1e-4, "probabilities, {what}");
            assert!(
                max_diff(&out.logits, &expected_logits[b]) < 1e-4,
                "logits {:?} vs {:?}, {what}",
                out.logits,
                expected_logits[b]
            );
            assert!(max_diff(&out.fused, &fused) < 1e-4, "features, {what}");
            with_missing += usize::from(present[b].iter().any(|p| !p));
        }
        cases += 1;
        pruned += usize::from(!config.pruned.is_empty());
    }
    assert_eq!(cases, 40);
    assert!(pruned >= 10, "only {pruned} pruned configurations");
    assert_eq!(
        architectures.len(),
        ARCHITECTURES.len(),
        "every architecture: {architectures:?}"
    );
    assert!(
        with_missing > 5,
        "only {with_missing} windows lacked a modality"
    );
}
