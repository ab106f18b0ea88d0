//! The recording format on disk: round trips, label intervals, and clear errors on bad files.

use std::path::Path;

use har_core::dataset::{ClassInfo, Dataset, DatasetManifest, DatasetWriter, Split};
use har_core::recording::{
    intervals_from_sample_labels, LabelInterval, ModalityInfo, ModalityStream, Recording,
    UNLABELLED,
};

fn recording() -> Recording {
    let ts: Vec<i64> = (0..6).map(|i| i * 20_000_000).collect();
    Recording {
        id: "rec1".into(),
        subject_id: "3".into(),
        session_id: "a".into(),
        streams: vec![
            ModalityStream {
                info: ModalityInfo::inertial("acc", 50.0, "g", &["x", "y", "z"]),
                timestamps_ns: ts.clone(),
                values: (0..18).map(|v| v as f32 * 0.5).collect(),
            },
            ModalityStream {
                info: ModalityInfo::inertial("gyro", 50.0, "rad/s", &["x", "y", "z"]),
                timestamps_ns: ts.clone(),
                values: (0..18)
                    .map(|v| if v == 4 { f32::NAN } else { -(v as f32) })
                    .collect(),
            },
        ],
        labels: intervals_from_sample_labels(&ts, &[UNLABELLED, 1, 1, 2, 2, UNLABELLED], 20e6),
    }
}

fn manifest() -> DatasetManifest {
    DatasetManifest {
        name: "tiny".into(),
        description: "test".into(),
        licence: "none".into(),
        citation: "none".into(),
        synthetic: true,
        source: None,
        classes: vec![
            ClassInfo {
                id: 1,
                name: "one".into(),
            },
            ClassInfo {
                id: 2,
                name: "two".into(),
            },
        ],
        modalities: recording().streams.iter().map(|s| s.info.clone()).collect(),
        recordings: vec![],
    }
}

#[test]
fn sample_labels_become_intervals_and_back() {
    let rec = recording();
    assert_eq!(
        rec.labels,
        vec![
            LabelInterval {
                start_ns: 20_000_000,
                end_ns: 60_000_000,
                label: 1
            },
            LabelInterval {
                start_ns: 60_000_000,
                end_ns: 100_000_000,
                label: 2
            },
        ]
    );
    let ts = &rec.streams[0].timestamps_ns;
    assert_eq!(rec.labels_at(ts), vec![UNLABELLED, 1, 1, 2, 2, UNLABELLED]);
}

#[test]
fn a_dataset_round_trips_through_parquet_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = DatasetWriter::create(dir.path(), manifest()).unwrap();
    writer.add(&recording(), Split::Test).unwrap();
    let written = writer.finish().unwrap();
    let dataset = Dataset::open(dir.path()).unwrap();
    assert_eq!(dataset.manifest, written.manifest);
    assert_eq!(dataset.manifest.recordings[0].samples["acc"], 6);
    let back = dataset.read(&dataset.manifest.recordings[0]).unwrap();
    let original = recording();
    assert_eq!(back.id, original.id);
    assert_eq!(back.labels, original.labels);
    for (a, b) in back.streams.iter().zip(&original.streams) {
        assert_eq!(a.info, b.info);
        assert_eq!(a.timestamps_ns, b.timestamps_ns);
        // NaN (missing value) survives the round trip.
        assert!(a
            .values
            .iter()
            .zip(&b.values)
            .all(|(x, y)| x == y || (x.is_nan() && y.is_nan())));
    }
}

#[test]
fn streams_come_back_in_the_manifest_order_not_file_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = manifest();
    m.modalities.reverse(); // gyro before acc, unlike the file names
    let mut rec = recording();
    rec.streams.reverse();
    let mut writer = DatasetWriter::create(dir.path(), m).unwrap();
    writer.add(&rec, Split::Train).unwrap();
    let dataset = writer.finish().unwrap();
    let back = dataset.read(&dataset.manifest.recordings[0]).unwrap();
    let names: Vec<&str> = back.streams.iter().map(|s| s.info.name.as_str()).collect();
    assert_eq!(names, ["gyro", "acc"]);
    std::fs::remove_file(dir.path().join("recordings/rec1/gyro.parquet")).unwrap();
    let err = dataset
        .read(&dataset.manifest.recordings[0])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rec1") && err.contains("gyro") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn a_recording_missing_a_dataset_modality_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = DatasetWriter::create(dir.path(), manifest()).unwrap();
    let mut rec = recording();
    rec.streams.pop();
    let err = writer.add(&rec, Split::Train).unwrap_err().to_string();
    assert!(err.contains("rec1") && err.contains("gyro"), "{err}");
}

#[test]
fn non_monotonic_timestamps_are_an_error_naming_stream_and_sample() {
    let mut rec = recording();
    rec.streams[1].timestamps_ns.swap(2, 3);
    let err = rec.validate().unwrap_err().to_string();
    assert!(
        err.contains("rec1/gyro") && err.contains("timestamp_ns") && err.contains("sample 3"),
        "{err}"
    );
}

#[test]
fn wrong_value_count_is_an_error() {
    let mut rec = recording();
    rec.streams[0].values.pop();
    let err = rec.validate().unwrap_err().to_string();
    assert!(
        err.contains("rec1/acc") && err.contains("17 values"),
        "{err}"
    );
}

