//! Few-shot enrolment, the parts that need data (seeds S7, S8; the prediction-time parts are
//! [`har_runtime::fewshot`]):
//!
//! - [`embed`]: windows → embeddings (the head's input) on the runtime, every core;
//! - [`fit`]: the transfer parameters fitted on the base classes' training windows — the
//!   imprint map (least squares), S7's temperature (grid over base-class episodes) and S8's
//!   graph attention and gate (Adam over episodes where one base class at a time plays the
//!   new class);
//! - [`episodes`]: N-way K-shot evaluation on held-out subjects, novel-only and generalised.

pub mod episodes;
pub mod fit;

use std::path::Path;

use har_core::dataset::{Dataset, Split};
use har_core::preprocess::{dataset_windows, WindowSet};
use har_runtime::batch;
use har_runtime::fewshot::{
    base_head, ActivityGraph, EnrolledClass, Enrollment, Method, Transfer, GRAPH_FILE,
};
use har_runtime::model_dir::{self, LoadedModel};

use crate::data::{model_windows, ClassMap, ModelPart, TensorData};
use crate::error::{ModelError, Result};
use crate::pipeline::open_dataset;
pub use episodes::{EpisodeData, EpisodeReport, EpisodeSettings};
pub use fit::{BaseClasses, FitSettings};

/// Windows as embeddings, with their labels and subjects.
#[derive(Debug, Clone, Default)]
pub struct Embedded {
    /// One embedding `[D]` per window.
    pub embeddings: Vec<Vec<f32>>,
    /// Dataset label id per window.
    pub labels: Vec<i32>,
    /// Subject per window.
    pub subjects: Vec<String>,
}

impl Embedded {
    /// Indices of the windows with `label`, optionally only of `subjects`.
    pub fn of_label(&self, label: i32, subjects: Option<&[String]>) -> Vec<usize> {
        (0..self.labels.len())
            .filter(|&i| self.labels[i] == label)
            .filter(|&i| subjects.is_none_or(|s| s.contains(&self.subjects[i])))
            .collect()
    }

    /// Keeps the windows whose label passes `keep`.
    pub fn retain_labels(&mut self, keep: impl Fn(i32) -> bool) {
        let kept: Vec<usize> = (0..self.labels.len())
            .filter(|&i| keep(self.labels[i]))
            .collect();
        self.embeddings = self.rows(&kept);
        self.labels = kept.iter().map(|&i| self.labels[i]).collect();
        self.subjects = kept.iter().map(|&i| self.subjects[i].clone()).collect();
    }

    /// The embeddings at `indices`.
    pub fn rows(&self, indices: &[usize]) -> Vec<Vec<f32>> {
        indices
            .iter()
            .map(|&i| self.embeddings[i].clone())
            .collect()
    }
}

/// The embeddings of `windows` under the loaded model (its normaliser applied), every core.
/// Labels are kept as they are: windows of classes the model does not know are embedded too.
pub fn embed(model: &LoadedModel, windows: &WindowSet) -> Result<Embedded> {
    let labels = windows.labels.clone();
    // TensorData maps labels to class indices; every label here is "known" to this map.
    let mut ids: Vec<i32> = labels.clone();
    ids.sort_unstable();
    ids.dedup();
    let classes = ClassMap {
        classes: ids
            .iter()
            .map(|&id| har_core::dataset::ClassInfo {
                id,
                name: id.to_string(),
            })
            .collect(),
    };
    let data = TensorData::new(windows, &model.normalizer, &classes)?;
    let mut workers = batch::workers(&model.model, batch::available_threads(8));
    let embeddings = batch::map_windows(&mut workers, data.len(), |m, i| {
        let inputs: Vec<Option<&[f32]>> = data
            .values
            .iter()
            .zip(&data.shapes)
            .map(|(values, &(t, c))| Some(&values[i * t * c..(i + 1) * t * c]))
            .collect();
        Ok(m.embed_available(&inputs)?.embedding)
    })?;
    Ok(Embedded {
        embeddings,
        labels,
        subjects: windows.subjects.clone(),
    })
}

