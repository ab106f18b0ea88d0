//! Live input: CSV sample lines (see `har_dataflow::live`) from stdin or a TCP port, read on
//! a thread and sent as chunks. stdin ends the node at end of file; a TCP source accepts one
//! connection after another until the dataflow stops.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dora_node_api::{DoraNode, EventStream};
use har_dataflow::dora_io::Sender;
use har_dataflow::live::{parse_line, LiveChunker};
use har_dataflow::settings::now_ns;

use crate::pacing::{ingest_health, InputState};

/// A line read by the reader thread; `None` when the source ended.
type Line = Option<(usize, String)>;

fn read_lines(reader: impl BufRead, tx: &mpsc::Sender<Line>) {
    for (i, line) in reader.lines().enumerate() {
        let Ok(line) = line else { return };
        if tx.send(Some((i + 1, line))).is_err() {
            return;
        }
    }
}

fn spawn_reader(source: &str) -> Result<mpsc::Receiver<Line>> {
    let (tx, rx) = mpsc::channel();
    if source == "stdin" {
        std::thread::spawn(move || {
            read_lines(std::io::stdin().lock(), &tx);
            let _ = tx.send(None);
        });
    } else {
        let address = source
            .strip_prefix("tcp:")
            .with_context(|| {
                format!("setting `HAR_SOURCE`: `{source}` is not replay, stdin or tcp:HOST:PORT")
            })?
            .to_string();
        let listener = TcpListener::bind(&address)
            .with_context(|| format!("HAR_SOURCE: binding {address}"))?;
        tracing::info!(%address, "waiting for CSV sample lines");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                read_lines(BufReader::new(stream), &tx);
            }
        });
    }
    Ok(rx)
}

/// Reads lines until the source ends or the dataflow stops.
pub fn run_live(
    node: &mut DoraNode,
    events: &mut EventStream,
    source: &str,
    chunk_samples: usize,
    rate_hz: f64,
) -> Result<()> {
    let lines = spawn_reader(source)?;
    let mut chunker = LiveChunker::new(chunk_samples, rate_hz);
    let mut health = ingest_health(node);
    let mut sender = Sender::default();
    let mut inputs = InputState::default();
    let mut ended = false;
    while !ended && !inputs.stopped {
        inputs.wait_until(
            events,
            Instant::now() + Duration::from_millis(5),
            &mut health,
        );
        let mut chunks = Vec::new();
        loop {
            match lines.try_recv() {
                Ok(Some((number, line))) => match parse_line(&line, number).and_then(|s| match s {
                    Some(sample) => chunker.push(sample),
                    None => Ok(None),
                }) {
                    Ok(chunk) => chunks.extend(chunk),
                    Err(e) => {
                        health.dropped += 1;
                        tracing::warn!("skipped: {e}");
                    }
                },
                Ok(None) | Err(mpsc::TryRecvError::Disconnected) => {
                    chunks.extend(chunker.flush());
                    ended = true;
                    break;
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        let now = now_ns();
        for chunk in &mut chunks {
            chunk.ingest_ts_ns = now;
        }
        health.sent += chunks.len() as u64;
        sender.send(node, "chunks", &chunks)?;
        if health.due() {
            sender.send_health(node, &health, 0)?;
        }
    }
    Ok(sender.send_health(node, &health, 0)?)
}
