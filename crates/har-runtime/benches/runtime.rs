//! Single-window latency of the shipped HAPT models on the runtime (what the encode and fuse
//! nodes run), with their real weights, and 64 windows one after another. Run on one core:
//! `taskset -c 0 cargo bench -p har-runtime --bench runtime`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use har_runtime::model_dir;

fn window(seed: usize) -> Vec<f32> {
    (0..128 * 3)
        .map(|i| ((i + seed) as f32 * 0.013).sin())
        .collect()
}

fn benches(c: &mut Criterion) {
    for name in ["hapt-student", "hapt-teacher"] {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models")
            .join(name);
        let mut model = model_dir::load(&dir)
            .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
            .model;
        let (acc, gyro) = (window(0), window(7));
        c.bench_function(&format!("{name}/runtime/1 window"), |b| {
            b.iter(|| model.predict(&[&acc, &gyro]).unwrap())
        });
        let windows: Vec<(Vec<f32>, Vec<f32>)> =
            (0..64).map(|i| (window(i), window(i + 100))).collect();
        let mut group = c.benchmark_group(format!("{name}/runtime/64 windows"));
        group.throughput(Throughput::Elements(64));
        group.bench_function("one by one", |b| {
            b.iter(|| {
                for (a, g) in &windows {
                    model.predict(&[a, g]).unwrap();
                }
            })
        });
        group.finish();
    }
}

criterion_group!(runtime, benches);
criterion_main!(runtime);
