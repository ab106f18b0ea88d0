//! Every token option, fusion stage and architecture exports: configurations no shipped model
//! has (patch statistics, several channel groups with spatial layers, early and late fusion,
//! three modalities; the plain transformer, LSTM and GRU over samples and patches) with seeded
//! weights give the runtime's probabilities within 1e-4 in tract.

use candle_nn::VarMap;
use har_core::preprocess::{ChannelStats, Normalizer};
use har_core::recording::SkeletonLayout;
use har_core::rng::Rng;
use har_model::dmft::{Dmft, DmftConfig, Encoder, Fusion, ModalitySpec};
use har_model::init::seeded_var_builder;
use har_model::runtime::{runtime_dmft, varmap_weights};
use har_onnx::{export_weights, ExportOptions};
use har_runtime::config::{LayerWidths, ARCHITECTURES};

mod common;

use common::{mask, max_diff, run_onnx_fixed};

fn spec(name: &str, channels: usize, groups: Vec<Vec<usize>>) -> ModalitySpec {
    ModalitySpec {
        name: name.into(),
        channels,
        groups,
        skeleton: None,
    }
}

/// A skeleton modality of `joints` joints (MVF mixes it across joints, each axis apart).
fn skeleton(name: &str, joints: usize, groups: Vec<Vec<usize>>) -> ModalitySpec {
    ModalitySpec {
        skeleton: Some(SkeletonLayout {
            joints: (0..joints).map(|j| format!("j{j}")).collect(),
            parents: (0..joints).map(|j| j.checked_sub(1)).collect(),
            centre_joint: 0,
            torso_top_joint: joints - 1,
        }),
        ..spec(name, 3 * joints, groups)
    }
}

/// Configurations covering what the shipped models do not.
fn configurations() -> Vec<DmftConfig> {
    let base = DmftConfig {
        modalities: vec![
            spec("a", 3, vec![vec![0, 1, 2]]),
            skeleton("b", 2, vec![vec![4, 0], vec![1, 2, 3], vec![5]]),
        ],
        window_len: 32,
        patch_len: 4,
        dim: 16,
        heads: 2,
        ffn_mult: 2,
        modality_layers: 1,
        joint_layers: 1,
        num_classes: 5,
        dropout: 0.0,
        patch_stats: true,
        spectral_tokens: true,
        window_detail: true,
        encoder: Encoder::Patch,
        fusion: Fusion::Mid,
        pruned: Default::default(),
    };
    let early = DmftConfig {
        modality_layers: 0,
        joint_layers: 2,
        patch_stats: true,
        spectral_tokens: false,
        window_detail: false,
        ..base.clone()
    };
    let late = DmftConfig {
        modalities: vec![
            spec("a", 2, vec![vec![0, 1]]),
            spec("b", 3, vec![vec![0], vec![1], vec![2]]),
            spec("c", 1, vec![vec![0]]),
        ],
        window_len: 40,
        patch_len: 5,
        modality_layers: 2,
        joint_layers: 0,
        heads: 4,
        window_detail: false,
        ..base.clone()
    };
    let mut all = vec![base.clone(), early, late];
    // The other architectures, from the first shape (the skeleton-guided ones below: they
    // need a skeleton with a token per joint).
    all.extend(
        ARCHITECTURES[1..]
            .iter()
            .filter(|a| !a.starts_with("sga"))
            .map(|a| base.with_arch(a).unwrap()),
    );
    // The cross-modal fusion over two levels, two layers each.
    all.push(DmftConfig {
        modality_layers: 2,
        joint_layers: 2,
        ..base.with_arch("cmsa").unwrap()
    });
    all.extend(skeleton_guided());
    // Narrowed as structured pruning leaves a model (`har compress prune`): every layer of
    // the 4-head late shape and of the two-level cross-modal one with fewer heads and
    // feed-forward units.
    let narrowed: Vec<DmftConfig> = all
        .iter()
        .filter(|c| c.heads == 4 || (c.fusion == Fusion::CrossModal && c.modality_layers == 2))
        .cloned()
        .collect();
    assert_eq!(narrowed.len(), 2);
    for config in narrowed {
        let mut pruned = config.clone();
        for (i, site) in config.transformer_layers().into_iter().enumerate() {
            let full = config.layer_widths(&site.name);
            let widths = LayerWidths {
                heads: 1 + i % full.heads,
                ffn: full.ffn / 2 + i,
            };
            pruned.pruned.insert(site.name, widths);
        }
        all.push(pruned);
    }
    all
}

/// The skeleton-guided fusion, mid and late: a skeleton of 5 joints in three body parts
/// between two motion sensors.
fn skeleton_guided() -> Vec<DmftConfig> {
    let joints = 5;
    let per_joint = (0..joints)
        .map(|j| vec![3 * j, 3 * j + 1, 3 * j + 2])
        .collect();
    let mut skeleton = skeleton("skeleton", joints, per_joint);
    if let Some(layout) = &mut skeleton.skeleton {
        // A tree, not a chain: three body parts.
        layout.parents = vec![None, Some(0), Some(1), Some(0), Some(3)];
        layout.torso_top_joint = 0;
    }
    let base = DmftConfig {
        modalities: vec![
            spec("acc", 3, vec![vec![0, 1, 2]]),
            skeleton,
            spec("gyro", 6, vec![vec![0, 1, 2], vec![3, 4, 5]]),
        ],
        window_len: 24,
        patch_len: 4,
        dim: 16,
        heads: 2,
        ffn_mult: 2,
        modality_layers: 1,
        joint_layers: 1,
        num_classes: 4,
        dropout: 0.0,
        patch_stats: false,
        spectral_tokens: true,
        window_detail: false,
        encoder: Encoder::Patch,
        fusion: Fusion::Mid,
        pruned: Default::default(),
    };
    ["sga", "sga-late"]
        .iter()
        .map(|a| base.with_arch(a).unwrap())
        .collect()
}

