//! Node health rows (`log_node_health`): what each node received, sent, dropped and degraded,
//! its backlog and its memory, emitted periodically and at stop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch, StringArray, UInt64Array};
use har_core::schema::{build_batch, SchemaName};

use crate::error::Result;
use crate::settings::now_ns;

/// Counters of one node.
#[derive(Debug)]
pub struct Health {
    run_id: String,
    node: String,
    interval: Duration,
    last_report: Instant,
    /// Messages (rows) received.
    pub received: u64,
    /// Messages (rows) sent.
    pub sent: u64,
    /// Messages lost or discarded: queue overflows reported by dora, sequence gaps, late
    /// or unusable messages.
    pub dropped: u64,
    /// Degraded results (e.g. predictions with a modality missing, skipped windows).
    pub degraded: u64,
}

impl Health {
    /// Health of `node` in run `run_id`, reported every `interval`.
    pub fn new(run_id: &str, node: &str, interval: Duration) -> Self {
        Self {
            run_id: run_id.to_string(),
            node: node.to_string(),
            interval,
            last_report: Instant::now(),
            received: 0,
            sent: 0,
            dropped: 0,
            degraded: 0,
        }
    }

    /// True when a periodic report is due (and restarts the period).
    pub fn due(&mut self) -> bool {
        if self.last_report.elapsed() < self.interval {
            return false;
        }
        self.last_report = Instant::now();
        true
    }

    /// One `log_node_health` row with the current counters and `queue_len` (the node's own
    /// backlog: windows waiting, rows buffered, batches in flight).
    pub fn row(&self, queue_len: u64) -> Result<RecordBatch> {
        Ok(build_batch(
            SchemaName::LogNodeHealth,
            vec![
                Arc::new(StringArray::from(vec![self.run_id.as_str()])),
                Arc::new(StringArray::from(vec![self.node.as_str()])),
                Arc::new(Int64Array::from(vec![now_ns()])),
                Arc::new(UInt64Array::from(vec![self.received])),
                Arc::new(UInt64Array::from(vec![self.sent])),
                Arc::new(UInt64Array::from(vec![self.dropped])),
                Arc::new(UInt64Array::from(vec![self.degraded])),
                Arc::new(UInt64Array::from(vec![queue_len])),
                Arc::new(UInt64Array::from(vec![rss_bytes()])),
            ],
        )?)
    }
}

/// Resident memory of this process (Linux `/proc/self/statm`; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}
