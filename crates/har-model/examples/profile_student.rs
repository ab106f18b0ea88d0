//! Runs the HAPT-shaped student's one-window forward many times, for a profiler:
//! `valgrind --tool=callgrind target/release/examples/profile_student`.
use candle_nn::VarMap;
use har_model::dmft::{DmftConfig, ModalitySpec};
use har_model::init::seeded_var_builder;
use har_model::runtime::runtime_dmft;

fn main() {
    let imu = |name: &str| ModalitySpec {
        name: name.into(),
        channels: 3,
        groups: vec![vec![0, 1, 2]],
        skeleton: None,
    };
    let config = DmftConfig::teacher(vec![imu("acc"), imu("gyro")], 128, 6).student();
    let varmap = VarMap::new();
    har_model::dmft::Dmft::new(&config, seeded_var_builder(&varmap, 1)).unwrap();
    let mut fast = runtime_dmft(&config, &varmap).unwrap();
    let window: Vec<f32> = (0..128 * 3).map(|i| (i as f32 * 0.013).sin()).collect();
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let start = std::time::Instant::now();
    let mut total = 0.0;
    for _ in 0..runs {
        total += fast.predict(&[&window, &window]).unwrap()[0];
    }
    println!(
        "{runs} windows, {:.1} µs/window (checksum {total})",
        start.elapsed().as_secs_f64() * 1e6 / runs as f64
    );
}
