//! The segmentation model in the graph (the segment node's `HAR_SEGMENTER` mode): raw sensor
//! chunks → per-device steps → the runtime's step-by-step segmenter → activity segments.
//!
//! Each device's chunks go through the same streaming preprocessing as the classifier's
//! ([`crate::windower`]: the device's grid, interpolation, the model's standardisation), with
//! windows one step long (`patch_len` samples) and no overlap. When every modality's window of
//! a step is in, the step's values (sample-major, channels in the card's modality order) go
//! through the device's [`SegmenterStream`]; its most likely class over the step's span goes
//! to the segment rule of [`har_core::segments`], which closes segments as they stream.
//!
//! **Degrades (counted).** A step a modality never delivers (its window was skipped for an
//! invalid sample) is dropped once a later window of that modality arrives
//! (`incomplete_steps`); a step that does not follow the previous one restarts the device's
//! model state (`restarts`: the model sees a fresh sequence after a gap, as offline
//! evaluation does at the end of a valid stretch); a stream longer than the context limit
//! loses its oldest steps from the global attention (`context_dropped`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use har_core::preprocess::{ChannelStats, LabelPolicy, Normalizer, WindowConfig};
use har_core::segments::{Segment, SegmentRule, Segmenter as SegmentRuleState, Span};
use har_core::streams::{SensorChunk, Source, WindowMessage};
use har_runtime::segmenter::{Segmenter, SegmenterCard, SegmenterStream, WEIGHTS_FILE};

use crate::error::{DataflowError, Result};
use crate::segmenting::SegmentRow;
use crate::windower::{ModalitySetup, PreprocessCounters, StreamingPreprocessor, StreamingSpec};

/// How the model's labels become segments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepSettings {
    /// The segment rule.
    pub rule: SegmentRule,
    /// Steps the global attention keeps per device when the model sets no window of its own.
    pub context_limit: usize,
}

/// What the model mode did, for node health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepCounters {
    /// Steps run through the model.
    pub steps: u64,
    /// Steps dropped because a modality's window of them never came.
    pub incomplete_steps: u64,
    /// Device model states restarted after a step that did not follow the previous one.
    pub restarts: u64,
}

/// A step waiting for its other modalities: its start and one slot per modality.
type PendingStep = (i64, Vec<Option<Vec<f32>>>);

/// One device's model state and segment rule.
#[derive(Debug)]
struct DeviceSteps {
    source: Source,
    step_ns: i64,
    /// Steps waiting for their other modalities: window id → one slot per modality.
    pending: BTreeMap<u64, PendingStep>,
    last_step: Option<u64>,
    stream: SegmenterStream,
    /// Context drops of the streams this device restarted from.
    dropped_before: u64,
    rule: SegmentRuleState,
    next_id: u64,
}

/// Every device's segmentation model state.
#[derive(Debug)]
pub struct ModelSegments {
    card: SegmenterCard,
    model: Segmenter,
    model_id: String,
    settings: StepSettings,
    preprocessor: StreamingPreprocessor,
    devices: HashMap<String, DeviceSteps>,
    counters: StepCounters,
    logits: Vec<f32>,
    step: Vec<f32>,
}

impl ModelSegments {
    /// Reads the segmenter directory `dir` (card and weights checked) and sets up the
    /// streaming preprocessing its card describes.
    pub fn open(dir: &Path, settings: StepSettings) -> Result<Self> {
        let (card, model) = Segmenter::read_dir(dir)?;
        if card.modalities.is_empty() {
            return Err(DataflowError::setting(
                "HAR_SEGMENTER",
                format!(
                    "{}: the card lists no modalities (written before they were recorded); \
                     retrain or add `modalities`",
                    dir.display()
                ),
            ));
        }
        if settings.context_limit == 0 {
            return Err(DataflowError::setting(
                "HAR_SEGMENTER_CONTEXT",
                "must be at least one step",
            ));
        }
        let model_id = crate::settings::weights_id(dir, WEIGHTS_FILE, "HAR_SEGMENTER")?;
        let spec = streaming_spec(&card);
        Ok(Self {
            preprocessor: StreamingPreprocessor::new(spec)?,
            card,
            model,
            model_id,
            settings,
            devices: HashMap::new(),
            counters: StepCounters::default(),
            logits: Vec::new(),
            step: Vec::new(),
        })
    }

