//! End-to-end accounting in the log node: every window preprocess emitted must come back as a
//! prediction. A window with no prediction within the horizon (or by the end of the run) is
//! counted — the count the health row of the `log` node carries for losses between preprocess
//! and the log (a crashed encode or fuse, messages to a node that was restarting) that no
//! other node can see.
//!
//! Memory is bounded: at most `max_pending` windows are tracked; beyond that the oldest is
//! counted as unpredicted without waiting (a graph that far behind is losing windows anyway).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// A window: device id and window number.
pub type WindowRef = (String, u64);

/// Windows waiting for their prediction.
#[derive(Debug)]
pub struct Reconciler {
    horizon: Duration,
    max_pending: usize,
    pending: HashMap<WindowRef, Instant>,
    order: VecDeque<(WindowRef, Instant)>,
    /// Windows predicted before (one of) their window rows arrived: a late row of another
    /// modality must not count them as waiting.
    predicted_early: HashMap<WindowRef, Instant>,
    early_order: VecDeque<(WindowRef, Instant)>,
    /// Windows counted as never predicted.
    pub unpredicted: u64,
}

impl Reconciler {
    /// Windows wait at most `horizon` for a prediction; at most `max_pending` wait at once.
    pub fn new(horizon: Duration, max_pending: usize) -> Self {
        Self {
            horizon,
            max_pending: max_pending.max(1),
            pending: HashMap::new(),
            order: VecDeque::new(),
            predicted_early: HashMap::new(),
            early_order: VecDeque::new(),
            unpredicted: 0,
        }
    }

    /// Windows waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A window was logged at `now` (each modality's row reports it; counted once).
    pub fn window(&mut self, device_id: &str, window_id: u64, now: Instant) {
        let key = (device_id.to_string(), window_id);
        if self.pending.contains_key(&key) || self.predicted_early.contains_key(&key) {
            return;
        }
        if self.pending.len() >= self.max_pending {
            self.evict_oldest();
        }
        self.pending.insert(key.clone(), now);
        self.order.push_back((key, now));
    }

    /// A prediction of the window arrived at `now` (remembered for the horizon, so the rows of
    /// modalities that reach the log after it do not wait for another).
    pub fn predicted(&mut self, device_id: &str, window_id: u64, now: Instant) {
        let key = (device_id.to_string(), window_id);
        self.pending.remove(&key);
        if self.predicted_early.len() >= self.max_pending {
            if let Some((oldest, _)) = self.early_order.pop_front() {
                self.predicted_early.remove(&oldest);
            }
        }
        if self.predicted_early.insert(key.clone(), now).is_none() {
            self.early_order.push_back((key, now));
        }
    }

    /// Counts the windows older than the horizon at `now`, forgets predictions that old.
    pub fn expire(&mut self, now: Instant) {
        while let Some((key, since)) = self.early_order.front() {
            if now.saturating_duration_since(*since) < self.horizon {
                break;
            }
            if self.predicted_early.get(key) == Some(since) {
                self.predicted_early.remove(key);
            }
            self.early_order.pop_front();
        }
        while let Some((key, since)) = self.order.front() {
            if self.pending.get(key) != Some(since) {
                // Predicted since: nothing to count.
                self.order.pop_front();
                continue;
            }
            if now.saturating_duration_since(*since) < self.horizon {
                break;
            }
            self.evict_oldest();
        }
    }

    /// The run ended: every window still waiting is counted.
    pub fn finish(&mut self) {
        while !self.order.is_empty() {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((key, since)) = self.order.pop_front() {
            // Stale entries (already predicted) are skipped.
            if self.pending.get(&key) == Some(&since) {
                self.pending.remove(&key);
                self.unpredicted += 1;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_without_prediction_are_counted_once_at_the_horizon_or_the_end() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut r = Reconciler::new(s(10), 100);
        for id in 0..4 {
            r.window("d", id, t0);
            r.window("d", id, t0); // the other modality's row
        }
        r.predicted("d", 0, t0);
        r.predicted("d", 2, t0);
        r.predicted("x", 9, t0); // before its rows: they will not wait
        r.window("x", 9, t0 + s(1));
        r.expire(t0 + s(9));
        assert_eq!((r.unpredicted, r.pending()), (0, 2));
        r.window("d", 4, t0 + s(9));
        r.expire(t0 + s(10));
        assert_eq!((r.unpredicted, r.pending()), (2, 1));
        r.finish();
        assert_eq!((r.unpredicted, r.pending()), (3, 0));
    }

    #[test]
    fn an_old_predicted_window_does_not_make_a_young_one_count() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut r = Reconciler::new(s(30), 100);
        r.window("d", 0, t0);
        r.predicted("d", 0, t0 + s(1));
        r.window("d", 1, t0 + s(29));
        r.expire(t0 + s(31));
        assert_eq!((r.unpredicted, r.pending()), (0, 1));
    }

    #[test]
    fn the_pending_bound_counts_the_oldest_instead_of_growing() {
        let t0 = Instant::now();
        let mut r = Reconciler::new(Duration::from_secs(60), 2);
        r.window("d", 0, t0);
        r.window("d", 1, t0);
        r.predicted("d", 0, t0);
        r.window("d", 2, t0);
        r.window("d", 3, t0);
        assert_eq!((r.unpredicted, r.pending()), (1, 2));
    }
}
