//! Structured L1 pruning of a model's backbone (seed S3's first step): in every transformer
//! layer, the attention heads and feed-forward units of least L1 weight are removed. The
//! classification head, the tokenisers, the pools and the residual width are kept, so the
//! result is a normal model of a narrower shape (its config's `pruned` map, see
//! [`har_runtime::layer_widths`]) whose kept units compute exactly what they did before.
//!
//! A layer of `h` heads keeps `h − ⌊r·h⌋` of them and of `f` feed-forward units
//! `f − ⌊r·f⌋` rounded up to a multiple of 8 (the runtime's vector width; see
//! [`kept_ffn_units`]), never fewer than one; kept units stay in their order.

use std::collections::HashMap;

use har_runtime::config::{DmftConfig, LayerWidths};
use har_runtime::names::{self, transformer};
use har_runtime::weights::WeightTensor;
use serde::Serialize;

use crate::error::{ModelError, Result};

/// What one layer keeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerPlan {
    /// The layer's weight prefix.
    pub layer: String,
    /// Heads kept (indices into the layer's heads before pruning), ascending.
    pub heads: Vec<usize>,
    /// Feed-forward units kept, ascending.
    pub ffn: Vec<usize>,
    /// Heads before pruning.
    pub heads_before: usize,
    /// Feed-forward units before pruning.
    pub ffn_before: usize,
}

/// A pruned model: its shape, its weights and what each layer kept.
#[derive(Debug, Clone)]
pub struct Pruned {
    /// The narrower shape.
    pub config: DmftConfig,
    /// Every tensor, the layers' narrowed.
    pub tensors: HashMap<String, WeightTensor>,
    /// Per layer, the kept units.
    pub plan: Vec<LayerPlan>,
}

fn missing(name: &str) -> ModelError {
    ModelError::Invalid(format!("pruning: tensor `{name}` is missing"))
}

fn tensor<'a>(tensors: &'a HashMap<String, WeightTensor>, name: &str) -> Result<&'a WeightTensor> {
    tensors.get(name).ok_or_else(|| missing(name))
}

/// The rows `rows` of a `[R, C]` tensor (or of a vector).
pub(crate) fn keep_rows(t: &WeightTensor, rows: &[usize]) -> WeightTensor {
    let cols: usize = t.shape[1..].iter().product();
    let mut shape = t.shape.clone();
    shape[0] = rows.len();
    WeightTensor {
        shape,
        values: rows
            .iter()
            .flat_map(|&r| t.values[r * cols..(r + 1) * cols].iter().copied())
            .collect(),
    }
}

/// The columns `cols` of a `[R, C]` tensor.
pub(crate) fn keep_columns(t: &WeightTensor, cols: &[usize]) -> WeightTensor {
    let width = t.shape[1];
    WeightTensor {
        shape: vec![t.shape[0], cols.len()],
        values: t
            .values
            .chunks_exact(width)
            .flat_map(|row| cols.iter().map(move |&c| row[c]))
            .collect(),
    }
}

pub(crate) fn l1(values: impl Iterator<Item = f32>) -> f64 {
    values.map(|v| f64::from(v.abs())).sum()
}

/// Indices of the `keep` largest scores, ascending (ties keep the earlier unit).
pub(crate) fn strongest(scores: &[f64], keep: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut kept = order[..keep.min(order.len())].to_vec();
    kept.sort_unstable();
    kept
}

/// Units kept of `n` at ratio `r`: `n − ⌊r·n⌋`, at least one.
pub fn kept_units(n: usize, ratio: f64) -> usize {
    (n - (ratio * n as f64).floor() as usize).max(1)
}

/// The runtime's vector width in `f32`s: its kernels leave outputs beyond a multiple of it
/// to scalar loops.
pub const VECTOR_WIDTH: usize = 8;

/// Feed-forward units kept of `n` at ratio `r`: [`kept_units`] rounded up to a multiple of
/// [`VECTOR_WIDTH`] when `n` is one (so a layer removes at most the ratio, and a narrower
/// layer is never slower than a slightly wider one).
pub fn kept_ffn_units(n: usize, ratio: f64) -> usize {
    let kept = kept_units(n, ratio);
    if n % VECTOR_WIDTH == 0 {
        kept.div_ceil(VECTOR_WIDTH) * VECTOR_WIDTH
    } else {
        kept
    }
}

/// The weight rows of the kept heads in a `[3·h·hd, …]` qkv tensor: each of q, k, v in turn.
fn qkv_rows(heads: &[usize], heads_before: usize, head_dim: usize) -> Vec<usize> {
    (0..3)
        .flat_map(|part| {
            heads.iter().flat_map(move |&h| {
                let start = (part * heads_before + h) * head_dim;
                start..start + head_dim
            })
        })
        .collect()
}

