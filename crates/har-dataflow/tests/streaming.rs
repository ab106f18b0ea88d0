//! The streaming pieces against their offline counterparts: replay + streaming windowing ==
//! offline alignment + windowing on the shipped HAPT recording; gaps and other rates; the
//! Parquet log files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray, UInt64Array};
use har_core::dataset::Dataset;
use har_core::preprocess::{align, AlignConfig};
use har_core::recording::{ModalityInfo, ModalityStream, Recording};
use har_core::schema::{build_batch, SchemaName};
use har_core::streams::{SensorChunk, WindowMessage};
use har_dataflow::logsink::{FlushPolicy, RollingParquetWriter};
use har_dataflow::replay::{Replay, ReplayConfig};
use har_dataflow::windower::StreamingPreprocessor;

mod common;
use common::spec;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shipped_recording() -> Recording {
    let dataset = Dataset::open(&repo().join("samples/hapt-user02")).unwrap();
    dataset.read(&dataset.manifest.recordings[0]).unwrap()
}

/// Streams every chunk of a replay through a preprocessor.
fn stream_all(replay: &mut Replay, preprocessor: &mut StreamingPreprocessor) -> Vec<WindowMessage> {
    let chunks: Vec<SensorChunk> = replay.take_until(i64::MAX);
    chunks
        .iter()
        .flat_map(|c| preprocessor.push(c).unwrap())
        .collect()
}

#[test]
fn streamed_windows_equal_the_offline_windows_for_any_chunk_size() {
    let recording = shipped_recording();
    let aligned = align(&recording, &AlignConfig::default()).unwrap();
    let (length, stride) = (128, 64);
    for chunk_samples in [1, 7, 64] {
        let mut replay = Replay::new(
            vec![recording.clone()],
            &ReplayConfig {
                chunk_samples,
                ..Default::default()
            },
        )
        .unwrap();
        let mut pre =
            StreamingPreprocessor::new(spec(&[("acc", 3), ("gyro", 3)], length, stride)).unwrap();
        let windows = stream_all(&mut replay, &mut pre);
        let expected = (aligned.timestamps_ns.len() - length) / stride + 1;
        assert_eq!(windows.len(), 2 * expected, "chunks of {chunk_samples}");
        for w in &windows {
            let m = if w.key.modality == "acc" { 0 } else { 1 };
            let start = w.key.window_id as usize * stride;
            assert_eq!(w.key.start_ns, aligned.timestamps_ns[start]);
            assert_eq!(w.key.end_ns, aligned.timestamps_ns[start + length - 1]);
            assert_eq!(
                w.values,
                aligned.streams[m].1[start * 3..(start + length) * 3]
            );
            let labels = &aligned.labels[start..start + length];
            let pure = labels.iter().all(|&l| l == labels[0] && l >= 0);
            assert_eq!(w.key.label, pure.then_some(labels[0]));
        }
        assert_eq!(pre.counters.skipped_windows, 0);
    }
}

#[test]
fn skeleton_at_30_hz_with_a_50_hz_imu_streams_like_the_offline_path() {
    use har_core::import::synthetic::{generate_recording, modalities, SyntheticConfig};
    use har_core::preprocess::skeleton::normalise_skeletons;
    use har_core::recording::ModalityKind;

    let config = SyntheticConfig::default();
    let recording = generate_recording(&config, 1, 1);
    let mut aligned = align(&recording, &AlignConfig::default()).unwrap();
    normalise_skeletons(&mut aligned);
    let infos = modalities(&config);
    let shapes: Vec<(&str, usize)> = infos
        .iter()
        .map(|i| (i.name.as_str(), i.channels()))
        .collect();
    let mut spec = spec(&shapes, 128, 64);
    for (setup, info) in spec.modalities.iter_mut().zip(&infos) {
        if let ModalityKind::Skeleton(layout) = &info.kind {
            setup.skeleton = Some(layout.clone());
        }
    }
    let mut pre = StreamingPreprocessor::new(spec).unwrap();
    let mut replay = Replay::new(vec![recording], &ReplayConfig::default()).unwrap();
    let windows = stream_all(&mut replay, &mut pre);
    let skeleton: Vec<&WindowMessage> = windows
        .iter()
        .filter(|w| w.key.modality == "skeleton")
        .collect();
    assert!(skeleton.len() > 20, "{} skeleton windows", skeleton.len());
    let c = infos[2].channels();
    for w in skeleton {
        let start = w.key.window_id as usize * 64;
        let expected = &aligned.streams[2].1[start * c..(start + 128) * c];
        let worst = w
            .values
            .iter()
            .zip(expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst < 1e-4,
            "window {}: differs by {worst}",
            w.key.window_id
        );
    }
}

