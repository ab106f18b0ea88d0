//! Replays recordings the way devices stream them: one stream per modality at its own rate,
//! cut into chunks of a few samples, several devices at once.
//!
//! Time is *replay time*: nanoseconds since the replay started. A chunk is due when its last
//! sample has been "measured", i.e. at that sample's offset from the start of its recording
//! (plus the device's phase). The node maps replay time to the wall clock (real time, or a
//! multiple of it) or sends as fast as the pipeline takes it; this module only orders chunks.

use std::sync::Arc;

use har_core::recording::Recording;
use har_core::streams::{SensorChunk, Source};

use crate::error::{DataflowError, Result};

/// How recordings are replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayConfig {
    /// Samples per chunk (per modality), as a device would buffer them before sending.
    pub chunk_samples: usize,
    /// Devices per recording: every copy replays the same data under its own device id.
    pub copies: usize,
    /// The devices' start times are spread evenly over this many nanoseconds (0: all start
    /// together), as independent devices would be.
    pub stagger_ns: i64,
    /// Modalities left out, as if those sensors were dead.
    pub drop_modalities: Vec<String>,
    /// Times each recording is played back to back (soak tests): every lap continues the
    /// device's clock one recording span later.
    pub laps: usize,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            chunk_samples: 10,
            copies: 1,
            stagger_ns: 0,
            drop_modalities: Vec::new(),
            laps: 1,
        }
    }
}

/// Where one (device, modality) stream stands.
#[derive(Debug)]
struct Cursor {
    source: Source,
    recording: Arc<Recording>,
    stream: usize,
    labels: Option<Vec<i32>>,
    next_sample: usize,
    next_seq: u64,
    /// Replay time of the recording's first sample for this device.
    offset_ns: i64,
    /// Current lap and laps to play.
    lap: usize,
    laps: usize,
}

impl Cursor {
    fn len(&self) -> usize {
        self.recording.streams[self.stream].len()
    }

    /// Samples still to send, over the remaining laps.
    fn remaining(&self) -> usize {
        (self.laps - self.lap) * self.len() - self.next_sample
    }

    /// How far the current lap's timestamps are shifted.
    fn lap_shift_ns(&self) -> i64 {
        self.lap as i64 * recording_span(&self.recording)
    }

    /// Replay time at which the next chunk is complete.
    fn due(&self, chunk_samples: usize) -> Option<i64> {
        let stream = &self.recording.streams[self.stream];
        if self.lap >= self.laps || stream.is_empty() {
            return None;
        }
        let last = (self.next_sample + chunk_samples).min(stream.len()) - 1;
        Some(
            stream.timestamps_ns[last] - recording_start(&self.recording)
                + self.lap_shift_ns()
                + self.offset_ns,
        )
    }

    fn take_chunk(&mut self, chunk_samples: usize) -> SensorChunk {
        let shift = self.lap_shift_ns();
        let stream = &self.recording.streams[self.stream];
        let c = stream.info.channels();
        let range = self.next_sample..(self.next_sample + chunk_samples).min(stream.len());
        self.next_sample = range.end;
        if self.next_sample == stream.len() {
            self.next_sample = 0;
            self.lap += 1;
        }
        self.next_seq += 1;
        SensorChunk {
            source: self.source.clone(),
            modality: stream.info.name.clone(),
            chunk_seq: self.next_seq - 1,
            sample_rate_hz: stream.info.sample_rate_hz,
            channel_count: c as u32,
            timestamps_ns: stream.timestamps_ns[range.clone()]
                .iter()
                .map(|t| t + shift)
                .collect(),
            values: stream.values[range.start * c..range.end * c].to_vec(),
            labels: self.labels.as_ref().map(|l| l[range].to_vec()),
            ingest_ts_ns: 0,
        }
    }
}

