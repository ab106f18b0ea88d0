//! encode: one instance per modality (same binary, `HAR_MODALITY` set in the yml) running
//! that modality's encoder part of the model. Input `windows` (`window`), outputs `tokens`
//! (`token_embedding`) and `health`. A batch that breaks the `window` contract (wrong channel
//! count, wrong modality) is rejected and counted; the node goes on.
//!
//! Settings (env): `HAR_MODEL` (model directory), `HAR_MODALITY` (modality name).

use std::path::PathBuf;

use har_core::streams::WindowMessage;
use har_dataflow::inference::StreamModel;
use har_dataflow::runtime::{
    Input, LogicCounts, NodeLogic, NodeRuntime, Outputs, Rejections, RunSummary,
};
use har_dataflow::settings::{self, now_ns};
use har_dataflow::{DataflowError, Result};

/// The node's settings, read once at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Model directory.
    pub model: PathBuf,
    /// The modality this instance encodes.
    pub modality: String,
}

impl Settings {
    /// Reads `HAR_MODEL` and `HAR_MODALITY`.
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            model: settings::path("HAR_MODEL")?,
            modality: settings::var("HAR_MODALITY")
                .ok_or_else(|| DataflowError::setting("HAR_MODALITY", "is required"))?,
        })
    }

    /// The node's name in health rows.
    pub fn node_name(&self) -> String {
        format!("encode-{}", self.modality)
    }
}

/// Encodes windows of one modality into tokens.
pub struct Encode {
    model: StreamModel,
    modality: usize,
    rejected: Rejections,
}

impl Encode {
    /// Loads the model and finds the modality.
    pub fn new(settings: &Settings) -> Result<Self> {
        let model = StreamModel::load(&settings.model)?;
        let modality = model.modality_index(&settings.modality)?;
        Ok(Self {
            model,
            modality,
            rejected: Rejections::new("window"),
        })
    }
}

impl NodeLogic for Encode {
    fn on_input(&mut self, out: &mut Outputs<'_>, input: Input<'_>) -> Result<()> {
        let windows: Vec<WindowMessage> = input.rows()?;
        out.received(windows.len());
        let mut tokens = Vec::with_capacity(windows.len());
        for window in &windows {
            // One window at a time: a malformed window is rejected alone.
            let encoded = self
                .model
                .encode(self.modality, std::slice::from_ref(window));
            tokens.extend(self.rejected.check(encoded)?.into_iter().flatten());
        }
        let now = now_ns();
        tokens.iter_mut().for_each(|t| t.encode_ts_ns = now);
        out.send("tokens", &tokens)
    }

    fn counts(&self) -> LogicCounts {
        LogicCounts {
            dropped: self.rejected.count,
            ..LogicCounts::default()
        }
    }
}

/// Runs the node until its input closes.
pub fn run(runtime: NodeRuntime, settings: &Settings) -> Result<RunSummary> {
    runtime.run(&mut Encode::new(settings)?)
}
