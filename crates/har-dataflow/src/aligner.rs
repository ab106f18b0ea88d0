//! Fuse's bookkeeping: gathers the modalities' tokens of each window, and releases a window
//! when every expected modality is in, when its deadline passes (missing-modality degrade), or
//! when the missing modalities' streams have closed. It never waits without a deadline.
//!
//! Tokens that arrive after their window was released are dropped and counted (`late`); so
//! are tokens of unknown modalities and duplicates. The number of windows waiting is bounded:
//! beyond `max_pending` the oldest is released early, degraded. Released windows are
//! remembered per device as a watermark plus the last [`REMEMBERED_PER_DEVICE`] ids, so memory
//! stays flat however long the stream runs.

use std::collections::{BTreeSet, HashMap};

use har_core::streams::TokenMessage;

/// A window ready to fuse: one optional token message per expected modality.
#[derive(Debug)]
pub struct ReadyWindow {
    /// Tokens per modality, in model order (`None`: missing).
    pub tokens: Vec<Option<TokenMessage>>,
    /// True when a modality is missing (released by deadline, closed streams or the pending
    /// bound).
    pub degraded: bool,
}

/// Counts of the aligner, for node health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlignerCounters {
    /// Windows released complete.
    pub complete: u64,
    /// Windows released with a modality missing.
    pub degraded: u64,
    /// Token messages dropped: late, duplicate or of an unknown modality.
    pub dropped: u64,
}

type WindowRef = (String, u64);

#[derive(Debug)]
struct Pending {
    tokens: Vec<Option<TokenMessage>>,
    deadline_ns: i64,
}

/// Matches token messages of one window across modalities, with a deadline.
#[derive(Debug)]
pub struct Aligner {
    modalities: Vec<String>,
    closed: Vec<bool>,
    deadline_ns: i64,
    max_pending: usize,
    pending: HashMap<WindowRef, Pending>,
    by_deadline: BTreeSet<(i64, WindowRef)>,
    released: HashMap<String, Released>,
    /// What happened so far.
    pub counters: AlignerCounters,
}

/// Released window ids kept per device beyond its watermark.
pub const REMEMBERED_PER_DEVICE: usize = 1024;

/// The windows of one device already released: every id below `below`, and `recent`.
#[derive(Debug, Default)]
struct Released {
    below: u64,
    recent: BTreeSet<u64>,
}

impl Released {
    fn contains(&self, window_id: u64) -> bool {
        window_id < self.below || self.recent.contains(&window_id)
    }

    /// Notes a release; the oldest ids fold into the watermark (ids below it that were never
    /// released, e.g. windows preprocess skipped, will never get tokens).
    fn insert(&mut self, window_id: u64) {
        self.recent.insert(window_id);
        while self.recent.len() > REMEMBERED_PER_DEVICE {
            if let Some(oldest) = self.recent.pop_first() {
                self.below = self.below.max(oldest + 1);
            }
        }
    }
}

impl Aligner {
    /// Expects `modalities` (model order); waits at most `deadline_ns` after a window's first
    /// tokens; holds at most `max_pending` windows.
    pub fn new(modalities: Vec<String>, deadline_ns: i64, max_pending: usize) -> Self {
        Self {
            closed: vec![false; modalities.len()],
            modalities,
            deadline_ns,
            max_pending: max_pending.max(1),
            pending: HashMap::new(),
            by_deadline: BTreeSet::new(),
            released: HashMap::new(),
            counters: AlignerCounters::default(),
        }
    }

    /// Windows waiting now.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The earliest deadline among waiting windows.
    pub fn next_deadline(&self) -> Option<i64> {
        self.by_deadline.first().map(|(d, _)| *d)
    }

    /// Adds tokens received at `now_ns`; returns the windows this released.
    pub fn insert(&mut self, tokens: TokenMessage, now_ns: i64) -> Vec<ReadyWindow> {
        let Some(m) = self
            .modalities
            .iter()
            .position(|n| *n == tokens.key.modality)
        else {
            self.counters.dropped += 1;
            return Vec::new();
        };
        let key = (tokens.key.source.device_id.clone(), tokens.key.window_id);
        if self.released.get(&key.0).is_some_and(|r| r.contains(key.1)) {
            self.counters.dropped += 1;
            return Vec::new();
        }
        let mut out = Vec::new();
        if !self.pending.contains_key(&key) && self.pending.len() >= self.max_pending {
            if let Some((_, oldest)) = self.by_deadline.first().cloned() {
                out.extend(self.release(&oldest));
            }
        }
        let deadline_ns = now_ns + self.deadline_ns;
        let count = self.modalities.len();
        let entry = self.pending.entry(key.clone()).or_insert_with(|| Pending {
            tokens: (0..count).map(|_| None).collect(),
            deadline_ns,
        });
        if entry.tokens[m].is_some() {
            self.counters.dropped += 1;
            return out;
        }
        if entry.deadline_ns == deadline_ns {
            self.by_deadline.insert((deadline_ns, key.clone()));
        }
        entry.tokens[m] = Some(tokens);
        if self.is_complete(&key) {
            out.extend(self.release(&key));
        }
        out
    }

    /// Releases, degraded, every window whose deadline is at or before `now_ns`.
    pub fn expire(&mut self, now_ns: i64) -> Vec<ReadyWindow> {
        let due: Vec<WindowRef> = self
            .by_deadline
            .iter()
            .take_while(|(d, _)| *d <= now_ns)
            .map(|(_, k)| k.clone())
            .collect();
        due.iter().filter_map(|k| self.release(k)).collect()
    }

