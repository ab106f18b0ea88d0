//! The model as the dataflow runs it: a model directory loaded on the runtime, split at the
//! modality boundary — [`StreamModel::encode`] in the encode nodes (one per modality),
//! [`StreamModel::fuse`] in the fuse node. Both parts together compute exactly the monolithic
//! forward (tested in har-model: split == monolithic). The preprocess node needs only the card
//! and the normaliser: [`read_streaming_spec`] reads no weights.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use har_core::dataset::ClassInfo;
use har_core::preprocess::Normalizer;
use har_core::streams::{PredictionMessage, TokenMessage, WindowMessage};
use har_runtime::card::{read_card, ModelCard};
use har_runtime::dmft::Dmft;
use har_runtime::fewshot::{softmax, Enrollment, ENROLLED_FILE};
use har_runtime::model_dir;

use crate::aligner::ReadyWindow;
use crate::error::{DataflowError, Result};
use crate::windower::{ModalitySetup, StreamingSpec};

/// A loaded model with its card and normaliser, and the classes enrolled into it
/// (`enrolled.json`, re-read by [`StreamModel::refresh_enrollment`] when it changes).
#[derive(Debug)]
pub struct StreamModel {
    /// The model card (config, classes, preprocessing).
    pub card: ModelCard,
    /// Input standardisation.
    pub normalizer: Normalizer,
    model: Dmft,
    /// The backbone's id.
    base_id: String,
    /// The id predictions carry: the backbone's, plus the enrolment's checksum when classes
    /// are enrolled.
    model_id: String,
    dir: PathBuf,
    enrollment: Option<Enrollment>,
    /// Base classes then enrolled ones.
    classes: Vec<ClassInfo>,
    /// (modified time, length) of the enrolment file last read.
    enrollment_stamp: Option<(SystemTime, u64)>,
}

/// Streaming preprocessing matching a model's training (its card and normaliser), with an
/// optional stride (grid samples) in place of the trained one.
pub fn streaming_spec(
    card: &ModelCard,
    normalizer: &Normalizer,
    stride: Option<usize>,
) -> StreamingSpec {
    let mut window = card.preprocess.window;
    if let Some(stride) = stride {
        window.stride = stride;
    }
    StreamingSpec {
        modalities: card
            .config
            .modalities
            .iter()
            .map(|m| ModalitySetup {
                name: m.name.clone(),
                channels: m.channels,
                skeleton: m.skeleton.clone(),
            })
            .collect(),
        rate_hz: card.preprocess.align.rate_hz,
        window,
        max_gap_periods: card.preprocess.align.max_gap_periods,
        normalizer: normalizer.clone(),
    }
}

/// [`streaming_spec`] of a model directory, reading only its card and normaliser (both
/// checked), never the weights.
pub fn read_streaming_spec(dir: &Path, stride: Option<usize>) -> Result<StreamingSpec> {
    let card = read_card(dir)?;
    let normalizer = model_dir::read_normalizer(dir, &card)?;
    Ok(streaming_spec(&card, &normalizer, stride))
}

impl StreamModel {
    /// Loads a model directory (`model.json`, `model.safetensors`, `normalizer.json`).
    pub fn load(dir: &Path) -> Result<Self> {
        let loaded = model_dir::load(dir)?;
        let mut model = Self {
            base_id: loaded.card.model_id(),
            model_id: loaded.card.model_id(),
            classes: loaded.card.classes.clone(),
            card: loaded.card,
            normalizer: loaded.normalizer,
            model: loaded.model,
            dir: dir.to_path_buf(),
            enrollment: None,
            enrollment_stamp: None,
        };
        model.refresh_enrollment()?;
        Ok(model)
    }

