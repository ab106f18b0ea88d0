//! The log node's file writer, on its own thread: Parquet encoding, compression, fsync and
//! renames never delay the event loop, so `logged_ts_ns` (stamped on receipt) measures the
//! pipeline, not the disk. The queue between them is bounded: a slow disk slows the event
//! loop (dora's back-pressure) instead of growing memory.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use har_core::schema::SchemaName;
use har_core::streams::{StreamMessage, WindowMessage};

use crate::error::{DataflowError, Result};
use crate::logsink::{window_rows, FlushPolicy, RollingParquetWriter};
use crate::reconcile::Reconciler;
use crate::runtime::warn_rejected;

/// What the event loop hands to the writer.
pub enum Rows {
    /// `log_predictions` rows.
    Predictions(RecordBatch),
    /// A `window` stream batch (summarised here).
    Windows(RecordBatch),
    /// `log_node_health` rows.
    Health(RecordBatch),
    /// `log_segments` rows.
    Segments(RecordBatch),
    /// `log_scenes` rows.
    Scenes(RecordBatch),
    /// The run's inputs ended: count every window still without a prediction, reply with
    /// the final count.
    EndOfRun(SyncSender<u64>),
}

/// What the writer counted, shared with the event loop.
#[derive(Debug, Default)]
pub struct WriterCounts {
    /// Rows buffered in the writer, not yet in a sealed file.
    pub buffered: AtomicU64,
    /// Windows that never got a prediction ([`Reconciler`]).
    pub unpredicted: AtomicU64,
    /// Batches that did not fit their table (rejected, counted).
    pub rejected: AtomicU64,
}

/// The writer thread and its queue.
pub struct Writer {
    queue: Option<SyncSender<Rows>>,
    thread: Option<JoinHandle<Result<u64>>>,
    /// What the writer counted.
    pub counts: Arc<WriterCounts>,
}

/// Messages the queue holds before the event loop waits for the writer.
const QUEUE: usize = 4096;

/// How long a window waits for its prediction before it is counted as lost.
pub const RECONCILE_HORIZON: Duration = Duration::from_secs(60);

/// Windows tracked for reconciliation at most.
const MAX_RECONCILED: usize = 1 << 20;

/// The writer thread's state: the tables and the reconciliation.
struct Tables {
    run_id: String,
    predictions: RollingParquetWriter,
    windows: RollingParquetWriter,
    health: RollingParquetWriter,
    segments: RollingParquetWriter,
    scenes: RollingParquetWriter,
    reconciler: Reconciler,
    counts: Arc<WriterCounts>,
}

impl Tables {
    /// Writes one message; a batch that does not fit its table is rejected and counted (the
    /// writer goes on), a file system error ends the writer.
    fn write(&mut self, rows: Rows) -> Result<()> {
        let result = match rows {
            Rows::Predictions(batch) => self.write_predictions(batch),
            Rows::Windows(batch) => self.write_windows(batch),
            Rows::Health(batch) => self.health.write(batch),
            Rows::Segments(batch) => self.segments.write(batch),
            Rows::Scenes(batch) => self.scenes.write(batch),
            Rows::EndOfRun(reply) => {
                self.reconciler.finish();
                self.publish();
                let _ = reply.send(self.reconciler.unpredicted);
                Ok(())
            }
        };
        match result {
            Err(e) if e.is_bad_input() => {
                let n = self.counts.rejected.fetch_add(1, Ordering::Relaxed) + 1;
                warn_rejected("log batch", n, &e);
                Ok(())
            }
            other => other,
        }
    }

    fn write_predictions(&mut self, batch: RecordBatch) -> Result<()> {
        let devices = batch
            .column_by_name("device_id")
            .and_then(|c| c.as_string_opt::<i32>());
        let ids = batch
            .column_by_name("window_id")
            .and_then(|c| c.as_primitive_opt::<UInt64Type>());
        if let (Some(devices), Some(ids)) = (devices, ids) {
            let now = Instant::now();
            for (device, id) in devices.iter().zip(ids.iter()) {
                if let (Some(device), Some(id)) = (device, id) {
                    self.reconciler.predicted(device, id, now);
                }
            }
        }
        self.predictions.write(batch)
    }

    fn write_windows(&mut self, batch: RecordBatch) -> Result<()> {
        let windows = WindowMessage::from_batch(&batch)?;
        let now = Instant::now();
        for w in &windows {
            self.reconciler
                .window(&w.key.source.device_id, w.key.window_id, now);
        }
        self.windows.write(window_rows(&self.run_id, &windows)?)
    }

    /// Seals what is due, counts expired windows, publishes the counts.
    fn tick(&mut self) -> Result<()> {
        for table in [
            &mut self.predictions,
            &mut self.windows,
            &mut self.health,
            &mut self.segments,
            &mut self.scenes,
        ] {
            table.flush_if_due()?;
        }
        self.reconciler.expire(Instant::now());
        self.publish();
        Ok(())
    }

    fn publish(&self) {
        let buffered = self.predictions.buffered_rows()
            + self.windows.buffered_rows()
            + self.health.buffered_rows()
            + self.segments.buffered_rows()
            + self.scenes.buffered_rows();
        self.counts
            .buffered
            .store(buffered as u64, Ordering::Relaxed);
        self.counts
            .unpredicted
            .store(self.reconciler.unpredicted, Ordering::Relaxed);
    }
}

impl Writer {
    /// Starts writing the run's tables under `root`.
    pub fn start(root: &Path, run_id: &str, policy: FlushPolicy) -> Result<Self> {
        let open = |table| RollingParquetWriter::new(root, table, run_id, policy);
        let counts = Arc::new(WriterCounts::default());
        let mut tables = Tables {
            run_id: run_id.to_string(),
            predictions: open(SchemaName::LogPredictions)?,
            windows: open(SchemaName::LogWindows)?,
            health: open(SchemaName::LogNodeHealth)?,
            segments: open(SchemaName::LogSegments)?,
            scenes: open(SchemaName::LogScenes)?,
            reconciler: Reconciler::new(RECONCILE_HORIZON, MAX_RECONCILED),
            counts: counts.clone(),
        };
        let (queue, rows) = sync_channel::<Rows>(QUEUE);
        let tick = policy.flush_interval.min(Duration::from_millis(250));
        let thread = std::thread::spawn(move || -> Result<u64> {
            loop {
                match rows.recv_timeout(tick) {
                    Ok(message) => tables.write(message)?,
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                tables.tick()?;
            }
            for table in [
                &mut tables.predictions,
                &mut tables.windows,
                &mut tables.health,
                &mut tables.segments,
                &mut tables.scenes,
            ] {
                table.flush()?;
            }
            Ok(tables.predictions.rows_written)
        });
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            counts,
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

    /// Counts every window still without a prediction (the inputs ended); returns the
    /// run's total of unpredicted windows.
    pub fn end_of_run(&mut self) -> Result<u64> {
        let (reply, answer) = sync_channel(1);
        self.send(Rows::EndOfRun(reply))?;
        answer
            .recv()
            .map_err(|_| DataflowError::Worker("log writer stopped".into()))
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
