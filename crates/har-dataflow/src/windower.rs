//! Streaming preprocessing: the library's alignment, windowing and normalisation applied to
//! chunks as they arrive, per device.
//!
//! Each device gets a common clock (grid) starting at the first sample it sends, at the
//! model's rate: `t_k = origin + round(k · 1e9 / rate)`, the same grid as the offline
//! [`har_core::preprocess::align`] when the device's streams start together. Every modality is
//! resampled onto that grid by linear interpolation as soon as a sample at or after a grid
//! instant has arrived, so a window is emitted the moment its last sample is in. Window `w`
//! covers grid samples `[w·stride, w·stride + length)`; its id is `w` for every modality, so
//! fuse can match them. Skeleton frames are centred and scaled, then every channel is
//! standardised with the model's normaliser.
//!
//! **Degrades (counted, never silent).** A grid instant between two source samples more than
//! `max_gap_periods` source periods apart, before a modality's first sample, or holding NaN is
//! invalid, and a window containing one is skipped (`skipped_windows`): unlike the offline
//! path, the stream does not wait to fill short NaN runs. Samples that do not advance in time
//! are skipped (`out_of_order_samples`); chunks of a modality the model does not know are
//! skipped (`unknown_modality_chunks`).

use std::collections::HashMap;

use har_core::preprocess::skeleton::normalise_frame;
use har_core::preprocess::window::window_label;
use har_core::preprocess::{Normalizer, WindowConfig};
use har_core::recording::{SkeletonLayout, UNLABELLED};
use har_core::streams::{SensorChunk, Source, WindowKey, WindowMessage};

use crate::error::{DataflowError, Result};

/// One modality the model expects.
#[derive(Debug, Clone, PartialEq)]
pub struct ModalitySetup {
    /// Modality name (stream name).
    pub name: String,
    /// Channels per sample.
    pub channels: usize,
    /// Skeleton layout, for skeleton modalities (frames are normalised with it).
    pub skeleton: Option<SkeletonLayout>,
}

/// What the streaming preprocessing needs: the model's modalities and preprocessing.
#[derive(Debug, Clone)]
pub struct StreamingSpec {
    /// Modalities in model order.
    pub modalities: Vec<ModalitySetup>,
    /// Common clock rate; `None` takes each device's first chunk's rate.
    pub rate_hz: Option<f64>,
    /// Window length and stride (grid samples) and label policy.
    pub window: WindowConfig,
    /// Largest source gap, in source periods, that is interpolated over.
    pub max_gap_periods: f64,
    /// Per-channel standardisation (fitted at training).
    pub normalizer: Normalizer,
}

/// Counts of what the preprocessing did, for node health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreprocessCounters {
    /// Samples received.
    pub samples: u64,
    /// Windows emitted (per modality).
    pub windows: u64,
    /// Windows skipped because they contained an invalid instant.
    pub skipped_windows: u64,
    /// Samples skipped because their time did not advance.
    pub out_of_order_samples: u64,
    /// Chunks of modalities the model does not know.
    pub unknown_modality_chunks: u64,
    /// Forward jumps in a stream's time too long to fill (the track restarted after them).
    pub time_jumps: u64,
}

/// One modality of one device on the device's grid.
#[derive(Debug, Default)]
struct Track {
    /// Last source sample: time, values, label.
    last: Option<(i64, Vec<f32>, i32)>,
    /// Grid index of `values[0]`.
    base_k: u64,
    /// Next grid index to produce.
    next_k: u64,
    /// Next window number.
    next_window: u64,
    values: Vec<f32>,
    valid: Vec<bool>,
    labels: Vec<i32>,
    ingest_ts_ns: Vec<i64>,
}

/// One device's grid and tracks.
#[derive(Debug)]
struct Device {
    source: Source,
    origin_ns: i64,
    period_ns: f64,
    tracks: Vec<Track>,
}

impl Device {
    /// Time of grid instant `k` (saturating at the `i64` limits).
    fn grid_time(&self, k: u64) -> i64 {
        self.origin_ns
            .saturating_add((k as f64 * self.period_ns).round() as i64)
    }
}

/// Turns chunks into normalised windows, per device and modality.
#[derive(Debug)]
pub struct StreamingPreprocessor {
    spec: StreamingSpec,
    normalizer_index: Vec<usize>,
    devices: HashMap<String, Device>,
    /// What happened so far.
    pub counters: PreprocessCounters,
}

