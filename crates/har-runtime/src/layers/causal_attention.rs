//! Causal self-attention run one step at a time: each step's keys and values go into a
//! [`KvCache`] holding the last `window` steps, and the step's query attends over them (its
//! own included). Stepping a sequence from an empty cache gives the rows of masked attention
//! over the whole sequence (the candle engine's additive causal mask), so the same layer
//! serves offline evaluation and a stream.

use crate::error::Result;
use crate::kernels;
use crate::names::transformer;
use crate::weights::Params;

use super::Dense;

/// The keys and values of the steps a query may still see: at most `capacity` rows; older
/// rows are dropped (counted in [`KvCache::dropped`]).
#[derive(Debug, Clone)]
pub struct KvCache {
    keys: Vec<f32>,
    values: Vec<f32>,
    /// First live row.
    start: usize,
    width: usize,
    capacity: usize,
    dropped: u64,
}

impl KvCache {
    /// An empty cache of rows `width` wide, keeping the last `capacity` (at least 1).
    pub fn new(width: usize, capacity: usize) -> Self {
        Self {
            keys: Vec::new(),
            values: Vec::new(),
            start: 0,
            width,
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.keys.len() / self.width - self.start
    }

    /// True before the first step.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows dropped because the cache was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Appends a step's key and value, dropping the oldest row beyond the capacity. The
    /// buffers are compacted when the dead rows reach the capacity, so a step costs O(1)
    /// amortised and memory stays under twice the capacity.
    fn push(&mut self, key: &[f32], value: &[f32]) {
        self.keys.extend_from_slice(key);
        self.values.extend_from_slice(value);
        if self.len() > self.capacity {
            self.start += 1;
            self.dropped += 1;
        }
        if self.start >= self.capacity {
            let dead = self.start * self.width;
            self.keys.drain(..dead);
            self.values.drain(..dead);
            self.start = 0;
        }
    }

    fn live(&self) -> (&[f32], &[f32]) {
        let from = self.start * self.width;
        (&self.keys[from..], &self.values[from..])
    }
}

/// Multi-head causal self-attention, one step at a time (`attn.qkv` `[3E, D]`, `attn.out`
/// `[D, E]`, as [`super::MultiHeadAttention`]).
#[derive(Debug, Clone)]
pub struct CausalAttention {
    qkv: Dense,
    out: Dense,
    heads: usize,
}

/// Buffers of [`CausalAttention::step`].
#[derive(Debug, Clone, Default)]
pub struct StepScratch {
    qkv: Vec<f32>,
    scores: Vec<f32>,
    attended: Vec<f32>,
}

impl CausalAttention {
    /// Loads attention of `heads` heads over `dim` features (heads `dim / heads` wide).
    pub fn load(p: &Params, dim: usize, heads: usize) -> Result<Self> {
        Ok(Self {
            qkv: Dense::load(&p.pp(transformer::QKV), dim, 3 * dim)?,
            out: Dense::load(&p.pp(transformer::OUT), dim, dim)?,
            heads,
        })
    }

    /// A cache for this layer keeping `capacity` steps.
    pub fn cache(&self, capacity: usize) -> KvCache {
        KvCache::new(self.out.in_dim(), capacity)
    }

    /// The attention output `y` (`D`) of step `x` (`D`), whose key and value join `cache`
    /// first.
    pub fn step(&self, x: &[f32], cache: &mut KvCache, s: &mut StepScratch, y: &mut Vec<f32>) {
        let e = self.out.in_dim();
        self.qkv.apply(x, 1, &mut s.qkv);
        cache.push(&s.qkv[e..2 * e], &s.qkv[2 * e..3 * e]);
        let (keys, values) = cache.live();
        s.attended.resize(e, 0.0);
        kernels::attend_query(
            &s.qkv[..e],
            keys,
            values,
            self.heads,
            &mut s.scores,
            &mut s.attended,
        );
        self.out.apply(&s.attended, 1, y);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_the_last_rows_and_counts_the_rest() {
        let mut cache = KvCache::new(2, 3);
        for t in 0..10 {
            let v = [t as f32, -(t as f32)];
            cache.push(&v, &v);
            assert_eq!(cache.len(), (t + 1).min(3));
            let (keys, _) = cache.live();
            assert_eq!(keys[keys.len() - 2], t as f32, "newest row last");
            assert_eq!(keys[0], t.saturating_sub(2) as f32, "oldest live row first");
            assert!(
                cache.keys.len() <= 2 * 2 * 3,
                "memory bounded by twice the capacity"
            );
        }
        assert_eq!(cache.dropped(), 7);
    }
}
