//! The `segments` table of a `dora run` on the shipped HAPT recording: the segment node's
//! online segments equal the offline segmenter over the run's own `predictions` table, the
//! table keeps its schema (`schemas/log_segments.json`), and the README's "minutes per
//! activity per subject" query answers. Needs the dora CLI and the node binaries, as
//! `tests/dataflow.rs`.

use har_core::schema::SchemaName;
use har_core::segments::SegmentRule;
use har_core::streams::{PredictionMessage, Source};
use har_dataflow::segmenting::{DeviceSegments, SegmentSettings};
use serde_json::Value;

mod common;
use common::flow::{assert_table_schema, Flow, DORA};

fn prediction(row: &Value) -> PredictionMessage {
    let text = |k: &str| row[k].as_str().unwrap().to_string();
    let int = |k: &str| row[k].as_i64().unwrap();
    PredictionMessage {
        window_id: row["window_id"].as_u64().unwrap(),
        source: Source {
            device_id: text("device_id"),
            subject_id: text("subject_id"),
            session_id: text("session_id"),
        },
        start_ns: int("start_ns"),
        end_ns: int("end_ns"),
        predicted_label: int("predicted_label") as i32,
        predicted_name: text("predicted_name"),
        confidence: row["confidence"].as_f64().unwrap() as f32,
        probabilities: Vec::new(),
        true_label: None,
        model_id: text("model_id"),
        modalities_present: Vec::new(),
        degraded: false,
        ingest_ts_ns: 0,
        preprocess_ts_ns: 0,
        encode_ts_ns: 0,
        fuse_ts_ns: 0,
    }
}

#[test]
fn online_segments_equal_the_offline_segmenter_over_the_logged_predictions() {
    let _one = DORA.lock().unwrap_or_else(|e| e.into_inner());
    let flow = Flow::new(&[
        ("HAR_SEGMENT_MIN_S", "1"),
        ("HAR_SEGMENT_SMOOTH", "5"),
        ("HAR_SEGMENT_MAX_GAP_S", "5"),
    ]);
    flow.run();

    let predictions = flow.sql(
        "SELECT device_id, subject_id, session_id, window_id, start_ns, end_ns, predicted_label, \
         predicted_name, confidence, model_id FROM predictions ORDER BY device_id, window_id",
    );
    assert!(predictions.len() > 100);
    let mut offline = DeviceSegments::new(SegmentSettings {
        rule: SegmentRule {
            min_duration_ns: 1_000_000_000,
            max_gap_ns: 5_000_000_000,
        },
        smooth: 5,
    });
    let mut expected = Vec::new();
    for row in &predictions {
        expected.extend(offline.push(&prediction(row)));
    }
    expected.extend(offline.finish());
    let logged = flow.sql(
        "SELECT segment_id, start_ns, end_ns, label, name, windows, confidence FROM segments \
         ORDER BY device_id, segment_id",
    );
    let summary = |s: &har_dataflow::segmenting::SegmentRow| {
        (
            s.segment_id,
            s.segment.start_ns,
            s.segment.end_ns,
            s.segment.label as i64,
            s.name.clone(),
            s.segment.spans as u64,
        )
    };
    let got: Vec<_> = logged
        .iter()
        .map(|r| {
            (
                r["segment_id"].as_u64().unwrap(),
                r["start_ns"].as_i64().unwrap(),
                r["end_ns"].as_i64().unwrap(),
                r["label"].as_i64().unwrap(),
                r["name"].as_str().unwrap().to_string(),
                r["windows"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<_> = expected.iter().map(summary).collect();
    assert_eq!(
        got, want,
        "online segments differ from the offline segmenter"
    );
    assert!(got.len() >= 5, "{got:?}");
    // Every prediction is in exactly one segment.
    let windows: u64 = got.iter().map(|g| g.5).sum();
    assert_eq!(windows, predictions.len() as u64);

    // The table keeps its schema.
    assert_table_schema(&flow, "segments", SchemaName::LogSegments);

    // Minutes per activity per subject: the segments cover the recording (6 min) once.
    let minutes = flow.sql(
        "SELECT subject_id, name, sum(duration_s) / 60 AS minutes FROM segments \
         GROUP BY subject_id, name ORDER BY minutes DESC",
    );
    let total: f64 = minutes.iter().map(|r| r["minutes"].as_f64().unwrap()).sum();
    assert!((5.5..6.2).contains(&total), "{total} minutes: {minutes:?}");
}
