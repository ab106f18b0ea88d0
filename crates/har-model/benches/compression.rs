//! Single-window latency of compressed models on the runtime (`har compress`): the shipped
//! HAPT student, pruned at 30 / 50 / 70 %, each also with int8 dense layers. Latency depends
//! on the shape, not on the weights' values, so the pruning and the calibration run on the
//! shipped weights and a few fixed windows. Also the narrower student shapes that bound what
//! pruning heads and feed-forward units cannot reach (residual width 16, one head, with and
//! without the spectral step), on seeded weights. Run on one core:
//! `taskset -c 0 cargo bench -p har-model --bench compression`.

use std::collections::HashMap;
use std::path::Path;

use candle_nn::VarMap;
use criterion::{criterion_group, criterion_main, Criterion};
use har_model::compress::prune::prune;
use har_model::init::seeded_var_builder;
use har_model::runtime::runtime_dmft;
use har_runtime::config::DmftConfig;
use har_runtime::dmft::Dmft;
use har_runtime::model_dir;
use har_runtime::quantize::{calibrate, quantize};
use har_runtime::weights::{WeightTensor, Weights};

fn window(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i + seed) as f32 * 0.013).sin())
        .collect()
}

fn inputs(config: &DmftConfig, seed: usize) -> Vec<Vec<f32>> {
    config
        .modalities
        .iter()
        .enumerate()
        .map(|(m, spec)| window(config.window_len * spec.channels, seed + 7 * m))
        .collect()
}

/// The f32 model and its int8 version.
fn models(config: &DmftConfig, tensors: HashMap<String, WeightTensor>) -> (Dmft, Dmft) {
    let weights = Weights::new(Path::new("<bench>"), tensors).unwrap();
    let mut model = Dmft::load(config, &weights).unwrap();
    let input_max = calibrate(&mut model, |m| {
        for seed in 0..8 {
            let x = inputs(config, 31 * seed);
            let refs: Vec<&[f32]> = x.iter().map(Vec::as_slice).collect();
            m.predict(&refs)?;
        }
        Ok(())
    })
    .unwrap();
    let q = quantize(config, &weights, &input_max).unwrap();
    let int8 = Weights::with_quantized(Path::new("<bench int8>"), q.tensors, q.quantized).unwrap();
    (model, Dmft::load(config, &int8).unwrap())
}

fn bench_one(c: &mut Criterion, label: &str, config: &DmftConfig, model: &mut Dmft) {
    let x = inputs(config, 3);
    let refs: Vec<&[f32]> = x.iter().map(Vec::as_slice).collect();
    c.bench_function(
        &format!("{label} ({} FLOPs)/1 window", config.flops_per_window()),
        |b| b.iter(|| model.predict(&refs).unwrap()),
    );
}

fn benches(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/hapt-student");
    let card = har_runtime::card::read_card(&dir).unwrap();
    let weights = model_dir::read_weights(&dir, &card).unwrap();
    for ratio in [0.0, 0.3, 0.5, 0.7] {
        let pruned = prune(&card.config, weights.tensors(), ratio).unwrap();
        let (mut f32_model, mut int8_model) = models(&pruned.config, pruned.tensors);
        let label = format!("student pruned {:.0} %", 100.0 * ratio);
        bench_one(c, &label, &pruned.config, &mut f32_model);
        bench_one(c, &format!("{label} int8"), &pruned.config, &mut int8_model);
    }
    for (dim, heads, spectral) in [(24, 2, true), (16, 1, true), (16, 1, false)] {
        let config = DmftConfig {
            dim,
            heads,
            spectral_tokens: spectral,
            ..card.config.clone()
        };
        let varmap = VarMap::new();
        har_model::dmft::Dmft::new(&config, seeded_var_builder(&varmap, 1)).unwrap();
        let mut model = runtime_dmft(&config, &varmap).unwrap();
        let spectral = if spectral { "" } else { ", no spectral step" };
        let label = format!("student shape dim {dim}, {heads} head(s){spectral}");
        bench_one(c, &label, &config, &mut model);
    }
}

criterion_group!(compression, benches);
criterion_main!(compression);