impl StreamingPreprocessor {
    /// Checks the spec (window, normaliser covering every modality) and starts empty.
    pub fn new(spec: StreamingSpec) -> Result<Self> {
        spec.window.validate()?;
        let normalizer_index = spec
            .modalities
            .iter()
            .map(|m| {
                let i = spec
                    .normalizer
                    .modalities
                    .iter()
                    .position(|s| s.modality == m.name)
                    .ok_or_else(|| {
                        DataflowError::setting(
                            "normalizer",
                            format!("has no statistics for modality `{}`", m.name),
                        )
                    })?;
                if spec.normalizer.modalities[i].mean.len() != m.channels {
                    return Err(DataflowError::setting(
                        "normalizer",
                        format!(
                            "modality `{}` statistics have the wrong channel count",
                            m.name
                        ),
                    ));
                }
                Ok(i)
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            spec,
            normalizer_index,
            devices: HashMap::new(),
            counters: PreprocessCounters::default(),
        })
    }

    /// The model's modalities.
    pub fn modalities(&self) -> &[ModalitySetup] {
        &self.spec.modalities
    }

    /// Devices seen so far.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Takes one chunk; returns the windows it completed (any modality), in order.
    pub fn push(&mut self, chunk: &SensorChunk) -> Result<Vec<WindowMessage>> {
        let Some(m) = self
            .spec
            .modalities
            .iter()
            .position(|s| s.name == chunk.modality)
        else {
            self.counters.unknown_modality_chunks += 1;
            return Ok(Vec::new());
        };
        let channels = self.spec.modalities[m].channels;
        if chunk.channel_count as usize != channels {
            return Err(DataflowError::stream(
                "chunks",
                "channel_count",
                format!(
                    "device `{}` modality `{}`: {} channels, the model expects {channels}",
                    chunk.source.device_id, chunk.modality, chunk.channel_count
                ),
            ));
        }
        let Some(&first_ts) = chunk.timestamps_ns.first() else {
            return Ok(Vec::new());
        };
        let rate = self.spec.rate_hz.unwrap_or(chunk.sample_rate_hz);
        if !(rate.is_finite()
            && rate > 0.0
            && chunk.sample_rate_hz.is_finite()
            && chunk.sample_rate_hz > 0.0)
        {
            return Err(DataflowError::stream(
                "chunks",
                "sample_rate_hz",
                format!("{} is not a positive rate", chunk.sample_rate_hz),
            ));
        }
        let modality_count = self.spec.modalities.len();
        let device = self
            .devices
            .entry(chunk.source.device_id.clone())
            .or_insert_with(|| Device {
                source: chunk.source.clone(),
                origin_ns: first_ts,
                period_ns: 1e9 / rate,
                tracks: (0..modality_count).map(|_| Track::default()).collect(),
            });
        let max_gap_ns = self.spec.max_gap_periods * 1e9 / chunk.sample_rate_hz;
        let (length, stride) = (
            self.spec.window.length as u64,
            self.spec.window.stride as u64,
        );
        let grid = (stride, length + stride);
        for (i, &ts) in chunk.timestamps_ns.iter().enumerate() {
            let values = &chunk.values[i * channels..(i + 1) * channels];
            let label = chunk.labels.as_ref().map_or(UNLABELLED, |l| l[i]);
            self.counters.samples += 1;
            let advanced = advance(
                device,
                m,
                ts,
                values,
                label,
                chunk.ingest_ts_ns,
                max_gap_ns,
                grid,
                &mut self.counters,
            );
            if !advanced {
                self.counters.out_of_order_samples += 1;
            }
        }
        Ok(self.emit_windows(&chunk.source.device_id, m))
    }

    /// Cuts every complete window of modality `m` of a device and trims the buffer.
    fn emit_windows(&mut self, device_id: &str, m: usize) -> Vec<WindowMessage> {
        let (length, stride) = (
            self.spec.window.length as u64,
            self.spec.window.stride as u64,
        );
        let setup = &self.spec.modalities[m];
        let c = setup.channels;
        let device = self.devices.get_mut(device_id).expect("device exists");
        let mut out = Vec::new();
        loop {
            let track = &device.tracks[m];
            let start_k = track.next_window * stride;
            if start_k + length > track.next_k {
                break;
            }
            let from = (start_k - track.base_k) as usize;
            let span = from..from + length as usize;
            let window_id = track.next_window;
            if track.valid[span.clone()].iter().all(|&v| v) {
                let mut values = track.values[span.start * c..span.end * c].to_vec();
                if let Some(layout) = &setup.skeleton {
                    for frame in values.chunks_exact_mut(c) {
                        normalise_frame(layout, frame);
                    }
                }
                self.spec
                    .normalizer
                    .apply_modality(self.normalizer_index[m], &mut values);
                out.push(WindowMessage {
                    key: WindowKey {
                        window_id,
                        source: device.source.clone(),
                        modality: setup.name.clone(),
                        start_ns: device.grid_time(start_k),
                        end_ns: device.grid_time(start_k + length - 1),
                        label: window_label(
                            &track.labels[span.clone()],
                            self.spec.window.label_policy,
                        ),
                        ingest_ts_ns: track.ingest_ts_ns[span.end - 1],
                        preprocess_ts_ns: 0,
                    },
                    num_steps: length as u32,
                    num_channels: c as u32,
                    values,
                });
                self.counters.windows += 1;
            } else {
                self.counters.skipped_windows += 1;
            }
            device.tracks[m].next_window += 1;
        }
        // Keep only what later windows still need.
        let track = &mut device.tracks[m];
        let keep_from = (track.next_window * stride).min(track.next_k);
        let drop = (keep_from - track.base_k) as usize;
        if drop > 0 {
            track.values.drain(..drop * c);
            track.valid.drain(..drop);
            track.labels.drain(..drop);
            track.ingest_ts_ns.drain(..drop);
            track.base_k = keep_from;
        }
        out
    }
}

