//! Single-window latency of every architecture `har train --arch` offers, at the HAPT
//! student's shape (2 modalities × 128 samples × 3 channels, 6 classes, `dim` 32, one layer
//! each side of fusion), on the runtime (the encode + fuse nodes' path). Weights are seeded,
//! not trained: speed does not depend on their values. Run on one core:
//! `taskset -c 0 cargo bench -p har-model --bench architectures`.

use candle_nn::VarMap;
use criterion::{criterion_group, criterion_main, Criterion};
use har_model::dmft::Dmft;
use har_model::init::seeded_var_builder;
use har_model::runtime::runtime_dmft;
use har_runtime::card::read_card;
use har_runtime::config::ARCHITECTURES;

fn window(seed: usize) -> Vec<f32> {
    (0..128 * 3)
        .map(|i| ((i + seed) as f32 * 0.013).sin())
        .collect()
}

fn benches(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/hapt-student");
    let student = read_card(&dir).unwrap().config;
    let (acc, gyro) = (window(0), window(7));
    for arch in ARCHITECTURES {
        let config = student.with_arch(arch).unwrap();
        let varmap = VarMap::new();
        Dmft::new(&config, seeded_var_builder(&varmap, 1)).unwrap();
        let mut model = runtime_dmft(&config, &varmap).unwrap();
        c.bench_function(
            &format!("{arch} ({} FLOPs)/1 window", config.flops_per_window()),
            |b| b.iter(|| model.predict(&[&acc, &gyro]).unwrap()),
        );
    }
}

criterion_group!(architectures, benches);
criterion_main!(architectures);
