//! Alignment of multi-rate modalities onto one common clock.
//!
//! The common clock starts at the latest first sample over the modalities and ends at the
//! earliest last sample, at [`AlignConfig::rate_hz`] (default: the highest modality rate). A
//! stream already sampled on that grid is copied exactly; any other stream is linearly
//! interpolated per channel between the two source samples around each grid instant.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{HarError, Result};
use crate::recording::{ModalityInfo, ModalityStream, Recording};

/// Settings of the alignment and of the gap/NaN policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignConfig {
    /// Common rate; `None` takes the highest modality rate.
    pub rate_hz: Option<f64>,
    /// Two consecutive source samples further apart than this many source periods form a gap.
    pub max_gap_periods: f64,
    /// Longest run of NaN grid samples that is filled by interpolation.
    pub max_nan_run: usize,
}

impl Default for AlignConfig {
    fn default() -> Self {
        Self {
            rate_hz: None,
            max_gap_periods: 2.5,
            max_nan_run: 5,
        }
    }
}

/// Counts of what the gap/NaN policy did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlignReport {
    /// Grid instants on the common clock.
    pub grid_samples: usize,
    /// Grid samples whose NaN values were filled by interpolation (summed over modalities).
    pub nan_filled: usize,
    /// Grid instants that are invalid (in a gap or a long NaN run) and so in no window.
    pub invalid: usize,
}

/// A recording on one common clock: every modality has one row per grid instant.
#[derive(Debug, Clone, PartialEq)]
pub struct AlignedRecording {
    /// Recording id.
    pub recording_id: String,
    /// Subject id.
    pub subject_id: String,
    /// Common clock rate.
    pub rate_hz: f64,
    /// Grid timestamps.
    pub timestamps_ns: Vec<i64>,
    /// Per modality: info and row-major values (grid instants × channels).
    pub streams: Vec<(ModalityInfo, Vec<f32>)>,
    /// Label per grid instant.
    pub labels: Vec<i32>,
    /// Ranges of valid grid instants; windows stay inside one.
    pub segments: Vec<Range<usize>>,
    /// What the gap/NaN policy did.
    pub report: AlignReport,
}

/// Most grid instants per sample of the longest stream (upsampling a 50 Hz stream to 3.2 kHz):
/// beyond it a recording's span is refused rather than allocated.
pub const MAX_GRID_PER_SAMPLE: usize = 64;

/// Highest alignment rate accepted (1 MHz: far above any wearable or camera).
pub const MAX_RATE_HZ: f64 = 1e6;

/// Aligns a recording's modalities onto a common clock and applies the gap/NaN policy.
/// A span that overflows i64, or a grid longer than [`MAX_GRID_PER_SAMPLE`] instants per
/// received sample, is an error naming the recording.
pub fn align(recording: &Recording, config: &AlignConfig) -> Result<AlignedRecording> {
    recording.validate()?;
    let rate_hz = config.rate_hz.unwrap_or_else(|| {
        recording
            .streams
            .iter()
            .map(|s| s.info.sample_rate_hz)
            .fold(0.0, f64::max)
    });
    if !(rate_hz.is_finite() && rate_hz > 0.0 && rate_hz <= MAX_RATE_HZ) {
        return Err(HarError::invalid(
            &recording.id,
            "rate_hz",
            format!("{rate_hz} is not a rate in (0, {MAX_RATE_HZ}] Hz"),
        ));
    }
    let nonempty = recording.streams.iter().all(|s| !s.is_empty());
    let start = recording
        .streams
        .iter()
        .filter_map(|s| s.timestamps_ns.first())
        .copied()
        .max()
        .unwrap_or(0);
    let end = recording
        .streams
        .iter()
        .filter_map(|s| s.timestamps_ns.last())
        .copied()
        .min()
        .unwrap_or(-1);
    let period_ns = 1e9 / rate_hz;
    let grid: Vec<i64> = if nonempty && end >= start {
        let span = end.checked_sub(start).ok_or_else(|| {
            HarError::invalid(
                &recording.id,
                "timestamp_ns",
                format!("the streams' common span {start}..{end} ns overflows i64"),
            )
        })?;
        // The grid is bounded by what was received: one glitched timestamp must not make it
        // (and the allocation) terabytes long.
        let instants = (span as f64 / period_ns).floor() + 1.0;
        let received = recording.streams.iter().map(|s| s.len()).max().unwrap_or(0);
        let limit = (MAX_GRID_PER_SAMPLE * received.max(1)) as f64;
        if instants > limit {
            return Err(HarError::invalid(
                &recording.id,
                "timestamp_ns",
                format!(
                    "{span} ns at {rate_hz} Hz is {instants:.0} grid instants for at most \
                     {received} samples per stream (limit {MAX_GRID_PER_SAMPLE} per sample): a \
                     timestamp is corrupt, or the rate is far above the data's"
                ),
            ));
        }
        let n = instants as usize;
        (0..n)
            .map(|k| start + (k as f64 * period_ns).round() as i64)
            .collect()
    } else {
        Vec::new()
    };
    let mut valid = vec![true; grid.len()];
    let mut report = AlignReport {
        grid_samples: grid.len(),
        ..Default::default()
    };
    let mut streams = Vec::with_capacity(recording.streams.len());
    for stream in &recording.streams {
        let mut values = resample(stream, &grid, config.max_gap_periods, &mut valid);
        report.nan_filled += fill_nan_runs(
            &mut values,
            stream.info.channels(),
            config.max_nan_run,
            &mut valid,
        );
        streams.push((stream.info.clone(), values));
    }
    report.invalid = valid.iter().filter(|v| !**v).count();
    Ok(AlignedRecording {
        recording_id: recording.id.clone(),
        subject_id: recording.subject_id.clone(),
        rate_hz,
        labels: recording.labels_at(&grid),
        segments: valid_segments(&valid),
        timestamps_ns: grid,
        streams,
        report,
    })
}