/// `n` distinct indices drawn from `pool` (all of it, shuffled, when it is not larger).
pub fn sample(rng: &mut har_core::rng::Rng, pool: &[usize], n: usize) -> Vec<usize> {
    let mut pool = pool.to_vec();
    let n = n.min(pool.len());
    for i in 0..n {
        let j = i + (rng.next_u64() % (pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(n);
    pool
}

/// A model directory's base head, fitted transfer and graph, for enrolment.
pub struct FewShotModel {
    /// The loaded backbone.
    pub loaded: LoadedModel,
    /// Head rows `[C][D]` and biases.
    pub head: (Vec<Vec<f32>>, Vec<f32>),
    /// The activity graph (`activity_graph.json`).
    pub graph: ActivityGraph,
}

impl FewShotModel {
    /// Loads the model directory, its head and its activity graph.
    pub fn load(dir: &Path) -> Result<Self> {
        let loaded = model_dir::load(dir)?;
        let weights = model_dir::read_weights(dir, &loaded.card)?;
        let head = base_head(&loaded.card, &weights)?;
        let graph = ActivityGraph::load(&dir.join(GRAPH_FILE))?;
        Ok(Self {
            loaded,
            head,
            graph,
        })
    }
}

/// `har fewshot fit`: fits the transfer on the model's held-out validation subjects when its
/// card has some — windows the backbone never trained on, as a new class's will be — else on
/// its training windows (where the base classes are separated better than anything new
/// will be: the fit then trusts the prototypes more than it should). Writes the transfer
/// into the model directory.
pub fn fit_model(dir: &Path, dataset: &Dataset, settings: &FitSettings) -> Result<Transfer> {
    let model = FewShotModel::load(dir)?;
    let card = &model.loaded.card;
    let part = if card.provenance.validation_subjects.is_empty() {
        tracing::warn!(
            "{} held no validation subjects out: fitting on its training windows",
            card.model_id()
        );
        ModelPart::Training
    } else {
        ModelPart::Validation
    };
    let windows = model_windows(dataset, card, part)?;
    let embedded = embed(&model.loaded, &windows)?;
    let base = BaseClasses {
        names: card.classes.iter().map(|c| c.name.clone()).collect(),
        ids: card.classes.iter().map(|c| c.id).collect(),
        weights: &model.head.0,
        biases: &model.head.1,
        windows: &embedded,
    };
    let mut transfer = fit::fit(&base, &model.graph, &card.model_id(), settings)?;
    if let Some(p) = transfer.provenance.as_object_mut() {
        let part = if part == ModelPart::Validation {
            "validation subjects"
        } else {
            "training windows"
        };
        p.insert("fitted_on".into(), part.into());
    }
    transfer.save(dir)?;
    Ok(transfer)
}

/// `har fewshot eval`: episodes on the dataset's test split, the novel classes given by label
/// id (named as in the dataset, which the graph must use). `stride` overrides the card's
/// window stride for the evaluation windows; `by_recording` splits support from queries by
/// recording instead of by subject (for datasets without subject ids). With `part`
/// [`ModelPart::Validation`] the episodes use the model's held-out validation subjects (every
/// label) instead of the test split: where enrolment choices are made.
pub fn evaluate_model(
    dir: &Path,
    dataset: &Dataset,
    novel: &[i32],
    stride: Option<usize>,
    by_recording: bool,
    part: ModelPart,
    settings: &EpisodeSettings,
) -> Result<EpisodeReport> {
    let model = FewShotModel::load(dir)?;
    let card = &model.loaded.card;
    let transfer = Transfer::load(dir, card)?;
    let mut preprocess = card.preprocess.clone();
    if let Some(stride) = stride {
        preprocess.window.stride = stride;
    }
    let (windows, _) = match part {
        ModelPart::Test => dataset_windows(dataset, Split::Test, &preprocess)?,
        ModelPart::Validation => {
            let held = card.provenance.validation_subjects.clone();
            if held.is_empty() {
                return Err(ModelError::Invalid(format!(
                    "{}: the model held no training subjects out for validation",
                    card.model_id()
                )));
            }
            let (mut w, report) = dataset_windows(dataset, Split::Train, &preprocess)?;
            let subjects = w.subjects.clone();
            w.retain(|i| held.contains(&subjects[i]));
            (w, report)
        }
        ModelPart::Training => {
            return Err(ModelError::Invalid(
                "episodes on the training windows measure nothing".into(),
            ))
        }
    };
    let base_ids: Vec<i32> = card.classes.iter().map(|c| c.id).collect();
    if let Some(id) = novel.iter().find(|id| base_ids.contains(id)) {
        return Err(ModelError::Invalid(format!(
            "--novel: class {id} is one of the model's base classes"
        )));
    }
    let novel: Vec<(i32, String)> = novel
        .iter()
        .map(|&id| (id, dataset.manifest.class_name(id)))
        .collect();
    let mut embedded = embed(&model.loaded, &windows)?;
    if by_recording {
        embedded.subjects.clone_from(&windows.recordings);
    }
    embedded.retain_labels(|l| base_ids.contains(&l) || novel.iter().any(|n| n.0 == l));
    let data = EpisodeData {
        windows: &embedded,
        head: (&model.head.0, &model.head.1),
        base_ids: &base_ids,
        novel: &novel,
        transfer: &transfer,
        graph: &model.graph,
    };
    episodes::evaluate(&data, settings)
}

/// Where `har enroll` takes its K examples: windows of one label of a dataset (both
/// splits), optionally of some subjects only, drawn with a seed.
#[derive(Debug, Clone)]
pub struct Examples {
    /// The dataset.
    pub dataset: std::path::PathBuf,
    /// Dataset label id of the examples.
    pub label: i32,
    /// Only these subjects (empty: all).
    pub subjects: Vec<String>,
    /// K: windows drawn.
    pub shots: usize,
    /// Seed of the draw.
    pub seed: u64,
}

/// `har enroll`: adds class `name` to the model directory's `enrolled.json` from K example
/// windows, by `method`; returns the enrolled class. `stride` overrides the card's window
/// stride when cutting the examples (short recordings give more windows).
pub fn enroll_model(
    dir: &Path,
    name: &str,
    id: Option<i32>,
    method: Method,
    examples: &Examples,
    stride: Option<usize>,
) -> Result<EnrolledClass> {
    let model = FewShotModel::load(dir)?;
    let card = &model.loaded.card;
    let transfer = Transfer::load(dir, card)?;
    let mut enrollment = Enrollment::load(dir, card)?.unwrap_or(Enrollment {
        model_id: card.model_id(),
        classes: Vec::new(),
    });
    let taken: Vec<i32> = card
        .classes
        .iter()
        .map(|c| c.id)
        .chain(enrollment.classes.iter().map(|c| c.id))
        .collect();
    // By default the class keeps the examples' label id (so the dataset's test windows of it
    // are scored as this class by `har eval`), or one above every id taken.
    let asked = id;
    let id = id.unwrap_or_else(|| {
        if taken.contains(&examples.label) {
            taken.iter().copied().max().unwrap_or(0) + 1
        } else {
            examples.label
        }
    });
    let names = card
        .classes
        .iter()
        .map(|c| c.name.as_str())
        .chain(enrollment.classes.iter().map(|c| c.name.as_str()));
    if names.clone().any(|n| n == name) || asked.is_some_and(|id| taken.contains(&id)) {
        return Err(ModelError::Invalid(format!(
            "class `{name}` (id {id}) is already taken: the model has {:?}",
            names.collect::<Vec<_>>()
        )));
    }
    if method.graph() && !model.graph.contains(name) {
        return Err(ModelError::Invalid(format!(
            "`{name}` is not an activity of {GRAPH_FILE}: add it (attributes and edges) or \
             enrol with --method mean / query-aware"
        )));
    }
    let dataset = open_dataset(&examples.dataset)?;
    let mut preprocess = card.preprocess.clone();
    if let Some(stride) = stride {
        preprocess.window.stride = stride;
    }
    let mut windows = WindowSet::default();
    for split in [Split::Train, Split::Test] {
        windows.append(dataset_windows(&dataset, split, &preprocess)?.0)?;
    }
    let (labels, subjects) = (windows.labels.clone(), windows.subjects.clone());
    windows.retain(|i| {
        labels[i] == examples.label
            && (examples.subjects.is_empty() || examples.subjects.contains(&subjects[i]))
    });
    if windows.len() < examples.shots || examples.shots == 0 {
        return Err(ModelError::Invalid(format!(
            "{}: {} windows of label {} for the chosen subjects, {} examples asked",
            examples.dataset.display(),
            windows.len(),
            examples.label,
            examples.shots
        )));
    }
    let mut rng = har_core::rng::Rng::new(examples.seed);
    let chosen = sample(
        &mut rng,
        &(0..windows.len()).collect::<Vec<_>>(),
        examples.shots,
    );
    let embedded = embed(&model.loaded, &windows)?;
    let provenance: Vec<String> = chosen
        .iter()
        .map(|&i| {
            format!(
                "{}:{}@{}",
                examples.dataset.display(),
                windows.recordings[i],
                windows.start_ns[i]
            )
        })
        .collect();
    let class = transfer.enroll(
        id,
        name,
        method,
        embedded.rows(&chosen),
        (&model.head.0, &model.head.1),
        Some(&model.graph),
        provenance,
    )?;
    enrollment.classes.push(class.clone());
    enrollment
        .validate(card)
        .map_err(|e| ModelError::Invalid(format!("enrolling `{name}`: {e}")))?;
    enrollment.save(dir)?;
    Ok(class)
}
