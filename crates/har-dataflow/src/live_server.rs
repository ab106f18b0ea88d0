//! The live source's input side: CSV sample lines (format in [`crate::live`]) from stdin or
//! from TCP clients, read on threads and handed to the node's loop through a bounded queue.
//!
//! Limits, all counted in [`LiveCounters`] (and the node's health row):
//! - **Clients**: every connection is served on its own thread, so an idle client never
//!   blocks the others; at most `max_clients` at once, further connections are refused.
//! - **Lines**: at most `max_line_bytes` per line (longer lines are skipped to their end);
//!   a line that is not UTF-8 is counted as bad and the connection goes on.
//! - **Rate**: at most `max_lines_per_s` per connection; a faster client is throttled (its
//!   reader waits, TCP flow control slows the client), nothing is lost; throttled lines are
//!   counted.
//! - **Memory**: the queue to the node holds `QUEUE_LINES` lines; a full queue stops reading
//!   the sockets (TCP flow control slows the senders) rather than growing.
//! - **Exposure**: `tcp:PORT` binds the loopback interface; listening on other interfaces
//!   takes an explicit `tcp:HOST:PORT` (logged as a warning).

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{DataflowError, Result};

/// Lines waiting for the node's loop at most.
pub const QUEUE_LINES: usize = 16_384;

/// Limits of the live source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveLimits {
    /// Bytes per line at most.
    pub max_line_bytes: usize,
    /// Concurrent TCP clients at most.
    pub max_clients: usize,
    /// Lines per second per connection at most.
    pub max_lines_per_s: f64,
}

impl Default for LiveLimits {
    fn default() -> Self {
        Self {
            max_line_bytes: 4096,
            max_clients: 64,
            max_lines_per_s: 20_000.0,
        }
    }
}

/// What the reader threads counted.
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections refused (too many clients).
    pub refused_connections: AtomicU64,
    /// Lines skipped for being too long or not UTF-8.
    pub bad_lines: AtomicU64,
    /// Lines delayed by the rate limit (not lost).
    pub throttled_lines: AtomicU64,
    open_clients: AtomicUsize,
}

impl LiveCounters {
    /// Lines the readers discarded (too long, not UTF-8).
    pub fn discarded(&self) -> u64 {
        self.bad_lines.load(Ordering::Relaxed)
    }
}

/// One line from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveLine {
    /// Connection number (0 for stdin).
    pub connection: u64,
    /// Line number within the connection, from 1.
    pub number: u64,
    /// The line, without its end.
    pub text: String,
}

/// A message from the readers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveInput {
    /// A line.
    Line(LiveLine),
    /// The source ended (stdin at end of file; never for TCP).
    End,
}

/// A running live source.
pub struct LiveServer {
    /// Lines and the end, in arrival order per connection.
    pub lines: Receiver<LiveInput>,
    /// What the readers counted.
    pub counters: Arc<LiveCounters>,
    /// The bound address (TCP only).
    pub address: Option<SocketAddr>,
}

/// The address `tcp:PORT` (loopback) or `tcp:HOST:PORT` stands for.
pub fn tcp_address(source: &str) -> Result<String> {
    let rest = source.strip_prefix("tcp:").ok_or_else(|| {
        DataflowError::setting(
            "HAR_SOURCE",
            format!("`{source}` is not replay, stdin, tcp:PORT or tcp:HOST:PORT"),
        )
    })?;
    if rest.parse::<u16>().is_ok() {
        return Ok(format!("127.0.0.1:{rest}"));
    }
    Ok(rest.to_string())
}