    /// Marks a modality's stream closed: windows waiting only for closed streams are released.
    pub fn close(&mut self, modality: &str) -> Vec<ReadyWindow> {
        if let Some(m) = self.modalities.iter().position(|n| n == modality) {
            self.closed[m] = true;
        }
        let done: Vec<WindowRef> = self
            .pending
            .keys()
            .filter(|k| self.is_complete(k))
            .cloned()
            .collect();
        done.iter().filter_map(|k| self.release(k)).collect()
    }

    /// Releases everything still waiting (at stop), degraded.
    pub fn drain(&mut self) -> Vec<ReadyWindow> {
        let all: Vec<WindowRef> = self.by_deadline.iter().map(|(_, k)| k.clone()).collect();
        all.iter().filter_map(|k| self.release(k)).collect()
    }

    fn is_complete(&self, key: &WindowRef) -> bool {
        self.pending.get(key).is_some_and(|p| {
            p.tokens
                .iter()
                .zip(&self.closed)
                .all(|(t, closed)| t.is_some() || *closed)
        })
    }

    fn release(&mut self, key: &WindowRef) -> Option<ReadyWindow> {
        let pending = self.pending.remove(key)?;
        self.by_deadline.remove(&(pending.deadline_ns, key.clone()));
        let degraded = pending.tokens.iter().any(Option::is_none);
        if degraded {
            self.counters.degraded += 1;
        } else {
            self.counters.complete += 1;
        }
        self.released
            .entry(key.0.clone())
            .or_default()
            .insert(key.1);
        Some(ReadyWindow {
            tokens: pending.tokens,
            degraded,
        })
    }
}

#[cfg(test)]
mod tests {
    use har_core::streams::{Source, WindowKey};

    use super::*;

    fn tokens(device: &str, window_id: u64, modality: &str) -> TokenMessage {
        TokenMessage {
            key: WindowKey {
                window_id,
                source: Source {
                    device_id: device.into(),
                    ..Default::default()
                },
                modality: modality.into(),
                start_ns: 0,
                end_ns: 0,
                label: None,
                ingest_ts_ns: 0,
                preprocess_ts_ns: 0,
            },
            num_tokens: 1,
            dim: 1,
            values: vec![0.0],
            encode_ts_ns: 0,
        }
    }

    #[test]
    fn complete_windows_release_at_once_and_missing_ones_at_the_deadline() {
        let mut a = Aligner::new(vec!["acc".into(), "gyro".into()], 100, 10);
        assert!(a.insert(tokens("d", 0, "acc"), 0).is_empty());
        let ready = a.insert(tokens("d", 0, "gyro"), 10);
        assert_eq!(ready.len(), 1);
        assert!(!ready[0].degraded);

        assert!(a.insert(tokens("d", 1, "acc"), 20).is_empty());
        assert_eq!(a.next_deadline(), Some(120));
        assert!(a.expire(119).is_empty());
        let ready = a.expire(120);
        assert_eq!(ready.len(), 1);
        assert!(ready[0].degraded && ready[0].tokens[1].is_none());

        // The late gyro tokens of window 1 and an unknown modality are dropped and counted.
        assert!(a.insert(tokens("d", 1, "gyro"), 130).is_empty());
        assert!(a.insert(tokens("d", 2, "depth"), 130).is_empty());
        assert_eq!(
            a.counters,
            AlignerCounters {
                complete: 1,
                degraded: 1,
                dropped: 2
            }
        );
    }

    #[test]
    fn memory_of_released_windows_is_bounded_per_device_and_still_catches_late_tokens() {
        let mut a = Aligner::new(vec!["acc".into()], 100, 10);
        for w in 0..5_000 {
            assert_eq!(a.insert(tokens("d", w, "acc"), 0).len(), 1);
        }
        let remembered = &a.released["d"];
        assert_eq!(remembered.recent.len(), REMEMBERED_PER_DEVICE);
        assert_eq!(remembered.below, 5_000 - REMEMBERED_PER_DEVICE as u64);
        // Late tokens of an old window and of a recent one are both recognised.
        assert!(a.insert(tokens("d", 3, "acc"), 0).is_empty());
        assert!(a.insert(tokens("d", 4_999, "acc"), 0).is_empty());
        assert_eq!(a.counters.dropped, 2);
    }

    #[test]
    fn closed_streams_and_the_pending_bound_release_early() {
        let mut a = Aligner::new(vec!["acc".into(), "gyro".into()], 1_000, 2);
        a.insert(tokens("d", 0, "acc"), 0);
        a.insert(tokens("e", 0, "acc"), 1);
        // A third window pushes the oldest out, degraded.
        let ready = a.insert(tokens("f", 0, "acc"), 2);
        assert_eq!(ready.len(), 1);
        assert_eq!(
            ready[0].tokens[0].as_ref().unwrap().key.source.device_id,
            "d"
        );
        // Gyro closes: the waiting windows need nothing more.
        let ready = a.close("gyro");
        assert_eq!(ready.len(), 2);
        assert!(ready.iter().all(|r| r.degraded));
        // From now on acc alone completes a window.
        assert_eq!(a.insert(tokens("g", 0, "acc"), 3).len(), 1);
        assert_eq!(a.pending(), 0);
        assert!(a.drain().is_empty());
    }
}
