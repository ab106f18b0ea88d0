//! A dependency-free forward pass of a trained DMFT for one window at a time, for the edge and
//! the dataflow nodes.
//!
//! candle's per-operation overhead dominates a model this small (a single small encoder layer
//! costs milliseconds), so inference runs on plain `f32` slices: weights are copied out of the
//! candle model once (linear weights transposed to `[in, out]` so that each output row is a
//! sum of contiguous axpy updates the compiler vectorises), and every buffer is reused.
//! It computes the same function as [`crate::dmft::Dmft`] with `train = false` (tested to
//! 1e-4), including the split into per-modality [`FastDmft::encode`] and [`FastDmft::fuse`].
//! A missing modality's tokens are simply left out of fusion, which is what the candle
//! model's mask computes.

use std::collections::HashMap;

use candle_core::Tensor;

use crate::dmft::DmftConfig;
use crate::error::{ModelError, Result};
use crate::layers::LayerNorm;

fn tensor(tensors: &HashMap<String, Tensor>, name: &str) -> Result<Vec<f32>> {
    let t = tensors
        .get(name)
        .ok_or_else(|| ModelError::Invalid(format!("fast model: tensor `{name}` is missing")))?;
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// `y = x · Wᵀ + b` with `W` stored transposed.
#[derive(Debug, Clone)]
struct Dense {
    weight_t: Vec<f32>,
    bias: Vec<f32>,
    out_dim: usize,
}

impl Dense {
    fn load(tensors: &HashMap<String, Tensor>, prefix: &str, with_bias: bool) -> Result<Self> {
        let w = tensors.get(&format!("{prefix}.weight")).ok_or_else(|| {
            ModelError::Invalid(format!("fast model: tensor `{prefix}.weight` is missing"))
        })?;
        let (out_dim, in_dim) = w.dims2()?;
        let weight_t = w.t()?.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let bias = if with_bias {
            tensor(tensors, &format!("{prefix}.bias"))?
        } else {
            vec![0.0; out_dim]
        };
        debug_assert_eq!(weight_t.len(), in_dim * out_dim);
        Ok(Self {
            weight_t,
            bias,
            out_dim,
        })
    }

    /// Applies to each row of `x` (`rows × in`), writing `rows × out` into `y`.
    fn apply(&self, x: &[f32], rows: usize, y: &mut Vec<f32>) {
        let in_dim = x.len() / rows.max(1);
        y.clear();
        y.reserve(rows * self.out_dim);
        for r in 0..rows {
            let start = y.len();
            y.extend_from_slice(&self.bias);
            let out = &mut y[start..];
            for (i, &xi) in x[r * in_dim..(r + 1) * in_dim].iter().enumerate() {
                let w = &self.weight_t[i * self.out_dim..(i + 1) * self.out_dim];
                for (o, wv) in out.iter_mut().zip(w) {
                    *o += xi * wv;
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Norm {
    fn load(tensors: &HashMap<String, Tensor>, prefix: &str) -> Result<Self> {
        Ok(Self {
            weight: tensor(tensors, &format!("{prefix}.weight"))?,
            bias: tensor(tensors, &format!("{prefix}.bias"))?,
        })
    }

    fn apply(&self, x: &[f32], y: &mut Vec<f32>) {
        let d = self.weight.len();
        y.clear();
        for row in x.chunks_exact(d) {
            let mean = row.iter().sum::<f32>() / d as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
            let inv = 1.0 / (var + LayerNorm::EPS as f32).sqrt();
            y.extend(
                row.iter()
                    .zip(&self.weight)
                    .zip(&self.bias)
                    .map(|((v, w), b)| (v - mean) * inv * w + b),
            );
        }
    }
}

fn softmax_in_place(xs: &mut [f32]) {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in xs.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in xs.iter_mut() {
        *x /= sum;
    }
}

fn gelu(x: f32) -> f32 {
    // The tanh approximation, as candle's `Tensor::gelu`.
    0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh())
}

/// Scratch buffers reused across calls.
#[derive(Debug, Default, Clone)]
struct Scratch {
    normed: Vec<f32>,
    qkv: Vec<f32>,
    attended: Vec<f32>,
    projected: Vec<f32>,
    hidden: Vec<f32>,
    scores: Vec<f32>,
}

#[derive(Debug, Clone)]
struct Layer {
    norm1: Norm,
    qkv: Dense,
    out: Dense,
    norm2: Norm,
    ffn_in: Dense,
    ffn_out: Dense,
    heads: usize,
}

impl Layer {
    fn load(tensors: &HashMap<String, Tensor>, prefix: &str, heads: usize) -> Result<Self> {
        Ok(Self {
            norm1: Norm::load(tensors, &format!("{prefix}.norm1"))?,
            qkv: Dense::load(tensors, &format!("{prefix}.attn.qkv"), true)?,
            out: Dense::load(tensors, &format!("{prefix}.attn.out"), true)?,
            norm2: Norm::load(tensors, &format!("{prefix}.norm2"))?,
            ffn_in: Dense::load(tensors, &format!("{prefix}.ffn_in"), true)?,
            ffn_out: Dense::load(tensors, &format!("{prefix}.ffn_out"), true)?,
            heads,
        })
    }

    /// Applies the pre-norm layer in place to a sequence `x` of `len × d`.
    fn apply(&self, x: &mut [f32], len: usize, s: &mut Scratch) {
        let d = x.len() / len;
        let hd = d / self.heads;
        let scale = 1.0 / (hd as f32).sqrt();
        self.norm1.apply(x, &mut s.normed);
        self.qkv.apply(&s.normed, len, &mut s.qkv);
        s.attended.clear();
        s.attended.resize(len * d, 0.0);
        s.scores.resize(len, 0.0);
        for h in 0..self.heads {
            for i in 0..len {
                let q = &s.qkv[i * 3 * d + h * hd..i * 3 * d + (h + 1) * hd];
                for j in 0..len {
                    let k = &s.qkv[j * 3 * d + d + h * hd..j * 3 * d + d + (h + 1) * hd];
                    s.scores[j] = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
                }
                softmax_in_place(&mut s.scores[..len]);
                let out = &mut s.attended[i * d + h * hd..i * d + (h + 1) * hd];
                for j in 0..len {
                    let v = &s.qkv[j * 3 * d + 2 * d + h * hd..j * 3 * d + 2 * d + (h + 1) * hd];
                    let w = s.scores[j];
                    for (o, vv) in out.iter_mut().zip(v) {
                        *o += w * vv;
                    }
                }
            }
        }
        self.out.apply(&s.attended, len, &mut s.projected);
        x.iter_mut().zip(&s.projected).for_each(|(a, b)| *a += b);
        self.norm2.apply(x, &mut s.normed);
        self.ffn_in.apply(&s.normed, len, &mut s.hidden);
        s.hidden.iter_mut().for_each(|v| *v = gelu(*v));
        self.ffn_out.apply(&s.hidden, len, &mut s.projected);
        x.iter_mut().zip(&s.projected).for_each(|(a, b)| *a += b);
    }
}

/// Attention pooling of `len` rows of `x` into `out` (`d`).
fn attention_pool(query: &[f32], x: &[f32], len: usize, scores: &mut Vec<f32>, out: &mut [f32]) {
    let d = query.len();
    let scale = 1.0 / (d as f32).sqrt();
    scores.clear();
    scores.extend(
        x.chunks_exact(d)
            .take(len)
            .map(|row| row.iter().zip(query).map(|(a, b)| a * b).sum::<f32>() * scale),
    );
    softmax_in_place(scores);
    out.iter_mut().for_each(|o| *o = 0.0);
    for (row, &w) in x.chunks_exact(d).zip(scores.iter()) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += w * v;
        }
    }
}

#[derive(Debug, Clone)]
struct Encoder {
    groups: Vec<Vec<usize>>,
    patches: Vec<Dense>,
    group_embedding: Vec<f32>,
    position_embedding: Vec<f32>,
    spatial: Vec<Layer>,
    temporal: Vec<Layer>,
}

/// The plain-Rust DMFT forward pass.
#[derive(Debug, Clone)]
pub struct FastDmft {
    config: DmftConfig,
    encoders: Vec<Encoder>,
    fusion: Layer,
    group_pool: Vec<f32>,
    joint: Vec<Layer>,
    time_pool: Vec<f32>,
    norm: Norm,
    head: Dense,
    scratch: Scratch,
}

impl FastDmft {
    /// Copies the weights of a DMFT of `config` out of its named tensors (a var map's or a
    /// checkpoint's).
    pub fn new(config: &DmftConfig, tensors: &HashMap<String, Tensor>) -> Result<Self> {
        config.validate().map_err(ModelError::Invalid)?;
        let encoders = config
            .modalities
            .iter()
            .map(|m| {
                let p = format!("enc.{}", m.name);
                let several = m.groups.len() > 1;
                Ok(Encoder {
                    groups: m.groups.clone(),
                    patches: (0..m.groups.len())
                        .map(|g| Dense::load(tensors, &format!("{p}.patch{g}"), true))
                        .collect::<Result<_>>()?,
                    group_embedding: tensor(tensors, &format!("{p}.group_embedding"))?,
                    position_embedding: tensor(tensors, &format!("{p}.position_embedding"))?,
                    spatial: if several {
                        (0..config.modality_layers)
                            .map(|l| Layer::load(tensors, &format!("{p}.spatial{l}"), config.heads))
                            .collect::<Result<_>>()?
                    } else {
                        Vec::new()
                    },
                    temporal: (0..config.modality_layers)
                        .map(|l| Layer::load(tensors, &format!("{p}.temporal{l}"), config.heads))
                        .collect::<Result<_>>()?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            config: config.clone(),
            encoders,
            fusion: Layer::load(tensors, "fuse.spatial", config.heads)?,
            group_pool: tensor(tensors, "fuse.group_pool.query")?,
            joint: (0..config.joint_layers)
                .map(|l| Layer::load(tensors, &format!("fuse.joint{l}"), config.heads))
                .collect::<Result<_>>()?,
            time_pool: tensor(tensors, "fuse.time_pool.query")?,
            norm: Norm::load(tensors, "fuse.norm")?,
            head: Dense::load(tensors, "fuse.head", true)?,
            scratch: Scratch::default(),
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &DmftConfig {
        &self.config
    }

    /// Encoder part of modality `m` for one window `x` (`T × C`, normalised): tokens
    /// `S × G × D`, row-major.
    pub fn encode(&mut self, m: usize, x: &[f32]) -> Result<Vec<f32>> {
        let (t, p, s_len, d) = (
            self.config.window_len,
            self.config.patch_len,
            self.config.steps(),
            self.config.dim,
        );
        let c = self.config.modalities[m].channels;
        if x.len() != t * c {
            return Err(ModelError::Invalid(format!(
                "modality `{}`: {} values, expected {t} × {c}",
                self.config.modalities[m].name,
                x.len()
            )));
        }
        let enc = &self.encoders[m];
        let g_len = enc.groups.len();
        let mut tokens = vec![0f32; s_len * g_len * d];
        let mut patch = Vec::new();
        let mut projected = Vec::new();
        for (g, group) in enc.groups.iter().enumerate() {
            for s in 0..s_len {
                patch.clear();
                for step in 0..p {
                    let row = &x[(s * p + step) * c..(s * p + step + 1) * c];
                    patch.extend(group.iter().map(|&ch| row[ch]));
                }
                enc.patches[g].apply(&patch, 1, &mut projected);
                let token = &mut tokens[(s * g_len + g) * d..(s * g_len + g + 1) * d];
                for k in 0..d {
                    token[k] = projected[k]
                        + enc.group_embedding[g * d + k]
                        + enc.position_embedding[s * d + k];
                }
            }
        }
        let mut sequence = vec![0f32; s_len.max(g_len) * d];
        for (l, temporal) in enc.temporal.iter().enumerate() {
            if let Some(spatial) = enc.spatial.get(l) {
                for s in 0..s_len {
                    spatial.apply(
                        &mut tokens[s * g_len * d..(s + 1) * g_len * d],
                        g_len,
                        &mut self.scratch,
                    );
                }
            }
            for g in 0..g_len {
                for s in 0..s_len {
                    sequence[s * d..(s + 1) * d]
                        .copy_from_slice(&tokens[(s * g_len + g) * d..(s * g_len + g + 1) * d]);
                }
                temporal.apply(&mut sequence[..s_len * d], s_len, &mut self.scratch);
                for s in 0..s_len {
                    tokens[(s * g_len + g) * d..(s * g_len + g + 1) * d]
                        .copy_from_slice(&sequence[s * d..(s + 1) * d]);
                }
            }
        }
        Ok(tokens)
    }

    /// Fusion part for one window: each modality's tokens (`None` when missing); returns the
    /// class probabilities.
    pub fn fuse(&mut self, tokens: &[Option<&[f32]>]) -> Result<Vec<f32>> {
        let (s_len, d) = (self.config.steps(), self.config.dim);
        if tokens.len() != self.encoders.len() || tokens.iter().all(|t| t.is_none()) {
            return Err(ModelError::Invalid(format!(
                "fuse needs {} token sets with at least one present",
                self.encoders.len()
            )));
        }
        let groups: Vec<usize> = self.encoders.iter().map(|e| e.groups.len()).collect();
        let present: usize = tokens
            .iter()
            .zip(&groups)
            .filter(|(t, _)| t.is_some())
            .map(|(_, g)| g)
            .sum();
        let mut fused = vec![0f32; s_len * d];
        let mut step_tokens = Vec::with_capacity(present * d);
        let mut scores = Vec::new();
        for s in 0..s_len {
            step_tokens.clear();
            for (m, t) in tokens.iter().enumerate() {
                if let Some(t) = t {
                    let g = groups[m];
                    if t.len() != s_len * g * d {
                        return Err(ModelError::Invalid(format!(
                            "modality {m}: {} token values, expected {}",
                            t.len(),
                            s_len * g * d
                        )));
                    }
                    step_tokens.extend_from_slice(&t[s * g * d..(s + 1) * g * d]);
                }
            }
            self.fusion
                .apply(&mut step_tokens, present, &mut self.scratch);
            attention_pool(
                &self.group_pool,
                &step_tokens,
                present,
                &mut scores,
                &mut fused[s * d..(s + 1) * d],
            );
        }
        for layer in &self.joint {
            layer.apply(&mut fused, s_len, &mut self.scratch);
        }
        let mut pooled = vec![0f32; d];
        attention_pool(&self.time_pool, &fused, s_len, &mut scores, &mut pooled);
        let mut normed = Vec::with_capacity(d);
        self.norm.apply(&pooled, &mut normed);
        let mut logits = Vec::new();
        self.head.apply(&normed, 1, &mut logits);
        softmax_in_place(&mut logits);
        Ok(logits)
    }

    /// Class probabilities of one window with every modality (`inputs[m]` is `T × C_m`).
    pub fn predict(&mut self, inputs: &[&[f32]]) -> Result<Vec<f32>> {
        let tokens = inputs
            .iter()
            .enumerate()
            .map(|(m, x)| self.encode(m, x))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<Option<&[f32]>> = tokens.iter().map(|t| Some(t.as_slice())).collect();
        self.fuse(&refs)
    }
}

/// The named tensors of a var map (for [`FastDmft::new`]).
pub fn varmap_tensors(varmap: &candle_nn::VarMap) -> HashMap<String, Tensor> {
    let data = varmap.data().lock().expect("varmap lock");
    data.iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect()
}
