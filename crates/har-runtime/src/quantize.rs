//! Post-training int8 quantisation (`har compress quantize`): the dense layers that carry
//! most of the arithmetic — the four of every transformer layer and the patch projections —
//! get int8 weights per output channel and a per-tensor input scale calibrated on windows
//! run through the f32 forward (the largest input magnitude each layer saw). Layer norms,
//! pools, embeddings, the spectral and recurrent parts and the classification head stay f32.
//! The stored layout is [`crate::names::quantized`]'s; the kernel is `kernels::int8`'s.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, View};

use crate::config::{DmftConfig, Encoder};
use crate::dmft::Dmft;
use crate::error::{Result, RuntimeError};
use crate::kernels::int8;
use crate::names::{self, dmft as dmft_names, quantized, transformer};
use crate::weights::{QuantizedTensor, WeightTensor, Weights};

/// The prefixes of the dense layers quantisation converts.
pub fn quantizable_layers(config: &DmftConfig) -> Vec<String> {
    let mut layers = Vec::new();
    if matches!(
        config.encoder,
        Encoder::Patch | Encoder::Mvf | Encoder::Transformer
    ) {
        for m in &config.modalities {
            let encoder = dmft_names::encoder(&m.name);
            for g in 0..m.groups.len() {
                layers.push(names::join(&encoder, &dmft_names::patch_projection(g)));
            }
        }
    }
    for site in config.transformer_layers() {
        let attention = names::join(&site.name, transformer::ATTENTION);
        layers.push(names::join(&attention, transformer::QKV));
        layers.push(names::join(&attention, transformer::OUT));
        layers.push(names::join(&site.name, transformer::FFN_IN));
        layers.push(names::join(&site.name, transformer::FFN_OUT));
    }
    layers
}

/// Runs `forward` (calls of the f32 `model`) and returns the largest input magnitude every
/// named dense layer saw.
pub fn calibrate(
    model: &mut Dmft,
    forward: impl FnOnce(&mut Dmft) -> Result<()>,
) -> Result<HashMap<String, f32>> {
    let mut outcome = Ok(());
    let observed = int8::calibrate(|| outcome = forward(model));
    outcome.map(|()| observed)
}

/// The tensors of a quantised model: f32 ones (with the scales) and int8 weights.
#[derive(Debug, Clone)]
pub struct QuantizedModel {
    /// F32 tensors, the scales among them.
    pub tensors: HashMap<String, WeightTensor>,
    /// Int8 dense weights.
    pub quantized: HashMap<String, QuantizedTensor>,
}

/// Quantises the dense layers of `config` in `weights` with the calibrated input maxima
/// `input_max` (every quantised layer must have one).
pub fn quantize(
    config: &DmftConfig,
    weights: &Weights,
    input_max: &HashMap<String, f32>,
) -> Result<QuantizedModel> {
    if weights.is_quantized() {
        return Err(RuntimeError::Invalid(format!(
            "{}: already quantised",
            weights.path().display()
        )));
    }
    let mut tensors = weights.tensors().clone();
    let mut quantized_weights = HashMap::new();
    for layer in quantizable_layers(config) {
        let weight_name = names::join(&layer, names::WEIGHT);
        let weight = tensors.remove(&weight_name).ok_or_else(|| {
            RuntimeError::Invalid(format!("quantisation: no tensor `{weight_name}`"))
        })?;
        let max = *input_max.get(&layer).ok_or_else(|| {
            RuntimeError::Invalid(format!(
                "quantisation: calibration never reached the layer `{layer}`"
            ))
        })?;
        if !max.is_finite() {
            return Err(RuntimeError::Invalid(format!(
                "quantisation: the layer `{layer}` saw a non-finite input"
            )));
        }
        let in_dim = weight.shape[1];
        let (values, scales) = int8::quantize_rows(&weight.values, in_dim);
        let scale = |values: Vec<f32>| WeightTensor {
            shape: vec![values.len()],
            values,
        };
        tensors.insert(names::join(&layer, quantized::WEIGHT_SCALE), scale(scales));
        let input_scale = max.max(f32::MIN_POSITIVE * int8::QMAX) / int8::QMAX;
        tensors.insert(
            names::join(&layer, quantized::INPUT_SCALE),
            scale(vec![input_scale]),
        );
        quantized_weights.insert(
            weight_name,
            QuantizedTensor {
                shape: weight.shape,
                values,
            },
        );
    }
    Ok(QuantizedModel {
        tensors,
        quantized: quantized_weights,
    })
}

/// One tensor's bytes for safetensors.
struct Bytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Bytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

impl QuantizedModel {
    /// Writes the tensors as a safetensors file (F32 and I8).
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut all: Vec<(String, Bytes)> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                (
                    name.clone(),
                    Bytes {
                        dtype: Dtype::F32,
                        shape: t.shape.clone(),
                        data: t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    },
                )
            })
            .collect();
        all.extend(self.quantized.iter().map(|(name, q)| {
            (
                name.clone(),
                Bytes {
                    dtype: Dtype::I8,
                    shape: q.shape.clone(),
                    data: q.values.iter().map(|&v| v as u8).collect(),
                },
            )
        }));
        all.sort_by(|a, b| a.0.cmp(&b.0));
        safetensors::serialize_to_file(all.iter().map(|(n, b)| (n.as_str(), b)), None, path)
            .map_err(|e| RuntimeError::file(path, format!("writing safetensors: {e}")))
    }
}
