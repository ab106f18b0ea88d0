//! Compression of a trained model where its training data cannot go (seed S3, `har
//! compress`):
//!
//! 1. [`prune`]: structured L1 pruning of the backbone — attention heads and feed-forward
//!    units of every transformer layer; the head is kept.
//! 2. [`synthesis`]: input windows synthesised from the unpruned model alone, guided by the
//!    normaliser's statistics, the model's recorded feature statistics ([`stats`]), its class
//!    confidence and priors for sensor signals.
//! 3. [`mimic`]: the pruned backbone fine-tuned to reproduce the unpruned one's intermediate
//!    features on those windows (or on real ones, the upper bound), then recombined with
//!    the original head.
//!
//! 4. [`quantize_model`]: int8 dense layers with calibrated input scales
//!    ([`har_runtime::quantize`]), calibrated on synthetic windows or a few real ones.
//!
//! The result is a normal model directory: it evaluates, exports and runs in the dataflow
//! like any other.

pub mod mimic;
pub mod prune;
pub mod stats;
pub mod synthesis;
pub mod width;

use std::path::{Path, PathBuf};

use har_runtime::card::{self, ModelCard};
use har_runtime::model_dir;
use har_runtime::weights::Weights;
use serde::Serialize;

use crate::artifact::{self, candle_model};
use crate::data::{model_windows, ClassMap, ModelPart, TensorData};
use crate::dmft::Dmft;
use crate::error::{ModelError, Result};
use crate::pipeline::open_dataset;
use mimic::{MimicConfig, MimicReport};
use prune::LayerPlan;
use stats::ActivationStats;
use synthesis::{SynthesisConfig, SynthesisReport};

/// How the pruned backbone is fine-tuned.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FineTune {
    /// Not at all.
    None,
    /// On windows synthesised from the unpruned model (no data read).
    DataFree(SynthesisConfig),
    /// On the training split of a dataset (the upper bound; data needed).
    Real {
        /// The dataset folder.
        dataset: PathBuf,
    },
}

/// `har compress prune`'s settings.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// The model directory to compress.
    pub model: PathBuf,
    /// Share of each layer's heads and feed-forward units removed.
    pub ratio: f64,
    /// Residual width after pruning (`None`: kept; see [`width`]).
    pub width: Option<usize>,
    /// The fine-tuning.
    pub fine_tune: FineTune,
    /// Settings of the fine-tuning (when there is one).
    pub mimic: MimicConfig,
    /// The new model directory.
    pub out: PathBuf,
}

/// What `har compress prune` did.
#[derive(Debug, Clone, Serialize)]
pub struct PruneOutcome {
    /// The source model's id.
    pub source: String,
    /// The new model's id.
    pub model_id: String,
    /// Parameters before and after.
    pub parameters: (usize, usize),
    /// FLOPs per window before and after.
    pub flops_per_window: (u64, u64),
    /// Per layer, the kept units.
    pub plan: Vec<LayerPlan>,
    /// The synthesis, when data-free.
    pub synthesis: Option<SynthesisReport>,
    /// The fine-tuning, when there was one.
    pub mimic: Option<MimicReport>,
}

/// A model directory's card, checked weights and a candle copy without dropout (the fixed
/// reference the synthesis and the fine-tuning read).
struct Source {
    card: ModelCard,
    weights: Weights,
    normalizer: har_core::preprocess::Normalizer,
}

impl Source {
    fn read(dir: &Path) -> Result<Self> {
        let card = card::read_card(dir)?;
        let weights = model_dir::read_weights(dir, &card)?;
        if weights.is_quantized() {
            return Err(ModelError::Invalid(format!(
                "{}: an int8 model; compress the f32 model it came from",
                dir.display()
            )));
        }
        let normalizer = model_dir::read_normalizer(dir, &card)?;
        Ok(Self {
            card,
            weights,
            normalizer,
        })
    }

    fn frozen_model(&self) -> Result<Dmft> {
        let mut config = self.card.config.clone();
        config.dropout = 0.0;
        Ok(candle_model(&config, &self.weights)?.0)
    }

    /// The windows of `dataset` this model was trained on (its validation subjects left
    /// out), normalised as it takes them.
    fn training_windows(&self, dataset: &Path) -> Result<TensorData> {
        let dataset = open_dataset(dataset)?;
        let windows = model_windows(&dataset, &self.card, ModelPart::Training)?;
        let classes = ClassMap {
            classes: self.card.classes.clone(),
        };
        TensorData::new(&windows, &self.normalizer, &classes)
    }
}

