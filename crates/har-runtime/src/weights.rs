//! Named `f32` tensors read from a safetensors file (or handed over by the training crate),
//! looked up by the layers through [`Params`] — the runtime's counterpart of candle's
//! `VarBuilder`: `params.pp("fuse").pp("head").get("weight", &[k, d])`.
//!
//! Reading refuses what would make a model compute garbage quietly: a dtype other than F32
//! (or I8 for a quantised dense weight, see [`names::quantized`]), a non-finite value or
//! scale, and (at lookup) a shape other than the config's; after a model is assembled,
//! [`Weights::finish`] refuses tensors it did not use. Every error names the file and the
//! tensor. A quantised weight read as `f32` ([`Params::get`]: the training crate, the ONNX
//! export) comes dequantised; the runtime's dense layers read it as int8 ([`Params::get_int8`]).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::error::{Result, RuntimeError};
use crate::names;

/// One tensor: its shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightTensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values (`shape.iter().product()` of them).
    pub values: Vec<f32>,
}

/// An int8 tensor: its shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedTensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<i8>,
}

/// A quantised dense weight as the int8 kernel takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Weight {
    /// `[out, in]` int8 values.
    pub values: Vec<i8>,
    /// Scale of each output channel.
    pub weight_scale: Vec<f32>,
    /// Scale of the layer's input.
    pub input_scale: f32,
}

/// Named tensors of one weights file, with a record of which were looked up.
#[derive(Debug)]
pub struct Weights {
    path: PathBuf,
    tensors: HashMap<String, WeightTensor>,
    quantized: HashMap<String, QuantizedTensor>,
    used: RefCell<BTreeSet<String>>,
}

impl Weights {
    /// Parses safetensors `bytes` read from `path` (named in errors).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        let file = SafeTensors::deserialize(bytes)
            .map_err(|e| RuntimeError::file(path, format!("unreadable safetensors: {e}")))?;
        let mut tensors = HashMap::new();
        let mut quantized = HashMap::new();
        for (name, view) in file.tensors() {
            if view.dtype() == Dtype::I8 && name.ends_with(&format!(".{}", names::WEIGHT)) {
                let values = view.data().iter().map(|&b| b as i8).collect();
                let shape = view.shape().to_vec();
                quantized.insert(name, QuantizedTensor { shape, values });
                continue;
            }
            if view.dtype() != Dtype::F32 {
                return Err(tensor_error(
                    path,
                    &name,
                    format!("dtype {:?}, expected F32", view.dtype()),
                ));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            tensors.insert(
                name,
                WeightTensor {
                    shape: view.shape().to_vec(),
                    values,
                },
            );
        }
        Self::with_quantized(path, tensors, quantized)
    }