/// Values of `stream` at each grid instant; marks instants in a gap invalid.
fn resample(
    stream: &ModalityStream,
    grid: &[i64],
    max_gap_periods: f64,
    valid: &mut [bool],
) -> Vec<f32> {
    let c = stream.info.channels();
    let ts = &stream.timestamps_ns;
    if ts.len() >= grid.len() && ts.starts_with(grid) {
        return stream.values[..grid.len() * c].to_vec();
    }
    let max_gap_ns = max_gap_periods * stream.info.period_ns();
    let mut out = Vec::with_capacity(grid.len() * c);
    let mut j = 0; // ts[j] <= t < ts[j + 1]
    for (k, &t) in grid.iter().enumerate() {
        while j + 1 < ts.len() && ts[j + 1] <= t {
            j += 1;
        }
        if ts[j] == t || j + 1 == ts.len() {
            out.extend_from_slice(stream.sample(j));
            continue;
        }
        // In f64: differences of timestamps far apart must not overflow.
        let (t0, t1) = (ts[j] as f64, ts[j + 1] as f64);
        if t1 - t0 > max_gap_ns {
            valid[k] = false;
        }
        let w = ((t as f64 - t0) / (t1 - t0)) as f32;
        let (a, b) = (stream.sample(j), stream.sample(j + 1));
        out.extend(a.iter().zip(b).map(|(x0, x1)| x0 + (x1 - x0) * w));
    }
    out
}

/// Fills short runs of NaN rows per channel; marks rows of long runs invalid. Returns the
/// number of rows filled.
fn fill_nan_runs(values: &mut [f32], channels: usize, max_run: usize, valid: &mut [bool]) -> usize {
    let rows = valid.len();
    let has_nan = |values: &[f32], r: usize| {
        values[r * channels..(r + 1) * channels]
            .iter()
            .any(|v| v.is_nan())
    };
    let mut filled = 0;
    let mut r = 0;
    while r < rows {
        if !has_nan(values, r) {
            r += 1;
            continue;
        }
        let start = r;
        while r < rows && has_nan(values, r) {
            r += 1;
        }
        let run = start..r;
        if run.len() > max_run {
            valid[run].iter_mut().for_each(|v| *v = false);
            continue;
        }
        for ch in 0..channels {
            let before = (0..start)
                .rev()
                .map(|i| values[i * channels + ch])
                .find(|v| !v.is_nan());
            let after = (r..rows)
                .map(|i| values[i * channels + ch])
                .find(|v| !v.is_nan());
            for (n, row) in run.clone().enumerate() {
                let slot = &mut values[row * channels + ch];
                if !slot.is_nan() {
                    continue;
                }
                *slot = match (before, after) {
                    (Some(a), Some(b)) => a + (b - a) * (n + 1) as f32 / (run.len() + 1) as f32,
                    (Some(a), None) => a,
                    (None, Some(b)) => b,
                    (None, None) => f32::NAN,
                };
            }
        }
        for row in run {
            if has_nan(values, row) {
                valid[row] = false; // a channel with no valid value at all
            } else {
                filled += 1;
            }
        }
    }
    filled
}

/// Maximal runs of valid instants.
fn valid_segments(valid: &[bool]) -> Vec<Range<usize>> {
    let mut segments = Vec::new();
    let mut start = None;
    for (i, &v) in valid.iter().chain(std::iter::once(&false)).enumerate() {
        match (v, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                segments.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    segments
}