    /// Re-reads the model directory's `enrolled.json` when its time or size changed since
    /// the last read; returns whether the classes changed. A file that does not fit the
    /// model is an error naming it, and the classes stay as they were.
    pub fn refresh_enrollment(&mut self) -> Result<bool> {
        let path = self.dir.join(ENROLLED_FILE);
        let stamp = std::fs::metadata(&path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if stamp == self.enrollment_stamp {
            return Ok(false);
        }
        self.enrollment_stamp = stamp;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(har_runtime::RuntimeError::file(&path, e).into()),
        };
        let enrollment = bytes
            .as_deref()
            .map(|b| Enrollment::parse(&path, b, &self.card))
            .transpose()?;
        let bytes = bytes.unwrap_or_default();
        self.classes = self.card.classes.clone();
        self.model_id = self.base_id.clone();
        if let Some(e) = &enrollment {
            self.classes.extend(e.classes.iter().map(|c| ClassInfo {
                id: c.id,
                name: c.name.clone(),
            }));
            if !e.classes.is_empty() {
                let sha = har_core::hash::sha256_hex(&bytes);
                self.model_id = format!("{}+enrolled@{}", self.base_id, &sha[..12]);
            }
        }
        self.enrollment = enrollment;
        Ok(true)
    }

    /// Every class the model predicts: the card's, then the enrolled ones.
    pub fn classes(&self) -> &[ClassInfo] {
        &self.classes
    }

    /// `dmft-<role>@<weights checksum prefix>`.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Modality names in model order.
    pub fn modality_names(&self) -> Vec<String> {
        self.card
            .config
            .modalities
            .iter()
            .map(|m| m.name.clone())
            .collect()
    }

    /// Index of a modality, with an error naming the setting that chose it.
    pub fn modality_index(&self, name: &str) -> Result<usize> {
        self.card
            .config
            .modalities
            .iter()
            .position(|m| m.name == name)
            .ok_or_else(|| {
                DataflowError::setting(
                    "HAR_MODALITY",
                    format!(
                        "`{name}` is not one of the model's {:?}",
                        self.modality_names()
                    ),
                )
            })
    }

    /// Streaming preprocessing matching the model's training, with an optional stride
    /// (grid samples) in place of the trained one.
    pub fn streaming_spec(&self, stride: Option<usize>) -> StreamingSpec {
        streaming_spec(&self.card, &self.normalizer, stride)
    }

    /// Encoder part for windows of modality `m`; `encode_ts_ns` is left 0 for the caller.
    pub fn encode(&mut self, m: usize, windows: &[WindowMessage]) -> Result<Vec<TokenMessage>> {
        let dim = self.card.config.dim;
        let spec = &self.card.config.modalities[m];
        let (name, tokens) = (spec.name.clone(), self.card.config.tokens_per_window(m));
        windows
            .iter()
            .map(|w| {
                if w.key.modality != name {
                    return Err(DataflowError::stream(
                        "windows",
                        "modality",
                        format!("`{}` sent to the `{name}` encoder", w.key.modality),
                    ));
                }
                let values = self.model.encode(m, &w.values)?;
                Ok(TokenMessage {
                    key: w.key.clone(),
                    num_tokens: tokens as u32,
                    dim: dim as u32,
                    values,
                    encode_ts_ns: 0,
                })
            })
            .collect()
    }

    /// Fusion part and head for one window; `fuse_ts_ns` is left 0 for the caller.
    pub fn fuse(&mut self, window: &ReadyWindow) -> Result<PredictionMessage> {
        Ok(self.fuse_embedded(window, false)?.0)
    }

