//! Streaming node logic of the HAR dataflow, shared by the nodes in `nodes/`:
//!
//! - [`replay`] and [`live`]: what sensor-ingest sends (recordings replayed as devices, or CSV
//!   lines from stdin / TCP);
//! - [`windower`]: preprocess — streaming alignment, windowing and normalisation per device;
//! - [`inference`]: the model split at the modality boundary (encode / fuse);
//! - [`aligner`]: fuse's matching of modalities per window with a deadline;
//! - [`segmenting`] and [`step_segmenting`]: activity segments from predictions, or from the
//!   per-step segmentation model run on the raw chunks;
//! - [`scening`]: the scene node — members grouped per scene, the scene model;
//! - [`logsink`]: the Parquet log tables (sealed files, regular flushes); [`compact`]: their
//!   compaction into large sorted files per run and day; [`synth_logs`]: synthetic tables at
//!   scale, for measuring queries;
//! - [`runtime`]: the event loop, counting and orderly shutdown every node runs on;
//! - [`health`], [`settings`], [`dora_io`]: counters, environment settings and the dora glue;
//! - [`testing`]: a node driven in-process by scripted messages (dora's testing mode).
//!
//! Everything except [`dora_io`] is plain Rust, testable without a dora daemon.

#![warn(missing_docs)]

pub mod aligner;
pub mod compact;
pub mod dora_io;
pub mod error;
pub mod faults;
pub mod health;
pub mod inference;
pub mod live;
pub mod live_server;
pub mod log_writer;
pub mod logsink;
pub mod pacing;
pub mod reconcile;
pub mod replay;
pub mod runtime;
pub mod scening;
pub mod segmenting;
pub mod settings;
pub mod step_segmenting;
pub mod synth_logs;
pub mod testing;
pub mod windower;

pub use error::{DataflowError, Result};
