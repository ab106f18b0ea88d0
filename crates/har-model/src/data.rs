//! Training data: windows of a dataset as per-modality tensors, class mapping, the
//! validation split carved from training subjects, and the training-data checksum.

use std::collections::BTreeSet;

use candle_core::{Device, Tensor};
use har_core::dataset::{ClassInfo, Dataset, Split};
use har_core::preprocess::{
    dataset_windows, ChannelStats, Normalizer, PreprocessConfig, WindowSet,
};
use har_core::recording::ModalityKind;
use har_core::rng::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::augment::{AugmentConfig, Rotation};
use crate::dmft::ModalitySpec;
use crate::error::{ModelError, Result};

/// The model's classes: output index → dataset class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMap {
    /// Dataset classes in output order.
    pub classes: Vec<ClassInfo>,
}

impl ClassMap {
    /// The dataset's classes, restricted to `filter` when it is not empty.
    pub fn from_dataset(dataset: &Dataset, filter: &[i32]) -> Result<Self> {
        let classes: Vec<ClassInfo> = dataset
            .manifest
            .classes
            .iter()
            .filter(|c| filter.is_empty() || filter.contains(&c.id))
            .cloned()
            .collect();
        if let Some(missing) = filter
            .iter()
            .find(|id| !classes.iter().any(|c| c.id == **id))
        {
            return Err(ModelError::Invalid(format!(
                "class id {missing} is not in dataset `{}`",
                dataset.manifest.name
            )));
        }
        if classes.len() < 2 {
            return Err(ModelError::Invalid("fewer than 2 classes to learn".into()));
        }
        Ok(Self { classes })
    }

    /// Output index of dataset label `label`.
    pub fn index(&self, label: i32) -> Option<usize> {
        self.classes.iter().position(|c| c.id == label)
    }

    /// Class names in output order.
    pub fn names(&self) -> Vec<String> {
        self.classes.iter().map(|c| c.name.clone()).collect()
    }
}

/// Token groups of a dataset modality: one group for an inertial sensor, one per joint for a
/// skeleton.
pub fn modality_spec(info: &har_core::recording::ModalityInfo) -> ModalitySpec {
    let c = info.channels();
    let (groups, skeleton) = match &info.kind {
        har_core::recording::ModalityKind::Inertial => (vec![(0..c).collect()], None),
        har_core::recording::ModalityKind::Skeleton(layout) => (
            (0..layout.joints.len())
                .map(|j| vec![3 * j, 3 * j + 1, 3 * j + 2])
                .collect(),
            Some(layout.clone()),
        ),
    };
    ModalitySpec {
        name: info.name.clone(),
        channels: c,
        groups,
        skeleton,
    }
}

/// Windows of one dataset split, restricted to the model's classes.
pub fn split_windows(
    dataset: &Dataset,
    split: Split,
    preprocess: &PreprocessConfig,
    classes: &ClassMap,
) -> Result<WindowSet> {
    let (mut windows, _) = dataset_windows(dataset, split, preprocess)?;
    let labels = windows.labels.clone();
    windows.retain(|i| classes.index(labels[i]).is_some());
    if windows.is_empty() {
        return Err(ModelError::Invalid(format!(
            "no {split} windows of the chosen classes in `{}`",
            dataset.manifest.name
        )));
    }
    Ok(windows)
}

/// Which training subjects are held out for validation (epoch selection, early stopping, and
/// the choice of a recipe on leave-subjects-out folds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Holdout {
    /// About this share of the training subjects, chosen by the training seed; 0 holds out
    /// nothing (every epoch counts, the last one is kept).
    Fraction(f64),
    /// Fold `fold` (from 1) of `folds` leave-subjects-out folds. The subjects are dealt to
    /// the folds in an order fixed by [`FOLD_SEED`], not by the training seed, so every
    /// recipe and seed compared on "fold 2 of 3" sees the same subjects.
    Fold {
        /// The held-out fold, 1..=folds.
        fold: usize,
        /// Number of folds, at least 2.
        folds: usize,
    },
}

/// Seed of the fold assignment: the same folds for every training seed.
pub const FOLD_SEED: u64 = 0x5EED_F01D;

