//! The multi-modal recording: streams of samples per modality plus label intervals, in memory
//! and on disk (one Parquet file per modality, one for labels; see `docs/recording-format.md`).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Int32Array, Int64Array, ListArray, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::columns;
use crate::error::{HarError, Result};
use crate::schema::{build_batch, SchemaName};

/// Label of a sample that belongs to no labelled interval.
pub const UNLABELLED: i32 = -1;

/// Parquet key-value metadata key holding a stream's [`ModalityInfo`] as JSON.
pub const MODALITY_METADATA_KEY: &str = "har.modality";
/// Parquet key-value metadata key holding the recording's ids as JSON.
pub const RECORDING_METADATA_KEY: &str = "har.recording";

/// What kind of sensor a modality is, which decides its preprocessing and tokenisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModalityKind {
    /// A body-worn inertial sensor (accelerometer, gyroscope, …): channels are axes.
    Inertial,
    /// Joint positions: channels are `joint.x, joint.y, joint.z` for each joint in order.
    Skeleton(SkeletonLayout),
}

/// The joints of a skeleton modality and the joints that define its normalisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkeletonLayout {
    /// Joint names in channel order (3 channels each).
    pub joints: Vec<String>,
    /// Parent joint index per joint (`None` for the root), for drawing and body-part grouping.
    pub parents: Vec<Option<usize>>,
    /// Joint the skeleton is centred on (hip / spine base).
    pub centre_joint: usize,
    /// Joint at the top of the torso (neck / shoulder centre); torso length is its distance
    /// from the centre joint.
    pub torso_top_joint: usize,
}

impl SkeletonLayout {
    /// The joints grouped into body parts for part-level attention (seed S2): first the
    /// torso — the root, every joint where the tree branches, and every joint on a path
    /// between them — then each limb, a chain hanging from the torso down to a leaf (a head,
    /// an arm, a leg), ordered by its first joint. Every joint is in exactly one part,
    /// whatever the file says: a parent out of range or a cycle counts as a root, and no walk
    /// is longer than the joint count.
    pub fn body_parts(&self) -> Vec<Vec<usize>> {
        let n = self.joints.len();
        let parent = |j: usize| {
            self.parents
                .get(j)
                .copied()
                .flatten()
                .filter(|&p| p < n && p != j)
        };
        let mut children = vec![0usize; n];
        for j in 0..n {
            if let Some(p) = parent(j) {
                children[p] += 1;
            }
        }
        // The torso: each branching joint (or root) and its ancestors.
        let mut torso = vec![false; n];
        let branching: Vec<usize> = (0..n)
            .filter(|&j| children[j] >= 2 || parent(j).is_none())
            .collect();
        for j in branching {
            let mut at = Some(j);
            for _ in 0..n {
                let Some(k) = at else { break };
                if torso[k] && k != j {
                    break;
                }
                torso[k] = true;
                at = parent(k);
            }
        }
        // Each other joint belongs to the limb whose first joint hangs from the torso.
        let mut limbs: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for j in (0..n).filter(|&j| !torso[j]) {
            let mut head = j;
            for _ in 0..n {
                match parent(head) {
                    Some(p) if !torso[p] => head = p,
                    _ => break,
                }
            }
            limbs.entry(head).or_default().push(j);
        }
        let torso: Vec<usize> = (0..n).filter(|&j| torso[j]).collect();
        std::iter::once(torso)
            .filter(|t| !t.is_empty())
            .chain(limbs.into_values())
            .collect()
    }
}

/// Description of one modality stream: name, kind, rate, units and channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModalityInfo {
    /// Stream name, e.g. `acc`, `gyro`, `skeleton`.
    pub name: String,
    /// Sensor kind.
    #[serde(flatten)]
    pub kind: ModalityKind,
    /// Nominal sample rate.
    pub sample_rate_hz: f64,
    /// Physical unit of every channel, e.g. `g`, `rad/s`, `m`.
    pub units: String,
    /// Channel names in value order.
    pub channel_names: Vec<String>,
}