/// Prunes `options.model`, fine-tunes as asked and writes the result to `options.out`.
pub fn prune_model(options: &PruneOptions) -> Result<PruneOutcome> {
    let source = Source::read(&options.model)?;
    let pruned = prune::prune(&source.card.config, source.weights.tensors(), options.ratio)?;
    let (pruned, channels) = match options.width {
        Some(w) => {
            let (p, kept) = width::prune_width(pruned, w)?;
            (p, Some(kept))
        }
        None => (pruned, None),
    };
    let (student, varmap) = candle_model(
        &pruned.config,
        &Weights::new(Path::new("<pruned weights>"), pruned.tensors)?,
    )?;
    let mut synthesis_report = None;
    let windows = match &options.fine_tune {
        FineTune::None => None,
        FineTune::DataFree(config) => {
            let stats = ActivationStats::read(&options.model)?;
            let teacher = source.frozen_model()?;
            let (windows, report) =
                synthesis::synthesise(&teacher, &source.normalizer, &stats, config)?;
            tracing::info!(?report, "synthesised windows");
            synthesis_report = Some(report);
            Some(windows)
        }
        FineTune::Real { dataset } => Some(source.training_windows(dataset)?),
    };
    let mimic_report = match windows {
        Some(windows) => {
            let teacher = source.frozen_model()?;
            Some(mimic::mimic(
                &teacher,
                &student,
                &varmap,
                &windows,
                &options.mimic,
                channels.as_deref(),
            )?)
        }
        None => None,
    };
    let mut card = source.card.clone();
    card.config = pruned.config;
    card.role = format!("{}-pruned", source.card.role);
    let settings = serde_json::json!({
        "ratio": options.ratio,
        "width": options.width,
        "fine_tune": options.fine_tune,
        "mimic": mimic_report.as_ref().map(|_| &options.mimic),
        "synthesis": synthesis_report,
        "fine_tuning": mimic_report,
    });
    card.provenance.compressed_from = Some((source.card.model_id(), settings));
    artifact::save(&options.out, &mut card, &varmap, &source.normalizer, &[])?;
    // The source's feature statistics stay the target for synthesising windows (int8
    // calibration, a further pruning) while the residual width is kept: the pruned backbone
    // is fine-tuned towards the same features. A narrower width has other features; its
    // statistics must be recorded again (`har compress stats`).
    if options.width.is_none() {
        if let Ok(stats) = ActivationStats::read(&options.model) {
            stats.save(&options.out)?;
        }
    }
    Ok(PruneOutcome {
        source: source.card.model_id(),
        model_id: card.model_id(),
        parameters: (source.card.parameters, card.parameters),
        flops_per_window: (source.card.flops_per_window, card.flops_per_window),
        plan: pruned.plan,
        synthesis: synthesis_report,
        mimic: mimic_report,
    })
}

/// Records the feature statistics of the model at `dir` on the training split of `dataset`
/// and writes them into the directory (what data-free compression reads later).
pub fn record_stats(dir: &Path, dataset: &Path) -> Result<ActivationStats> {
    let source = Source::read(dir)?;
    let windows = source.training_windows(dataset)?;
    if windows.is_empty() {
        return Err(ModelError::Invalid(format!(
            "{}: no training windows of the model's classes",
            dataset.display()
        )));
    }
    let stats = ActivationStats::record(&source.frozen_model()?, &windows, 256)?;
    stats.save(dir)?;
    Ok(stats)
}

/// Where quantisation's calibration windows come from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CalibrationData {
    /// Synthesised from the model (no data read).
    DataFree(SynthesisConfig),
    /// `windows` of a dataset's training windows (evenly spaced over them).
    Real {
        /// The dataset folder.
        dataset: PathBuf,
        /// How many.
        windows: usize,
    },
}

/// What `har compress quantize` did.
#[derive(Debug, Clone, Serialize)]
pub struct QuantizeOutcome {
    /// The source model's id.
    pub source: String,
    /// The new model's id.
    pub model_id: String,
    /// Dense layers converted to int8.
    pub layers: usize,
    /// Bytes of the weights file before and after.
    pub weight_bytes: (u64, u64),
    /// Calibration windows run.
    pub calibration_windows: usize,
}

/// Quantises the model at `model` (int8 dense layers, see [`har_runtime::quantize`]) with
/// input scales calibrated on `calibration`, and writes it to `out`.
pub fn quantize_model(
    model: &Path,
    calibration: &CalibrationData,
    out: &Path,
) -> Result<QuantizeOutcome> {
    let source = Source::read(model)?;
    let windows = match calibration {
        CalibrationData::DataFree(config) => {
            let stats = ActivationStats::read(model)?;
            synthesis::synthesise(&source.frozen_model()?, &source.normalizer, &stats, config)?.0
        }
        CalibrationData::Real { dataset, windows } => {
            let all = source.training_windows(dataset)?;
            let n = (*windows).clamp(1, all.len().max(1));
            let picked: Vec<usize> = (0..n).map(|i| i * all.len() / n).collect();
            all.subset(&picked)
        }
    };
    if windows.is_empty() {
        return Err(ModelError::Invalid("no calibration windows".into()));
    }
    let mut runtime = har_runtime::dmft::Dmft::load(&source.card.config, &source.weights)?;
    let input_max = har_runtime::quantize::calibrate(&mut runtime, |model| {
        for i in 0..windows.len() {
            let inputs: Vec<&[f32]> = windows
                .values
                .iter()
                .zip(&windows.shapes)
                .map(|(v, &(t, c))| &v[i * t * c..(i + 1) * t * c])
                .collect();
            model.predict(&inputs)?;
        }
        Ok(())
    })?;
    let quantized =
        har_runtime::quantize::quantize(&source.card.config, &source.weights, &input_max)?;
    std::fs::create_dir_all(out).map_err(|e| ModelError::Artifact {
        path: out.to_path_buf(),
        problem: e.to_string(),
    })?;
    let weights_path = out.join(card::WEIGHTS_FILE);
    quantized.write(&weights_path)?;
    let mut card = source.card.clone();
    card.role = format!("{}-int8", source.card.role);
    card.weights_sha256 = har_core::hash::sha256_file(&weights_path)?;
    card.provenance.compressed_from = Some((
        source.card.model_id(),
        serde_json::json!({
            "quantize": "int8 weights per output channel, int8 inputs per tensor",
            "calibration": calibration,
            "calibration_windows": windows.len(),
            "source_compression": source.card.provenance.compressed_from,
        }),
    ));
    card.save(&out.join(card::CARD_FILE))?;
    source.normalizer.save(&out.join(card::NORMALIZER_FILE))?;
    // Read back through every check the nodes apply.
    model_dir::load(out)?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Ok(QuantizeOutcome {
        source: source.card.model_id(),
        model_id: card.model_id(),
        layers: quantized.quantized.len(),
        weight_bytes: (size(&model.join(card::WEIGHTS_FILE)), size(&weights_path)),
        calibration_windows: windows.len(),
    })
}