/// Prunes every transformer layer of `config` at `ratio` (0 ≤ r < 1) by L1 importance: a
/// head's is the L1 norm of its query, key and value rows and its output columns, a
/// feed-forward unit's that of its expansion row and contraction column.
pub fn prune(
    config: &DmftConfig,
    tensors: &HashMap<String, WeightTensor>,
    ratio: f64,
) -> Result<Pruned> {
    if !(0.0..1.0).contains(&ratio) {
        return Err(ModelError::Invalid(format!(
            "pruning ratio {ratio} is outside [0, 1)"
        )));
    }
    let hd = config.head_dim();
    let mut out = tensors.clone();
    let mut pruned = config.clone();
    let mut plan = Vec::new();
    for site in config.transformer_layers() {
        let before = config.layer_widths(&site.name);
        let name = |parts: &[&str]| {
            parts
                .iter()
                .fold(site.name.clone(), |prefix, part| names::join(&prefix, part))
        };
        let qkv_w = name(&[transformer::ATTENTION, transformer::QKV, names::WEIGHT]);
        let qkv_b = name(&[transformer::ATTENTION, transformer::QKV, names::BIAS]);
        let out_w = name(&[transformer::ATTENTION, transformer::OUT, names::WEIGHT]);
        let in_w = name(&[transformer::FFN_IN, names::WEIGHT]);
        let in_b = name(&[transformer::FFN_IN, names::BIAS]);
        let contract_w = name(&[transformer::FFN_OUT, names::WEIGHT]);
        let (qkv, attn_out) = (tensor(tensors, &qkv_w)?, tensor(tensors, &out_w)?);
        let (expand, contract) = (tensor(tensors, &in_w)?, tensor(tensors, &contract_w)?);
        let d = config.dim;
        let inner = before.heads * hd;
        let expected = [
            (&qkv_w, qkv, vec![3 * inner, d]),
            (&out_w, attn_out, vec![d, inner]),
            (&in_w, expand, vec![before.ffn, d]),
            (&contract_w, contract, vec![d, before.ffn]),
        ];
        for (n, t, shape) in expected {
            if t.shape != shape {
                return Err(ModelError::Invalid(format!(
                    "pruning: `{n}` has shape {:?}, the config says {shape:?}",
                    t.shape
                )));
            }
        }
        let head_scores: Vec<f64> = (0..before.heads)
            .map(|h| {
                let rows = qkv_rows(&[h], before.heads, hd);
                let qkv_l1: f64 = rows
                    .iter()
                    .map(|&r| l1(qkv.values[r * d..(r + 1) * d].iter().copied()))
                    .sum();
                let out_l1 = l1(attn_out
                    .values
                    .chunks_exact(inner)
                    .flat_map(|row| row[h * hd..(h + 1) * hd].iter().copied()));
                qkv_l1 + out_l1
            })
            .collect();
        let ffn_scores: Vec<f64> = (0..before.ffn)
            .map(|j| {
                l1(expand.values[j * d..(j + 1) * d].iter().copied())
                    + l1(contract.values.chunks_exact(before.ffn).map(|row| row[j]))
            })
            .collect();
        let heads = strongest(&head_scores, kept_units(before.heads, ratio));
        let ffn = strongest(&ffn_scores, kept_ffn_units(before.ffn, ratio));
        let rows = qkv_rows(&heads, before.heads, hd);
        let columns: Vec<usize> = heads.iter().flat_map(|&h| h * hd..(h + 1) * hd).collect();
        out.insert(qkv_w.clone(), keep_rows(qkv, &rows));
        out.insert(qkv_b.clone(), keep_rows(tensor(tensors, &qkv_b)?, &rows));
        out.insert(out_w.clone(), keep_columns(attn_out, &columns));
        out.insert(in_w.clone(), keep_rows(expand, &ffn));
        out.insert(in_b.clone(), keep_rows(tensor(tensors, &in_b)?, &ffn));
        out.insert(contract_w.clone(), keep_columns(contract, &ffn));
        pruned.pruned.insert(
            site.name.clone(),
            LayerWidths {
                heads: heads.len(),
                ffn: ffn.len(),
            },
        );
        plan.push(LayerPlan {
            layer: site.name,
            heads,
            ffn,
            heads_before: before.heads,
            ffn_before: before.ffn,
        });
    }
    pruned.validate().map_err(ModelError::Invalid)?;
    Ok(Pruned {
        config: pruned,
        tensors: out,
        plan,
    })
}