impl ModalityInfo {
    /// An inertial modality with the given channels.
    pub fn inertial(name: &str, sample_rate_hz: f64, units: &str, channels: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            kind: ModalityKind::Inertial,
            sample_rate_hz,
            units: units.to_string(),
            channel_names: channels.iter().map(|c| c.to_string()).collect(),
        }
    }

    /// A skeleton modality; channel names are derived from the joints.
    pub fn skeleton(name: &str, sample_rate_hz: f64, units: &str, layout: SkeletonLayout) -> Self {
        let channel_names = layout
            .joints
            .iter()
            .flat_map(|j| ["x", "y", "z"].map(|axis| format!("{j}.{axis}")))
            .collect();
        Self {
            name: name.to_string(),
            kind: ModalityKind::Skeleton(layout),
            sample_rate_hz,
            units: units.to_string(),
            channel_names,
        }
    }

    /// Number of channels per sample.
    pub fn channels(&self) -> usize {
        self.channel_names.len()
    }

    /// Nominal sample period in nanoseconds.
    pub fn period_ns(&self) -> f64 {
        1e9 / self.sample_rate_hz
    }
}

/// The samples of one modality: timestamps and row-major values (samples × channels).
#[derive(Debug, Clone, PartialEq)]
pub struct ModalityStream {
    /// What the stream is.
    pub info: ModalityInfo,
    /// Per-sample timestamps from the recording start, strictly increasing.
    pub timestamps_ns: Vec<i64>,
    /// `timestamps_ns.len() × channels` values; NaN marks a missing value.
    pub values: Vec<f32>,
}

impl ModalityStream {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.timestamps_ns.len()
    }

    /// True when the stream holds no samples.
    pub fn is_empty(&self) -> bool {
        self.timestamps_ns.is_empty()
    }

    /// The channel values of sample `i`.
    pub fn sample(&self, i: usize) -> &[f32] {
        let c = self.info.channels();
        &self.values[i * c..(i + 1) * c]
    }

    /// Duration from the first to one period past the last sample, in seconds.
    pub fn duration_s(&self) -> f64 {
        match (self.timestamps_ns.first(), self.timestamps_ns.last()) {
            (Some(&first), Some(&last)) => {
                // In f64: a span over the i64 range must not overflow.
                (last as f64 - first as f64 + self.info.period_ns()) / 1e9
            }
            _ => 0.0,
        }
    }

    /// Checks shapes, rate and strictly increasing timestamps; errors name `context` and the field.
    pub fn validate(&self, context: &str) -> Result<()> {
        let stream = format!("{context}/{}", self.info.name);
        let c = self.info.channels();
        if c == 0 {
            return Err(HarError::invalid(stream, "channel_names", "no channels"));
        }
        if !(self.info.sample_rate_hz.is_finite() && self.info.sample_rate_hz > 0.0) {
            return Err(HarError::invalid(
                stream,
                "sample_rate_hz",
                format!("{} is not a positive rate", self.info.sample_rate_hz),
            ));
        }
        if self.values.len() != self.timestamps_ns.len() * c {
            return Err(HarError::invalid(
                stream,
                "values",
                format!(
                    "{} values for {} samples of {c} channels",
                    self.values.len(),
                    self.timestamps_ns.len()
                ),
            ));
        }
        if let ModalityKind::Skeleton(layout) = &self.info.kind {
            if layout.joints.len() * 3 != c || layout.parents.len() != layout.joints.len() {
                return Err(HarError::invalid(
                    stream,
                    "joints",
                    "skeleton layout does not match the channels",
                ));
            }
            if layout.centre_joint >= layout.joints.len()
                || layout.torso_top_joint >= layout.joints.len()
            {
                return Err(HarError::invalid(
                    stream,
                    "joints",
                    "centre or torso joint out of range",
                ));
            }
        }
        if let Some(i) = self.timestamps_ns.windows(2).position(|w| w[1] <= w[0]) {
            return Err(HarError::invalid(
                stream,
                "timestamp_ns",
                format!(
                    "not strictly increasing at sample {}: {} then {}",
                    i + 1,
                    self.timestamps_ns[i],
                    self.timestamps_ns[i + 1]
                ),
            ));
        }
        Ok(())
    }
}

/// A labelled time interval `[start_ns, end_ns)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelInterval {
    /// Inclusive start.
    pub start_ns: i64,
    /// Exclusive end.
    pub end_ns: i64,
    /// Class id.
    pub label: i32,
}