fn stream(
    name: &str,
    rate_hz: f64,
    timestamps_ns: Vec<i64>,
    value: impl Fn(i64) -> f32,
) -> ModalityStream {
    ModalityStream {
        info: ModalityInfo::inertial(name, rate_hz, "u", &["x"]),
        values: timestamps_ns.iter().map(|&t| value(t)).collect(),
        timestamps_ns,
    }
}

fn recording(streams: Vec<ModalityStream>) -> Recording {
    Recording {
        id: "r".into(),
        subject_id: "s".into(),
        session_id: "1".into(),
        streams,
        labels: Vec::new(),
    }
}

#[test]
fn slower_streams_are_interpolated_and_gaps_skip_windows() {
    // A 25 Hz ramp onto the 50 Hz grid: interpolation of a ramp is the ramp.
    let ramp = |t: i64| t as f32 / 1e9;
    let slow: Vec<i64> = (0..100).map(|i| i * 40_000_000).collect();
    let fast: Vec<i64> = (0..199).map(|i| i * 20_000_000).collect();
    let mut replay = Replay::new(
        vec![recording(vec![
            stream("a", 50.0, fast, ramp),
            stream("b", 25.0, slow, ramp),
        ])],
        &ReplayConfig::default(),
    )
    .unwrap();
    let mut pre = StreamingPreprocessor::new(spec(&[("a", 1), ("b", 1)], 10, 10)).unwrap();
    let windows = stream_all(&mut replay, &mut pre);
    assert_eq!(windows.len(), 2 * 19);
    for w in windows.iter().filter(|w| w.key.modality == "b") {
        let expected: Vec<f32> = (0..10)
            .map(|k| ramp(w.key.start_ns + k * 20_000_000))
            .collect();
        for (v, e) in w.values.iter().zip(&expected) {
            assert!((v - e).abs() < 1e-5, "{:?} vs {expected:?}", w.values);
        }
    }

    // A 0.2 s hole (samples 40..49 missing) in a 50 Hz stream: the window over it is skipped
    // and counted, later windows keep their grid numbers.
    let with_gap: Vec<i64> = (0..100)
        .filter(|i| !(40..50).contains(i))
        .map(|i| i * 20_000_000)
        .collect();
    let mut replay = Replay::new(
        vec![recording(vec![stream("a", 50.0, with_gap, ramp)])],
        &ReplayConfig::default(),
    )
    .unwrap();
    let mut pre = StreamingPreprocessor::new(spec(&[("a", 1)], 10, 10)).unwrap();
    let ids: Vec<u64> = stream_all(&mut replay, &mut pre)
        .iter()
        .map(|w| w.key.window_id)
        .collect();
    assert_eq!(ids, [0, 1, 2, 3, 5, 6, 7, 8, 9]);
    assert_eq!(pre.counters.skipped_windows, 1);
}

