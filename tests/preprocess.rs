//! Alignment, gap/NaN policy, windows and label policies, normalisation, skeleton scaling.

use har_core::preprocess::skeleton::{normalise_frame, normalise_skeletons};
use har_core::preprocess::window::window_label;
use har_core::preprocess::{
    align, extract_windows, AlignConfig, LabelPolicy, Normalizer, WindowConfig,
};
use har_core::recording::{
    LabelInterval, ModalityInfo, ModalityStream, Recording, SkeletonLayout, UNLABELLED,
};

fn stream(info: ModalityInfo, rate: f64, n: usize, f: impl Fn(f64) -> f32) -> ModalityStream {
    let c = info.channels();
    let ts: Vec<i64> = (0..n)
        .map(|i| (i as f64 * 1e9 / rate).round() as i64)
        .collect();
    let values = ts
        .iter()
        .flat_map(|&t| (0..c).map(move |ch| (t, ch)))
        .map(|(t, ch)| f(t as f64 / 1e9) + ch as f32)
        .collect();
    ModalityStream {
        info,
        timestamps_ns: ts,
        values,
    }
}

fn two_rate_recording() -> Recording {
    Recording {
        id: "r".into(),
        subject_id: "1".into(),
        session_id: "1".into(),
        streams: vec![
            stream(
                ModalityInfo::inertial("imu", 50.0, "g", &["a", "b"]),
                50.0,
                500,
                |t| 2.0 * t as f32,
            ),
            stream(
                ModalityInfo::inertial("slow", 30.0, "m", &["c"]),
                30.0,
                290,
                |t| 3.0 * t as f32 - 1.0,
            ),
        ],
        labels: vec![
            LabelInterval {
                start_ns: 0,
                end_ns: 4_000_000_000,
                label: 1,
            },
            LabelInterval {
                start_ns: 4_000_000_000,
                end_ns: 10_000_000_000,
                label: 2,
            },
        ],
    }
}

#[test]
fn multi_rate_streams_align_onto_the_fastest_clock_by_linear_interpolation() {
    let aligned = align(&two_rate_recording(), &AlignConfig::default()).unwrap();
    assert_eq!(aligned.rate_hz, 50.0);
    // The 30 Hz stream ends at 289/30 s = 9.633 s, so the 50 Hz grid stops at 9.62 s.
    assert_eq!(aligned.timestamps_ns.len(), 482);
    assert_eq!(aligned.segments, vec![0..482]);
    let (_, imu) = &aligned.streams[0];
    assert_eq!(
        imu[2 * 10],
        2.0 * 0.2,
        "a stream on the grid is copied exactly"
    );
    let (_, slow) = &aligned.streams[1];
    for k in [1, 7, 123, 481] {
        let t = k as f32 * 0.02;
        assert!(
            (slow[k] - (3.0 * t - 1.0)).abs() < 1e-4,
            "linear signal reproduced at step {k}"
        );
    }
    assert_eq!(aligned.labels[199], 1);
    assert_eq!(aligned.labels[200], 2);
}

#[test]
fn gaps_split_segments_and_windows_never_cross_them() {
    let mut rec = two_rate_recording();
    rec.streams.truncate(1);
    // Remove 0.5 s (25 samples) of the 50 Hz stream: a gap of 26 periods.
    let s = &mut rec.streams[0];
    s.timestamps_ns.drain(100..125);
    s.values.drain(200..250);
    let aligned = align(&rec, &AlignConfig::default()).unwrap();
    assert_eq!(aligned.report.invalid, 25);
    assert_eq!(aligned.segments, vec![0..100, 125..500]);
    let config = WindowConfig {
        length: 50,
        stride: 50,
        label_policy: LabelPolicy::Majority { min_fraction: 0.5 },
    };
    let windows = extract_windows(&aligned, &config).unwrap();
    // 2 windows in [0, 100), 7 in [125, 500).
    assert_eq!(windows.len(), 9);
    assert_eq!(windows.start_ns[2], aligned.timestamps_ns[125]);
}

#[test]
fn short_nan_runs_are_filled_and_long_runs_invalidate() {
    let mut rec = two_rate_recording();
    rec.streams.truncate(1);
    let v = &mut rec.streams[0].values;
    for i in 10..13 {
        v[2 * i] = f32::NAN; // 3 samples, channel a
    }
    for i in 300..320 {
        v[2 * i + 1] = f32::NAN; // 20 samples, channel b
    }
    let aligned = align(&rec, &AlignConfig::default()).unwrap();
    assert_eq!(aligned.report.nan_filled, 3);
    assert_eq!(aligned.report.invalid, 20);
    assert_eq!(aligned.segments, vec![0..300, 320..500]);
    let (_, values) = &aligned.streams[0];
    for i in 10..13 {
        assert!(
            (values[2 * i] - 2.0 * i as f32 * 0.02).abs() < 1e-5,
            "interpolated across the run"
        );
    }
}

#[test]
fn label_policies() {
    assert_eq!(window_label(&[2, 2, 2], LabelPolicy::Pure), Some(2));
    assert_eq!(window_label(&[2, 2, 3], LabelPolicy::Pure), None);
    assert_eq!(window_label(&[UNLABELLED; 3], LabelPolicy::Pure), None);
    let majority = LabelPolicy::Majority { min_fraction: 0.6 };
    assert_eq!(window_label(&[2, 2, 3, 3, 3], majority), Some(3));
    assert_eq!(
        window_label(&[2, 2, 3, 3, 4], majority),
        None,
        "40 % is below 60 %"
    );
    assert_eq!(
        window_label(&[UNLABELLED, UNLABELLED, UNLABELLED, 1, 1], majority),
        None
    );
    assert!(WindowConfig {
        length: 0,
        stride: 1,
        label_policy: LabelPolicy::Pure
    }
    .validate()
    .is_err());
}