/// Turns per-sample labels into intervals (runs of equal labels; [`UNLABELLED`] runs are left
/// out). Each run ends where the next sample starts, the last one a period after its sample.
pub fn intervals_from_sample_labels(
    timestamps_ns: &[i64],
    labels: &[i32],
    period_ns: f64,
) -> Vec<LabelInterval> {
    let mut intervals = Vec::new();
    let mut start = 0;
    for i in 1..=labels.len() {
        if i == labels.len() || labels[i] != labels[start] {
            if labels[start] != UNLABELLED {
                let end_ns = timestamps_ns
                    .get(i)
                    .copied()
                    .unwrap_or_else(|| timestamps_ns[i - 1] + period_ns.round() as i64);
                intervals.push(LabelInterval {
                    start_ns: timestamps_ns[start],
                    end_ns,
                    label: labels[start],
                });
            }
            start = i;
        }
    }
    intervals
}

/// One recording: a subject's session with one stream per modality and its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// Unique id within the dataset; also the folder name on disk.
    pub id: String,
    /// Subject (person) id.
    pub subject_id: String,
    /// Session id.
    pub session_id: String,
    /// One stream per modality.
    pub streams: Vec<ModalityStream>,
    /// Ground truth, sorted and non-overlapping.
    pub labels: Vec<LabelInterval>,
}

/// A recording's ids, as the `har.recording` metadata key holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingIds {
    /// Recording id (its folder name).
    pub recording_id: String,
    /// Subject.
    pub subject_id: String,
    /// Session.
    pub session_id: String,
}

impl Recording {
    /// The stream of modality `name`.
    pub fn stream(&self, name: &str) -> Option<&ModalityStream> {
        self.streams.iter().find(|s| s.info.name == name)
    }

    /// The label of each timestamp ([`UNLABELLED`] outside every interval).
    pub fn labels_at(&self, timestamps_ns: &[i64]) -> Vec<i32> {
        let mut out = Vec::with_capacity(timestamps_ns.len());
        let mut k = 0;
        for &t in timestamps_ns {
            // Timestamps are increasing, so the interval cursor only moves forward.
            while k < self.labels.len() && self.labels[k].end_ns <= t {
                k += 1;
            }
            out.push(match self.labels.get(k) {
                Some(iv) if iv.start_ns <= t => iv.label,
                _ => UNLABELLED,
            });
        }
        out
    }

    /// Validates every stream and the label intervals.
    pub fn validate(&self) -> Result<()> {
        if self.streams.is_empty() {
            return Err(HarError::invalid(
                &self.id,
                "streams",
                "recording has no modality",
            ));
        }
        for s in &self.streams {
            s.validate(&self.id)?;
        }
        for (i, iv) in self.labels.iter().enumerate() {
            if iv.end_ns <= iv.start_ns {
                return Err(HarError::invalid(
                    &self.id,
                    "labels",
                    format!("interval {i} is empty or reversed"),
                ));
            }
            if i > 0 && self.labels[i - 1].end_ns > iv.start_ns {
                return Err(HarError::invalid(
                    &self.id,
                    "labels",
                    format!("interval {i} overlaps the previous one"),
                ));
            }
        }
        Ok(())
    }