#[test]
fn replay_orders_chunks_by_due_time_over_devices_and_drops_dead_sensors() {
    let recording = shipped_recording();
    let config = ReplayConfig {
        chunk_samples: 10,
        copies: 3,
        stagger_ns: 150_000_000,
        drop_modalities: vec!["gyro".into()],
        laps: 1,
    };
    let mut replay = Replay::new(vec![recording.clone()], &config).unwrap();
    assert_eq!(replay.streams(), 3);
    // The first second: each device's chunks, 50 ms apart in phase.
    let chunks = replay.take_until(1_000_000_000);
    let devices: Vec<&str> = chunks
        .iter()
        .take(3)
        .map(|c| c.source.device_id.as_str())
        .collect();
    assert_eq!(
        devices,
        ["user02_rec01#0", "user02_rec01#1", "user02_rec01#2"]
    );
    assert!(chunks
        .iter()
        .all(|c| c.modality == "acc" && c.timestamps_ns.len() == 10));
    // Device 0 is due at 180 ms, 380 ms, …: 5 chunks by 1 s; devices 1 (+50 ms) and 2
    // (+100 ms) 4.
    let per_device = |d: &str| chunks.iter().filter(|c| c.source.device_id == d).count();
    assert_eq!(
        (per_device("user02_rec01#0"), per_device("user02_rec01#2")),
        (5, 4)
    );
    let seqs: Vec<u64> = chunks
        .iter()
        .filter(|c| c.source.device_id.ends_with("#1"))
        .map(|c| c.chunk_seq)
        .collect();
    assert_eq!(seqs, [0, 1, 2, 3]);
    let rest = replay.take_until(i64::MAX);
    let samples: usize = chunks
        .iter()
        .chain(&rest)
        .map(|c| c.timestamps_ns.len())
        .sum();
    assert_eq!(samples, 3 * recording.streams[0].len());
    assert!(replay.next_due().is_none());

    // Two laps: the second continues the clock one recording span later.
    let laps = ReplayConfig {
        laps: 2,
        ..Default::default()
    };
    let mut replay = Replay::new(vec![recording.clone()], &laps).unwrap();
    let all = replay.take_until(i64::MAX);
    let acc: Vec<i64> = all
        .iter()
        .filter(|c| c.modality == "acc")
        .flat_map(|c| c.timestamps_ns.clone())
        .collect();
    assert_eq!(acc.len(), 2 * recording.streams[0].len());
    assert!(
        acc.windows(2).all(|w| w[1] - w[0] == 20_000_000),
        "one clock across laps"
    );

    let unknown = ReplayConfig {
        drop_modalities: vec!["depth".into()],
        ..Default::default()
    };
    let err = Replay::new(vec![recording], &unknown)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HAR_DROP_MODALITIES") && err.contains("depth"),
        "{err}"
    );
}

