//! The SYNTHETIC paired benchmark (`SyntheticConfig::benchmark`): twelve activities, one-limb
//! pairs, and sensor faults that do what their documentation says.

use har_core::import::synthetic::{
    generate_recording, Body, SensorFaults, SyntheticConfig, CATALOGUE, CROSSFADE_S,
};
use har_core::recording::Recording;

/// The benchmark's bodies and activities, with clean sensors (no noise, no faults).
fn clean() -> SyntheticConfig {
    SyntheticConfig {
        noise: (0.0, 0.0, 0.0),
        faults: SensorFaults::default(),
        ..SyntheticConfig::benchmark()
    }
}

fn with_faults(faults: SensorFaults) -> SyntheticConfig {
    SyntheticConfig { faults, ..clean() }
}

fn values(recording: &Recording, stream: &str) -> (Vec<f32>, usize) {
    let s = recording.stream(stream).unwrap();
    (s.values.clone(), s.info.channels())
}

#[test]
fn every_catalogue_activity_is_labelled_once_per_session_and_generation_repeats() {
    let config = SyntheticConfig::benchmark();
    let a = generate_recording(&config, 3, 2);
    assert_eq!(a, generate_recording(&config, 3, 2));
    let mut labels: Vec<i32> = a.labels.iter().map(|l| l.label).collect();
    labels.sort();
    assert_eq!(labels, (0..CATALOGUE.len() as i32).collect::<Vec<_>>());
    a.validate().unwrap();
}

#[test]
fn waving_left_differs_from_standing_only_in_the_left_arm() {
    let body = Body {
        style: 0.6,
        ..Body::new(1.05, 0.95, 1.1)
    };
    let (standing, waving_left) = (0, 6);
    assert_eq!(CATALOGUE[waving_left], "waving_left");
    let mut left_moved: f64 = 0.0;
    for k in 0..50 {
        let t = 0.037 * k as f64;
        let (still, still_frame) = body.forward_kinematics(&body.activity_pose(standing, t));
        let (wave, wave_frame) = body.forward_kinematics(&body.activity_pose(waving_left, t));
        // The right-wrist sensor's frame and every joint but the left arm's are the same.
        assert_eq!(still_frame, wave_frame);
        for j in (0..15).filter(|j| ![4, 5].contains(j)) {
            assert_eq!(still[j], wave[j], "joint {j} at {t}");
        }
        let d: f64 = (0..3).map(|i| (still[5][i] - wave[5][i]).powi(2)).sum();
        left_moved = left_moved.max(d.sqrt());
    }
    assert!(left_moved > 0.5, "left wrist moved only {left_moved} m");
}

#[test]
fn a_misplaced_sensor_turns_its_readings_but_keeps_their_magnitude() {
    let clean = generate_recording(&clean(), 1, 1);
    let turned = generate_recording(
        &with_faults(SensorFaults {
            placement_deg: 30.0,
            ..Default::default()
        }),
        1,
        1,
    );
    let ((a, _), (b, _)) = (values(&clean, "wrist_acc"), values(&turned, "wrist_acc"));
    let mut largest_turn: f64 = 0.0;
    for (x, y) in a.chunks(3).zip(b.chunks(3)) {
        let n = |v: &[f32]| v.iter().map(|c| f64::from(*c).powi(2)).sum::<f64>().sqrt();
        assert!((n(x) - n(y)).abs() < 1e-4, "{x:?} vs {y:?}");
        let dot: f64 = x.iter().zip(y).map(|(p, q)| f64::from(*p * *q)).sum();
        largest_turn = largest_turn.max((dot / (n(x) * n(y))).clamp(-1.0, 1.0).acos());
    }
    assert!(largest_turn > 0.01, "the sensor frame did not turn");
    assert!(
        largest_turn < 30f64.to_radians() + 1e-3,
        "{largest_turn} rad"
    );
}

#[test]
fn an_imu_link_loss_repeats_the_last_sample_for_the_outage() {
    let lossy = SyntheticConfig {
        noise: (0.01, 0.02, 0.0),
        faults: SensorFaults {
            imu_losses_per_min: 6.0,
            outage_s: (1.0, 2.0),
            ..Default::default()
        },
        ..clean()
    };
    let recording = generate_recording(&lossy, 2, 1);
    let (acc, _) = values(&recording, "wrist_acc");
    let samples: Vec<&[f32]> = acc.chunks(3).collect();
    let mut runs = Vec::new();
    let mut run = 0;
    for pair in samples.windows(2) {
        if pair[0] == pair[1] {
            run += 1;
        } else if run > 0 {
            runs.push(run);
            run = 0;
        }
    }
    // Noisy samples never repeat by chance; every outage (1–2 s at 50 Hz) is one run.
    assert!(!runs.is_empty(), "no outage in {} s", samples.len() / 50);
    assert!(runs.iter().all(|&r| (45..=100).contains(&r)), "{runs:?}");
}

#[test]
fn the_tracker_loses_the_body_as_zeros_and_freezes_occluded_limbs() {
    let moving_frames = |recording: &Recording, limb: usize| {
        let (skeleton, c) = values(recording, "skeleton");
        let frames: Vec<&[f32]> = skeleton.chunks(c).collect();
        let cols = 9 + 9 * limb..18 + 9 * limb;
        frames
            .windows(2)
            .filter(|p| p[0][cols.clone()] == p[1][cols.clone()] && p[0].iter().any(|v| *v != 0.0))
            .count()
    };
    let clean_recording = generate_recording(&clean(), 4, 1);
    let still_in_clean: usize = (0..4).map(|l| moving_frames(&clean_recording, l)).sum();
    let occluded = generate_recording(
        &with_faults(SensorFaults {
            occlusions_per_min: 6.0,
            outage_s: (1.0, 2.0),
            ..Default::default()
        }),
        4,
        1,
    );
    let frozen: usize = (0..4).map(|l| moving_frames(&occluded, l)).sum();
    assert!(
        frozen >= still_in_clean + 25,
        "frozen frames: {frozen} with occlusions, {still_in_clean} without"
    );

    let lost = generate_recording(
        &with_faults(SensorFaults {
            skeleton_losses_per_min: 3.0,
            outage_s: (1.0, 2.0),
            ..Default::default()
        }),
        4,
        1,
    );
    let (skeleton, c) = values(&lost, "skeleton");
    let zero_frames = skeleton
        .chunks(c)
        .filter(|f| f.iter().all(|v| *v == 0.0))
        .count();
    let duration = lost.stream("skeleton").unwrap().len() as f64 / 30.0;
    assert!(
        zero_frames >= 30,
        "{zero_frames} lost frames in {duration} s"
    );
    // Bouts start after the cross-fade; labels do not change with faults.
    assert_eq!(lost.labels, clean_recording.labels);
    assert!(lost.labels[1].start_ns > (CROSSFADE_S * 1e9) as i64);
}
