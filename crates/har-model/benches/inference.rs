//! Inference speed of the shipped HAPT student and teacher shapes (`models/hapt-*/model.json`:
//! 2 modalities × 128 × 3, 6 classes):
//! one window at a time on the plain-Rust path (the edge / dataflow path), a batch of 64
//! windows, and candle's batched forward for comparison. Weights are seeded, not trained:
//! speed does not depend on their values. Run on one core:
//! `taskset -c 0 cargo bench -p har-model --bench inference`.

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use har_model::dmft::{Dmft, DmftConfig};
use har_model::init::seeded_var_builder;
use har_model::runtime::runtime_dmft;
use har_runtime::card::read_card;

/// The shape of a shipped HAPT model (`models/<name>/model.json`).
fn shipped(name: &str) -> DmftConfig {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(name);
    read_card(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .config
}

fn window(seed: usize) -> Vec<f32> {
    (0..128 * 3)
        .map(|i| ((i + seed) as f32 * 0.013).sin())
        .collect()
}

/// The runtime (plain-Rust) path: one window, and 64 windows one after another.
fn bench_fast(c: &mut Criterion, name: &str, config: &DmftConfig) {
    let varmap = VarMap::new();
    Dmft::new(config, seeded_var_builder(&varmap, 1)).unwrap();
    let mut fast = runtime_dmft(config, &varmap).unwrap();
    let (acc, gyro) = (window(0), window(7));
    c.bench_function(&format!("{name}/fast/1 window"), |b| {
        b.iter(|| fast.predict(&[&acc, &gyro]).unwrap())
    });
    let windows: Vec<(Vec<f32>, Vec<f32>)> =
        (0..64).map(|i| (window(i), window(i + 100))).collect();
    let mut group = c.benchmark_group(format!("{name}/batch64"));
    group.throughput(Throughput::Elements(64));
    group.bench_function("fast", |b| {
        b.iter(|| {
            for (a, g) in &windows {
                fast.predict(&[a, g]).unwrap();
            }
        })
    });
    group.finish();
}

/// candle's forward: a batch of 64 windows, and one window.
fn bench_candle(c: &mut Criterion, name: &str, config: &DmftConfig) {
    let varmap = VarMap::new();
    let model = Dmft::new(config, seeded_var_builder(&varmap, 1)).unwrap();
    let batch = |offset: usize| {
        let values = (0..64).flat_map(|i| window(i + offset)).collect();
        Tensor::from_vec(values, (64, 128, 3), &Device::Cpu).unwrap()
    };
    let inputs = vec![batch(0), batch(100)];
    let mut group = c.benchmark_group(format!("{name}/batch64"));
    group.throughput(Throughput::Elements(64));
    group.bench_function("candle", |b| {
        b.iter_batched(
            || inputs.clone(),
            |x| model.forward(&x, None, false).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
    let single = vec![
        inputs[0].narrow(0, 0, 1).unwrap(),
        inputs[1].narrow(0, 0, 1).unwrap(),
    ];
    c.bench_function(&format!("{name}/candle/1 window"), |b| {
        b.iter(|| model.forward(&single, None, false).unwrap())
    });
}

fn benches(c: &mut Criterion) {
    let student = shipped("hapt-student");
    let mut models = vec![
        ("student", student.clone()),
        ("teacher", shipped("hapt-teacher")),
    ];
    // What the input options cost: the same student without the spectral step, and without
    // the window detail, when the shipped one has them.
    if student.spectral_tokens {
        let without = DmftConfig {
            spectral_tokens: false,
            ..student.clone()
        };
        models.push(("student-without-spectral-step", without));
    }
    if student.window_detail {
        let without = DmftConfig {
            window_detail: false,
            ..student.clone()
        };
        models.push(("student-without-window-detail", without));
    }
    // Every plain-Rust benchmark first: candle's worker threads, once started, share the one
    // pinned core with whatever runs next and would slow it down.
    for (name, config) in &models {
        bench_fast(c, name, config);
    }
    for (name, config) in &models {
        bench_candle(c, name, config);
    }
}

criterion_group!(inference, benches);
criterion_main!(inference);
