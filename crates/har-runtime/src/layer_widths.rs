//! Every transformer layer of a model by name, and its widths: attention heads and
//! feed-forward width. A model narrowed by structured pruning (`har compress prune`) names
//! its narrowed layers in the config's `pruned` map; the three engines build each layer from
//! [`DmftConfig::layer_widths`], so a pruned model is a normal model of a different shape.
//!
//! A head keeps the unpruned width `dim / heads`: removing heads narrows the attention's
//! inner width (`attn.qkv` `[3·h·hd, D]`, `attn.out` `[D, h·hd]`); the residual width `D` is
//! never pruned (every layer norm would see different statistics).

use serde::{Deserialize, Serialize};

use crate::config::{DmftConfig, Encoder, Fusion};
use crate::names::dmft as names;

/// The widths of one transformer layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerWidths {
    /// Attention heads (each [`DmftConfig::head_dim`] wide).
    pub heads: usize,
    /// Feed-forward hidden width.
    pub ffn: usize,
}

/// Where a transformer layer sits: its weight prefix and the sequences it runs over per
/// window (for FLOPs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSite {
    /// Weight prefix, e.g. `enc.acc.temporal0`.
    pub name: String,
    /// Sequences per window.
    pub sequences: usize,
    /// Rows per sequence.
    pub len: usize,
}

impl DmftConfig {
    /// Width of one attention head (`dim / heads`, pruned or not).
    pub fn head_dim(&self) -> usize {
        self.dim / self.heads.max(1)
    }

    /// The widths of the transformer layer at `prefix`: as pruned, or the config's.
    pub fn layer_widths(&self, prefix: &str) -> LayerWidths {
        self.pruned.get(prefix).copied().unwrap_or(LayerWidths {
            heads: self.heads,
            ffn: self.dim * self.ffn_mult,
        })
    }

    /// Every transformer layer of the model, in forward order.
    pub fn transformer_layers(&self) -> Vec<LayerSite> {
        let s = self.steps();
        let site = |name: String, sequences: usize, len: usize| LayerSite {
            name,
            sequences,
            len,
        };
        let mut sites = Vec::new();
        let mut groups_total = 0;
        for m in 0..self.modalities.len() {
            groups_total += self.token_groups(m);
            if matches!(self.encoder, Encoder::Recurrent { .. }) {
                continue;
            }
            let g = self.modalities[m].groups.len();
            let encoder = names::encoder(&self.modalities[m].name);
            for l in 0..self.modality_layers {
                if g > 1 {
                    sites.push(site(format!("{encoder}.{}", names::spatial_layer(l)), s, g));
                }
                sites.push(site(
                    format!("{encoder}.{}", names::temporal_layer(l)),
                    g,
                    s,
                ));
            }
        }
        let fuse = |name: String| format!("{}.{name}", names::FUSION);
        match self.fusion {
            Fusion::Mid => {
                sites.push(site(fuse(names::FUSION_LAYER.into()), s, groups_total));
                for l in 0..self.joint_layers {
                    sites.push(site(fuse(names::joint_layer(l)), 1, s));
                }
            }
            Fusion::CrossModal => {
                for level in 0..self.token_levels() {
                    for k in 0..self.joint_layers {
                        sites.push(site(
                            fuse(names::cross_layer(level, k)),
                            1,
                            s * groups_total,
                        ));
                    }
                }
            }
            Fusion::SkeletonGuided { late } => {
                for l in 0..self.joint_layers {
                    sites.push(site(fuse(names::joint_layer(l)), 1, s));
                }
                if late {
                    for l in 0..self.joint_layers {
                        sites.push(site(fuse(names::motion_layer(l)), 1, s));
                    }
                }
            }
        }
        sites
    }

    /// Checks the `pruned` map: every entry names a layer of the model, keeps at least one
    /// head and one feed-forward unit, and none is wider than the unpruned layer.
    pub fn validate_pruned(&self) -> std::result::Result<(), String> {
        if self.pruned.is_empty() {
            return Ok(());
        }
        let sites = self.transformer_layers();
        for (name, widths) in &self.pruned {
            if !sites.iter().any(|s| &s.name == name) {
                return Err(format!(
                    "pruned: `{name}` is not a transformer layer of this model"
                ));
            }
            if widths.heads == 0 || widths.heads > self.heads {
                return Err(format!(
                    "pruned `{name}`: {} heads (1 to {} allowed)",
                    widths.heads, self.heads
                ));
            }
            if widths.ffn == 0 || widths.ffn > self.dim * self.ffn_mult {
                return Err(format!(
                    "pruned `{name}`: feed-forward width {} (1 to {} allowed)",
                    widths.ffn,
                    self.dim * self.ffn_mult
                ));
            }
        }
        Ok(())
    }

    /// Multiply-add FLOPs (2 per multiply-add) of every transformer layer of one window.
    pub(crate) fn transformer_flops(&self) -> u64 {
        let d = self.dim as u64;
        self.transformer_layers()
            .iter()
            .map(|site| {
                let w = self.layer_widths(&site.name);
                let (n, l) = (site.sequences as u64, site.len as u64);
                let (inner, f) = ((w.heads * self.head_dim()) as u64, w.ffn as u64);
                // qkv, scores and weighted values, output projection, feed-forward.
                n * (2 * l * d * 3 * inner + 4 * l * l * inner + 2 * l * inner * d + 4 * l * d * f)
            })
            .sum()
    }
}