    /// Writes the recording into `dir/<id>/` as `<modality>.parquet` files and `labels.parquet`.
    /// `class_name` maps a label id to its name for the labels table.
    pub fn write(&self, dir: &Path, class_name: &dyn Fn(i32) -> String) -> Result<PathBuf> {
        self.validate()?;
        let folder = dir.join(&self.id);
        std::fs::create_dir_all(&folder).map_err(|e| HarError::io(&folder, e))?;
        let ids = serde_json::to_string(&RecordingIds {
            recording_id: self.id.clone(),
            subject_id: self.subject_id.clone(),
            session_id: self.session_id.clone(),
        })
        .expect("ids serialise");
        for stream in &self.streams {
            let timestamps: ArrayRef = Arc::new(Int64Array::from(stream.timestamps_ns.clone()));
            let values: ArrayRef = Arc::new(list_of_rows(&stream.values, stream.info.channels()));
            let batch = build_batch(SchemaName::RecordingSamples, vec![timestamps, values])?;
            let modality = serde_json::to_string(&stream.info).expect("modality info serialises");
            write_parquet(
                &folder.join(format!("{}.parquet", stream.info.name)),
                &batch,
                vec![
                    (MODALITY_METADATA_KEY, modality),
                    (RECORDING_METADATA_KEY, ids.clone()),
                ],
            )?;
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(
                self.labels.iter().map(|l| l.start_ns),
            )),
            Arc::new(Int64Array::from_iter_values(
                self.labels.iter().map(|l| l.end_ns),
            )),
            Arc::new(Int32Array::from_iter_values(
                self.labels.iter().map(|l| l.label),
            )),
            Arc::new(StringArray::from_iter_values(
                self.labels.iter().map(|l| class_name(l.label)),
            )),
        ];
        let batch = build_batch(SchemaName::RecordingLabels, columns)?;
        write_parquet(
            &folder.join("labels.parquet"),
            &batch,
            vec![(RECORDING_METADATA_KEY, ids)],
        )?;
        Ok(folder)
    }

    /// Reads a recording folder whose files carry the format's metadata.
    pub fn read(folder: &Path) -> Result<Recording> {
        Self::read_with(folder, &ReadContext::default())
    }

    /// Reads a recording folder; what a file's metadata lacks is taken from `context` (the
    /// dataset manifest), and columns are read as other tools write them
    /// ([`crate::columns`]). Errors name the file and the missing key or column.
    pub fn read_with(folder: &Path, context: &ReadContext<'_>) -> Result<Recording> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
            .map_err(|e| HarError::io(folder, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect();
        files.sort();
        let labels_path = folder.join("labels.parquet");
        let mut ids: Option<RecordingIds> = None;
        let mut streams = Vec::new();
        for path in files.iter().filter(|p| **p != labels_path) {
            let (batches, metadata) = read_parquet(path)?;
            let info = modality_info(path, &metadata, context)?;
            if ids.is_none() {
                ids = parse_ids(path, &metadata)?;
            }
            let mut stream = ModalityStream {
                info,
                timestamps_ns: Vec::new(),
                values: Vec::new(),
            };
            for batch in &batches {
                let times = columns::column(path, batch, "timestamp_ns")?;
                stream
                    .timestamps_ns
                    .extend(columns::times_ns(path, "timestamp_ns", times)?);
                let values = columns::column(path, batch, "values")?;
                columns::append_rows(path, values, stream.info.channels(), &mut stream.values)?;
            }
            streams.push(stream);
        }
        let mut labels = Vec::new();
        if labels_path.exists() {
            let (batches, metadata) = read_parquet(&labels_path)?;
            if ids.is_none() {
                ids = parse_ids(&labels_path, &metadata)?;
            }
            let path = labels_path.as_path();
            for batch in &batches {
                let start =
                    columns::times_ns(path, "start_ns", columns::column(path, batch, "start_ns")?)?;
                let end =
                    columns::times_ns(path, "end_ns", columns::column(path, batch, "end_ns")?)?;
                let label = columns::labels(path, "label", columns::column(path, batch, "label")?)?;
                for ((start_ns, end_ns), label) in start.into_iter().zip(end).zip(label) {
                    labels.push(LabelInterval {
                        start_ns,
                        end_ns,
                        label,
                    });
                }
            }
        }
        let ids = ids.or_else(|| context.ids.clone()).ok_or_else(|| {
            HarError::format(
                folder,
                RECORDING_METADATA_KEY,
                format!(
                    "no file of the recording carries the key `{RECORDING_METADATA_KEY}` \
                     ({{\"recording_id\", \"subject_id\", \"session_id\"}}) and no dataset \
                     manifest lists the recording"
                ),
            )
        })?;
        let recording = Recording {
            id: ids.recording_id,
            subject_id: ids.subject_id,
            session_id: ids.session_id,
            streams,
            labels,
        };
        recording
            .validate()
            .map_err(|e| HarError::format(folder, "recording", e.to_string()))?;
        Ok(recording)
    }
}

/// What a reader falls back on when a file lacks the format's key-value metadata: the
/// recording's ids and the modality descriptions from the dataset manifest.
#[derive(Debug, Default)]
pub struct ReadContext<'a> {
    /// The recording's ids.
    pub ids: Option<RecordingIds>,
    /// Modality descriptions, matched to a file by its name (`<modality>.parquet`).
    pub modalities: &'a [ModalityInfo],
}

