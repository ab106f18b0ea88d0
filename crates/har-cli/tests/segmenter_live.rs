//! The segmentation model in the graph: a `dora run` of `dataflows/hapt-segmenter.yml` on the
//! shipped HAPT recording logs, in its `segments` table, exactly the segments of the same
//! model run offline over the whole recording (the runtime's forward, which equals candle's —
//! `har-model/tests/segmenter_equivalence.rs`) with the same segment rule; the rows name the
//! model, keep the schema, cover the recording once, and the node reports nothing degraded.
//! Needs the dora CLI and the node binaries, as `tests/dataflow.rs`.

use har_core::dataset::Dataset;
use har_core::schema::SchemaName;
use har_core::segments::{SegmentRule, Segmenter as SegmentRuleState, Span};
use har_model::segmenter::train::read_recordings;
use har_runtime::segmenter::Segmenter;

mod common;
use common::flow::{assert_table_schema, repo, Flow, DORA};

const RULE: SegmentRule = SegmentRule {
    min_duration_ns: 1_000_000_000,
    max_gap_ns: 5_000_000_000,
};

/// The model's segments of the sample recording, offline: (start, end, label, steps).
fn offline_segments() -> Vec<(i64, i64, i64, u64)> {
    let (card, model) = Segmenter::read_dir(&repo().join("models/hapt-segmenter")).unwrap();
    let dataset = Dataset::open(&repo().join("samples/hapt-user02")).unwrap();
    let (recordings, _) = read_recordings(
        &dataset,
        dataset.manifest.recordings[0].split,
        None,
        card.config.patch_len,
        &card.classes,
        Some(&card.standardiser),
    )
    .unwrap();
    let k = card.config.num_classes;
    let mut rule = SegmentRuleState::new(RULE);
    let mut segments = Vec::new();
    for seq in &recordings.sequences {
        let logits = model.forward(&seq.inputs).unwrap();
        for (row, &start) in logits.chunks_exact(k).zip(&seq.step_start_ns) {
            let (best, _) = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap();
            segments.extend(rule.push(Span {
                start_ns: start,
                end_ns: start + seq.step_ns,
                label: card.classes[best].id,
                confidence: 1.0,
            }));
        }
    }
    segments.extend(rule.finish());
    segments
        .iter()
        .map(|s| (s.start_ns, s.end_ns, s.label as i64, s.spans as u64))
        .collect()
}

#[test]
fn the_segmentation_model_in_the_graph_logs_its_offline_segments() {
    let _one = DORA.lock().unwrap_or_else(|e| e.into_inner());
    let flow = Flow::from_yml(
        "dataflows/hapt-segmenter.yml",
        &[("HAR_SEGMENT_MIN_S", "1"), ("HAR_SEGMENT_MAX_GAP_S", "5")],
    );
    flow.run();

    let logged = flow.sql(
        "SELECT segment_id, start_ns, end_ns, label, windows, model_id FROM segments \
         ORDER BY device_id, segment_id",
    );
    let got: Vec<(i64, i64, i64, u64)> = logged
        .iter()
        .map(|r| {
            (
                r["start_ns"].as_i64().unwrap(),
                r["end_ns"].as_i64().unwrap(),
                r["label"].as_i64().unwrap(),
                r["windows"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = offline_segments();
    assert!(want.len() >= 5, "{want:?}");
    assert_eq!(
        got, want,
        "the graph's segments differ from the offline model"
    );
    for (i, row) in logged.iter().enumerate() {
        assert_eq!(row["segment_id"].as_u64().unwrap(), i as u64);
        let model = row["model_id"].as_str().unwrap();
        assert!(model.starts_with("hapt-segmenter@"), "{model}");
    }

    assert_table_schema(&flow, "segments", SchemaName::LogSegments);

    // The segments cover the 6-minute recording once.
    let minutes = flow.sql("SELECT sum(duration_s) / 60 AS minutes FROM segments");
    let total = minutes[0]["minutes"].as_f64().unwrap();
    assert!((5.8..6.1).contains(&total), "{total} minutes");

    // Nothing dropped or degraded on a clean recording.
    let health = flow.sql(
        "SELECT max(dropped) AS dropped, max(degraded) AS degraded, max(received) AS received \
         FROM node_health WHERE node = 'segment'",
    );
    assert_eq!(health[0]["dropped"].as_u64(), Some(0), "{health:?}");
    assert_eq!(health[0]["degraded"].as_u64(), Some(0), "{health:?}");
    assert!(health[0]["received"].as_u64().unwrap() > 1000, "{health:?}");
}
