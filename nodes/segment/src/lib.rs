//! segment: turns each device's stream into activity segments as it goes and sends them on
//! `segments` as `log_segments` rows, which the log node writes to the `segments` table. Two
//! modes:
//!
//! - **from predictions** (default; input `predictions` of the window classifier,
//!   `har_dataflow::segmenting`): window labels, majority-smoothed, then the segment rule of
//!   `har_core::segments`;
//! - **the segmentation model** (`HAR_SEGMENTER` set; input `chunks` of sensor-ingest,
//!   `har_dataflow::step_segmenting`): the per-step model (seed S10) run step by step on each
//!   device's raw samples, then the same segment rule (no smoothing).
//!
//! A segment is sent when the next one is confirmed (`HAR_SEGMENT_MIN_S` after its end, plus
//! the smoothing delay), at a gap, or at the end of the stream.
//!
//! Settings (env): `HAR_SEGMENT_MIN_S` (shortest run that becomes a segment, default 1),
//! `HAR_SEGMENT_SMOOTH` (majority smoothing over this many windows, default 9; predictions
//! mode), `HAR_SEGMENT_MAX_GAP_S` (longest gap a segment bridges, default 5),
//! `HAR_SEGMENTER` (a segmenter directory: the model mode), `HAR_SEGMENTER_CONTEXT` (steps
//! the model's global attention keeps per device, default 4096 = 11 min at 0.16 s per step;
//! older steps leave it, counted as degraded).

use std::path::PathBuf;

use har_core::schema::SchemaName;
use har_core::segments::SegmentRule;
use har_core::streams::{PredictionMessage, SensorChunk};
use har_dataflow::runtime::{
    Input, LogicCounts, NodeLogic, NodeRuntime, Outputs, Rejections, RunSummary,
};
use har_dataflow::segmenting::{segment_batch, DeviceSegments, SegmentRow, SegmentSettings};
use har_dataflow::settings::{self, now_ns};
use har_dataflow::step_segmenting::{ModelSegments, StepSettings};
use har_dataflow::{DataflowError, Result};

/// The node's settings, read once at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Rule and smoothing.
    pub segments: SegmentSettings,
    /// The segmentation model's directory (the model mode), if set.
    pub segmenter: Option<PathBuf>,
    /// Steps the model's global attention keeps per device.
    pub context_limit: usize,
}

impl Settings {
    /// Reads `HAR_SEGMENT_MIN_S`, `HAR_SEGMENT_SMOOTH`, `HAR_SEGMENT_MAX_GAP_S`,
    /// `HAR_SEGMENTER` and `HAR_SEGMENTER_CONTEXT`.
    pub fn from_env() -> Result<Self> {
        let seconds = |name: &str, default: f64| -> Result<i64> {
            let s: f64 = settings::parse_or(name, default)?;
            if !(0.0..=86_400.0).contains(&s) {
                return Err(DataflowError::setting(
                    name,
                    format!("{s} s is outside 0–86400"),
                ));
            }
            Ok((s * 1e9) as i64)
        };
        let smooth: usize = settings::parse_or("HAR_SEGMENT_SMOOTH", 9)?;
        if smooth == 0 || smooth > 1001 {
            return Err(DataflowError::setting(
                "HAR_SEGMENT_SMOOTH",
                format!("{smooth} windows (1 to 1001)"),
            ));
        }
        Ok(Self {
            segments: SegmentSettings {
                rule: SegmentRule {
                    min_duration_ns: seconds("HAR_SEGMENT_MIN_S", 1.0)?,
                    max_gap_ns: seconds("HAR_SEGMENT_MAX_GAP_S", 5.0)?,
                },
                smooth,
            },
            segmenter: settings::var("HAR_SEGMENTER").map(PathBuf::from),
            context_limit: settings::parse_or("HAR_SEGMENTER_CONTEXT", 4096)?,
        })
    }
}

/// Segments every device's predictions.
pub struct Segment {
    run_id: String,
    devices: DeviceSegments,
}