/// Produces every grid sample of modality `m` up to time `ts` from the new source sample;
/// returns false (and changes nothing) when `ts` does not advance.
///
/// Time arithmetic is done in `i128` / `f64`, so no timestamp (up to the `i64` limits) can
/// overflow. A forward jump longer than `resync_samples` grid samples that could not be
/// interpolated (the first sample, or a gap over `max_gap_ns`) is not filled in sample by
/// sample: no window could span it, so the track restarts at the first window boundary after
/// it (`time_jumps` counts these). The loop therefore produces at most `resync_samples` grid
/// samples per source sample, whatever the timestamps.
#[allow(clippy::too_many_arguments)]
fn advance(
    device: &mut Device,
    m: usize,
    ts: i64,
    values: &[f32],
    label: i32,
    ingest_ts_ns: i64,
    max_gap_ns: f64,
    (stride, resync_samples): (u64, u64),
    counters: &mut PreprocessCounters,
) -> bool {
    if device.tracks[m]
        .last
        .as_ref()
        .is_some_and(|(t, _, _)| ts <= *t)
    {
        return false;
    }
    let (origin, period) = (device.origin_ns, device.period_ns);
    let grid_time = |k: u64| origin as i128 + (k as f64 * period).round() as i128;
    // The last grid index at or before `ts` (None: `ts` is before the grid's origin).
    let last_k = {
        let estimate = ((ts as f64 - origin as f64) / period).floor();
        if estimate < 0.0 {
            None
        } else {
            let mut k = estimate.min(u64::MAX as f64 / 2.0) as u64;
            while k > 0 && grid_time(k) > ts as i128 {
                k -= 1;
            }
            while grid_time(k + 1) <= ts as i128 {
                k += 1;
            }
            (grid_time(k) <= ts as i128).then_some(k)
        }
    };
    let track = &mut device.tracks[m];
    let gap_ns = track
        .last
        .as_ref()
        .map_or(f64::INFINITY, |(t0, _, _)| ts as f64 - *t0 as f64);
    if let Some(last_k) = last_k {
        let to_produce = (last_k + 1).saturating_sub(track.next_k);
        if to_produce > resync_samples && gap_ns > max_gap_ns {
            counters.time_jumps += 1;
            let next_window = last_k.div_ceil(stride.max(1));
            let restart_k = next_window.saturating_mul(stride.max(1));
            track.values.clear();
            track.valid.clear();
            track.labels.clear();
            track.ingest_ts_ns.clear();
            track.base_k = restart_k;
            track.next_k = restart_k;
            track.next_window = track.next_window.max(next_window);
        }
    }
    let mut k = track.next_k;
    while last_k.is_some_and(|last| k <= last) {
        let t_k = grid_time(k);
        let (sample_valid, sample_label) = match &track.last {
            _ if t_k == ts as i128 => {
                track.values.extend_from_slice(values);
                (true, label)
            }
            None => {
                track
                    .values
                    .extend(std::iter::repeat_n(f32::NAN, values.len()));
                (false, UNLABELLED)
            }
            Some((t0, v0, l0)) => {
                let w = ((t_k as f64 - *t0 as f64) / gap_ns) as f32;
                track
                    .values
                    .extend(v0.iter().zip(values).map(|(a, b)| a + (b - a) * w));
                (gap_ns <= max_gap_ns, *l0)
            }
        };
        let row = &track.values[track.values.len() - values.len()..];
        track
            .valid
            .push(sample_valid && row.iter().all(|v| v.is_finite()));
        track.labels.push(sample_label);
        track.ingest_ts_ns.push(ingest_ts_ns);
        k += 1;
    }
    track.next_k = k;
    track.last = Some((ts, values.to_vec(), label));
    true
}
