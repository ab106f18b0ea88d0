//! The training pipeline as a library: dataset → windows → normaliser → fit → card → save
//! (`har train`, `har distill`), and the test-split evaluation of a saved model on the runtime
//! (`har eval`). The CLI only parses arguments into these options.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use har_core::dataset::{Dataset, Split};
use har_core::preprocess::{LabelPolicy, Normalizer, PreprocessConfig, WindowConfig, WindowSet};
use har_runtime::card::{ModelCard, Provenance, ValidationScore};
use har_runtime::config::{DmftConfig, ModalitySpec};
use har_runtime::fewshot::Enrollment;
use har_runtime::{batch, model_dir};

use crate::artifact;
use crate::data::{
    carve_validation, modality_spec, model_windows, split_windows, windows_checksum, ClassMap,
    Holdout, ModelPart, TensorData,
};
use crate::distill::{DistillConfig, Teacher};
use crate::error::{ModelError, Result};
use crate::metrics::Metrics;
use crate::train::{self, EpochRecord, Observer, TrainConfig};

/// Which data and windows a model is trained on.
#[derive(Debug, Clone)]
pub struct DataOptions {
    /// Dataset folder, or its name under `data/`.
    pub dataset: PathBuf,
    /// Class ids to learn (empty: all).
    pub classes: Vec<i32>,
    /// Window length in samples.
    pub window: usize,
    /// Stride between windows in samples (the test split and the card use it).
    pub stride: usize,
    /// Stride of the training windows only (`None`: `stride`).
    pub train_stride: Option<usize>,
    /// Training subjects held out for validation.
    pub holdout: Holdout,
}

/// Opens a dataset given as a folder, or as a name under `data/` (e.g. `hapt`).
pub fn open_dataset(path: &Path) -> Result<Dataset> {
    let by_name = Path::new("data").join(path);
    if !path.join(har_core::dataset::MANIFEST_FILE).exists()
        && by_name.join(har_core::dataset::MANIFEST_FILE).exists()
    {
        return Ok(Dataset::open(&by_name)?);
    }
    Ok(Dataset::open(path)?)
}

/// A dataset turned into normalised training and validation data, with what the card needs.
pub struct Prepared {
    /// The classes learned, in output order.
    pub classes: ClassMap,
    /// Preprocessing of the card (the test split's stride).
    pub preprocess: PreprocessConfig,
    /// Statistics fitted on the training windows.
    pub normalizer: Normalizer,
    /// Training data.
    pub train: TensorData,
    /// Validation data (empty without a validation split).
    pub validation: TensorData,
    /// The dataset's modalities as model inputs.
    pub modalities: Vec<ModalitySpec>,
    /// Provenance so far (settings filled in; training results by [`fit_and_save`]).
    pub provenance: Provenance,
}

/// Reads the training split of `data`, carves validation subjects by `settings.seed`, fits
/// the normaliser on the training windows and normalises both parts. `command` is recorded
/// in the provenance.
pub fn prepare(data: &DataOptions, settings: &TrainConfig, command: &str) -> Result<Prepared> {
    let dataset = open_dataset(&data.dataset)?;
    let classes = ClassMap::from_dataset(&dataset, &data.classes)?;
    let preprocess = PreprocessConfig {
        window: WindowConfig {
            length: data.window,
            stride: data.stride,
            label_policy: LabelPolicy::Pure,
        },
        ..Default::default()
    };
    let train_stride = data.train_stride.filter(|&s| s != data.stride);
    let mut train_preprocess = preprocess.clone();
    train_preprocess.window.stride = train_stride.unwrap_or(data.stride);
    let windows = split_windows(&dataset, Split::Train, &train_preprocess, &classes)?;
    let (train_windows, val_windows) = carve_validation(&windows, data.holdout, settings.seed)?;
    let normalizer = Normalizer::fit(&train_windows)?;
    let provenance = Provenance {
        dataset: dataset.manifest.name.clone(),
        dataset_source_sha256: dataset.manifest.source.as_ref().map(|s| s.sha256.clone()),
        train_windows_sha256: windows_checksum(&train_windows),
        train_stride,
        train_windows: train_windows.len(),
        validation_windows: val_windows.len(),
        validation_subjects: val_windows
            .subjects
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .cloned()
            .collect(),
        validation_fold: match data.holdout {
            Holdout::Fold { fold, folds } => Some(format!("{fold}/{folds}")),
            Holdout::Fraction(_) => None,
        },
        validation_score: None,
        settings: to_json(settings)?,
        distilled_from: None,
        compressed_from: None,
        epochs_run: 0,
        best_epoch: 0,
        seconds: 0.0,
        command: command.to_string(),
    };
    tracing::info!(
        train = train_windows.len(),
        validation = val_windows.len(),
        "windows"
    );
    Ok(Prepared {
        modalities: dataset
            .manifest
            .modalities
            .iter()
            .map(modality_spec)
            .collect(),
        train: TensorData::new(&train_windows, &normalizer, &classes)?,
        validation: TensorData::new(&val_windows, &normalizer, &classes)?,
        classes,
        preprocess,
        normalizer,
        provenance,
    })
}

fn to_json(value: &impl serde::Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(value)
        .map_err(|e| ModelError::Invalid(format!("settings do not serialise: {e}")))
}

/// A model trained and saved by [`fit_and_save`].
pub struct Saved {
    /// Its card as written.
    pub card: ModelCard,
    /// One record per epoch run.
    pub history: Vec<EpochRecord>,
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
}

/// A teacher loaded for distillation, with its card.
pub struct LoadedTeacher {
    /// The teacher's card.
    pub card: ModelCard,
    /// The teacher, ready to label batches.
    pub teacher: Teacher,
}