    /// Reads a safetensors file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| RuntimeError::file(path, e))?;
        Self::parse(path, &bytes)
    }

    /// Tensors already in memory (the training crate's parameters); `origin` names them in
    /// errors. Non-finite values are refused as from a file.
    pub fn new(origin: &Path, tensors: HashMap<String, WeightTensor>) -> Result<Self> {
        Self::with_quantized(origin, tensors, HashMap::new())
    }

    /// [`Weights::new`] with int8 dense weights: each `P.weight` needs its
    /// `P.weight_scale` (`[out]`) and `P.input_scale` (`[1]`) among `tensors`, positive.
    pub fn with_quantized(
        origin: &Path,
        tensors: HashMap<String, WeightTensor>,
        quantized: HashMap<String, QuantizedTensor>,
    ) -> Result<Self> {
        for (name, q) in &quantized {
            if q.shape.len() != 2 || q.shape.iter().product::<usize>() != q.values.len() {
                return Err(tensor_error(
                    origin,
                    name,
                    format!(
                        "int8 weight of shape {:?} with {} values",
                        q.shape,
                        q.values.len()
                    ),
                ));
            }
            let prefix = name
                .strip_suffix(&format!(".{}", names::WEIGHT))
                .unwrap_or(name);
            for (scale, len) in [
                (names::quantized::WEIGHT_SCALE, q.shape[0]),
                (names::quantized::INPUT_SCALE, 1),
            ] {
                let scale_name = names::join(prefix, scale);
                let ok = tensors.get(&scale_name).is_some_and(|t| {
                    t.values.len() == len && t.values.iter().all(|v| *v > 0.0 && v.is_finite())
                });
                if !ok {
                    return Err(tensor_error(
                        origin,
                        &scale_name,
                        format!("the int8 weight `{name}` needs {len} positive scale(s) here"),
                    ));
                }
            }
        }
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        for name in names {
            let t = &tensors[name];
            if t.shape.iter().product::<usize>() != t.values.len() {
                return Err(tensor_error(
                    origin,
                    name,
                    format!("shape {:?} but {} values", t.shape, t.values.len()),
                ));
            }
            if let Some(i) = t.values.iter().position(|v| !v.is_finite()) {
                return Err(tensor_error(
                    origin,
                    name,
                    format!("value {i} is {} (weights must be finite)", t.values[i]),
                ));
            }
        }
        Ok(Self {
            path: origin.to_path_buf(),
            tensors,
            quantized,
            used: RefCell::new(BTreeSet::new()),
        })
    }

    /// True when some dense weights are int8.
    pub fn is_quantized(&self) -> bool {
        !self.quantized.is_empty()
    }

    /// Tensor `name`, if present (not recorded as used).
    pub fn tensor(&self, name: &str) -> Option<&WeightTensor> {
        self.tensors.get(name)
    }

    /// Tensor `name` in f32 — an int8 weight dequantised — if present (not recorded as
    /// used): what an f32 engine (candle, the ONNX export) reads.
    pub fn f32_tensor(&self, name: &str) -> Option<WeightTensor> {
        if let Some(t) = self.tensors.get(name) {
            return Some(t.clone());
        }
        let q = self.quantized.get(name)?;
        let prefix = name.strip_suffix(&format!(".{}", names::WEIGHT))?;
        let scales = &self
            .tensors
            .get(&names::join(prefix, names::quantized::WEIGHT_SCALE))?
            .values;
        let cols = q.shape.get(1).copied().unwrap_or(1).max(1);
        Some(WeightTensor {
            shape: q.shape.clone(),
            values: q
                .values
                .iter()
                .enumerate()
                .map(|(i, &v)| f32::from(v) * scales[i / cols])
                .collect(),
        })
    }

    /// Every tensor by name (not recorded as used).
    pub fn tensors(&self) -> &HashMap<String, WeightTensor> {
        &self.tensors
    }

    /// The file (or origin) the tensors came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of scalar values over all tensors (int8 weights included, their scales not).
    pub fn parameter_count(&self) -> usize {
        let scales = self
            .tensors
            .iter()
            .filter(|(n, _)| {
                n.ends_with(names::quantized::WEIGHT_SCALE)
                    || n.ends_with(names::quantized::INPUT_SCALE)
            })
            .map(|(_, t)| t.values.len())
            .sum::<usize>();
        self.tensors.values().map(|t| t.values.len()).sum::<usize>() - scales
            + self
                .quantized
                .values()
                .map(|t| t.values.len())
                .sum::<usize>()
    }

    /// The root of the name tree.
    pub fn root(&self) -> Params<'_> {
        Params {
            weights: self,
            prefix: String::new(),
        }
    }

    /// Refuses tensors no layer looked up (a checkpoint of another shape or architecture).
    pub fn finish(&self) -> Result<()> {
        let used = self.used.borrow();
        let mut unused: Vec<&String> = self.tensors.keys().filter(|k| !used.contains(*k)).collect();
        unused.sort();
        match unused.first() {
            Some(name) => Err(tensor_error(
                &self.path,
                name,
                "not a parameter of this config",
            )),
            None => Ok(()),
        }
    }

    /// The int8 weight `name` (`[out, in]` = `shape`) with its scales, if stored as int8.
    fn get_int8(&self, name: &str, shape: &[usize]) -> Result<Option<Int8Weight>> {
        let Some(q) = self.quantized.get(name) else {
            return Ok(None);
        };
        if q.shape != shape {
            return Err(tensor_error(
                &self.path,
                name,
                format!(
                    "shape {:?} in the checkpoint, the config needs {shape:?}",
                    q.shape
                ),
            ));
        }
        let prefix = name
            .strip_suffix(&format!(".{}", names::WEIGHT))
            .unwrap_or(name);
        let scale = |s: &str| {
            let n = names::join(prefix, s);
            self.used.borrow_mut().insert(n.clone());
            self.tensors[&n].values.clone()
        };
        let weight_scale = scale(names::quantized::WEIGHT_SCALE);
        let input_scale = scale(names::quantized::INPUT_SCALE)[0];
        self.used.borrow_mut().insert(name.to_string());
        Ok(Some(Int8Weight {
            values: q.values.clone(),
            weight_scale,
            input_scale,
        }))
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        if self.get_int8(name, shape)?.is_some() {
            // Dequantised for readers that compute in f32 (checked and recorded as used).
            let t = self
                .f32_tensor(name)
                .expect("an int8 weight has its scales");
            return Ok(t.values);
        }
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| tensor_error(&self.path, name, "missing from the checkpoint"))?;
        if t.shape != shape {
            return Err(tensor_error(
                &self.path,
                name,
                format!(
                    "shape {:?} in the checkpoint, the config needs {shape:?}",
                    t.shape
                ),
            ));
        }
        self.used.borrow_mut().insert(name.to_string());
        Ok(t.values.clone())
    }
}

fn tensor_error(path: &Path, tensor: &str, problem: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Tensor {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        problem: problem.to_string(),
    }
}

/// A place in the name tree of a [`Weights`]: what layers load themselves from.
#[derive(Debug, Clone)]
pub struct Params<'a> {
    weights: &'a Weights,
    prefix: String,
}

impl<'a> Params<'a> {
    /// The sub-tree `name` (see [`crate::names`]).
    pub fn pp(&self, name: impl AsRef<str>) -> Params<'a> {
        Params {
            weights: self.weights,
            prefix: names::join(&self.prefix, name.as_ref()),
        }
    }

    /// The values of tensor `name` here, which must have `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.weights.get(&names::join(&self.prefix, name), shape)
    }

    /// The int8 weight `name` here (`[out, in]` = `shape`), if stored as int8.
    pub fn get_int8(&self, name: &str, shape: &[usize]) -> Result<Option<Int8Weight>> {
        self.weights
            .get_int8(&names::join(&self.prefix, name), shape)
    }

    /// This place's dotted path.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}
