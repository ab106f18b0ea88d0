//! The log node's file writer, on its own thread: Parquet encoding, compression, fsync and
//! renames never delay the event loop, so `logged_ts_ns` (stamped on receipt) measures the
//! pipeline, not the disk. The queue between them is bounded: a slow disk slows the event
//! loop (dora's back-pressure) instead of growing memory.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arrow::array::RecordBatch;
use har_core::schema::SchemaName;
use har_core::streams::{StreamMessage, WindowMessage};

use crate::error::{DataflowError, Result};
use crate::logsink::{window_rows, FlushPolicy, RollingParquetWriter};

/// What the event loop hands to the writer.
pub enum Rows {
    /// `log_predictions` rows.
    Predictions(RecordBatch),
    /// A `window` stream batch (summarised here).
    Windows(RecordBatch),
    /// `log_node_health` rows.
    Health(RecordBatch),
}

/// The writer thread and its queue.
pub struct Writer {
    queue: Option<SyncSender<Rows>>,
    thread: Option<JoinHandle<Result<u64>>>,
    /// Rows buffered in the writer, not yet in a sealed file.
    pub buffered: Arc<AtomicU64>,
}

/// Messages the queue holds before the event loop waits for the writer.
const QUEUE: usize = 4096;

impl Writer {
    /// Starts writing the run's tables under `root`.
    pub fn start(root: &Path, run_id: &str, policy: FlushPolicy) -> Result<Self> {
        let tables = [
            SchemaName::LogPredictions,
            SchemaName::LogWindows,
            SchemaName::LogNodeHealth,
        ]
        .map(|table| RollingParquetWriter::new(root, table, run_id, policy));
        let [predictions, windows, health] = match tables {
            [Ok(p), Ok(w), Ok(h)] => [p, w, h],
            [p, w, h] => {
                let error = [p.err(), w.err(), h.err()].into_iter().flatten().next();
                return Err(error.expect("one table failed"));
            }
        };
        let (queue, rows) = sync_channel::<Rows>(QUEUE);
        let buffered = Arc::new(AtomicU64::new(0));
        let shared = buffered.clone();
        let run_id = run_id.to_string();
        let tick = policy.flush_interval.min(Duration::from_millis(250));
        let thread = std::thread::spawn(move || -> Result<u64> {
            let mut tables = [predictions, windows, health];
            loop {
                match rows.recv_timeout(tick) {
                    Ok(Rows::Predictions(batch)) => tables[0].write(batch)?,
                    Ok(Rows::Windows(batch)) => {
                        let windows = WindowMessage::from_batch(&batch)?;
                        tables[1].write(window_rows(&run_id, &windows)?)?;
                    }
                    Ok(Rows::Health(batch)) => tables[2].write(batch)?,
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                for table in &mut tables {
                    table.flush_if_due()?;
                }
                shared.store(
                    tables.iter().map(|t| t.buffered_rows() as u64).sum(),
                    Ordering::Relaxed,
                );
            }
            for table in &mut tables {
                table.flush()?;
            }
            Ok(tables[0].rows_written)
        });
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            buffered,
        })
    }

    /// Queues rows (waits when the writer is `QUEUE` messages behind).
    pub fn send(&mut self, rows: Rows) -> Result<()> {
        let sent = self.queue.as_ref().map(|q| q.send(rows).is_ok());
        if sent != Some(true) {
            // The writer stopped: its error says why.
            return Err(self
                .finish()
                .err()
                .unwrap_or_else(|| DataflowError::Worker("log writer stopped".into())));
        }
        Ok(())
    }

    /// Flushes everything and stops; returns the prediction rows written.
    pub fn finish(&mut self) -> Result<u64> {
        self.queue = None;
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| DataflowError::Worker("log writer panicked".into()))?,
            None => Err(DataflowError::Worker("log writer already stopped".into())),
        }
    }
}
