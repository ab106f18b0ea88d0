//! What every node's `main` does first: logging to stderr (dora collects it), the run id and
//! its health counters.

use std::time::Duration;

use dora_node_api::DoraNode;

use crate::health::Health;

/// Logs through `tracing` to stderr, filtered by `RUST_LOG` (default `info`, with dora's transport diagnostics quietened).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,zenoh=error,zenoh_transport=error,dora_node_api=error",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// The run id of the log tables: the dora dataflow's id, the same in every node of a run.
pub fn run_id(node: &DoraNode) -> String {
    node.dataflow_id().to_string()
}

/// How often nodes report health.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// Health counters of node `name` in this run, reported every [`HEALTH_INTERVAL`].
pub fn health(node: &DoraNode, name: &str) -> Health {
    Health::new(&run_id(node), name, HEALTH_INTERVAL)
}
