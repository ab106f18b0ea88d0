//! One step of the shipped HAPT segmenter on the runtime (what the segment node runs per
//! device every 0.16 s) with its own global window (256 steps), and with the same weights
//! unbounded at the node's context limits of 1,024 and 4,096 steps; and a whole 6-minute
//! recording (2,253 steps) from a fresh stream. Run on one core:
//! `taskset -c 0 cargo bench -p har-runtime --bench segmenter`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use har_runtime::segmenter::{Segmenter, WEIGHTS_FILE};
use har_runtime::weights::Weights;

fn step(width: usize, seed: usize) -> Vec<f32> {
    (0..width)
        .map(|i| ((i * 7 + seed * 13) as f32 * 0.011).sin())
        .collect()
}

fn benches(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/hapt-segmenter");
    let (card, shipped) =
        Segmenter::read_dir(&dir).unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()));
    let mut config = card.config.clone();
    config.global_window = None;
    let weights = Weights::read(&dir.join(WEIGHTS_FILE)).unwrap();
    let unbounded = Segmenter::load(&weights.root(), &config).unwrap();
    let width = shipped.config().step_width();
    let mut logits = Vec::new();
    for (model, context) in [(&shipped, 256usize), (&unbounded, 1024), (&unbounded, 4096)] {
        let mut stream = model.stream(context);
        for t in 0..context {
            model
                .step(&mut stream, &step(width, t), &mut logits)
                .unwrap();
        }
        let x = step(width, 1);
        c.bench_function(&format!("hapt-segmenter/step/context {context}"), |b| {
            // The cache is full: each step drops one, so the context stays at `context`.
            b.iter(|| model.step(&mut stream, &x, &mut logits).unwrap())
        });
    }
    let steps = 2253;
    let recording: Vec<f32> = (0..steps).flat_map(|t| step(width, t)).collect();
    let mut group = c.benchmark_group("hapt-segmenter/recording");
    group.throughput(Throughput::Elements(steps as u64));
    group.sample_size(10);
    group.bench_function("6 min, 2253 steps", |b| {
        b.iter(|| shipped.forward(&recording).unwrap())
    });
    group.finish();
}

criterion_group!(segmenter, benches);
criterion_main!(segmenter);