impl Holdout {
    /// Parses `K/N` (fold K of N) as given to `--val-fold`.
    pub fn parse_fold(text: &str) -> std::result::Result<Self, String> {
        let (fold, folds) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}`: give the fold as K/N, e.g. 1/3"))?;
        let parse = |part: &str| {
            part.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{text}`: `{part}` is not a whole number"))
        };
        let (fold, folds) = (parse(fold)?, parse(folds)?);
        if folds < 2 || fold == 0 || fold > folds {
            return Err(format!(
                "`{text}`: need 2 or more folds and a fold from 1 to their number"
            ));
        }
        Ok(Self::Fold { fold, folds })
    }

    /// `true` when nothing is held out.
    pub fn is_none(&self) -> bool {
        matches!(self, Self::Fraction(f) if *f <= 0.0)
    }
}

/// Splits training windows into (train, validation) by `holdout`: whole subjects go to one
/// side. With fewer than two subjects the recordings are split instead. A fold with no
/// subject (more folds than subjects) is an error.
pub fn carve_validation(
    windows: &WindowSet,
    holdout: Holdout,
    seed: u64,
) -> Result<(WindowSet, WindowSet)> {
    if holdout.is_none() {
        let mut none = windows.clone();
        none.retain(|_| false);
        return Ok((windows.clone(), none));
    }
    let subjects: BTreeSet<&String> = windows.subjects.iter().collect();
    let by_subject = subjects.len() >= 2;
    let keys: Vec<String> = if by_subject {
        subjects.into_iter().cloned().collect()
    } else {
        windows
            .recordings
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .cloned()
            .collect()
    };
    let shuffle_seed = match holdout {
        Holdout::Fraction(_) => seed,
        Holdout::Fold { .. } => FOLD_SEED,
    };
    let mut order = keys.clone();
    let mut rng = Rng::new(shuffle_seed);
    rng.shuffle(&mut order);
    let held: BTreeSet<String> = match holdout {
        Holdout::Fraction(fraction) => {
            let take = ((keys.len() as f64 * fraction).round() as usize)
                .clamp(1, keys.len().saturating_sub(1).max(1));
            order.into_iter().take(take).collect()
        }
        Holdout::Fold { fold, folds } => {
            if keys.len() < folds {
                return Err(ModelError::Invalid(format!(
                    "--val-fold {fold}/{folds}: only {} {} to deal to {folds} folds",
                    keys.len(),
                    if by_subject { "subjects" } else { "recordings" }
                )));
            }
            order
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % folds == fold - 1)
                .map(|(_, key)| key)
                .collect()
        }
    };
    let key = |i: usize| {
        if by_subject {
            &windows.subjects[i]
        } else {
            &windows.recordings[i]
        }
    };
    let mut train = windows.clone();
    train.retain(|i| !held.contains(key(i)));
    let mut validation = windows.clone();
    validation.retain(|i| held.contains(key(i)));
    Ok((train, validation))
}

/// Which windows of a dataset a trained model saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelPart {
    /// The training split without the card's validation subjects: what it was trained on.
    Training,
    /// The card's validation subjects of the training split: held out from its training.
    Validation,
    /// The test split.
    Test,
}

/// The windows of `dataset` in `part` for the model of `card` (its classes, preprocessing
/// and validation subjects). Validation subjects are matched by subject id.
pub fn model_windows(
    dataset: &Dataset,
    card: &har_runtime::card::ModelCard,
    part: ModelPart,
) -> Result<WindowSet> {
    let classes = ClassMap {
        classes: card.classes.clone(),
    };
    let split = if part == ModelPart::Test {
        Split::Test
    } else {
        Split::Train
    };
    let mut windows = split_windows(dataset, split, &card.preprocess, &classes)?;
    let held = &card.provenance.validation_subjects;
    match part {
        ModelPart::Training => {
            let subjects = windows.subjects.clone();
            windows.retain(|i| !held.contains(&subjects[i]));
        }
        ModelPart::Validation => {
            if held.is_empty() {
                return Err(ModelError::Invalid(format!(
                    "{}: the model held no training subjects out for validation",
                    card.model_id()
                )));
            }
            let subjects = windows.subjects.clone();
            windows.retain(|i| held.contains(&subjects[i]));
        }
        ModelPart::Test => {}
    }
    Ok(windows)
}

