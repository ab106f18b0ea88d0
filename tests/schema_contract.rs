//! The files in `schemas/` are the single source of truth: every file is known to the code,
//! every schema the code uses comes from a file, and batches the code builds match them.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};
use har_core::schema::{build_batch, check_batch, parse_type, schema, schema_file, SchemaName};
use har_core::streams::{
    PredictionMessage, SensorChunk, Source, StreamMessage, TokenMessage, WindowKey, WindowMessage,
};

#[test]
fn every_schema_file_is_registered_and_every_registered_schema_has_a_file() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let in_code: BTreeSet<String> = SchemaName::ALL
        .iter()
        .map(|s| s.file_stem().to_string())
        .collect();
    assert_eq!(on_disk, in_code);
    for name in SchemaName::ALL {
        // The compiled-in text equals the file on disk.
        let disk = std::fs::read_to_string(dir.join(format!("{}.json", name.file_stem()))).unwrap();
        let file = schema_file(name).unwrap();
        let reparsed: serde_json::Value = serde_json::from_str(&disk).unwrap();
        assert_eq!(
            reparsed["fields"].as_array().unwrap().len(),
            file.fields.len(),
            "{name:?}"
        );
        let arrow = schema(name).unwrap();
        assert_eq!(arrow.metadata()["schema_name"], name.file_stem());
        for (field, spec) in arrow.fields().iter().zip(&file.fields) {
            assert_eq!(field.name(), &spec.name);
            assert!(
                !spec.description.is_empty(),
                "{}.{} has no description",
                name.file_stem(),
                spec.name
            );
            assert_eq!(field.metadata().get("unit"), spec.unit.as_ref());
        }
    }
}

#[test]
fn type_grammar_rejects_unknown_types() {
    assert!(parse_type("list<float32>").is_some());
    assert!(parse_type("list<list<int64>>").is_some());
    assert!(parse_type("float16").is_none());
    assert!(parse_type("list<float32").is_none());
}

#[test]
fn build_batch_rejects_columns_that_disagree_with_the_file() {
    // recording_labels is start_ns, end_ns, label, label_name.
    let good: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![0])),
        Arc::new(Int64Array::from(vec![10])),
        Arc::new(Int32Array::from(vec![1])),
        Arc::new(StringArray::from(vec!["WALKING"])),
    ];
    assert!(build_batch(SchemaName::RecordingLabels, good.clone()).is_ok());
    let mut wrong_type = good.clone();
    wrong_type[2] = Arc::new(Int64Array::from(vec![1]));
    let err = build_batch(SchemaName::RecordingLabels, wrong_type)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("recording_labels") && err.contains("`label`"),
        "{err}"
    );
    let err = build_batch(SchemaName::RecordingLabels, good[..3].to_vec())
        .unwrap_err()
        .to_string();
    assert!(err.contains("3 columns"), "{err}");
}

fn source() -> Source {
    Source {
        device_id: "dev1".into(),
        subject_id: "7".into(),
        session_id: "s".into(),
    }
}

fn key(label: Option<i32>) -> WindowKey {
    WindowKey {
        window_id: 1,
        source: source(),
        modality: "acc".into(),
        start_ns: 0,
        end_ns: 20,
        label,
        ingest_ts_ns: 1,
        preprocess_ts_ns: 2,
    }
}

#[test]
fn stream_messages_round_trip_through_their_schemas() {
    let chunks = vec![
        SensorChunk {
            source: source(),
            modality: "acc".into(),
            chunk_seq: 3,
            sample_rate_hz: 50.0,
            channel_count: 3,
            timestamps_ns: vec![0, 20_000_000],
            values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            labels: Some(vec![1, 1]),
            ingest_ts_ns: 99,
        },
        SensorChunk {
            labels: None,
            modality: "gyro".into(),
            ..SensorChunk {
                source: source(),
                modality: String::new(),
                chunk_seq: 0,
                sample_rate_hz: 50.0,
                channel_count: 1,
                timestamps_ns: vec![5],
                values: vec![f32::MIN],
                labels: None,
                ingest_ts_ns: 1,
            }
        },
    ];
    let batch = SensorChunk::to_batch(&chunks).unwrap();
    assert_eq!(batch.schema(), schema(SchemaName::SensorChunk).unwrap());
    assert_eq!(SensorChunk::from_batch(&batch).unwrap(), chunks);

    let windows = vec![WindowMessage {
        key: key(None),
        num_steps: 2,
        num_channels: 2,
        values: vec![0.1, 0.2, 0.3, 0.4],
    }];
    assert_eq!(
        WindowMessage::from_batch(&WindowMessage::to_batch(&windows).unwrap()).unwrap(),
        windows
    );

    let tokens = vec![TokenMessage {
        key: key(Some(4)),
        num_tokens: 1,
        dim: 3,
        values: vec![1.0, 2.0, 3.0],
        encode_ts_ns: 3,
    }];
    assert_eq!(
        TokenMessage::from_batch(&TokenMessage::to_batch(&tokens).unwrap()).unwrap(),
        tokens
    );

    let predictions = vec![PredictionMessage {
        window_id: 1,
        source: source(),
        start_ns: 0,
        end_ns: 20,
        predicted_label: 2,
        predicted_name: "WALKING_UPSTAIRS".into(),
        confidence: 0.9,
        probabilities: vec![0.05, 0.9, 0.05],
        true_label: Some(2),
        model_id: "student@abc".into(),
        modalities_present: vec!["acc".into()],
        degraded: true,
        ingest_ts_ns: 1,
        preprocess_ts_ns: 2,
        encode_ts_ns: 3,
        fuse_ts_ns: 4,
    }];
    let batch = PredictionMessage::to_batch(&predictions).unwrap();
    check_batch(SchemaName::Prediction, &batch).unwrap();
    assert_eq!(PredictionMessage::from_batch(&batch).unwrap(), predictions);
}

#[test]
fn messages_with_inconsistent_shapes_are_rejected_naming_the_field() {
    let bad = WindowMessage {
        key: key(None),
        num_steps: 2,
        num_channels: 3,
        values: vec![0.0; 5],
    };
    let err = WindowMessage::to_batch(&[bad]).unwrap_err().to_string();
    assert!(
        err.contains("window") && err.contains("values") && err.contains("expected 6"),
        "{err}"
    );
}

#[test]
fn a_batch_of_another_stream_is_rejected_naming_the_missing_field() {
    let windows = WindowMessage::to_batch(&[]).unwrap();
    let err = TokenMessage::from_batch(&windows).unwrap_err().to_string();
    assert!(
        err.contains("token_embedding") && err.contains("missing"),
        "{err}"
    );
}