/// The modality a samples file holds: its `har.modality` metadata, else the manifest's
/// modality named like the file.
fn modality_info(
    path: &Path,
    metadata: &BTreeMap<String, String>,
    context: &ReadContext<'_>,
) -> Result<ModalityInfo> {
    if let Some(json) = metadata.get(MODALITY_METADATA_KEY) {
        return serde_json::from_str(json)
            .map_err(|e| HarError::format(path, MODALITY_METADATA_KEY, e.to_string()));
    }
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    context
        .modalities
        .iter()
        .find(|m| m.name == stem)
        .cloned()
        .ok_or_else(|| {
            HarError::format(
                path,
                MODALITY_METADATA_KEY,
                format!(
                    "missing key `{MODALITY_METADATA_KEY}` in the file's key-value metadata, \
                     and no dataset manifest describes a modality `{stem}`"
                ),
            )
        })
}

fn parse_ids(path: &Path, metadata: &BTreeMap<String, String>) -> Result<Option<RecordingIds>> {
    metadata
        .get(RECORDING_METADATA_KEY)
        .map(|json| {
            serde_json::from_str(json)
                .map_err(|e| HarError::format(path, RECORDING_METADATA_KEY, e.to_string()))
        })
        .transpose()
}

/// Packs row-major values into a list array of `channels`-long rows.
pub fn list_of_rows(values: &[f32], channels: usize) -> ListArray {
    let rows = values.len() / channels.max(1);
    let offsets = arrow::buffer::OffsetBuffer::from_lengths(std::iter::repeat_n(channels, rows));
    let item = Arc::new(arrow::datatypes::Field::new_list_field(
        arrow::datatypes::DataType::Float32,
        true,
    ));
    ListArray::new(
        item,
        offsets,
        Arc::new(Float32Array::from(values.to_vec())),
        None,
    )
}

/// Writes one batch to a Parquet file (zstd) with key-value metadata, via a temporary name.
pub fn write_parquet(
    path: &Path,
    batch: &arrow::array::RecordBatch,
    metadata: Vec<(&str, String)>,
) -> Result<()> {
    let tmp = path.with_extension("parquet.tmp");
    let file = File::create(&tmp).map_err(|e| HarError::io(&tmp, e))?;
    let props = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .set_key_value_metadata(Some(
            metadata
                .into_iter()
                .map(|(k, v)| KeyValue::new(k.to_string(), v))
                .collect(),
        ))
        .build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))
        .map_err(|e| HarError::parquet(&tmp, e))?;
    writer
        .write(batch)
        .map_err(|e| HarError::parquet(&tmp, e))?;
    writer.close().map_err(|e| HarError::parquet(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| HarError::io(path, e))
}

/// Reads all batches of a Parquet file and its key-value metadata.
///
/// The Parquet reader panics on some corrupt files (unsupported physical types, negative
/// offsets: found by `har fuzz`); such a panic is turned into an error naming the file.
pub fn read_parquet(
    path: &Path,
) -> Result<(Vec<arrow::array::RecordBatch>, BTreeMap<String, String>)> {
    let read = std::panic::catch_unwind(|| read_parquet_unguarded(path));
    read.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(HarError::format(
            path,
            "Parquet",
            format!("corrupt file (the reader failed: {message})"),
        ))
    })
}

fn read_parquet_unguarded(
    path: &Path,
) -> Result<(Vec<arrow::array::RecordBatch>, BTreeMap<String, String>)> {
    let file = File::open(path).map_err(|e| HarError::io(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| HarError::parquet(path, e))?;
    let metadata = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .filter_map(|kv| kv.value.clone().map(|v| (kv.key.clone(), v)))
                .collect()
        })
        .unwrap_or_default();
    let reader = builder.build().map_err(|e| HarError::parquet(path, e))?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| HarError::arrow(path.display().to_string(), e))?;
    Ok((batches, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recording whose timestamps span the whole i64 range has a duration, not an
    /// overflow (`har data inspect` sums durations).
    #[test]
    fn duration_over_the_i64_range_does_not_overflow() {
        let stream = ModalityStream {
            info: ModalityInfo::inertial("acc", 50.0, "g", &["x"]),
            timestamps_ns: vec![i64::MIN, 0, i64::MAX],
            values: vec![0.0; 3],
        };
        let seconds = stream.duration_s();
        assert!((seconds - 1.8446744073709552e10).abs() < 1.0, "{seconds}");
    }
}