    /// The model's id in the segments it closes (`<dir>@<weights SHA-256 prefix>`).
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// What the model mode did.
    pub fn counters(&self) -> StepCounters {
        self.counters
    }

    /// What the streaming preprocessing did.
    pub fn preprocess_counters(&self) -> PreprocessCounters {
        self.preprocessor.counters
    }

    /// Steps no longer seen by a device's global attention (the context limit), all devices.
    pub fn context_dropped(&self) -> u64 {
        self.devices
            .values()
            .map(|d| d.dropped_before + d.stream.context_dropped())
            .sum()
    }

    /// Takes one chunk; returns the segments it closed. A chunk the preprocessing refuses is
    /// an error naming it (the node counts it and goes on).
    pub fn push(&mut self, chunk: &SensorChunk) -> Result<Vec<SegmentRow>> {
        let windows = self.preprocessor.push(chunk)?;
        let mut rows = Vec::new();
        for window in windows {
            self.take_window(chunk, window, &mut rows)?;
        }
        Ok(rows)
    }

    fn take_window(
        &mut self,
        chunk: &SensorChunk,
        window: WindowMessage,
        rows: &mut Vec<SegmentRow>,
    ) -> Result<()> {
        let modalities = &self.card.modalities;
        let Some(m) = modalities
            .iter()
            .position(|x| x.name == window.key.modality)
        else {
            return Ok(());
        };
        let patch_len = self.card.config.patch_len;
        let device = self
            .devices
            .entry(window.key.source.device_id.clone())
            .or_insert_with(|| DeviceSteps {
                source: window.key.source.clone(),
                step_ns: step_ns(chunk.sample_rate_hz, self.card.align.rate_hz, patch_len),
                pending: BTreeMap::new(),
                last_step: None,
                stream: self.model.stream(self.settings.context_limit),
                dropped_before: 0,
                rule: SegmentRuleState::new(self.settings.rule),
                next_id: 0,
            });
        let id = window.key.window_id;
        // Windows of one modality arrive in order: earlier steps still missing this modality
        // never complete.
        let stale: Vec<u64> = device
            .pending
            .range(..id)
            .filter(|(_, (_, slots))| slots[m].is_none())
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            device.pending.remove(&k);
            self.counters.incomplete_steps += 1;
        }
        let entry = device
            .pending
            .entry(id)
            .or_insert_with(|| (window.key.start_ns, vec![None; modalities.len()]));
        entry.1[m] = Some(window.values);
        if entry.1.iter().any(Option::is_none) {
            return Ok(());
        }
        let (start_ns, slots) = device.pending.remove(&id).expect("entry just filled");
        // The step's values, sample-major, channels in modality order.
        self.step.clear();
        for t in 0..patch_len {
            for (slot, modality) in slots.iter().zip(modalities) {
                let c = modality.channels;
                let values = slot.as_ref().expect("every slot filled");
                self.step.extend_from_slice(&values[t * c..(t + 1) * c]);
            }
        }
        if device
            .last_step
            .is_some_and(|last| last.checked_add(1) != Some(id))
        {
            device.dropped_before += device.stream.context_dropped();
            device.stream = self.model.stream(self.settings.context_limit);
            self.counters.restarts += 1;
        }
        device.last_step = Some(id);
        self.model
            .step(&mut device.stream, &self.step, &mut self.logits)?;
        self.counters.steps += 1;
        let (k, confidence) = most_likely(&self.logits);
        let span = Span {
            start_ns,
            end_ns: start_ns.saturating_add(device.step_ns),
            label: self.card.classes[k].id,
            confidence,
        };
        for segment in device.rule.push(span) {
            rows.push(Self::row(device, &self.card, &self.model_id, segment));
        }
        Ok(())
    }

    /// Closes every device's open segment (the end of the stream).
    pub fn finish(&mut self) -> Vec<SegmentRow> {
        let mut ids: Vec<String> = self.devices.keys().cloned().collect();
        ids.sort();
        let mut rows = Vec::new();
        for id in ids {
            let device = self.devices.get_mut(&id).expect("listed device");
            self.counters.incomplete_steps += device.pending.len() as u64;
            device.pending.clear();
            if let Some(segment) = device.rule.finish() {
                rows.push(Self::row(device, &self.card, &self.model_id, segment));
            }
        }
        rows
    }

    fn row(
        device: &mut DeviceSteps,
        card: &SegmenterCard,
        model_id: &str,
        segment: Segment,
    ) -> SegmentRow {
        device.next_id += 1;
        SegmentRow {
            source: device.source.clone(),
            segment_id: device.next_id - 1,
            name: card
                .classes
                .iter()
                .find(|c| c.id == segment.label)
                .map_or_else(|| segment.label.to_string(), |c| c.name.clone()),
            segment,
            model_id: model_id.to_string(),
        }
    }
}

