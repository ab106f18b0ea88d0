//! A live source in place of the replay: lines of CSV on stdin or a TCP port.
//!
//! One line per sample: `device_id,subject_id,modality,timestamp_ns,v1,…,vC`. The number of
//! values sets the modality's channel count (it must stay the same per device and modality);
//! blank lines and lines starting with `#` are ignored. Samples are grouped into chunks of
//! `chunk_samples` per (device, modality), the same messages a replay sends; what is left when
//! the source ends is sent as a last, shorter chunk. A malformed line is reported with its
//! line number and skipped (counted), never silently dropped. A device is isolated from the
//! others: its malformed lines, a channel count that changes, time that does not advance are
//! its own rejections; at most `max_streams` (device, modality) streams are open, a new one
//! beyond that is rejected (counted) until the source ends.
//!
//! [`run_live`] is sensor-ingest's loop over a [`LiveServer`].

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::TryRecvError;
use std::time::Duration;

use har_core::streams::{SensorChunk, Source};

use crate::error::{DataflowError, Result};
use crate::live_server::{LiveInput, LiveServer};
use crate::pacing::Progress;
use crate::runtime::{warn_rejected, LogicCounts, NodeRuntime, RunSummary};
use crate::settings::now_ns;

/// Open (device, modality) streams at most, by default.
pub const MAX_STREAMS: usize = 4096;

/// One parsed sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSample {
    /// Device id.
    pub device_id: String,
    /// Subject id.
    pub subject_id: String,
    /// Modality name.
    pub modality: String,
    /// Sensor timestamp.
    pub timestamp_ns: i64,
    /// Channel values.
    pub values: Vec<f32>,
}

/// Parses one CSV line; `Ok(None)` for blank and comment lines.
pub fn parse_line(line: &str, line_number: usize) -> Result<Option<LiveSample>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let bad = |field: &str, problem: String| {
        DataflowError::stream(&format!("live line {line_number}"), field, problem)
    };
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() < 5 {
        return Err(bad(
            "line",
            format!(
                "{} fields; expected device_id,subject_id,modality,timestamp_ns,v1[,…]",
                fields.len()
            ),
        ));
    }
    let timestamp_ns = fields[3]
        .parse()
        .map_err(|e| bad("timestamp_ns", format!("`{}`: {e}", fields[3])))?;
    let values = fields[4..]
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.parse::<f32>()
                .map_err(|e| bad(&format!("v{}", i + 1), format!("`{v}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(LiveSample {
        device_id: fields[0].to_string(),
        subject_id: fields[1].to_string(),
        modality: fields[2].to_string(),
        timestamp_ns,
        values,
    }))
}

/// Groups live samples into chunks per (device, modality).
#[derive(Debug)]
pub struct LiveChunker {
    chunk_samples: usize,
    sample_rate_hz: f64,
    max_streams: usize,
    open: HashMap<(String, String), SensorChunk>,
}

impl LiveChunker {
    /// Chunks of `chunk_samples`, tagged with the nominal `sample_rate_hz`, for at most
    /// [`MAX_STREAMS`] streams.
    pub fn new(chunk_samples: usize, sample_rate_hz: f64) -> Self {
        Self::with_max_streams(chunk_samples, sample_rate_hz, MAX_STREAMS)
    }

    /// Like [`LiveChunker::new`] with at most `max_streams` (device, modality) streams.
    pub fn with_max_streams(chunk_samples: usize, sample_rate_hz: f64, max_streams: usize) -> Self {
        Self {
            chunk_samples: chunk_samples.max(1),
            sample_rate_hz,
            max_streams,
            open: HashMap::new(),
        }
    }

    /// Adds a sample; returns the chunk it completed, if any.
    pub fn push(&mut self, sample: LiveSample) -> Result<Option<SensorChunk>> {
        let key = (sample.device_id.clone(), sample.modality.clone());
        if self.open.len() >= self.max_streams && !self.open.contains_key(&key) {
            return Err(DataflowError::stream(
                &format!("live {}/{}", sample.device_id, sample.modality),
                "device_id",
                format!(
                    "a new stream beyond the limit of {} open streams",
                    self.max_streams
                ),
            ));
        }
        let chunk = self.open.entry(key).or_insert_with(|| SensorChunk {
            source: Source {
                device_id: sample.device_id.clone(),
                subject_id: sample.subject_id.clone(),
                session_id: "live".to_string(),
            },
            modality: sample.modality.clone(),
            chunk_seq: 0,
            sample_rate_hz: self.sample_rate_hz,
            channel_count: sample.values.len() as u32,
            timestamps_ns: Vec::new(),
            values: Vec::new(),
            labels: None,
            ingest_ts_ns: 0,
        });
        if sample.values.len() != chunk.channel_count as usize {
            return Err(DataflowError::stream(
                &format!("live {}/{}", sample.device_id, sample.modality),
                "values",
                format!(
                    "{} channels, earlier samples had {}",
                    sample.values.len(),
                    chunk.channel_count
                ),
            ));
        }
        if chunk
            .timestamps_ns
            .last()
            .is_some_and(|&t| sample.timestamp_ns <= t)
        {
            return Err(DataflowError::stream(
                &format!("live {}/{}", sample.device_id, sample.modality),
                "timestamp_ns",
                format!("{} does not increase", sample.timestamp_ns),
            ));
        }
        chunk.timestamps_ns.push(sample.timestamp_ns);
        chunk.values.extend_from_slice(&sample.values);
        if chunk.timestamps_ns.len() < self.chunk_samples {
            return Ok(None);
        }
        Ok(Some(Self::cut(chunk)))
    }

