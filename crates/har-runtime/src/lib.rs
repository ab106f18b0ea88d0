//! Candle-free inference for this project's HAR models: what the dataflow nodes and
//! `har eval` link.
//!
//! - [`card`] and [`model_dir`]: the model directory — the card readable alone, weights read
//!   with the `safetensors` crate and checked (SHA-256, finiteness, shapes, classes).
//! - [`config`]: model shapes ([`layer_widths`]: each transformer layer's widths, pruned
//!   or not); [`names`]: every weight's name, shared with the training crate.
//! - [`quantize`]: post-training int8 quantisation of the dense layers (calibrated).
//! - [`weights`]: named tensors and the [`weights::Params`] tree layers load from.
//! - [`layers`]: the vocabulary (dense, layer norm, multi-head attention, GELU feed-forward,
//!   transformer layer, attention pooling, patch and spectral tokenisers) on [`kernels`].
//! - [`dmft`]: the forward (modality encoders, fusion, head) assembled from those layers;
//!   [`encoders`]: the modality encoders an architecture picks (DMFT's patches, the plain
//!   per-sample transformer, LSTM / GRU over samples or patches).
//! - [`segmenter`]: the per-step segmentation model (seed S10), one step at a time.
//! - [`scene`]: several people at once — cross-subject context and the label-set decoder
//!   (seeds S5, S11), decoded by [`beam`] search.
//!
//! Adding an architecture: its config and names here, its forward assembled from
//! [`layers`] (new layer kinds go there, their arithmetic in [`kernels`]), and the same
//! description once in the training crate — see `docs/architecture.md`.

#![warn(missing_docs)]

pub mod batch;
pub mod beam;
pub mod card;
pub mod config;
pub mod dmft;
pub mod encoders;
pub mod error;
pub mod fewshot;
pub mod fusion;
mod kernels;
pub mod layer_widths;
pub mod layers;
pub mod model_dir;
pub mod names;
pub mod patch_input;
pub mod quantize;
pub mod scene;
pub mod segmenter;
pub mod spectrum;
pub mod weights;

pub use error::{Result, RuntimeError};
