//! Predictions to activity segments, per device, as they stream (the segment node's logic):
//! each window's label speaks for the span around its centre (half the spacing to the
//! previous window on each side), labels are majority-smoothed online, and the segment rule
//! of [`har_core::segments`] closes segments. [`spans_of`] and [`DeviceSegments`] are the
//! same code offline and online, so a run's `segments` table can be checked against its
//! `predictions` table.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    UInt64Array,
};
use har_core::schema::{build_batch, SchemaName};
use har_core::segments::{OnlineMajority, Segment, SegmentRule, Segmenter, Span};
use har_core::streams::{PredictionMessage, Source};

use crate::error::Result;

/// The segment node's rule and smoothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentSettings {
    /// The segment rule.
    pub rule: SegmentRule,
    /// Majority smoothing over this many windows (1: none; the output is `k / 2` windows late).
    pub smooth: usize,
}

/// One closed segment of one device, ready to log.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRow {
    /// Producer.
    pub source: Source,
    /// Segment number per device.
    pub segment_id: u64,
    /// The segment.
    pub segment: Segment,
    /// Its label's name.
    pub name: String,
    /// The latest model id among its predictions.
    pub model_id: String,
}

/// The span a prediction speaks for: centred on its window, as wide as the spacing to the
/// previous window of the device (`previous_centre`), or half the window for the first.
pub fn span_of(p: &PredictionMessage, previous_centre: Option<i64>) -> Span {
    let centre = p.start_ns / 2 + p.end_ns / 2;
    let width = previous_centre
        .map(|c| centre.saturating_sub(c))
        .filter(|w| *w > 0)
        .unwrap_or_else(|| p.end_ns.saturating_sub(p.start_ns) / 2)
        .max(1);
    let start_ns = centre.saturating_sub(width / 2);
    Span {
        start_ns,
        end_ns: start_ns.saturating_add(width),
        label: p.predicted_label,
        confidence: p.confidence,
    }
}

/// The spans of one device's predictions in window order (what the node computes).
pub fn spans_of(predictions: &[PredictionMessage]) -> Vec<Span> {
    let mut previous = None;
    predictions
        .iter()
        .map(|p| {
            let span = span_of(p, previous);
            previous = Some(p.start_ns / 2 + p.end_ns / 2);
            span
        })
        .collect()
}

/// One device's state.
#[derive(Debug)]
struct Device {
    source: Source,
    previous_centre: Option<i64>,
    smoother: OnlineMajority<Span>,
    segmenter: Segmenter,
    next_id: u64,
    model_id: String,
}

/// Every device's segmenter.
#[derive(Debug)]
pub struct DeviceSegments {
    settings: SegmentSettings,
    devices: HashMap<String, Device>,
    names: BTreeMap<i32, String>,
}

impl DeviceSegments {
    /// No device yet.
    pub fn new(settings: SegmentSettings) -> Self {
        Self {
            settings,
            devices: HashMap::new(),
            names: BTreeMap::new(),
        }
    }

    /// Takes a device's next prediction (in window order per device); returns the segments
    /// it closed.
    pub fn push(&mut self, p: &PredictionMessage) -> Vec<SegmentRow> {
        self.names
            .entry(p.predicted_label)
            .or_insert_with(|| p.predicted_name.clone());
        let settings = self.settings;
        let device = self
            .devices
            .entry(p.source.device_id.clone())
            .or_insert_with(|| Device {
                source: p.source.clone(),
                previous_centre: None,
                smoother: OnlineMajority::new(settings.smooth),
                segmenter: Segmenter::new(settings.rule),
                next_id: 0,
                model_id: String::new(),
            });
        device.model_id.clone_from(&p.model_id);
        let span = span_of(p, device.previous_centre);
        device.previous_centre = Some(p.start_ns / 2 + p.end_ns / 2);
        let released = device.smoother.push(span, span.label);
        let closed: Vec<Segment> = released
            .into_iter()
            .flat_map(|(span, label)| device.segmenter.push(Span { label, ..span }))
            .collect();
        closed
            .into_iter()
            .map(|s| Self::row(device, &self.names, s))
            .collect()
    }

    /// Closes every device's open segment (the end of the stream).
    pub fn finish(&mut self) -> Vec<SegmentRow> {
        let mut ids: Vec<String> = self.devices.keys().cloned().collect();
        ids.sort();
        let mut rows = Vec::new();
        for id in ids {
            let device = self.devices.get_mut(&id).expect("listed device");
            let mut closed: Vec<Segment> = device
                .smoother
                .finish()
                .into_iter()
                .flat_map(|(span, label)| device.segmenter.push(Span { label, ..span }))
                .collect();
            closed.extend(device.segmenter.finish());
            rows.extend(
                closed
                    .into_iter()
                    .map(|s| Self::row(device, &self.names, s)),
            );
        }
        rows
    }

    fn row(device: &mut Device, names: &BTreeMap<i32, String>, segment: Segment) -> SegmentRow {
        device.next_id += 1;
        SegmentRow {
            source: device.source.clone(),
            segment_id: device.next_id - 1,
            name: names
                .get(&segment.label)
                .cloned()
                .unwrap_or_else(|| segment.label.to_string()),
            segment,
            model_id: device.model_id.clone(),
        }
    }
}

/// `log_segments` rows of `run_id`, stamped `closed_ts_ns`.
pub fn segment_batch(run_id: &str, rows: &[SegmentRow], closed_ts_ns: i64) -> Result<RecordBatch> {
    let strings = |f: &dyn Fn(&SegmentRow) -> &str| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    Ok(build_batch(
        SchemaName::LogSegments,
        vec![
            Arc::new(StringArray::from(vec![run_id; rows.len()])),
            strings(&|r| r.source.device_id.as_str()),
            strings(&|r| r.source.subject_id.as_str()),
            strings(&|r| r.source.session_id.as_str()),
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|r| r.segment_id),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.segment.start_ns),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.segment.end_ns),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.segment.duration_ns() as f64 / 1e9),
            )),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| r.segment.label),
            )),
            strings(&|r| r.name.as_str()),
            Arc::new(Float32Array::from_iter_values(
                rows.iter().map(|r| r.segment.confidence),
            )),
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|r| r.segment.spans as u64),
            )),
            strings(&|r| r.model_id.as_str()),
            Arc::new(Int64Array::from(vec![closed_ts_ns; rows.len()])),
        ],
    )?)
}