/// The first sample time over a recording's streams.
fn recording_start(recording: &Recording) -> i64 {
    recording
        .streams
        .iter()
        .filter_map(|s| s.timestamps_ns.first())
        .copied()
        .min()
        .unwrap_or(0)
}

/// One lap of a recording: from its first sample to one period after its last.
fn recording_span(recording: &Recording) -> i64 {
    let end = recording
        .streams
        .iter()
        .filter_map(|s| Some(*s.timestamps_ns.last()? + s.info.period_ns() as i64))
        .max()
        .unwrap_or(0);
    end - recording_start(recording)
}

/// Chunks of several recordings on several devices, in due order.
#[derive(Debug)]
pub struct Replay {
    cursors: Vec<Cursor>,
    chunk_samples: usize,
}

impl Replay {
    /// Prepares the replay of `recordings`, each on `config.copies` devices.
    pub fn new(recordings: Vec<Recording>, config: &ReplayConfig) -> Result<Self> {
        if config.chunk_samples == 0 || config.copies == 0 || config.laps == 0 {
            return Err(DataflowError::setting(
                "replay",
                "chunk samples, copies and laps must be positive",
            ));
        }
        for dropped in &config.drop_modalities {
            if !recordings
                .iter()
                .any(|r| r.streams.iter().any(|s| &s.info.name == dropped))
            {
                return Err(DataflowError::setting(
                    "HAR_DROP_MODALITIES",
                    format!("no recording has a modality `{dropped}`"),
                ));
            }
        }
        let devices = recordings.len() * config.copies;
        let mut cursors = Vec::new();
        for (r, recording) in recordings.into_iter().enumerate() {
            let recording = Arc::new(recording);
            for copy in 0..config.copies {
                let device = r * config.copies + copy;
                let device_id = if config.copies == 1 {
                    recording.id.clone()
                } else {
                    format!("{}#{copy}", recording.id)
                };
                let source = Source {
                    device_id,
                    subject_id: recording.subject_id.clone(),
                    session_id: recording.session_id.clone(),
                };
                let offset_ns = config.stagger_ns * device as i64 / devices as i64;
                for (s, stream) in recording.streams.iter().enumerate() {
                    if config.drop_modalities.contains(&stream.info.name) {
                        continue;
                    }
                    let labels = (!recording.labels.is_empty())
                        .then(|| recording.labels_at(&stream.timestamps_ns));
                    cursors.push(Cursor {
                        source: source.clone(),
                        recording: recording.clone(),
                        stream: s,
                        labels,
                        next_sample: 0,
                        next_seq: 0,
                        offset_ns,
                        lap: 0,
                        laps: config.laps,
                    });
                }
            }
        }
        Ok(Self {
            cursors,
            chunk_samples: config.chunk_samples,
        })
    }

    /// Replay time of the next due chunk, `None` when everything was sent.
    pub fn next_due(&self) -> Option<i64> {
        self.cursors
            .iter()
            .filter_map(|c| c.due(self.chunk_samples))
            .min()
    }

    /// Every chunk due at or before `replay_ns`, in due order (and stream order within it).
    pub fn take_until(&mut self, replay_ns: i64) -> Vec<SensorChunk> {
        let mut due: Vec<(i64, usize, SensorChunk)> = Vec::new();
        for (i, cursor) in self.cursors.iter_mut().enumerate() {
            while let Some(at) = cursor.due(self.chunk_samples).filter(|&t| t <= replay_ns) {
                due.push((at, i, cursor.take_chunk(self.chunk_samples)));
            }
        }
        due.sort_by_key(|(at, i, _)| (*at, *i));
        due.into_iter().map(|(_, _, chunk)| chunk).collect()
    }

    /// Samples still to send, over all streams.
    pub fn remaining_samples(&self) -> usize {
        self.cursors.iter().map(Cursor::remaining).sum()
    }

    /// Number of (device, modality) streams.
    pub fn streams(&self) -> usize {
        self.cursors.len()
    }
}