impl LiveServer {
    /// Starts reading `source` (`stdin`, `tcp:PORT`, `tcp:HOST:PORT`).
    pub fn start(source: &str, limits: LiveLimits) -> Result<Self> {
        let (tx, rx) = sync_channel(QUEUE_LINES);
        let counters = Arc::new(LiveCounters::default());
        if source == "stdin" {
            let shared = counters.clone();
            std::thread::spawn(move || {
                read_lines(std::io::stdin().lock(), 0, limits, &shared, &tx);
                let _ = tx.send(LiveInput::End);
            });
            return Ok(Self {
                lines: rx,
                counters,
                address: None,
            });
        }
        let address = tcp_address(source)?;
        let listener = TcpListener::bind(&address)
            .map_err(|e| DataflowError::setting("HAR_SOURCE", format!("binding {address}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| DataflowError::setting("HAR_SOURCE", format!("{address}: {e}")))?;
        if !local.ip().is_loopback() {
            tracing::warn!(%local, "live source listens beyond this machine");
        }
        tracing::info!(%local, "waiting for CSV sample lines");
        let shared = counters.clone();
        std::thread::spawn(move || accept(listener, limits, shared, tx));
        Ok(Self {
            lines: rx,
            counters,
            address: Some(local),
        })
    }
}

/// Accepts clients, each on its own thread, up to the limit.
fn accept(
    listener: TcpListener,
    limits: LiveLimits,
    counters: Arc<LiveCounters>,
    tx: SyncSender<LiveInput>,
) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if counters.open_clients.load(Ordering::Relaxed) >= limits.max_clients {
            counters.refused_connections.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                max = limits.max_clients,
                "live client refused: too many clients"
            );
            continue;
        }
        let connection = counters.connections.fetch_add(1, Ordering::Relaxed) + 1;
        counters.open_clients.fetch_add(1, Ordering::Relaxed);
        let (counters, tx) = (counters.clone(), tx.clone());
        std::thread::spawn(move || {
            serve(stream, connection, limits, &counters, &tx);
            counters.open_clients.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

fn serve(
    stream: TcpStream,
    connection: u64,
    limits: LiveLimits,
    counters: &LiveCounters,
    tx: &SyncSender<LiveInput>,
) {
    let peer = stream.peer_addr().ok();
    tracing::info!(connection, ?peer, "live client connected");
    read_lines(BufReader::new(stream), connection, limits, counters, tx);
    tracing::info!(connection, "live client disconnected");
}

/// Reads lines until the end of the stream (or the node's loop is gone).
fn read_lines(
    mut reader: impl BufRead,
    connection: u64,
    limits: LiveLimits,
    counters: &LiveCounters,
    tx: &SyncSender<LiveInput>,
) {
    let mut bucket = TokenBucket::new(limits.max_lines_per_s);
    let mut buffer = Vec::new();
    let mut number = 0u64;
    loop {
        buffer.clear();
        let limit = limits.max_line_bytes as u64 + 1;
        match (&mut reader).take(limit).read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        number += 1;
        let complete = buffer.last() == Some(&b'\n');
        if !complete && buffer.len() > limits.max_line_bytes {
            counters.bad_lines.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                connection,
                line = number,
                "line over {} bytes skipped",
                limits.max_line_bytes
            );
            if !skip_line(&mut reader) {
                return;
            }
            continue;
        }
        if let Some(wait) = bucket.take(Instant::now()) {
            counters.throttled_lines.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(wait);
        }
        while matches!(buffer.last(), Some(b'\n' | b'\r')) {
            buffer.pop();
        }
        match String::from_utf8(std::mem::take(&mut buffer)) {
            Ok(text) => {
                let line = LiveLine {
                    connection,
                    number,
                    text,
                };
                if tx.send(LiveInput::Line(line)).is_err() {
                    return;
                }
            }
            Err(_) => {
                counters.bad_lines.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(connection, line = number, "line is not UTF-8: skipped");
            }
        }
    }
}

/// Skips to the end of the current line; false at the end of the stream.
fn skip_line(reader: &mut impl BufRead) -> bool {
    loop {
        let (consumed, found) = match reader.fill_buf() {
            Ok([]) | Err(_) => return false,
            Ok(data) => match data.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (data.len(), false),
            },
        };
        reader.consume(consumed);
        if found {
            return true;
        }
    }
}

/// A rate limit of `rate` per second with a one-second burst.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: f64) -> Self {
        Self {
            rate,
            tokens: rate,
            last: Instant::now(),
        }
    }

    /// Takes a token; `Some(wait)` when the caller must first wait that long.
    fn take(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.tokens -= 1.0;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / self.rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn next_line(server: &LiveServer) -> LiveLine {
        match server.lines.recv_timeout(Duration::from_secs(5)) {
            Ok(LiveInput::Line(line)) => line,
            other => panic!("expected a line, got {other:?}"),
        }
    }

    #[test]
    fn clients_are_served_at_once_and_bad_lines_do_not_end_a_connection() {
        let server = LiveServer::start("tcp:0", LiveLimits::default()).unwrap();
        let address = server.address.unwrap();
        assert!(address.ip().is_loopback(), "tcp:PORT binds loopback");
        // An idle client connects first and never sends: it must not block the second.
        let _idle = TcpStream::connect(address).unwrap();
        let mut client = TcpStream::connect(address).unwrap();
        client.write_all(b"d1,s1,acc,0,1,2,3\n").unwrap();
        client.write_all(b"d1,s1,acc,\xff\xfe,1,2,3\n").unwrap();
        client.write_all(&[b'x'; 5000]).unwrap();
        client.write_all(b"\nd1,s1,acc,20,4,5,6\r\n").unwrap();
        client.flush().unwrap();
        let first = next_line(&server);
        assert_eq!(
            (first.number, first.text.as_str()),
            (1, "d1,s1,acc,0,1,2,3")
        );
        let after = next_line(&server);
        assert_eq!(
            (after.number, after.text.as_str()),
            (4, "d1,s1,acc,20,4,5,6")
        );
        assert_eq!(server.counters.bad_lines.load(Ordering::Relaxed), 2);
        assert_eq!(server.counters.connections.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn clients_over_the_limit_are_refused_and_counted() {
        let limits = LiveLimits {
            max_clients: 1,
            ..LiveLimits::default()
        };
        let server = LiveServer::start("tcp:0", limits).unwrap();
        let address = server.address.unwrap();
        let mut first = TcpStream::connect(address).unwrap();
        first.write_all(b"a\n").unwrap();
        assert_eq!(next_line(&server).text, "a");
        let _second = TcpStream::connect(address).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.counters.refused_connections.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "second client never refused");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn the_rate_limit_throttles_a_fast_client_without_losing_lines() {
        let (tx, rx) = sync_channel(1000);
        let counters = LiveCounters::default();
        let limits = LiveLimits {
            max_lines_per_s: 100.0,
            ..LiveLimits::default()
        };
        let input = "x\n".repeat(150);
        let started = Instant::now();
        read_lines(input.as_bytes(), 1, limits, &counters, &tx);
        drop(tx);
        assert_eq!(rx.iter().count(), 150, "no line lost");
        // 100 lines of burst, then 50 more at 100 per second.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
        assert_eq!(counters.throttled_lines.load(Ordering::Relaxed), 50);
    }

    #[test]
    fn addresses_default_to_loopback() {
        assert_eq!(tcp_address("tcp:7000").unwrap(), "127.0.0.1:7000");
        assert_eq!(tcp_address("tcp:0.0.0.0:7000").unwrap(), "0.0.0.0:7000");
        assert!(tcp_address("udp:1").is_err());
    }
}
