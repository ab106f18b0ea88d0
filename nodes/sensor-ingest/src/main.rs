//! sensor-ingest: replays recordings as devices would stream them (or reads live CSV lines)
//! and sends `sensor_chunk` batches on `chunks`.
//!
//! Settings (env): `HAR_SOURCE` = `replay` (default) | `stdin` | `tcp:HOST:PORT`;
//! replay: `HAR_DATASET` (dataset folder), `HAR_RECORDINGS` (`all`, `train`, `test` or ids),
//! `HAR_COPIES` (devices per recording), `HAR_SPEED` (`1` = real time, `N` = N× real time,
//! `max` = as fast as the graph takes it), `HAR_CHUNK_SAMPLES`, `HAR_STAGGER_MS`,
//! `HAR_DROP_MODALITIES`, `HAR_LAPS` (play each recording N times back to back),
//! `HAR_BATCH_MS`, `HAR_MAX_IN_FLIGHT` and `HAR_STALL_MS` (flow control at `max`);
//! live: `HAR_LIVE_RATE_HZ`. Input `progress` (from log) acknowledges what was logged.

mod live_source;
mod pacing;

use anyhow::{Context, Result};
use dora_node_api::DoraNode;
use har_core::dataset::{Dataset, Split};
use har_core::recording::Recording;
use har_dataflow::replay::{Replay, ReplayConfig};
use har_dataflow::settings;

/// How fast a replay runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// A multiple of real time (1.0 = real time).
    Factor(f64),
    /// As fast as the pipeline acknowledges.
    Max,
}

fn speed() -> Result<Speed> {
    match settings::var("HAR_SPEED").as_deref() {
        None => Ok(Speed::Factor(1.0)),
        Some("max") => Ok(Speed::Max),
        Some(_) => {
            let factor: f64 = settings::parse_or("HAR_SPEED", 1.0)?;
            anyhow::ensure!(
                factor.is_finite() && factor > 0.0,
                "setting `HAR_SPEED`: {factor} is not a positive factor (or `max`)"
            );
            Ok(Speed::Factor(factor))
        }
    }
}

/// The recordings `HAR_RECORDINGS` selects from `HAR_DATASET`.
fn recordings() -> Result<Vec<Recording>> {
    let root = settings::path("HAR_DATASET")?;
    let dataset =
        Dataset::open(&root).with_context(|| format!("HAR_DATASET {}", root.display()))?;
    let wanted = settings::list("HAR_RECORDINGS");
    let entries: Vec<_> = match wanted.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] | ["all"] => dataset.manifest.recordings.iter().collect(),
        ["train"] => dataset.entries(Split::Train).collect(),
        ["test"] => dataset.entries(Split::Test).collect(),
        _ => wanted
            .iter()
            .map(|id| {
                dataset
                    .manifest
                    .recordings
                    .iter()
                    .find(|e| &e.id == id)
                    .with_context(|| {
                        format!(
                            "setting `HAR_RECORDINGS`: no recording `{id}` in {}",
                            root.display()
                        )
                    })
            })
            .collect::<Result<_>>()?,
    };
    anyhow::ensure!(
        !entries.is_empty(),
        "setting `HAR_RECORDINGS`: selects no recording"
    );
    entries
        .into_iter()
        .map(|e| dataset.read(e).map_err(Into::into))
        .collect()
}

fn main() -> Result<()> {
    har_dataflow::node::init_logging();
    let source = settings::var("HAR_SOURCE").unwrap_or_else(|| "replay".into());
    let chunk_samples: usize = settings::parse_or("HAR_CHUNK_SAMPLES", 10)?;
    let (mut node, mut events) = DoraNode::init_from_env()?;
    if source == "replay" {
        let config = ReplayConfig {
            chunk_samples,
            copies: settings::parse_or("HAR_COPIES", 1)?,
            stagger_ns: (settings::parse_or("HAR_STAGGER_MS", 0.0)? * 1e6) as i64,
            drop_modalities: settings::list("HAR_DROP_MODALITIES"),
            laps: settings::parse_or("HAR_LAPS", 1)?,
        };
        let replay = Replay::new(recordings()?, &config)?;
        tracing::info!(
            streams = replay.streams(),
            samples = replay.remaining_samples(),
            "replaying"
        );
        pacing::run_replay(&mut node, &mut events, replay, speed()?)
    } else {
        let rate: f64 = settings::parse_or("HAR_LIVE_RATE_HZ", 50.0)?;
        live_source::run_live(&mut node, &mut events, &source, chunk_samples, rate)
    }
}
