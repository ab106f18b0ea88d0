//! The synthetic paired generator: its IMU must be physically consistent with its skeleton,
//! since both are derived from one motion.

use har_core::import::synthetic::{
    generate_recording, motion, SyntheticConfig, ACTIVITIES, CROSSFADE_S, GRAVITY,
};
use har_core::recording::{Recording, UNLABELLED};

fn noise_free() -> SyntheticConfig {
    SyntheticConfig {
        noise: (0.0, 0.0, 0.0),
        ..Default::default()
    }
}

fn norm(v: [f64; 3]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// The (joint) position `joint` of the skeleton stream at frame `k`.
fn joint(rec: &Recording, k: usize, joint: usize) -> [f64; 3] {
    let s = rec.stream("skeleton").unwrap().sample(k);
    [0, 1, 2].map(|a| s[3 * joint + a] as f64)
}

#[test]
fn a_still_wrist_feels_one_g_and_no_rotation() {
    let config = noise_free();
    let m = motion(&config, 1, 1);
    let standing = m.bouts.iter().position(|b| b.1 == 0).unwrap();
    let t = m.bouts[standing].0 + CROSSFADE_S + 1.0;
    let (f, w) = m.imu_reading(t);
    assert!((norm(f) - 1.0).abs() < 0.02, "|f| = {}", norm(f));
    assert!(norm(w) < 0.1, "|ω| = {}", norm(w));
}

#[test]
fn imu_specific_force_matches_the_skeleton_wrist_acceleration() {
    let config = noise_free();
    let rec = generate_recording(&config, 3, 1);
    let acc = rec.stream("wrist_acc").unwrap();
    let dt = 1.0 / config.skeleton_rate_hz;
    let mut checked = 0;
    let mut worst: f64 = 0.0;
    // Skeleton frames at 30 Hz and IMU samples at 50 Hz coincide every 0.1 s (frame 3j, sample 5j).
    for j in 1..(rec.stream("skeleton").unwrap().len() / 3 - 1) {
        let (k, i) = (3 * j, 5 * j);
        if i >= acc.len() {
            break;
        }
        let (p0, p1, p2) = (
            joint(&rec, k - 1, 8),
            joint(&rec, k, 8),
            joint(&rec, k + 1, 8),
        );
        let a = [0, 1, 2].map(|x| (p2[x] - 2.0 * p1[x] + p0[x]) / (dt * dt));
        let from_skeleton = norm([a[0], a[1], a[2] + GRAVITY]) / GRAVITY;
        let from_imu = norm(
            acc.sample(i)
                .iter()
                .map(|&v| v as f64)
                .collect::<Vec<_>>()
                .try_into()
                .unwrap(),
        );
        // Second differences at 30 Hz smooth the fastest (running, jumping) motion a little.
        worst = worst.max((from_skeleton - from_imu).abs() / (0.1 + 0.15 * from_imu));
        checked += 1;
    }
    assert!(checked > 500, "{checked}");
    assert!(worst < 1.0, "|f| disagreement {worst} × (0.1 g + 15 %)");
}

#[test]
fn gyro_matches_the_turning_rate_of_the_skeleton_forearm() {
    let config = noise_free();
    let rec = generate_recording(&config, 2, 2);
    let gyro = rec.stream("wrist_gyro").unwrap();
    let dt = 1.0 / config.skeleton_rate_hz;
    let unit = |k: usize| {
        let (e, w) = (joint(&rec, k, 7), joint(&rec, k, 8));
        let d = [w[0] - e[0], w[1] - e[1], w[2] - e[2]];
        let n = norm(d);
        d.map(|x| x / n)
    };
    let mut errors = Vec::new();
    for j in 1..(rec.stream("skeleton").unwrap().len() / 3 - 1) {
        let (k, i) = (3 * j, 5 * j);
        if i >= gyro.len() {
            break;
        }
        let (u0, u2) = (unit(k - 1), unit(k + 1));
        let du = norm([0, 1, 2].map(|x| (u2[x] - u0[x]) / (2.0 * dt)));
        // The forearm is the sensor's z axis, so only ωx, ωy turn it.
        let w = gyro.sample(i);
        let perpendicular = ((w[0] as f64).powi(2) + (w[1] as f64).powi(2)).sqrt();
        errors.push((du - perpendicular).abs());
    }
    errors.sort_by(f64::total_cmp);
    let median = errors[errors.len() / 2];
    assert!(
        median < 0.05,
        "median |dû/dt| vs |ω⊥| disagreement {median} rad/s"
    );
}

#[test]
fn recordings_are_deterministic_and_label_every_activity_once() {
    let config = SyntheticConfig::default();
    let a = generate_recording(&config, 4, 1);
    assert_eq!(a, generate_recording(&config, 4, 1));
    assert_ne!(
        a.streams[0].values,
        generate_recording(&config, 5, 1).streams[0].values
    );
    let mut labels: Vec<i32> = a.labels.iter().map(|l| l.label).collect();
    labels.sort();
    assert_eq!(labels, (0..ACTIVITIES.len() as i32).collect::<Vec<_>>());
    // The cross-fade between bouts is unlabelled.
    let second = a.labels[1];
    let just_before = second.start_ns - 100_000_000;
    assert_eq!(a.labels_at(&[just_before]), vec![UNLABELLED]);
    a.validate().unwrap();
}