    /// Every partly filled chunk (when the source ends).
    pub fn flush(&mut self) -> Vec<SensorChunk> {
        self.open
            .values_mut()
            .filter(|c| !c.timestamps_ns.is_empty())
            .map(Self::cut)
            .collect()
    }

    /// Takes the chunk's samples, leaving it empty with the next sequence number.
    fn cut(chunk: &mut SensorChunk) -> SensorChunk {
        let full = SensorChunk {
            timestamps_ns: std::mem::take(&mut chunk.timestamps_ns),
            values: std::mem::take(&mut chunk.values),
            ..chunk.clone()
        };
        chunk.chunk_seq += 1;
        full
    }
}

/// Reads live lines until the source ends (stdin) or the dataflow stops; sends chunks.
pub fn run_live(
    mut runtime: NodeRuntime,
    server: LiveServer,
    mut chunker: LiveChunker,
) -> Result<RunSummary> {
    let mut progress = Progress::default();
    let mut rejected_lines = 0u64;
    let mut ended = false;
    while !ended && !runtime.stopping() {
        runtime.poll(&mut progress, Duration::from_millis(5))?;
        let mut chunks = Vec::new();
        loop {
            match server.lines.try_recv() {
                Ok(LiveInput::Line(line)) => {
                    let parsed =
                        parse_line(&line.text, line.number as usize).and_then(|s| match s {
                            Some(sample) => chunker.push(sample),
                            None => Ok(None),
                        });
                    match parsed {
                        Ok(chunk) => chunks.extend(chunk),
                        Err(e) => {
                            rejected_lines += 1;
                            warn_rejected(
                                "live line",
                                rejected_lines,
                                &format!("connection {}: {e}", line.connection),
                            );
                        }
                    }
                }
                Ok(LiveInput::End) | Err(TryRecvError::Disconnected) => {
                    chunks.extend(chunker.flush());
                    ended = true;
                    break;
                }
                Err(TryRecvError::Empty) => break,
            }
            if chunks.len() >= 1024 {
                break;
            }
        }
        let now = now_ns();
        chunks.iter_mut().for_each(|c| c.ingest_ts_ns = now);
        runtime.outputs().send("chunks", &chunks)?;
        let counters = &server.counters;
        progress.counts = LogicCounts {
            dropped: rejected_lines
                + counters.discarded()
                + counters.refused_connections.load(Ordering::Relaxed),
            ..LogicCounts::default()
        };
    }
    runtime.finish(&mut progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_chunks_and_bad_lines_name_the_field() {
        let mut chunker = LiveChunker::new(2, 50.0);
        let lines = [
            "# device,subject,modality,t,x,y,z",
            "d1,s1,acc,0,1,2,3",
            "d1,s1,acc,20000000,4,5,6",
            "d1,s1,acc,40000000,7,8,9",
        ];
        let mut chunks = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if let Some(sample) = parse_line(line, i + 1).unwrap() {
                chunks.extend(chunker.push(sample).unwrap());
            }
        }
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].values, vec![1., 2., 3., 4., 5., 6.]);
        let rest = chunker.flush();
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].chunk_seq, rest[0].timestamps_ns.len()), (1, 1));

        let err = parse_line("d1,s1,acc,zero,1", 7).unwrap_err().to_string();
        assert!(
            err.contains("line 7") && err.contains("timestamp_ns"),
            "{err}"
        );
        let err = parse_line("d1,s1,acc,0,1,x", 8).unwrap_err().to_string();
        assert!(err.contains("v2"), "{err}");
        let sample = parse_line("d1,s1,acc,60000000,1,2", 9).unwrap().unwrap();
        let err = chunker.push(sample).unwrap_err().to_string();
        assert!(err.contains("2 channels"), "{err}");
    }

    #[test]
    fn streams_beyond_the_limit_are_rejected_and_open_ones_go_on() {
        let mut chunker = LiveChunker::with_max_streams(1, 50.0, 2);
        let sample = |device: &str, t: i64| {
            parse_line(&format!("{device},s,acc,{t},1,2,3"), 1)
                .unwrap()
                .unwrap()
        };
        assert!(chunker.push(sample("d1", 0)).unwrap().is_some());
        assert!(chunker.push(sample("d2", 0)).unwrap().is_some());
        let err = chunker.push(sample("d3", 0)).unwrap_err().to_string();
        assert!(err.contains("limit of 2"), "{err}");
        assert!(chunker.push(sample("d1", 20)).unwrap().is_some());
    }
}
