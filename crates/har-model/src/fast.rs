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
use crate::patch_input::{patch_log_std, standardise_window};
use crate::spectrum::SpectrumTables;

mod kernels;
mod matmul;
use kernels::{attention_pool, softmax_in_place, tensor, transpose_tokens, Layer, Norm, Scratch};
use matmul::Dense;

/// The spectral step of one modality: the DFT as a dense layer (`[T, 2K]`, no bias), the
/// band tables, and one projection per channel group.
#[derive(Debug, Clone)]
struct Spectral {
    tables: SpectrumTables,
    dft: Dense,
    projections: Vec<Dense>,
}

impl Spectral {
    /// The spectral tokens' projections (before embeddings) of window `x` (`T × C`): one row
    /// of `D` per group, appended to `out`.
    fn apply(&self, x: &[f32], channels: usize, groups: &[Vec<usize>], out: &mut Vec<f32>) {
        let t = x.len() / channels;
        let mut by_channel = vec![0f32; x.len()];
        for (i, sample) in x.chunks_exact(channels).enumerate() {
            for (c, v) in sample.iter().enumerate() {
                by_channel[c * t + i] = *v;
            }
        }
        let mut dft = Vec::new();
        self.dft.apply(&by_channel, channels, &mut dft);
        let row_len = dft.len() / channels;
        let mut power = Vec::new();
        let mut row = Vec::new();
        for (group, projection) in groups.iter().zip(&self.projections) {
            power.clear();
            for &c in group {
                let dft_row = &dft[c * row_len..(c + 1) * row_len];
                self.tables.log_band_power_from_dft(dft_row, &mut power);
            }
            projection.apply(&power, 1, &mut row);
            out.extend_from_slice(&row);
        }
    }
}

#[derive(Debug, Clone)]
struct Encoder {
    groups: Vec<Vec<usize>>,
    patches: Vec<Dense>,
    spectral: Option<Spectral>,
    group_embedding: Vec<f32>,
    position_embedding: Vec<f32>,
    spatial: Vec<Layer>,
    temporal: Vec<Layer>,
}

/// The fusion part's result for one window.
#[derive(Debug, Clone, PartialEq)]
pub struct FastOutput {
    /// Class logits (before the softmax).
    pub logits: Vec<f32>,
    /// Mid-fusion features `S × D`, row-major: one fused token per time step.
    pub fused: Vec<f32>,
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
                    spectral: if config.spectral_tokens {
                        let tables = SpectrumTables::new(config.window_len);
                        let width = 2 * tables.bins();
                        Some(Spectral {
                            dft: Dense::from_transposed(tables.dft_matrix().to_vec(), width),
                            tables,
                            projections: (0..m.groups.len())
                                .map(|g| Dense::load(tensors, &format!("{p}.spectral{g}"), true))
                                .collect::<Result<_>>()?,
                        })
                    } else {
                        None
                    },
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
        let patch_steps = self.config.patch_steps();
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
        let mut patches = Vec::new();
        let mut projected = Vec::new();
        // The spectral step's projection per group (`G × D`), when the model has one.
        let mut spectral = Vec::new();
        if let Some(s) = &enc.spectral {
            s.apply(x, c, &enc.groups, &mut spectral);
        }
        let detail = if self.config.window_detail {
            standardise_window(x, c)
        } else {
            Vec::new()
        };
        for (g, group) in enc.groups.iter().enumerate() {
            // All S patches of the group, then one projection of S rows.
            patches.clear();
            for s in 0..patch_steps {
                let patch = &x[s * p * c..(s + 1) * p * c];
                for row in patch.chunks_exact(c) {
                    patches.extend(group.iter().map(|&ch| row[ch]));
                }
                if self.config.window_detail {
                    for row in detail[s * p * c..(s + 1) * p * c].chunks_exact(c) {
                        patches.extend(group.iter().map(|&ch| row[ch]));
                    }
                }
                if self.config.patch_stats {
                    patches.extend(
                        group.iter().map(|&ch| {
                            patch_log_std(patch.chunks_exact(c).map(move |row| row[ch]))
                        }),
                    );
                }
            }
            enc.patches[g].apply(&patches, patch_steps, &mut projected);
            if enc.spectral.is_some() {
                // The spectral step: one more projected row after the patch steps.
                projected.extend_from_slice(&spectral[g * d..(g + 1) * d]);
            }
            for s in 0..s_len {
                let token = &mut tokens[(s * g_len + g) * d..(s * g_len + g + 1) * d];
                let (projection, group_emb, position) = (
                    &projected[s * d..(s + 1) * d],
                    &enc.group_embedding[g * d..(g + 1) * d],
                    &enc.position_embedding[s * d..(s + 1) * d],
                );
                for k in 0..d {
                    token[k] = projection[k] + group_emb[k] + position[k];
                }
            }
        }
        // Tokens are [S, G, D]: spatial layers see S sequences of G; temporal layers need the
        // transposed [G, S, D] layout (the same buffer when G = 1).
        let mut by_group = vec![0f32; s_len * g_len * d];
        for (l, temporal) in enc.temporal.iter().enumerate() {
            if let Some(spatial) = enc.spatial.get(l) {
                spatial.apply(&mut tokens, g_len, &mut self.scratch);
            }
            if g_len == 1 {
                temporal.apply(&mut tokens, s_len, &mut self.scratch);
                continue;
            }
            transpose_tokens(&tokens, s_len, g_len, d, &mut by_group);
            temporal.apply(&mut by_group, s_len, &mut self.scratch);
            transpose_tokens(&by_group, g_len, s_len, d, &mut tokens);
        }
        Ok(tokens)
    }

    /// Fusion part for one window: each modality's tokens (`None` when missing); returns the
    /// class probabilities.
    pub fn fuse(&mut self, tokens: &[Option<&[f32]>]) -> Result<Vec<f32>> {
        let mut logits = self.fuse_logits(tokens, None)?;
        softmax_in_place(&mut logits);
        Ok(logits)
    }

    /// Fusion part for one window, returning the class logits and the mid-fusion features
    /// (what distillation needs from a teacher).
    pub fn fuse_with_features(&mut self, tokens: &[Option<&[f32]>]) -> Result<FastOutput> {
        let mut fused = Vec::new();
        let logits = self.fuse_logits(tokens, Some(&mut fused))?;
        Ok(FastOutput { logits, fused })
    }

    /// The class logits of one window; copies the mid-fusion features into `features` when
    /// asked (inference does not pay for the copy).
    fn fuse_logits(
        &mut self,
        tokens: &[Option<&[f32]>],
        features: Option<&mut Vec<f32>>,
    ) -> Result<Vec<f32>> {
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
        // All present tokens as [S, G_present, D]: one fusion layer call over S sequences.
        let mut step_tokens = Vec::with_capacity(s_len * present * d);
        for s in 0..s_len {
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
        }
        self.fusion
            .apply(&mut step_tokens, present, &mut self.scratch);
        let mut fused = vec![0f32; s_len * d];
        let mut scores = Vec::new();
        for (s, step) in step_tokens.chunks_exact(present * d).enumerate() {
            attention_pool(
                &self.group_pool,
                step,
                present,
                &mut scores,
                &mut fused[s * d..(s + 1) * d],
            );
        }
        if let Some(features) = features {
            features.clone_from(&fused);
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
