//! fuse: matches the modalities' tokens of each window (`har_dataflow::aligner`), runs
//! temporal mid-fusion and the head, and sends `prediction` batches on `predictions` (plus
//! `health`). Inputs are named after the modalities (`acc: encode-acc/tokens`, …). A window
//! waits at most `HAR_DEADLINE_MS` for its missing modalities, then is predicted with what
//! arrived and flagged `degraded`; a modality whose input closed is no longer waited for. At
//! the end of the stream every window still waiting is predicted and sent.
//!
//! Classes enrolled with `har enroll` (the model directory's `enrolled.json`) are picked up
//! while running: the file is checked every `HAR_ENROLL_POLL_MS` and re-read when it changed;
//! predictions then carry the enrolled classes and a model id naming the enrolment. A file
//! that does not fit the model is logged (naming it) and the classes stay as they were.
//!
//! Settings (env): `HAR_MODEL` (model directory; the shipped student by default in the yml,
//! the teacher is selectable), `HAR_DEADLINE_MS` (default 200), `HAR_MAX_PENDING` (windows
//! waiting at most, default 100000; beyond it the oldest are dropped and counted),
//! `HAR_ENROLL_POLL_MS` (default 1000; 0: never re-read), `HAR_FUSE_EMBEDDINGS` (`true`:
//! also send each window's fused feature on `embeddings` as a one-token `token_embedding`
//! message, modality `fused` — what the scene node reads; default `false`).

use std::path::PathBuf;
use std::time::Duration;

use har_core::streams::{PredictionMessage, TokenMessage};
use har_dataflow::aligner::{Aligner, ReadyWindow};
use har_dataflow::inference::StreamModel;
use har_dataflow::runtime::{
    Input, LogicCounts, NodeLogic, NodeRuntime, Outputs, Rejections, RunSummary,
};
use har_dataflow::settings::{self, now_ns};
use har_dataflow::Result;

/// The node's settings, read once at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Model directory.
    pub model: PathBuf,
    /// Longest a window waits for its missing modalities.
    pub deadline: Duration,
    /// Windows waiting at most.
    pub max_pending: usize,
    /// How often the enrolment file is checked (`None`: never).
    pub enroll_poll: Option<Duration>,
    /// Whether each window's fused feature is sent on `embeddings`.
    pub embeddings: bool,
}

impl Settings {
    /// Reads `HAR_MODEL`, `HAR_DEADLINE_MS`, `HAR_MAX_PENDING`, `HAR_ENROLL_POLL_MS` and
    /// `HAR_FUSE_EMBEDDINGS`.
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            model: settings::path("HAR_MODEL")?,
            deadline: settings::millis("HAR_DEADLINE_MS", 200.0)?,
            max_pending: settings::parse_or("HAR_MAX_PENDING", 100_000)?,
            enroll_poll: Some(settings::millis("HAR_ENROLL_POLL_MS", 1000.0)?)
                .filter(|d| !d.is_zero()),
            embeddings: settings::parse_or("HAR_FUSE_EMBEDDINGS", false)?,
        })
    }
}

/// Aligns tokens per window and predicts.
pub struct Fuse {
    model: StreamModel,
    aligner: Aligner,
    ready: Vec<ReadyWindow>,
    rejected: Rejections,
    enroll_poll: Option<Duration>,
    /// When the enrolment file was last checked.
    enroll_checked: std::time::Instant,
    embeddings: bool,
}

impl Fuse {
    /// Loads the model.
    pub fn new(settings: &Settings) -> Result<Self> {
        let model = StreamModel::load(&settings.model)?;
        let deadline_ns = i64::try_from(settings.deadline.as_nanos()).unwrap_or(i64::MAX);
        let aligner = Aligner::new(model.modality_names(), deadline_ns, settings.max_pending);
        tracing::info!(model = model.model_id(), deadline = ?settings.deadline, "fuse ready");
        Ok(Self {
            model,
            aligner,
            ready: Vec::new(),
            rejected: Rejections::new("window"),
            enroll_poll: settings.enroll_poll,
            enroll_checked: std::time::Instant::now(),
            embeddings: settings.embeddings,
        })
    }

    /// Re-reads the enrolled classes when the poll interval has passed and the file changed.
    fn poll_enrollment(&mut self) {
        let Some(poll) = self.enroll_poll else { return };
        if self.enroll_checked.elapsed() < poll {
            return;
        }
        self.enroll_checked = std::time::Instant::now();
        match self.model.refresh_enrollment() {
            Ok(true) => {
                let names: Vec<&str> = self
                    .model
                    .classes()
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                tracing::info!(model = self.model.model_id(), classes = ?names, "enrolled classes changed");
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "enrolled classes left as they were"),
        }
    }

    /// Predicts the released windows and sends them as one batch.
    fn predict_ready(&mut self, out: &mut Outputs<'_>) -> Result<()> {
        self.poll_enrollment();
        let ready = std::mem::take(&mut self.ready);
        let mut predictions: Vec<PredictionMessage> = Vec::with_capacity(ready.len());
        let mut features: Vec<TokenMessage> = Vec::new();
        for window in &ready {
            let fused = self.model.fuse_embedded(window, self.embeddings);
            if let Some((prediction, feature)) = self.rejected.check(fused)? {
                predictions.push(prediction);
                features.extend(feature);
            }
        }
        let now = now_ns();
        predictions.iter_mut().for_each(|p| p.fuse_ts_ns = now);
        out.send("predictions", &predictions)?;
        if self.embeddings && !features.is_empty() {
            out.send("embeddings", &features)?;
        }
        Ok(())
    }
}

impl NodeLogic for Fuse {
    fn on_input(&mut self, out: &mut Outputs<'_>, input: Input<'_>) -> Result<()> {
        let tokens: Vec<TokenMessage> = input.rows()?;
        out.received(tokens.len());
        let now = now_ns();
        for t in tokens {
            self.ready.extend(self.aligner.insert(t, now));
        }
        Ok(())
    }

    fn on_input_closed(&mut self, _out: &mut Outputs<'_>, input: &str) -> Result<()> {
        tracing::info!(input, "modality stream closed: no longer waited for");
        self.ready.extend(self.aligner.close(input));
        Ok(())
    }

    fn on_tick(&mut self, out: &mut Outputs<'_>) -> Result<()> {
        self.ready.extend(self.aligner.expire(now_ns()));
        self.predict_ready(out)
    }

    fn next_wake(&self) -> Option<Duration> {
        self.aligner
            .next_deadline()
            .map(|d| Duration::from_nanos(d.saturating_sub(now_ns()).max(0) as u64))
    }

    fn finish(&mut self, out: &mut Outputs<'_>) -> Result<()> {
        self.ready.extend(self.aligner.drain());
        self.predict_ready(out)?;
        tracing::info!(counters = ?self.aligner.counters, "fuse finished");
        Ok(())
    }

    fn counts(&self) -> LogicCounts {
        LogicCounts {
            dropped: self.aligner.counters.dropped + self.rejected.count,
            degraded: self.aligner.counters.degraded,
            backlog: self.aligner.pending() as u64,
        }
    }
}

/// Runs the node until its inputs close.
pub fn run(runtime: NodeRuntime, settings: &Settings) -> Result<RunSummary> {
    runtime.run(&mut Fuse::new(settings)?)
}