#[test]
fn windows_start_at_the_segment_start_and_carry_their_values() {
    let aligned = align(&two_rate_recording(), &AlignConfig::default()).unwrap();
    let windows = extract_windows(
        &aligned,
        &WindowConfig {
            length: 128,
            stride: 64,
            label_policy: LabelPolicy::Pure,
        },
    )
    .unwrap();
    // Starts 0, 64, …, 320 fit in 482 samples; those at 128 and 192 span the label change at 200.
    assert_eq!(windows.len(), 4);
    assert_eq!(windows.labels, vec![1, 1, 2, 2]);
    assert_eq!(windows.start_ns[2], aligned.timestamps_ns[256]);
    let w = windows.window(1, 0);
    assert_eq!(w.len(), 128 * 2);
    assert_eq!(w[0], 2.0 * 64.0 * 0.02);
    assert_eq!(windows.class_counts()[&2], 2);
}

#[test]
fn normaliser_fits_on_training_windows_and_round_trips_through_json() {
    let aligned = align(&two_rate_recording(), &AlignConfig::default()).unwrap();
    let config = WindowConfig {
        length: 50,
        stride: 25,
        label_policy: LabelPolicy::Majority { min_fraction: 0.5 },
    };
    let mut windows = extract_windows(&aligned, &config).unwrap();
    let normalizer = Normalizer::fit(&windows).unwrap();
    normalizer.apply(&mut windows).unwrap();
    for (m, info) in windows.modalities.iter().enumerate() {
        let c = info.channels();
        for ch in 0..c {
            let column: Vec<f64> = windows.values[m]
                .iter()
                .skip(ch)
                .step_by(c)
                .map(|&v| v as f64)
                .collect();
            let mean = column.iter().sum::<f64>() / column.len() as f64;
            let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / column.len() as f64;
            assert!(
                mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3,
                "{} ch{ch}: mean {mean} var {var}",
                info.name
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("normalizer.json");
    normalizer.save(&path).unwrap();
    assert_eq!(Normalizer::load(&path).unwrap(), normalizer);
    std::fs::write(
        &path,
        serde_json::to_string(&serde_json::json!({"modalities": [
        {"modality": "imu", "channel_names": ["a"], "mean": [0.0, 1.0], "std": [1.0]}]}))
        .unwrap(),
    )
    .unwrap();
    let err = Normalizer::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("normalizer.json") && err.contains("imu"),
        "{err}"
    );
}

#[test]
fn skeleton_frames_are_centred_and_scaled_by_torso_length() {
    let layout = SkeletonLayout {
        joints: vec!["hip".into(), "neck".into(), "hand".into()],
        parents: vec![None, Some(0), Some(1)],
        centre_joint: 0,
        torso_top_joint: 1,
    };
    let mut frame = [1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 2.0, 1.0, 3.0];
    assert!(normalise_frame(&layout, &mut frame));
    assert_eq!(frame, [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.0, 1.0]);
    let mut collapsed = [1.0; 9];
    assert!(
        !normalise_frame(&layout, &mut collapsed),
        "zero torso is only centred"
    );
    assert_eq!(collapsed, [0.0; 9]);

    let info = ModalityInfo::skeleton("skeleton", 30.0, "m", layout);
    let rec = Recording {
        id: "s".into(),
        subject_id: "1".into(),
        session_id: "1".into(),
        streams: vec![ModalityStream {
            info,
            timestamps_ns: vec![0, 33_333_333],
            values: [[1.0f32, 1.0, 1.0, 1.0, 1.0, 3.0, 2.0, 1.0, 3.0]; 2].concat(),
        }],
        labels: vec![],
    };
    let mut aligned = align(&rec, &AlignConfig::default()).unwrap();
    assert_eq!(normalise_skeletons(&mut aligned), 0);
    assert_eq!(aligned.streams[0].1[5], 1.0);
}

/// Hostile timestamps are errors naming the recording, never a panic or an allocation of
/// terabytes: one glitched timestamp far in the future, a span across the whole i64 range,
/// and a rate far above the data's.
#[test]
fn corrupt_timestamps_and_absurd_rates_are_refused_not_allocated() {
    let imu = |timestamps_ns: Vec<i64>| Recording {
        id: "glitch".into(),
        subject_id: "1".into(),
        session_id: "1".into(),
        streams: vec![ModalityStream {
            info: ModalityInfo::inertial("imu", 50.0, "g", &["a"]),
            values: vec![0.5; timestamps_ns.len()],
            timestamps_ns,
        }],
        labels: vec![],
    };
    let mut glitched: Vec<i64> = (0..100).map(|i| i * 20_000_000).collect();
    glitched.push(4_000_000_000_000_000_000);
    let wide = vec![i64::MIN + 1, 0, i64::MAX - 1];
    for (recording, rate_hz) in [
        (imu(glitched), None),
        (imu(wide), None),
        (imu((0..100).map(|i| i * 20_000_000).collect()), Some(1e9)),
    ] {
        let config = AlignConfig {
            rate_hz,
            ..Default::default()
        };
        let err = align(&recording, &config).expect_err("refused").to_string();
        let named = match rate_hz {
            None => err.contains("glitch") && err.contains("timestamp_ns"),
            Some(_) => err.contains("rate_hz") && err.contains("not a rate"),
        };
        assert!(named, "{err}");
    }
    // The same recording with sane timestamps and rate aligns.
    let fine = imu((0..100).map(|i| i * 20_000_000).collect());
    assert_eq!(
        align(&fine, &AlignConfig::default())
            .unwrap()
            .report
            .grid_samples,
        100
    );
}