/// Loads a teacher's model directory (checked as for inference) to distil with `config`.
pub fn load_teacher(dir: &Path, config: DistillConfig) -> Result<LoadedTeacher> {
    let loaded = model_dir::load(dir)?;
    Ok(LoadedTeacher {
        teacher: Teacher::new(loaded.model, config),
        card: loaded.card,
    })
}

/// Trains a model of `config` on `prepared` (distilling from `teacher` when given), then
/// writes the model directory `out`: weights, card, normaliser, metrics.
pub fn fit_and_save(
    role: &str,
    config: DmftConfig,
    prepared: Prepared,
    settings: &TrainConfig,
    teacher: Option<LoadedTeacher>,
    out: &Path,
    observer: &dyn Observer,
) -> Result<Saved> {
    if config.window_len != prepared.train.shapes[0].0 {
        return Err(ModelError::Invalid(format!(
            "model window length {} differs from the data's {}",
            config.window_len, prepared.train.shapes[0].0
        )));
    }
    let names = prepared.classes.names();
    let (teacher, distilled_from) = match teacher {
        Some(t) => {
            let from = (t.card.model_id(), to_json(&t.teacher.config)?);
            (Some(t.teacher), Some(from))
        }
        None => (None, None),
    };
    let trained = train::train(
        &config,
        &prepared.train,
        &prepared.validation,
        &names,
        settings,
        teacher,
        observer,
    )?;
    let mut provenance = prepared.provenance;
    provenance.distilled_from = distilled_from;
    provenance.epochs_run = trained.history.len();
    provenance.best_epoch = trained.best_epoch;
    provenance.seconds = trained.seconds;
    provenance.validation_score = trained.validation.as_ref().map(|m| ValidationScore {
        accuracy: m.accuracy,
        macro_f1: m.macro_f1,
    });
    let mut card = ModelCard {
        role: role.to_string(),
        config,
        classes: prepared.classes.classes.clone(),
        preprocess: prepared.preprocess,
        parameters: 0,
        flops_per_window: 0,
        weights_sha256: String::new(),
        provenance,
    };
    artifact::save(
        out,
        &mut card,
        &trained.varmap,
        &prepared.normalizer,
        &trained.history,
    )?;
    Ok(Saved {
        card,
        history: trained.history,
        best_epoch: trained.best_epoch,
    })
}

/// A model's predictions on a dataset's test split.
pub struct Evaluation {
    /// The model's card.
    pub card: ModelCard,
    /// The test windows (of the model's classes), raw.
    pub windows: WindowSet,
    /// Class index of each window.
    pub targets: Vec<u32>,
    /// Class probabilities of each window.
    pub probabilities: Vec<Vec<f32>>,
    /// Metrics of the predictions.
    pub metrics: Metrics,
    /// Wall time of the forward passes.
    pub seconds: f64,
}

/// Evaluates the model directory `model` on the test split of `dataset` on the runtime (the
/// forward the dataflow runs), every core; modalities named in `drop` are left out.
pub fn evaluate(model: &Path, dataset: &Dataset, drop: &[String]) -> Result<Evaluation> {
    evaluate_on(model, dataset, drop, ModelPart::Test)
}

/// [`evaluate`] on `part` of the dataset: the test split, or the training subjects the model
/// held out for validation (where choices about the model are made).
pub fn evaluate_on(
    model: &Path,
    dataset: &Dataset,
    drop: &[String],
    part: ModelPart,
) -> Result<Evaluation> {
    let loaded = model_dir::load(model)?;
    let card = loaded.card;
    let names: Vec<&str> = card
        .config
        .modalities
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    if let Some(unknown) = drop.iter().find(|d| !names.contains(&d.as_str())) {
        return Err(ModelError::Invalid(format!(
            "--drop: the model has no modality `{unknown}` (it has {names:?})"
        )));
    }
    let present: Vec<bool> = names.iter().map(|n| !drop.iter().any(|d| d == n)).collect();
    if !present.iter().any(|p| *p) {
        return Err(ModelError::Invalid("--drop removes every modality".into()));
    }
    // Classes enrolled with `har enroll` are predicted beside the card's, as in the dataflow.
    let enrollment = Enrollment::load(model, &card)?.filter(|e| !e.classes.is_empty());
    let mut with_enrolled = card.clone();
    if let Some(e) = &enrollment {
        with_enrolled
            .classes
            .extend(e.classes.iter().map(|c| har_core::dataset::ClassInfo {
                id: c.id,
                name: c.name.clone(),
            }));
    }
    let classes = ClassMap {
        classes: with_enrolled.classes.clone(),
    };
    let windows = model_windows(dataset, &with_enrolled, part)?;
    let data = TensorData::new(&windows, &loaded.normalizer, &classes)?;
    let started = Instant::now();
    let mut workers = batch::workers(&loaded.model, batch::available_threads(8));
    let probabilities = batch::map_windows(&mut workers, data.len(), |model, i| {
        let inputs: Vec<Option<&[f32]>> = data
            .values
            .iter()
            .zip(&data.shapes)
            .zip(&present)
            .map(|((values, &(t, c)), &on)| on.then(|| &values[i * t * c..(i + 1) * t * c]))
            .collect();
        match &enrollment {
            Some(e) => {
                let out = model.embed_available(&inputs)?;
                let mut logits = out.logits;
                e.extend_logits(&out.embedding, &mut logits);
                har_runtime::fewshot::softmax(&mut logits);
                Ok(logits)
            }
            None => model.predict_available(&inputs),
        }
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let metrics = Metrics::compute(
        &train::argmax(&probabilities),
        &data.targets,
        &classes.names(),
    );
    Ok(Evaluation {
        card,
        windows,
        targets: data.targets,
        probabilities,
        metrics,
        seconds,
    })
}