impl Segment {
    /// A node for run `run_id`.
    pub fn new(run_id: &str, settings: &Settings) -> Self {
        Self {
            run_id: run_id.to_string(),
            devices: DeviceSegments::new(settings.segments),
        }
    }

    fn send(&self, out: &mut Outputs<'_>, rows: &[SegmentRow]) -> Result<()> {
        send(&self.run_id, out, rows)
    }
}

/// Sends `rows` on `segments` (nothing when empty).
fn send(run_id: &str, out: &mut Outputs<'_>, rows: &[SegmentRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let batch = segment_batch(run_id, rows, now_ns())?;
    out.send_batch("segments", SchemaName::LogSegments, batch)
}

impl NodeLogic for Segment {
    fn on_input(&mut self, out: &mut Outputs<'_>, input: Input<'_>) -> Result<()> {
        let predictions: Vec<PredictionMessage> = input.rows()?;
        out.received(predictions.len());
        let rows: Vec<SegmentRow> = predictions
            .iter()
            .flat_map(|p| self.devices.push(p))
            .collect();
        self.send(out, &rows)
    }

    fn finish(&mut self, out: &mut Outputs<'_>) -> Result<()> {
        let rows = self.devices.finish();
        tracing::info!(segments = rows.len(), "segment finished");
        self.send(out, &rows)
    }
}

/// Runs the segmentation model on every device's chunks.
pub struct ModelSegment {
    run_id: String,
    devices: ModelSegments,
    rejected: Rejections,
}

impl ModelSegment {
    /// A node for run `run_id` with the model of `settings.segmenter`.
    pub fn new(run_id: &str, settings: &Settings) -> Result<Self> {
        let dir = settings
            .segmenter
            .as_ref()
            .ok_or_else(|| DataflowError::setting("HAR_SEGMENTER", "is required"))?;
        let step = StepSettings {
            rule: settings.segments.rule,
            context_limit: settings.context_limit,
        };
        let devices = ModelSegments::open(dir, step)?;
        tracing::info!(model = devices.model_id(), "segmentation model loaded");
        Ok(Self {
            run_id: run_id.to_string(),
            devices,
            rejected: Rejections::new("chunk"),
        })
    }
}

impl NodeLogic for ModelSegment {
    fn on_input(&mut self, out: &mut Outputs<'_>, input: Input<'_>) -> Result<()> {
        let chunks: Vec<SensorChunk> = input.rows()?;
        out.received(chunks.len());
        let mut rows = Vec::new();
        for chunk in &chunks {
            if let Some(closed) = self.rejected.check(self.devices.push(chunk))? {
                rows.extend(closed);
            }
        }
        send(&self.run_id, out, &rows)
    }

    fn counts(&self) -> LogicCounts {
        let p = self.devices.preprocess_counters();
        let c = self.devices.counters();
        LogicCounts {
            dropped: self.rejected.count + p.unknown_modality_chunks + p.out_of_order_samples,
            degraded: p.skipped_windows
                + p.time_jumps
                + c.incomplete_steps
                + self.devices.context_dropped(),
            backlog: 0,
        }
    }

    fn finish(&mut self, out: &mut Outputs<'_>) -> Result<()> {
        let rows = self.devices.finish();
        tracing::info!(
            segments = rows.len(),
            counters = ?self.devices.counters(),
            preprocess = ?self.devices.preprocess_counters(),
            context_dropped = self.devices.context_dropped(),
            "segment (model) finished"
        );
        send(&self.run_id, out, &rows)
    }
}

/// Runs the node until its input closes: the model mode when `HAR_SEGMENTER` is set.
pub fn run(runtime: NodeRuntime, settings: &Settings) -> Result<RunSummary> {
    let run_id = runtime.run_id();
    if settings.segmenter.is_some() {
        runtime.run(&mut ModelSegment::new(&run_id, settings)?)
    } else {
        runtime.run(&mut Segment::new(&run_id, settings))
    }
}
