//! segment: turns each device's predictions into activity segments as they stream
//! (`har_dataflow::segmenting`, the rule of `har_core::segments`) and sends them on `segments`
//! as `log_segments` rows, which the log node writes to the `segments` table. A segment is
//! sent when the next one is confirmed (`HAR_SEGMENT_MIN_S` after its end, plus the smoothing
//! delay), at a gap, or at the end of the stream.
//!
//! Settings (env): `HAR_SEGMENT_MIN_S` (shortest run that becomes a segment, default 1),
//! `HAR_SEGMENT_SMOOTH` (majority smoothing over this many windows, default 9),
//! `HAR_SEGMENT_MAX_GAP_S` (longest gap a segment bridges, default 5).

use har_core::schema::SchemaName;
use har_core::segments::SegmentRule;
use har_core::streams::PredictionMessage;
use har_dataflow::runtime::{Input, NodeLogic, NodeRuntime, Outputs, RunSummary};
use har_dataflow::segmenting::{segment_batch, DeviceSegments, SegmentRow, SegmentSettings};
use har_dataflow::settings::{self, now_ns};
use har_dataflow::{DataflowError, Result};

/// The node's settings, read once at start.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Rule and smoothing.
    pub segments: SegmentSettings,
}

impl Settings {
    /// Reads `HAR_SEGMENT_MIN_S`, `HAR_SEGMENT_SMOOTH` and `HAR_SEGMENT_MAX_GAP_S`.
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
        if rows.is_empty() {
            return Ok(());
        }
        let batch = segment_batch(&self.run_id, rows, now_ns())?;
        out.send_batch("segments", SchemaName::LogSegments, batch)
    }
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

/// Runs the node until its input closes.
pub fn run(runtime: NodeRuntime, settings: &Settings) -> Result<RunSummary> {
    let run_id = runtime.run_id();
    runtime.run(&mut Segment::new(&run_id, settings))
}