#[test]
fn truncated_and_corrupt_parquet_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let folder = recording().write(dir.path(), &|l| format!("c{l}")).unwrap();
    let acc = folder.join("acc.parquet");
    let bytes = std::fs::read(&acc).unwrap();
    std::fs::write(&acc, &bytes[..bytes.len() / 2]).unwrap();
    let err = Recording::read(&folder).unwrap_err().to_string();
    assert!(err.contains("acc.parquet"), "{err}");
    std::fs::write(&acc, b"not parquet at all").unwrap();
    let err = Recording::read(&folder).unwrap_err().to_string();
    assert!(err.contains("acc.parquet"), "{err}");
}

#[test]
fn a_corrupt_manifest_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dataset.json"), "{\n  \"name\": 3\n}").unwrap();
    let err = Dataset::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("dataset.json") && err.contains("line 2"),
        "{err}"
    );
}

/// The pyarrow snippet of docs/recording-format.md, as written there.
fn docs_snippet() -> String {
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/recording-format.md"),
    )
    .unwrap();
    let after = docs
        .split_once("<!-- pyarrow-snippet -->")
        .expect("the docs mark the snippet")
        .1;
    let code = after.split_once("```python\n").unwrap().1;
    code.split_once("```").unwrap().0.to_string()
}

/// What other tools write reads: the docs' pyarrow snippet (pyarrow defaults: float64 lists
/// whose child is `element`, int64 labels, a millisecond timestamp column, a file without the
/// format's metadata) makes a dataset that opens and reads like an imported one.
#[test]
fn the_pyarrow_snippet_in_the_docs_writes_a_dataset_that_reads() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("my-dataset");
    let script = dir.path().join("snippet.py");
    std::fs::write(&script, docs_snippet()).unwrap();
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&root)
        .output()
        .expect("python3 runs (CI installs pyarrow)");
    assert!(
        out.status.success(),
        "the snippet failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dataset = Dataset::open(&root).unwrap();
    assert_eq!(dataset.manifest.recordings.len(), 3);
    for entry in &dataset.manifest.recordings {
        let recording = dataset.read(entry).unwrap();
        assert_eq!(recording.subject_id, entry.subject_id);
        let names: Vec<&str> = recording
            .streams
            .iter()
            .map(|s| s.info.name.as_str())
            .collect();
        assert_eq!(names, ["acc", "gyro"]);
        for stream in &recording.streams {
            assert_eq!(stream.len(), 500);
            assert_eq!(stream.timestamps_ns[1], 20_000_000, "{}", stream.info.name);
        }
        assert!((recording.streams[0].values[3] - (0.1f32).sin()).abs() < 1e-6);
        assert_eq!(recording.labels.len(), 2);
        assert_eq!(recording.labels[1].label, 2);
    }
}

/// A file without `har.modality` outside a dataset names the key it lacks.
#[test]
fn a_file_without_the_metadata_names_the_missing_key() {
    let dir = tempfile::tempdir().unwrap();
    let rec = recording();
    let folder = rec.write(dir.path(), &|id| format!("c{id}")).unwrap();
    // Rewrite one stream without key-value metadata.
    let path = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap() != "labels.parquet")
        .unwrap();
    let (batches, _) = har_core::recording::read_parquet(&path).unwrap();
    let file = std::fs::File::create(&path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), None).unwrap();
    for batch in &batches {
        writer.write(batch).unwrap();
    }
    writer.close().unwrap();
    let err = Recording::read(&folder).unwrap_err().to_string();
    assert!(
        err.contains("har.modality") && err.contains("missing key"),
        "{err}"
    );
}

#[test]
fn body_parts_are_the_torso_and_the_limbs_for_any_layout() {
    use har_core::recording::SkeletonLayout;
    let layout = |parents: Vec<Option<usize>>| SkeletonLayout {
        joints: (0..parents.len()).map(|j| format!("j{j}")).collect(),
        parents,
        centre_joint: 0,
        torso_top_joint: 0,
    };
    // The generator's 15 joints: pelvis and neck branch; head, two arms, two legs hang.
    let synthetic = har_core::import::synthetic::modalities(&Default::default());
    let har_core::recording::ModalityKind::Skeleton(skeleton) = &synthetic[2].kind else {
        panic!("no skeleton")
    };
    assert_eq!(
        skeleton.body_parts(),
        vec![
            vec![0, 1],
            vec![2],
            vec![3, 4, 5],
            vec![6, 7, 8],
            vec![9, 10, 11],
            vec![12, 13, 14]
        ]
    );
    // Kinect v1 (UTD-MHAD): the spine between hip and shoulder centres is torso.
    let kinect = har_core::import::utd_mhad::modalities()
        .into_iter()
        .find_map(|m| match m.kind {
            har_core::recording::ModalityKind::Skeleton(layout) => Some(layout),
            _ => None,
        })
        .expect("UTD-MHAD has a skeleton");
    assert_eq!(
        kinect.body_parts(),
        vec![
            vec![1, 2, 3],
            vec![0],
            vec![4, 5, 6, 7],
            vec![8, 9, 10, 11],
            vec![12, 13, 14, 15],
            vec![16, 17, 18, 19]
        ]
    );
    // Hostile layouts: cycles, parents out of range, self-parents — each joint exactly once.
    for parents in [
        vec![Some(1), Some(0), Some(1)],
        vec![Some(9), Some(0), Some(2), None],
        vec![],
        vec![None, None],
    ] {
        let n = parents.len();
        let parts = layout(parents.clone()).body_parts();
        let mut seen: Vec<usize> = parts.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..n).collect::<Vec<_>>(), "{parents:?} → {parts:?}");
    }
}