fn health_rows(node: &str, n: u64) -> RecordBatch {
    let rows = n as usize;
    let u64s = |v: u64| Arc::new(UInt64Array::from(vec![v; rows])) as arrow::array::ArrayRef;
    build_batch(
        SchemaName::LogNodeHealth,
        vec![
            Arc::new(StringArray::from(vec!["run"; rows])),
            Arc::new(StringArray::from(vec![node; rows])),
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
            u64s(1),
            u64s(2),
            u64s(0),
            u64s(0),
            u64s(0),
            u64s(0),
        ],
    )
    .unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn log_files_are_sealed_per_flush_and_numbering_continues() {
    let root = tempfile::tempdir().unwrap();
    let policy = FlushPolicy {
        flush_rows: 100,
        flush_interval: Duration::from_millis(50),
    };
    let dir = root.path().join("node_health/run_id=run");
    let mut writer =
        RollingParquetWriter::new(root.path(), SchemaName::LogNodeHealth, "run", policy).unwrap();
    writer.write(health_rows("a", 60)).unwrap();
    assert!(files(&dir).is_empty(), "60 rows stay buffered");
    writer.write(health_rows("a", 60)).unwrap();
    assert_eq!(files(&dir), ["part-00000.parquet"], "120 rows: flushed");
    writer.write(health_rows("b", 5)).unwrap();
    writer.flush_if_due().unwrap();
    assert_eq!(writer.buffered_rows(), 5, "not yet due");
    std::thread::sleep(Duration::from_millis(60));
    writer.flush_if_due().unwrap();
    assert_eq!(files(&dir), ["part-00000.parquet", "part-00001.parquet"]);
    assert_eq!((writer.rows_written, writer.files_written), (125, 2));

    // A new writer of the same run (a restarted node) continues the numbering.
    let mut again =
        RollingParquetWriter::new(root.path(), SchemaName::LogNodeHealth, "run", policy).unwrap();
    again.write(health_rows("c", 1)).unwrap();
    again.flush().unwrap();
    assert_eq!(files(&dir).last().unwrap(), "part-00002.parquet");
    let (batches, _) = har_core::recording::read_parquet(&dir.join("part-00000.parquet")).unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 120);

    // A batch of another table is refused, naming the field.
    let err = again
        .write(RecordBatch::new_empty(
            har_core::schema::schema(SchemaName::LogWindows).unwrap(),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("log_node_health"), "{err}");
}

/// A hand-built live-like chunk of one device (1 channel per sample).
fn chunk(device: &str, modality: &str, channels: u32, timestamps_ns: Vec<i64>) -> SensorChunk {
    SensorChunk {
        source: har_core::streams::Source {
            device_id: device.into(),
            subject_id: "s".into(),
            session_id: "live".into(),
        },
        modality: modality.into(),
        chunk_seq: 0,
        sample_rate_hz: 50.0,
        channel_count: channels,
        values: vec![0.5; timestamps_ns.len() * channels as usize],
        timestamps_ns,
        labels: None,
        ingest_ts_ns: 0,
    }
}

#[test]
fn hostile_timestamps_neither_panic_nor_allocate_and_the_device_recovers() {
    let mut pre = StreamingPreprocessor::new(spec(&[("a", 1)], 10, 10)).unwrap();
    let period = 20_000_000;
    let steady = |from: i64, n: i64| (0..n).map(|i| from + i * period).collect::<Vec<_>>();
    // A device near the bottom of the i64 range, a glitch to its top, more after it.
    let start = i64::MIN + 5;
    let windows = pre.push(&chunk("d", "a", 1, steady(start, 25))).unwrap();
    assert_eq!(windows.len(), 2);
    let windows = pre
        .push(&chunk("d", "a", 1, vec![i64::MAX - 3 * period, i64::MAX]))
        .unwrap();
    assert!(windows.is_empty());
    assert_eq!(pre.counters.time_jumps, 1, "the jump restarts the track");
    // Time that does not advance any more is counted, never looped over.
    let windows = pre.push(&chunk("d", "a", 1, vec![i64::MAX, 0])).unwrap();
    assert!(windows.is_empty());
    assert_eq!(pre.counters.out_of_order_samples, 2);

    // A second device with a long pause (one hour) resumes windowing after it.
    let hour = 3_600_000_000_000;
    pre.push(&chunk("e", "a", 1, steady(0, 20))).unwrap();
    let after = pre.push(&chunk("e", "a", 1, steady(hour, 40))).unwrap();
    assert!(after.len() >= 3, "{} windows after the pause", after.len());
    assert!(after.iter().all(|w| w.key.start_ns >= hour));
    assert_eq!(pre.counters.time_jumps, 2);
}

#[test]
fn a_device_with_the_wrong_channel_count_is_rejected_alone() {
    let mut pre = StreamingPreprocessor::new(spec(&[("a", 3)], 10, 10)).unwrap();
    let ts = (0..10).map(|i| i * 20_000_000).collect::<Vec<_>>();
    let err = pre.push(&chunk("bad", "a", 1, ts.clone())).unwrap_err();
    assert!(
        err.is_bad_input() && err.to_string().contains("device `bad`"),
        "{err}"
    );
    let windows = pre.push(&chunk("good", "a", 3, ts)).unwrap();
    assert_eq!(windows.len(), 1);
    assert_eq!(pre.device_count(), 1, "the rejected device holds no state");
}
