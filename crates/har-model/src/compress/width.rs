//! Pruning the residual width `D` (the token / projection channels every layer shares) after
//! heads and feed-forward units ([`super::prune`]): the `D'` channels of largest L1 weight are
//! kept in every tensor that reads or writes the residual stream — tokenisers, embeddings,
//! layer norms, attention and feed-forward projections, pools and the head's input columns.
//! Heads keep their width, so `D'` must be a multiple of the head width and hold every
//! layer's heads (`har compress prune --ratio 0.5 --width 16` turns the shipped student into
//! the shape of a 16-wide, one-head student).
//!
//! Unlike head and unit pruning, the kept channels do not compute what they did: every layer
//! norm now averages over `D'` channels. The fine-tuning ([`super::mimic`]) repairs that,
//! matching the unpruned features on the kept channels.
//!
//! Only DMFT's patch encoders with mid-fusion are handled; a tensor this module does not know
//! is an error naming it.

use std::collections::HashMap;

use har_runtime::config::{Encoder, Fusion, LayerWidths};
use har_runtime::names::{self, dmft, transformer};
use har_runtime::weights::WeightTensor;

use super::prune::{keep_columns, keep_rows, l1, strongest, Pruned};
use crate::error::{ModelError, Result};

/// Which axis of a tensor is the residual width, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Axis {
    /// Rows (`[D, …]` or a `[D]` vector).
    Rows,
    /// Columns (`[…, D]`).
    Columns,
    /// No residual axis.
    None,
}

/// The residual axis of tensor `name` (its last components decide).
fn residual_axis(name: &str) -> Option<Axis> {
    let parts: Vec<&str> = name.split('.').collect();
    let last = |k: usize| {
        parts
            .get(parts.len().wrapping_sub(k))
            .copied()
            .unwrap_or("")
    };
    let (leaf, owner, outer) = (last(1), last(2), last(3));
    let is_projection = |o: &str| o.starts_with("patch") || o.starts_with("spectral");
    Some(match (outer, owner, leaf) {
        (_, _, dmft::GROUP_EMBEDDING | dmft::POSITION_EMBEDDING) => Axis::Columns,
        (_, o, names::WEIGHT | names::BIAS) if is_projection(o) => Axis::Rows,
        (transformer::ATTENTION, transformer::QKV, names::WEIGHT) => Axis::Columns,
        (transformer::ATTENTION, transformer::QKV, names::BIAS) => Axis::None,
        (transformer::ATTENTION, transformer::OUT, _) => Axis::Rows,
        (_, transformer::FFN_IN, names::WEIGHT) => Axis::Columns,
        (_, transformer::FFN_IN, names::BIAS) => Axis::None,
        (_, transformer::FFN_OUT, _) => Axis::Rows,
        (_, transformer::NORM1 | transformer::NORM2 | dmft::NORM, _) => Axis::Rows,
        (_, dmft::GROUP_POOL | dmft::TIME_POOL, names::QUERY) => Axis::Rows,
        (_, dmft::HEAD, names::WEIGHT) => Axis::Columns,
        (_, dmft::HEAD, names::BIAS) => Axis::None,
        _ => return None,
    })
}

/// The L1 norm of each residual channel's slice of `t`, divided by the tensor's mean channel
/// norm (so that large tensors do not outvote small ones).
fn channel_scores(t: &WeightTensor, axis: Axis, d: usize) -> Vec<f64> {
    let mut scores = vec![0f64; d];
    match axis {
        Axis::Rows => {
            let cols: usize = t.shape[1..].iter().product();
            for (c, score) in scores.iter_mut().enumerate() {
                *score = l1(t.values[c * cols..(c + 1) * cols].iter().copied());
            }
        }
        Axis::Columns => {
            for row in t.values.chunks_exact(d) {
                for (score, v) in scores.iter_mut().zip(row) {
                    *score += f64::from(v.abs());
                }
            }
        }
        Axis::None => return scores,
    }
    let mean = scores.iter().sum::<f64>() / d as f64;
    if mean > 0.0 {
        scores.iter_mut().for_each(|s| *s /= mean);
    }
    scores
}

/// Narrows the residual width of an already head- and unit-pruned model to `width` channels.
pub fn prune_width(pruned: Pruned, width: usize) -> Result<(Pruned, Vec<usize>)> {
    let config = &pruned.config;
    if config.encoder != Encoder::Patch || config.fusion != Fusion::Mid {
        return Err(ModelError::Invalid(format!(
            "width pruning handles DMFT's patch encoder with mid-fusion, not `{}`",
            config.arch_name()
        )));
    }
    let (d, hd) = (config.dim, config.head_dim());
    let sites = config.transformer_layers();
    let most_heads = sites
        .iter()
        .map(|s| config.layer_widths(&s.name).heads)
        .max()
        .unwrap_or(1);
    if width == 0 || width >= d || width % hd != 0 || width / hd < most_heads {
        return Err(ModelError::Invalid(format!(
            "--width {width}: must be below {d}, a multiple of the head width {hd} and hold \
             {most_heads} head(s) per layer (prune heads first with --ratio)"
        )));
    }
    let mut axes = Vec::with_capacity(pruned.tensors.len());
    let mut scores = vec![0f64; d];
    for (name, t) in &pruned.tensors {
        let axis = residual_axis(name).ok_or_else(|| {
            ModelError::Invalid(format!("width pruning does not know tensor `{name}`"))
        })?;
        for (s, c) in scores.iter_mut().zip(channel_scores(t, axis, d)) {
            *s += c;
        }
        axes.push((name.clone(), axis));
    }
    let kept = strongest(&scores, width);
    let mut tensors = HashMap::with_capacity(pruned.tensors.len());
    for (name, axis) in axes {
        let t = &pruned.tensors[&name];
        let narrowed = match axis {
            Axis::Rows => keep_rows(t, &kept),
            Axis::Columns if t.shape.len() == 2 => keep_columns(t, &kept),
            Axis::Columns => {
                return Err(ModelError::Invalid(format!(
                    "width pruning: `{name}` has shape {:?}",
                    t.shape
                )))
            }
            Axis::None => t.clone(),
        };
        tensors.insert(name, narrowed);
    }
    let mut narrow = config.clone();
    narrow.dim = width;
    narrow.heads = width / hd;
    let widest_ffn = sites
        .iter()
        .map(|s| config.layer_widths(&s.name).ffn)
        .max()
        .unwrap_or(1);
    narrow.ffn_mult = widest_ffn.div_ceil(width).max(1);
    narrow.pruned = sites
        .iter()
        .map(|s| {
            let w = config.layer_widths(&s.name);
            (
                s.name.clone(),
                LayerWidths {
                    heads: w.heads,
                    ffn: w.ffn,
                },
            )
        })
        .collect();
    narrow.validate().map_err(ModelError::Invalid)?;
    Ok((
        Pruned {
            config: narrow,
            tensors,
            plan: pruned.plan,
        },
        kept,
    ))
}
