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

/// An import that fails half-way leaves the previous dataset at the output folder as it was
/// (imports are staged beside it and moved into place when finished), leaves no staging
/// folder behind, and a folder that is not a dataset is never replaced.
#[test]
fn a_failed_import_keeps_the_previous_dataset() {
    use har_core::dataset::{Dataset, DatasetWriter, Split};
    use har_core::import::synthetic::generate;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synthetic");
    let small = SyntheticConfig {
        subjects: 2,
        sessions_per_subject: 1,
        ..Default::default()
    };
    let first = generate(&small, &out).unwrap();
    let recordings = first.manifest.recordings.len();
    assert!(recordings > 0);

    // A second import into the same folder fails on its second recording (an id used twice).
    let mut writer = DatasetWriter::create(&out, first.manifest.clone()).unwrap();
    let recording = generate_recording(&small, 1, 1);
    writer.add(&recording, Split::Train).unwrap();
    assert!(writer.add(&recording, Split::Train).is_err());
    drop(writer);
    let kept = Dataset::open(&out).unwrap();
    assert_eq!(kept.manifest, first.manifest);
    for entry in kept.entries(Split::Train).chain(kept.entries(Split::Test)) {
        kept.read(entry).unwrap();
    }
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["synthetic"], "staging folders left behind");

    // A finished import replaces the dataset.
    let mut writer = DatasetWriter::create(&out, first.manifest.clone()).unwrap();
    writer.add(&recording, Split::Train).unwrap();
    assert_eq!(writer.finish().unwrap().manifest.recordings.len(), 1);
    assert_eq!(Dataset::open(&out).unwrap().manifest.recordings.len(), 1);

    // A non-empty folder that is not a dataset is refused, and left alone.
    let other = dir.path().join("notes");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("todo.txt"), "keep me").unwrap();
    let err = DatasetWriter::create(&other, first.manifest.clone())
        .err()
        .unwrap();
    assert!(err.to_string().contains("refusing"), "{err}");
    assert!(other.join("todo.txt").exists());
}