/// A step's length: `patch_len` periods of the card's rate, or of the device's own rate when
/// the card takes each device's (the windower's grid does the same).
fn step_ns(device_rate_hz: f64, card_rate_hz: Option<f64>, patch_len: usize) -> i64 {
    let rate = card_rate_hz.unwrap_or(device_rate_hz);
    let period = (1e9 / rate).round();
    if period.is_finite() && period >= 1.0 {
        (period as i64).saturating_mul(patch_len as i64)
    } else {
        1
    }
}

/// The most likely class and its softmax probability.
fn most_likely(logits: &[f32]) -> (usize, f32) {
    let (k, &best) = logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .expect("at least one class");
    let total: f32 = logits.iter().map(|v| (v - best).exp()).sum();
    (k, 1.0 / total)
}

/// The streaming preprocessing of a segmenter card: one window per step, the card's
/// standardisation split per modality.
fn streaming_spec(card: &SegmenterCard) -> StreamingSpec {
    let mut offset = 0;
    let mut stats = Vec::new();
    let mut modalities = Vec::new();
    for m in &card.modalities {
        let range = offset..offset + m.channels;
        offset += m.channels;
        stats.push(ChannelStats {
            modality: m.name.clone(),
            channel_names: (0..m.channels).map(|c| format!("{}{c}", m.name)).collect(),
            mean: card.standardiser.mean[range.clone()].to_vec(),
            std: card.standardiser.std[range].to_vec(),
        });
        modalities.push(ModalitySetup {
            name: m.name.clone(),
            channels: m.channels,
            skeleton: None,
        });
    }
    StreamingSpec {
        modalities,
        rate_hz: card.align.rate_hz,
        window: WindowConfig {
            length: card.config.patch_len,
            stride: card.config.patch_len,
            label_policy: LabelPolicy::Majority { min_fraction: 0.5 },
        },
        max_gap_periods: card.align.max_gap_periods,
        normalizer: Normalizer { modalities: stats },
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn shipped() -> ModelSegments {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/hapt-segmenter");
        ModelSegments::open(
            &dir,
            StepSettings {
                rule: SegmentRule {
                    min_duration_ns: 1_000_000_000,
                    max_gap_ns: 5_000_000_000,
                },
                context_limit: 64,
            },
        )
        .unwrap()
    }

    /// `n` samples of `modality` at 50 Hz from sample `first` (synthetic: a slow wave).
    fn chunk(modality: &str, first: i64, n: usize, seq: u64) -> SensorChunk {
        SensorChunk {
            source: Source {
                device_id: "d1".into(),
                subject_id: "s".into(),
                session_id: "1".into(),
            },
            modality: modality.into(),
            chunk_seq: seq,
            sample_rate_hz: 50.0,
            channel_count: 3,
            timestamps_ns: (0..n as i64).map(|k| (first + k) * 20_000_000).collect(),
            values: (0..n * 3)
                .map(|i| ((first as f32 + (i / 3) as f32) * 0.1).sin() + (i % 3) as f32)
                .collect(),
            labels: None,
            ingest_ts_ns: 0,
        }
    }

    #[test]
    fn steps_run_when_every_modality_is_in_and_segments_cover_them() {
        let mut m = shipped();
        let mut rows = Vec::new();
        // 40 s of both modalities in 0.2 s chunks, gyro one chunk behind.
        for c in 0..200u64 {
            rows.extend(m.push(&chunk("acc", c as i64 * 10, 10, c)).unwrap());
            if c > 0 {
                rows.extend(m.push(&chunk("gyro", (c as i64 - 1) * 10, 10, c)).unwrap());
            }
        }
        rows.extend(m.push(&chunk("gyro", 1990, 10, 200)).unwrap());
        rows.extend(m.finish());
        assert_eq!(m.counters().steps, 250, "2000 samples / 8");
        assert_eq!(m.counters().incomplete_steps, 0);
        assert_eq!(m.counters().restarts, 0);
        // The shipped model bounds its own global attention (256 steps): the node's context
        // limit (64 here) does not apply and nothing is counted.
        assert_eq!(m.context_dropped(), 0);
        let covered: usize = rows.iter().map(|r| r.segment.spans).sum();
        assert_eq!(covered, 250);
        assert!(rows
            .iter()
            .all(|r| r.model_id.starts_with("hapt-segmenter@")));
        let ids: Vec<u64> = rows.iter().map(|r| r.segment_id).collect();
        assert_eq!(ids, (0..rows.len() as u64).collect::<Vec<_>>());
    }

    #[test]
    fn a_missing_modality_window_and_a_time_jump_are_counted_not_fatal() {
        let mut m = shipped();
        // acc and gyro for 2 s; then acc only for 0.8 s (gyro dead); then both resume 60 s
        // later (a jump the preprocessing restarts its tracks after).
        let mut rows = m.push(&chunk("acc", 0, 100, 0)).unwrap();
        rows.extend(m.push(&chunk("gyro", 0, 100, 0)).unwrap());
        rows.extend(m.push(&chunk("acc", 100, 40, 1)).unwrap());
        let before = m.counters();
        rows.extend(m.push(&chunk("acc", 3100, 100, 2)).unwrap());
        rows.extend(m.push(&chunk("gyro", 3100, 100, 1)).unwrap());
        rows.extend(m.finish());
        let c = m.counters();
        assert_eq!(before.steps, 12, "{before:?}");
        assert_eq!(c.incomplete_steps, 5, "the acc-only steps: {c:?}");
        assert_eq!(c.restarts, 1, "{c:?}");
        assert_eq!(c.steps, 24, "{c:?}");
        // The jump ends a segment: nothing bridges a minute.
        assert!(
            rows.iter()
                .all(|r| r.segment.end_ns <= 2_000_000_000 || r.segment.start_ns >= 62_000_000_000),
            "{rows:?}"
        );
        assert_eq!(rows.iter().map(|r| r.segment.spans).sum::<usize>(), 24);
    }

    #[test]
    fn a_chunk_the_model_cannot_take_is_an_error_naming_it() {
        let mut m = shipped();
        let mut bad = chunk("acc", 0, 10, 0);
        bad.channel_count = 4;
        bad.values.extend([0.0; 10]);
        let err = m.push(&bad).unwrap_err().to_string();
        assert!(err.contains("acc"), "{err}");
        // Unknown modalities are skipped and counted by the preprocessing.
        m.push(&chunk("magnetometer", 0, 10, 0)).unwrap();
        assert_eq!(m.preprocess_counters().unknown_modality_chunks, 1);
    }
}