    /// [`StreamModel::fuse`], and with `embedding` the window's fused feature (the head's
    /// input) as a one-token message keyed like the window, modality `fused` (what the scene
    /// node reads).
    pub fn fuse_embedded(
        &mut self,
        window: &ReadyWindow,
        embedding: bool,
    ) -> Result<(PredictionMessage, Option<TokenMessage>)> {
        let first =
            window.tokens.iter().flatten().next().ok_or_else(|| {
                DataflowError::stream("tokens", "modality", "no modality present")
            })?;
        let dim = self.card.config.dim;
        for (m, (t, spec)) in window
            .tokens
            .iter()
            .zip(&self.card.config.modalities)
            .enumerate()
        {
            let Some(t) = t else { continue };
            let expected = (self.card.config.tokens_per_window(m) as u32, dim as u32);
            if (t.num_tokens, t.dim) != expected {
                return Err(DataflowError::stream(
                    &format!("tokens of `{}`", spec.name),
                    "num_tokens/dim",
                    format!(
                        "window {}: {} tokens of {}, the model's are {} of {}",
                        t.key.window_id, t.num_tokens, t.dim, expected.0, expected.1
                    ),
                ));
            }
        }
        let refs: Vec<Option<&[f32]>> = window
            .tokens
            .iter()
            .map(|t| t.as_ref().map(|t| t.values.as_slice()))
            .collect();
        let enrolled = self.enrollment.as_ref().filter(|e| !e.classes.is_empty());
        let (probabilities, feature) = if enrolled.is_some() || embedding {
            let out = self.model.fuse_embedded(&refs)?;
            let mut logits = out.logits;
            if let Some(e) = enrolled {
                e.extend_logits(&out.embedding, &mut logits);
            }
            softmax(&mut logits);
            (logits, embedding.then_some(out.embedding))
        } else {
            (self.model.fuse(&refs)?, None)
        };
        let best = probabilities
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let class = &self.classes[best];
        let key = &first.key;
        let present = window.tokens.iter().flatten();
        let true_label = window.tokens.iter().flatten().find_map(|t| t.key.label);
        let fused = feature.map(|values| TokenMessage {
            key: har_core::streams::WindowKey {
                modality: FUSED_MODALITY.to_string(),
                label: true_label,
                ..key.clone()
            },
            num_tokens: 1,
            dim: values.len() as u32,
            values,
            encode_ts_ns: present.clone().map(|t| t.encode_ts_ns).max().unwrap_or(0),
        });
        let prediction = PredictionMessage {
            window_id: key.window_id,
            source: key.source.clone(),
            start_ns: key.start_ns,
            end_ns: key.end_ns,
            predicted_label: class.id,
            predicted_name: class.name.clone(),
            confidence: probabilities[best],
            true_label,
            model_id: self.model_id.clone(),
            modalities_present: present.clone().map(|t| t.key.modality.clone()).collect(),
            degraded: window.degraded,
            ingest_ts_ns: present
                .clone()
                .map(|t| t.key.ingest_ts_ns)
                .max()
                .unwrap_or(0),
            preprocess_ts_ns: present
                .clone()
                .map(|t| t.key.preprocess_ts_ns)
                .max()
                .unwrap_or(0),
            encode_ts_ns: present.map(|t| t.encode_ts_ns).max().unwrap_or(0),
            fuse_ts_ns: 0,
            probabilities,
        };
        Ok((prediction, fused))
    }
}

/// The modality name of fused-feature messages (`token_embedding` with one token).
pub const FUSED_MODALITY: &str = "fused";

#[cfg(test)]
mod tests {
    use super::*;
    use har_runtime::card::{CARD_FILE, NORMALIZER_FILE};

    /// The preprocess node's settings come from the card and normaliser alone: a model
    /// directory without weights still gives them, while loading the model needs the weights.
    #[test]
    fn streaming_settings_need_no_weights() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/hapt-student");
        let dir = tempfile::tempdir().unwrap();
        for file in [CARD_FILE, NORMALIZER_FILE] {
            std::fs::copy(shipped.join(file), dir.path().join(file)).unwrap();
        }
        let spec = read_streaming_spec(dir.path(), Some(32)).unwrap();
        let names: Vec<&str> = spec.modalities.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["acc", "gyro"]);
        assert_eq!((spec.window.length, spec.window.stride), (128, 32));
        let err = StreamModel::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("model.safetensors"), "{err}");
    }
}
