//! preprocess: streaming alignment, windowing and normalisation per device
//! (`har_dataflow::windower`). Input `chunks` (`sensor_chunk`); one output per model modality,
//! named after it (`window` batches), and `health`. Devices are isolated: a chunk that breaks
//! the contract (a channel count the model does not take, a bad rate) is rejected and counted,
//! and every other chunk of the same message still goes through.
//!
//! Settings (env): `HAR_MODEL` (model directory: its card and normaliser are read — modalities,
//! window, statistics — never its weights), `HAR_STRIDE` (grid samples between windows;
//! default: the model's training stride).

use std::collections::BTreeMap;
use std::path::PathBuf;

use har_core::streams::{SensorChunk, WindowMessage};
use har_dataflow::inference::read_streaming_spec;
use har_dataflow::runtime::{
    Input, LogicCounts, NodeLogic, NodeRuntime, Outputs, Rejections, RunSummary,
};
use har_dataflow::settings::{self, now_ns};
use har_dataflow::windower::StreamingPreprocessor;
use har_dataflow::Result;

/// The node's settings, read once at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Model directory (card and normaliser).
    pub model: PathBuf,
    /// Grid samples between windows (`None`: the model's training stride).
    pub stride: Option<usize>,
}

impl Settings {
    /// Reads `HAR_MODEL` and `HAR_STRIDE`.
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            model: settings::path("HAR_MODEL")?,
            stride: settings::var("HAR_STRIDE")
                .map(|_| settings::parse_or::<usize>("HAR_STRIDE", 0))
                .transpose()?,
        })
    }
}

/// Chunks in, windows out, per device and modality.
pub struct Preprocess {
    preprocessor: StreamingPreprocessor,
    rejected: Rejections,
}

impl Preprocess {
    /// Reads the model's streaming spec (no weights).
    pub fn new(settings: &Settings) -> Result<Self> {
        let spec = read_streaming_spec(&settings.model, settings.stride)?;
        Ok(Self {
            preprocessor: StreamingPreprocessor::new(spec)?,
            rejected: Rejections::new("chunk"),
        })
    }
}

impl NodeLogic for Preprocess {
    fn on_input(&mut self, out: &mut Outputs<'_>, input: Input<'_>) -> Result<()> {
        let chunks: Vec<SensorChunk> = input.rows()?;
        out.received(chunks.len());
        let mut by_modality: BTreeMap<String, Vec<WindowMessage>> = BTreeMap::new();
        for chunk in &chunks {
            let windows = self.rejected.check(self.preprocessor.push(chunk))?;
            for window in windows.into_iter().flatten() {
                by_modality
                    .entry(window.key.modality.clone())
                    .or_default()
                    .push(window);
            }
        }
        let now = now_ns();
        for (modality, mut windows) in by_modality {
            windows
                .iter_mut()
                .for_each(|w| w.key.preprocess_ts_ns = now);
            out.send(&modality, &windows)?;
        }
        Ok(())
    }

    fn counts(&self) -> LogicCounts {
        let c = self.preprocessor.counters;
        LogicCounts {
            dropped: self.rejected.count + c.unknown_modality_chunks + c.out_of_order_samples,
            degraded: c.skipped_windows + c.time_jumps,
            backlog: 0,
        }
    }

    fn finish(&mut self, _out: &mut Outputs<'_>) -> Result<()> {
        tracing::info!(
            devices = self.preprocessor.device_count(),
            counters = ?self.preprocessor.counters,
            rejected_chunks = self.rejected.count,
            "preprocess finished"
        );
        Ok(())
    }
}

/// Runs the node until its input closes.
pub fn run(runtime: NodeRuntime, settings: &Settings) -> Result<RunSummary> {
    runtime.run(&mut Preprocess::new(settings)?)
}
