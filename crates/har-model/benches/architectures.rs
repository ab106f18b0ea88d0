//! Single-window latency of every architecture `har train --arch` offers, on the runtime (the
//! encode + fuse nodes' path). Weights are seeded, not trained: speed does not depend on their
//! values. Run on one core: `taskset -c 0 cargo bench -p har-model --bench architectures`.
//!
//! - At the HAPT student's shape (2 modalities × 128 samples × 3 channels, 6 classes, `dim`
//!   32, one layer each side of fusion): every architecture that needs no skeleton.
//! - At the synthetic skeleton + wrist IMU student's shape (a 15-joint skeleton and two
//!   3-axis sensors, 128 samples): DMFT and the fusion schemes (`cmsa`, `sga`, `sga-late`),
//!   and the DMFT teacher shape for reference.
//!
//! `cmsa` runs with two levels (`modality_layers` 2) everywhere, as it is evaluated: its gated
//! multi-level fusion needs more than one.

use candle_nn::VarMap;
use criterion::{criterion_group, criterion_main, Criterion};
use har_model::dmft::{Dmft, DmftConfig};
use har_model::init::seeded_var_builder;
use har_model::runtime::runtime_dmft;
use har_runtime::card::read_card;
use har_runtime::config::ARCHITECTURES;

fn window(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i + seed) as f32 * 0.013).sin())
        .collect()
}

fn bench_one(c: &mut Criterion, label: &str, config: &DmftConfig) {
    let varmap = VarMap::new();
    Dmft::new(config, seeded_var_builder(&varmap, 1)).unwrap();
    let mut model = runtime_dmft(config, &varmap).unwrap();
    let inputs: Vec<Vec<f32>> = config
        .modalities
        .iter()
        .enumerate()
        .map(|(m, spec)| window(config.window_len * spec.channels, 7 * m))
        .collect();
    let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    c.bench_function(
        &format!("{label} ({} FLOPs)/1 window", config.flops_per_window()),
        |b| b.iter(|| model.predict(&refs).unwrap()),
    );
}

/// `config` as architecture `arch`, `cmsa` with two levels.
fn as_arch(config: &DmftConfig, arch: &str) -> DmftConfig {
    let mut config = config.with_arch(arch).unwrap();
    if arch == "cmsa" {
        config.modality_layers = 2;
    }
    config
}

fn benches(c: &mut Criterion) {
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let hapt = read_card(&models.join("hapt-student")).unwrap().config;
    for arch in ARCHITECTURES.iter().filter(|a| !a.starts_with("sga")) {
        bench_one(c, arch, &as_arch(&hapt, arch));
    }
    let synthetic = read_card(&models.join("synthetic-student")).unwrap().config;
    for arch in ["dmft", "cmsa", "sga", "sga-late"] {
        let config = as_arch(&synthetic, arch);
        bench_one(c, &format!("skeleton+imu {arch}"), &config);
    }
    let teacher = DmftConfig {
        dim: 64,
        heads: 4,
        modality_layers: 2,
        joint_layers: 2,
        ..synthetic
    };
    bench_one(c, "skeleton+imu dmft-teacher", &teacher);
}

criterion_group!(architectures, benches);
criterion_main!(architectures);
