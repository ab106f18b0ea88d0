//! sensor-ingest: replays recordings as devices would stream them (or reads live CSV lines)
//! and sends `sensor_chunk` batches on `chunks`. Input `progress` (from log) acknowledges what
//! was logged (flow control at `max` speed, `har_dataflow::pacing`).
//!
//! Settings (env): `HAR_SOURCE` = `replay` (default) | `stdin` | `tcp:PORT` (loopback) |
//! `tcp:HOST:PORT`;
//! replay: `HAR_DATASET` (dataset folder), `HAR_RECORDINGS` (`all`, `train`, `test` or ids),
//! `HAR_COPIES` (devices per recording), `HAR_SPEED` (`1` = real time, `N` = N× real time,
//! `max` = as fast as the graph takes it), `HAR_CHUNK_SAMPLES`, `HAR_STAGGER_MS`,
//! `HAR_DROP_MODALITIES`, `HAR_LAPS` (play each recording N times back to back),
//! `HAR_BATCH_MS`, `HAR_MAX_IN_FLIGHT` and `HAR_STALL_MS` (flow control at `max`),
//! `HAR_MAX_LAG_MS` (admission at real time: default 10000); synthetic faults for soak runs:
//! `HAR_FAULT_CORRUPT`, `HAR_FAULT_FLAP`, `HAR_FAULT_SEED` (`har_dataflow::faults`);
//! live: `HAR_LIVE_RATE_HZ`, `HAR_LIVE_MAX_LINE_BYTES` (4096), `HAR_LIVE_MAX_CLIENTS` (64),
//! `HAR_LIVE_MAX_LINES_PER_S` (20000 per connection), `HAR_LIVE_MAX_STREAMS` (4096).

use std::path::PathBuf;
use std::time::Duration;

use har_core::dataset::{Dataset, Split};
use har_core::recording::Recording;
use har_dataflow::faults::{FaultInjector, Flap};
use har_dataflow::live::{run_live, LiveChunker};
use har_dataflow::live_server::{LiveLimits, LiveServer};
use har_dataflow::pacing::{run_replay, FlowSettings, Speed};
use har_dataflow::replay::{Replay, ReplayConfig};
use har_dataflow::runtime::{NodeRuntime, RunSummary};
use har_dataflow::settings;
use har_dataflow::{DataflowError, Result};

/// Largest chunk, in samples.
const MAX_CHUNK_SAMPLES: usize = 100_000;
/// Most devices per recording.
const MAX_COPIES: usize = 100_000;

/// What the node reads.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSettings {
    /// Recordings of a dataset folder.
    Replay {
        /// Dataset folder.
        dataset: PathBuf,
        /// `all`, `train`, `test` or recording ids.
        recordings: Vec<String>,
        /// How the recordings become devices.
        config: ReplayConfig,
        /// Pace.
        speed: Speed,
        /// Flow control at `max` speed, admission at real time.
        flow: FlowSettings,
        /// Synthetic faults injected into the replay (soak and chaos runs).
        faults: Option<FaultSettings>,
    },
    /// Live CSV lines.
    Live {
        /// `stdin`, `tcp:PORT` or `tcp:HOST:PORT`.
        source: String,
        /// Nominal sample rate of the devices.
        rate_hz: f64,
        /// Samples per chunk.
        chunk_samples: usize,
        /// Limits on clients, lines and rate.
        limits: LiveLimits,
        /// Open (device, modality) streams at most.
        max_streams: usize,
    },
}

/// Synthetic faults for soak runs (`har_dataflow::faults`).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSettings {
    /// Share of chunks corrupted.
    pub corrupt: f64,
    /// A modality going silent periodically.
    pub flap: Option<Flap>,
    /// Random seed.
    pub seed: u64,
}

/// The node's settings, read once at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The source.
    pub source: SourceSettings,
}

fn bounded(name: &str, value: usize, min: usize, max: usize) -> Result<usize> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(DataflowError::setting(
            name,
            format!("{value} is outside {min}..={max}"),
        ))
    }
}

fn positive(name: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(DataflowError::setting(
            name,
            format!("{value} is not a positive number"),
        ))
    }
}

fn speed() -> Result<Speed> {
    match settings::var("HAR_SPEED").as_deref() {
        None => Ok(Speed::Factor(1.0)),
        Some("max") => Ok(Speed::Max),
        Some(_) => Ok(Speed::Factor(positive(
            "HAR_SPEED",
            settings::parse_or("HAR_SPEED", 1.0)?,
        )?)),
    }
}