/// SHA-256 over the exact training windows (values of every modality, then labels).
pub fn windows_checksum(windows: &WindowSet) -> String {
    let mut hasher = Sha256::new();
    for values in &windows.values {
        for v in values {
            hasher.update(v.to_le_bytes());
        }
    }
    for l in &windows.labels {
        hasher.update(l.to_le_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Normalised windows as flat per-modality arrays plus class indices, ready for batching.
#[derive(Debug, Clone)]
pub struct TensorData {
    /// Per modality: windows × T × C values.
    pub values: Vec<Vec<f32>>,
    /// Per modality: (T, C).
    pub shapes: Vec<(usize, usize)>,
    /// Class index per window.
    pub targets: Vec<u32>,
    /// Per modality: its normalisation when it is a 3-axis inertial sensor (rotation
    /// augmentation applies to it), else `None`.
    pub rotatable: Vec<Option<ChannelStats>>,
}

impl TensorData {
    /// Normalises `windows` with `normalizer` and maps labels through `classes`.
    pub fn new(windows: &WindowSet, normalizer: &Normalizer, classes: &ClassMap) -> Result<Self> {
        let mut normalised = windows.clone();
        normalizer.apply(&mut normalised)?;
        let targets = windows
            .labels
            .iter()
            .map(|&l| {
                classes.index(l).map(|i| i as u32).ok_or_else(|| {
                    ModelError::Invalid(format!("label {l} is not one of the model's classes"))
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            shapes: windows
                .modalities
                .iter()
                .map(|m| (windows.length, m.channels()))
                .collect(),
            values: normalised.values,
            targets,
            rotatable: windows
                .modalities
                .iter()
                .zip(&normalizer.modalities)
                .map(|(m, stats)| {
                    (matches!(m.kind, ModalityKind::Inertial) && m.channels() == 3)
                        .then(|| stats.clone())
                })
                .collect(),
        })
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// The windows `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Self {
        Self {
            values: self
                .values
                .iter()
                .zip(&self.shapes)
                .map(|(values, &(t, c))| {
                    indices
                        .iter()
                        .flat_map(|&i| values[i * t * c..(i + 1) * t * c].iter().copied())
                        .collect()
                })
                .collect(),
            shapes: self.shapes.clone(),
            targets: indices.iter().map(|&i| self.targets[i]).collect(),
            rotatable: self.rotatable.clone(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The inputs of windows `indices` as `[B, T, C]` tensors, augmented when `augment` is
    /// given (see [`crate::augment`]; one rotation per window, shared by its inertial
    /// modalities).
    pub fn inputs(
        &self,
        indices: &[usize],
        augment: Option<(&AugmentConfig, &mut Rng)>,
    ) -> Result<Vec<Tensor>> {
        let mut augment = augment;
        let draws: Vec<(Option<Rotation>, f32)> = match augment.as_mut() {
            Some((config, rng)) => indices
                .iter()
                .map(|_| (config.draw_rotation(rng), config.draw_amplitude(rng)))
                .collect(),
            None => vec![(None, 1.0); indices.len()],
        };
        self.shapes
            .iter()
            .zip(&self.values)
            .zip(&self.rotatable)
            .map(|((&(t, c), values), stats)| {
                let size = t * c;
                let mut batch = Vec::with_capacity(indices.len() * size);
                for (&i, (rotation, amplitude)) in indices.iter().zip(&draws) {
                    let start = batch.len();
                    batch.extend_from_slice(&values[i * size..(i + 1) * size]);
                    if let Some((config, rng)) = augment.as_mut() {
                        let window = &mut batch[start..];
                        config.apply(
                            window,
                            c,
                            stats.as_ref(),
                            rotation.as_ref(),
                            *amplitude,
                            rng,
                        );
                    }
                }
                Ok(Tensor::from_vec(
                    batch,
                    (indices.len(), t, c),
                    &Device::Cpu,
                )?)
            })
            .collect()
    }

    /// Class indices of windows `indices` as a `[B]` tensor.
    pub fn target_tensor(&self, indices: &[usize]) -> Result<Tensor> {
        let targets: Vec<u32> = indices.iter().map(|&i| self.targets[i]).collect();
        Ok(Tensor::from_vec(targets, indices.len(), &Device::Cpu)?)
    }
}
