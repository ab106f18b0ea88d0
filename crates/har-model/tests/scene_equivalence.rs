//! The scene model computes the same in both engines: candle's padded batch
//! (`har_model::scenes`) and the runtime's one moment at a time (`har_runtime::scene`),
//! loaded from the same weights, agree to 1e-4 — members' activity logits, memory and the
//! baseline's logits for scenes of 1–3 members padded into one batch, and the decoder's
//! log-probabilities along a label sequence — with and without cross-subject context.

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use har_core::rng::Rng;
use har_model::init::seeded_var_builder;
use har_model::scenes::train::runtime_model;
use har_model::scenes::{SceneConfig, SceneModel};

mod common;
use common::{max_diff, randomise};

const TOLERANCE: f32 = 1e-4;

#[test]
fn candle_and_the_runtime_agree_on_scenes_of_any_size() {
    for context in [true, false] {
        let config = SceneConfig {
            input_dim: 6,
            dim: 8,
            heads: 2,
            activities: 3,
            labels: 5,
            context,
            max_labels: 4,
        };
        let varmap = VarMap::new();
        let candle = SceneModel::new(&config, seeded_var_builder(&varmap, 2)).unwrap();
        randomise(&varmap, 0.4, 41);
        let runtime = runtime_model(&varmap, &config).unwrap();
        let mut rng = Rng::new(9);
        let sizes = [2usize, 3, 1];
        let k_max = 3;
        let members: Vec<Vec<f32>> = sizes
            .iter()
            .map(|&k| (0..k * 6).map(|_| rng.normal() as f32).collect())
            .collect();
        let mut padded = vec![0f32; sizes.len() * k_max * 6];
        let mut mask = vec![0f32; sizes.len() * k_max];
        for (i, m) in members.iter().enumerate() {
            padded[i * k_max * 6..i * k_max * 6 + m.len()].copy_from_slice(m);
            mask[i * k_max..i * k_max + sizes[i]].fill(1.0);
        }
        let x = Tensor::from_vec(padded, (3, k_max, 6), &Device::Cpu).unwrap();
        let mask = Tensor::from_vec(mask, (3, k_max), &Device::Cpu).unwrap();
        let out = candle.encode(&x, &mask, false).unwrap();
        let activity = out.activity_logits.to_vec3::<f32>().unwrap();
        let memory = out.memory.to_vec3::<f32>().unwrap();
        let independent = out.independent_logits.to_vec2::<f32>().unwrap();
        for (i, m) in members.iter().enumerate() {
            let k = sizes[i];
            let got = runtime.forward(m).unwrap();
            let want: Vec<f32> = activity[i][..k].iter().flatten().copied().collect();
            assert!(
                max_diff(&got.activity_logits, &want) < TOLERANCE,
                "context {context} scene {i}"
            );
            let want: Vec<f32> = memory[i][..k].iter().flatten().copied().collect();
            assert!(max_diff(&got.memory, &want) < TOLERANCE);
            assert!(max_diff(&got.independent_logits, &independent[i]) < TOLERANCE);
            // The decoder along a label sequence.
            let sequence = [2usize, 0, 4];
            let one = out.memory.narrow(0, i, 1).unwrap();
            let one_mask = mask.narrow(0, i, 1).unwrap();
            let want = candle
                .decoder_log_probs(&one, &one_mask, &sequence)
                .unwrap();
            let (mut state, mut logp) =
                runtime.decode_step(&got.memory, &runtime.start(), config.labels);
            for (step, want) in want.iter().enumerate() {
                for (g, w) in logp.iter().zip(want) {
                    if g.is_finite() {
                        assert!((g - w).abs() < TOLERANCE, "step {step}: {g} vs {w}");
                    } else {
                        assert!(*w < -1e8, "a decoded label is offered again: {w}");
                    }
                }
                if let Some(&token) = sequence.get(step) {
                    (state, logp) = runtime.decode_step(&got.memory, &state, token);
                }
            }
        }
    }
}