impl Settings {
    /// Reads and checks the settings (bounds named in the error).
    pub fn from_env() -> Result<Self> {
        let source = settings::var("HAR_SOURCE").unwrap_or_else(|| "replay".into());
        let chunk_samples = bounded(
            "HAR_CHUNK_SAMPLES",
            settings::parse_or("HAR_CHUNK_SAMPLES", 10)?,
            1,
            MAX_CHUNK_SAMPLES,
        )?;
        let source = if source == "replay" {
            let stagger_ms: f64 = settings::parse_or("HAR_STAGGER_MS", 0.0)?;
            if !(stagger_ms.is_finite() && (0.0..=86_400_000.0).contains(&stagger_ms)) {
                return Err(DataflowError::setting(
                    "HAR_STAGGER_MS",
                    format!("{stagger_ms} is outside 0..=86400000"),
                ));
            }
            SourceSettings::Replay {
                dataset: settings::path("HAR_DATASET")?,
                recordings: settings::list("HAR_RECORDINGS"),
                config: ReplayConfig {
                    chunk_samples,
                    copies: bounded(
                        "HAR_COPIES",
                        settings::parse_or("HAR_COPIES", 1)?,
                        1,
                        MAX_COPIES,
                    )?,
                    stagger_ns: (stagger_ms * 1e6) as i64,
                    drop_modalities: settings::list("HAR_DROP_MODALITIES"),
                    laps: bounded("HAR_LAPS", settings::parse_or("HAR_LAPS", 1)?, 1, 100_000)?,
                },
                speed: speed()?,
                flow: FlowSettings {
                    batch: nonzero("HAR_BATCH_MS", settings::millis("HAR_BATCH_MS", 1000.0)?)?,
                    max_in_flight: bounded(
                        "HAR_MAX_IN_FLIGHT",
                        settings::parse_or("HAR_MAX_IN_FLIGHT", 4)?,
                        1,
                        10_000,
                    )?,
                    stall: nonzero("HAR_STALL_MS", settings::millis("HAR_STALL_MS", 2000.0)?)?,
                    max_lag: nonzero(
                        "HAR_MAX_LAG_MS",
                        settings::millis("HAR_MAX_LAG_MS", 10_000.0)?,
                    )?,
                },
                faults: fault_settings()?,
            }
        } else {
            let defaults = LiveLimits::default();
            SourceSettings::Live {
                source,
                rate_hz: positive(
                    "HAR_LIVE_RATE_HZ",
                    settings::parse_or("HAR_LIVE_RATE_HZ", 50.0)?,
                )?,
                chunk_samples,
                limits: LiveLimits {
                    max_line_bytes: bounded(
                        "HAR_LIVE_MAX_LINE_BYTES",
                        settings::parse_or("HAR_LIVE_MAX_LINE_BYTES", defaults.max_line_bytes)?,
                        64,
                        1 << 20,
                    )?,
                    max_clients: bounded(
                        "HAR_LIVE_MAX_CLIENTS",
                        settings::parse_or("HAR_LIVE_MAX_CLIENTS", defaults.max_clients)?,
                        1,
                        10_000,
                    )?,
                    max_lines_per_s: positive(
                        "HAR_LIVE_MAX_LINES_PER_S",
                        settings::parse_or("HAR_LIVE_MAX_LINES_PER_S", defaults.max_lines_per_s)?,
                    )?,
                },
                max_streams: bounded(
                    "HAR_LIVE_MAX_STREAMS",
                    settings::parse_or("HAR_LIVE_MAX_STREAMS", har_dataflow::live::MAX_STREAMS)?,
                    1,
                    1_000_000,
                )?,
            }
        };
        Ok(Self { source })
    }
}

fn fault_settings() -> Result<Option<FaultSettings>> {
    let corrupt: f64 = settings::parse_or("HAR_FAULT_CORRUPT", 0.0)?;
    let flap = settings::var("HAR_FAULT_FLAP")
        .map(|f| Flap::parse(&f))
        .transpose()?;
    if corrupt == 0.0 && flap.is_none() {
        return Ok(None);
    }
    Ok(Some(FaultSettings {
        corrupt,
        flap,
        seed: settings::parse_or("HAR_FAULT_SEED", 1)?,
    }))
}

fn nonzero(name: &str, value: Duration) -> Result<Duration> {
    if value.is_zero() {
        Err(DataflowError::setting(name, "must be more than 0 ms"))
    } else {
        Ok(value)
    }
}

/// The recordings `wanted` selects from the dataset at `root`.
pub fn recordings(root: &std::path::Path, wanted: &[String]) -> Result<Vec<Recording>> {
    let dataset = Dataset::open(root)?;
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
                    .ok_or_else(|| {
                        DataflowError::setting(
                            "HAR_RECORDINGS",
                            format!("no recording `{id}` in {}", root.display()),
                        )
                    })
            })
            .collect::<Result<_>>()?,
    };
    if entries.is_empty() {
        return Err(DataflowError::setting(
            "HAR_RECORDINGS",
            "selects no recording",
        ));
    }
    entries
        .into_iter()
        .map(|e| dataset.read(e).map_err(Into::into))
        .collect()
}

/// Runs the source until it is exhausted (replay, stdin) or the dataflow stops.
pub fn run(runtime: NodeRuntime, settings: &Settings) -> Result<RunSummary> {
    match &settings.source {
        SourceSettings::Replay {
            dataset,
            recordings: wanted,
            config,
            speed,
            flow,
            faults,
        } => {
            let replay = Replay::new(recordings(dataset, wanted)?, config)?;
            let faults = faults
                .as_ref()
                .map(|f| FaultInjector::new(f.corrupt, f.flap.clone(), f.seed))
                .transpose()?;
            if faults.is_some() {
                tracing::warn!(?faults, "injecting synthetic faults");
            }
            tracing::info!(
                streams = replay.streams(),
                samples = replay.remaining_samples(),
                "replaying"
            );
            run_replay(runtime, replay, *speed, *flow, faults)
        }
        SourceSettings::Live {
            source,
            rate_hz,
            chunk_samples,
            limits,
            max_streams,
        } => {
            let server = LiveServer::start(source, *limits)?;
            let chunker = LiveChunker::with_max_streams(*chunk_samples, *rate_hz, *max_streams);
            run_live(runtime, server, chunker)
        }
    }
}