/// Seeded weights of `config`, the late mix set apart from its equal start (so an order
/// mix-up would show).
fn seeded(config: &DmftConfig, seed: u64) -> VarMap {
    let varmap = VarMap::new();
    Dmft::new(config, seeded_var_builder(&varmap, seed)).unwrap();
    for (name, var) in varmap.data().lock().unwrap().iter() {
        if name.ends_with(har_runtime::names::dmft::BRANCH_MIX) {
            let mix = candle_core::Tensor::new(&[0.9f32, -0.3], &candle_core::Device::Cpu);
            var.set(&mix.unwrap()).unwrap();
        }
    }
    varmap
}

/// Per-channel statistics `mean(c)`, `std(c)` for every modality of `config`.
fn normalizer(config: &DmftConfig, mean: fn(usize) -> f32, std: fn(usize) -> f32) -> Normalizer {
    Normalizer {
        modalities: config
            .modalities
            .iter()
            .map(|m| ChannelStats {
                modality: m.name.clone(),
                channel_names: (0..m.channels).map(|c| format!("c{c}")).collect(),
                mean: (0..m.channels).map(mean).collect(),
                std: (0..m.channels).map(std).collect(),
            })
            .collect(),
    }
}

#[test]
fn the_skeleton_guided_fusion_exports_without_a_mask() {
    let mut rng = Rng::new(9);
    for (case, config) in skeleton_guided().into_iter().enumerate() {
        let varmap = seeded(&config, 40 + case as u64);
        let mut runtime = runtime_dmft(&config, &varmap).unwrap();
        let weights = varmap_weights(&varmap).unwrap();
        let normalizer = normalizer(&config, |_| 0.0, |_| 1.0);
        let options = ExportOptions { with_mask: false };
        let (bytes, _) =
            export_weights(&config, &weights, &normalizer, options, "case", &[]).unwrap();
        let batch = 2;
        let raw: Vec<Vec<f32>> = config
            .modalities
            .iter()
            .map(|spec| {
                (0..batch * config.window_len * spec.channels)
                    .map(|_| rng.normal() as f32)
                    .collect()
            })
            .collect();
        let inputs = raw
            .iter()
            .zip(&config.modalities)
            .map(|(v, spec)| (vec![batch, config.window_len, spec.channels], v.clone()))
            .collect();
        let probabilities = &run_onnx_fixed(&bytes, inputs)[1];
        let k = config.num_classes;
        for b in 0..batch {
            let windows: Vec<&[f32]> = raw
                .iter()
                .zip(&config.modalities)
                .map(|(v, spec)| {
                    let len = config.window_len * spec.channels;
                    &v[b * len..(b + 1) * len]
                })
                .collect();
            let expected = runtime.predict(&windows).unwrap();
            let diff = max_diff(&probabilities[b * k..(b + 1) * k], &expected);
            assert!(
                diff <= 1e-4,
                "{}, window {b}: differ by {diff}",
                config.arch_name()
            );
        }
    }
}

#[test]
fn every_token_option_and_fusion_stage_matches_the_runtime() {
    let mut rng = Rng::new(5);
    for (case, config) in configurations().into_iter().enumerate() {
        let varmap = seeded(&config, case as u64);
        let mut runtime = runtime_dmft(&config, &varmap).unwrap();
        let weights = varmap_weights(&varmap).unwrap();
        // Statistics that are not the identity, so the graph's standardisation is checked.
        let normalizer = normalizer(&config, |c| 0.1 * c as f32, |c| 0.5 + 0.25 * c as f32);
        let (bytes, _) = export_weights(
            &config,
            &weights,
            &normalizer,
            ExportOptions { with_mask: true },
            "case",
            &[],
        )
        .unwrap();
        let batch = 3;
        let m_count = config.modalities.len();
        let raw: Vec<Vec<f32>> = config
            .modalities
            .iter()
            .map(|spec| {
                (0..batch * config.window_len * spec.channels)
                    .map(|_| (1.5 * rng.normal()) as f32)
                    .collect()
            })
            .collect();
        // Window b lacks modality b % M (window 0 keeps all when there is one modality).
        let present: Vec<Vec<bool>> = (0..batch)
            .map(|b| {
                (0..m_count)
                    .map(|m| m_count == 1 || m != b % m_count)
                    .collect()
            })
            .collect();
        let mut inputs: Vec<(Vec<usize>, Vec<f32>)> = raw
            .iter()
            .zip(&config.modalities)
            .map(|(v, spec)| (vec![batch, config.window_len, spec.channels], v.clone()))
            .collect();
        inputs.push((vec![batch, m_count], mask(&present)));
        let probabilities = &run_onnx_fixed(&bytes, inputs)[1];
        let k = config.num_classes;
        for b in 0..batch {
            let windows: Vec<Option<Vec<f32>>> = (0..m_count)
                .map(|m| {
                    present[b][m].then(|| {
                        let len = config.window_len * config.modalities[m].channels;
                        let mut w = raw[m][b * len..(b + 1) * len].to_vec();
                        normalizer.apply_modality(m, &mut w);
                        w
                    })
                })
                .collect();
            let refs: Vec<Option<&[f32]>> = windows.iter().map(|w| w.as_deref()).collect();
            let expected = runtime.predict_available(&refs).unwrap();
            let got = &probabilities[b * k..(b + 1) * k];
            let diff = max_diff(got, &expected);
            assert!(diff <= 1e-4, "case {case}, window {b}: differ by {diff}");
        }
    }
}
