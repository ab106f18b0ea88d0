//! scene: several people at once. Reads each window's fused feature from fuse's
//! `embeddings` (`token_embedding`, one token; fuse with `HAR_FUSE_EMBEDDINGS=true`), groups
//! the devices of one scene — those sharing a session id — per window
//! (`har_dataflow::scening`), and runs the scene model (`har_runtime::scene`): each member's
//! activity with the other members' context, and the scene's label set decoded by beam
//! search. Sends `log_scenes` rows (one per member per window) on `scenes`, which the log
//! node writes to the `scenes` table.
//!
//! Settings (env): `HAR_SCENE_MODEL` (scene model directory, `har scene train`),
//! `HAR_SCENE_BEAM` (beam width, default 1: greedy), `HAR_SCENE_MAX_LAG` (windows a member
//! may run ahead before a window missing another member is released without it, default 4).

use std::path::PathBuf;

use har_core::dataset::ClassInfo;
use har_core::schema::SchemaName;
use har_core::streams::TokenMessage;
use har_dataflow::runtime::{
    Input, LogicCounts, NodeLogic, NodeRuntime, Outputs, Rejections, RunSummary,
};
use har_dataflow::scening::{scene_batch, score_window, SceneGrouper, SceneRow, SceneWindow};
use har_dataflow::settings::{self, now_ns};
use har_dataflow::{DataflowError, Result};
use har_runtime::scene::{SceneModel, WEIGHTS_FILE};

/// The node's settings, read once at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Scene model directory.
    pub model: PathBuf,
    /// Beam width of the label-set decoder.
    pub beam: usize,
    /// Windows a member may run ahead of a window missing another member.
    pub max_lag: u64,
}

impl Settings {
    /// Reads `HAR_SCENE_MODEL`, `HAR_SCENE_BEAM` and `HAR_SCENE_MAX_LAG`.
    pub fn from_env() -> Result<Self> {
        let beam: usize = settings::parse_or("HAR_SCENE_BEAM", 1)?;
        if !(1..=64).contains(&beam) {
            return Err(DataflowError::setting(
                "HAR_SCENE_BEAM",
                format!("{beam} (1 to 64)"),
            ));
        }
        let max_lag: u64 = settings::parse_or("HAR_SCENE_MAX_LAG", 4)?;
        if !(1..=10_000).contains(&max_lag) {
            return Err(DataflowError::setting(
                "HAR_SCENE_MAX_LAG",
                format!("{max_lag} windows (1 to 10000)"),
            ));
        }
        Ok(Self {
            model: settings::path("HAR_SCENE_MODEL")?,
            beam,
            max_lag,
        })
    }
}

/// Groups members per scene and scores each window.
pub struct Scene {
    run_id: String,
    model: SceneModel,
    model_id: String,
    activities: Vec<ClassInfo>,
    labels: Vec<ClassInfo>,
    beam: usize,
    grouper: SceneGrouper,
    rejected: Rejections,
}

impl Scene {
    /// Loads the scene model (card and weights checked).
    pub fn new(run_id: &str, settings: &Settings) -> Result<Self> {
        let (card, model) = SceneModel::read_dir(&settings.model)?;
        let model_id = settings::weights_id(&settings.model, WEIGHTS_FILE, "HAR_SCENE_MODEL")?;
        tracing::info!(model = %model_id, classifier = %card.classifier, beam = settings.beam, "scene model loaded");
        Ok(Self {
            run_id: run_id.to_string(),
            model,
            model_id,
            activities: card.activities,
            labels: card.labels,
            beam: settings.beam,
            grouper: SceneGrouper::new(settings.max_lag),
            rejected: Rejections::new("scene window"),
        })
    }

    fn score_and_send(&mut self, out: &mut Outputs<'_>, windows: Vec<SceneWindow>) -> Result<()> {
        let mut rows: Vec<SceneRow> = Vec::new();
        for window in &windows {
            let scored = score_window(
                &self.model,
                &self.activities,
                &self.labels,
                self.beam,
                window,
            );
            if let Some(r) = self.rejected.check(scored)? {
                rows.extend(r);
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let batch = scene_batch(&self.run_id, &self.model_id, &rows, now_ns())?;
        out.send_batch("scenes", SchemaName::LogScenes, batch)
    }
}

impl NodeLogic for Scene {
    fn on_input(&mut self, out: &mut Outputs<'_>, input: Input<'_>) -> Result<()> {
        let features: Vec<TokenMessage> = input.rows()?;
        out.received(features.len());
        let released: Vec<SceneWindow> = features
            .into_iter()
            .flat_map(|t| self.grouper.insert(t))
            .collect();
        self.score_and_send(out, released)
    }

    fn counts(&self) -> LogicCounts {
        let c = self.grouper.counters;
        LogicCounts {
            dropped: c.late + c.duplicates + self.rejected.count,
            degraded: c.incomplete,
            backlog: self.grouper.pending() as u64,
        }
    }

    fn finish(&mut self, out: &mut Outputs<'_>) -> Result<()> {
        let rest = self.grouper.drain();
        self.score_and_send(out, rest)?;
        tracing::info!(counters = ?self.grouper.counters, "scene finished");
        Ok(())
    }
}

/// Runs the node until its input closes.
pub fn run(runtime: NodeRuntime, settings: &Settings) -> Result<RunSummary> {
    let run_id = runtime.run_id();
    runtime.run(&mut Scene::new(&run_id, settings)?)
}
