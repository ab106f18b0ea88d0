//! Fault injection for soak and chaos runs (synthetic faults, never on by default): a share of
//! replayed chunks is corrupted and one modality can flap off and on, so a run shows what the
//! graph does with bad input over time. Each corruption is one a real device produces:
//! - **NaN values** (a sensor read error): the window over it is skipped (counted);
//! - **a wrong channel count** (a firmware mix-up): preprocess rejects the chunk (counted);
//! - **two timestamps swapped** (a clock hiccup): the late sample is dropped (counted).
//!
//! Settings (sensor-ingest env): `HAR_FAULT_CORRUPT` (share of chunks, e.g. `0.01`),
//! `HAR_FAULT_FLAP` (`MODALITY:OFF_S:PERIOD_S`, e.g. `gyro:5:30`: gyro silent for the first 5 s
//! of every 30 s of replay time), `HAR_FAULT_SEED`.

use har_core::rng::Rng;
use har_core::streams::SensorChunk;

use crate::error::{DataflowError, Result};

/// A modality that goes silent periodically.
#[derive(Debug, Clone, PartialEq)]
pub struct Flap {
    /// The modality.
    pub modality: String,
    /// Silent for this long at the start of every period (replay time, ns).
    pub off_ns: i64,
    /// Period (replay time, ns).
    pub period_ns: i64,
}

impl Flap {
    /// Parses `MODALITY:OFF_S:PERIOD_S`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |problem: &str| {
            DataflowError::setting("HAR_FAULT_FLAP", format!("`{text}`: {problem}"))
        };
        let parts: Vec<&str> = text.split(':').collect();
        let [modality, off, period] = parts[..] else {
            return Err(bad("expected MODALITY:OFF_S:PERIOD_S"));
        };
        let seconds = |v: &str| -> Result<i64> {
            let s: f64 = v.parse().map_err(|_| bad("not a number of seconds"))?;
            if !(s.is_finite() && s > 0.0 && s < 1e6) {
                return Err(bad("seconds out of range"));
            }
            Ok((s * 1e9) as i64)
        };
        let (off_ns, period_ns) = (seconds(off)?, seconds(period)?);
        if off_ns >= period_ns {
            return Err(bad("OFF_S must be shorter than PERIOD_S"));
        }
        Ok(Self {
            modality: modality.to_string(),
            off_ns,
            period_ns,
        })
    }
}

/// Counts of injected faults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Chunks given NaN values.
    pub nan_chunks: u64,
    /// Chunks given a wrong channel count.
    pub bad_shape_chunks: u64,
    /// Chunks with two timestamps swapped.
    pub swapped_chunks: u64,
    /// Chunks withheld by the flapping modality.
    pub flapped_chunks: u64,
}

/// Corrupts and withholds chunks on the way out of the replay.
#[derive(Debug)]
pub struct FaultInjector {
    corrupt_fraction: f64,
    flap: Option<Flap>,
    rng: Rng,
    /// What was injected.
    pub counts: FaultCounts,
}

impl FaultInjector {
    /// Corrupts `corrupt_fraction` of the chunks (0..=1) and applies `flap`.
    pub fn new(corrupt_fraction: f64, flap: Option<Flap>, seed: u64) -> Result<Self> {
        if !(0.0..=1.0).contains(&corrupt_fraction) {
            return Err(DataflowError::setting(
                "HAR_FAULT_CORRUPT",
                format!("{corrupt_fraction} is not a share in 0..=1"),
            ));
        }
        Ok(Self {
            corrupt_fraction,
            flap,
            rng: Rng::new(seed),
            counts: FaultCounts::default(),
        })
    }

    /// Applies the faults to the chunks due at replay time `replay_ns`.
    pub fn apply(&mut self, chunks: Vec<SensorChunk>, replay_ns: i64) -> Vec<SensorChunk> {
        let silent: Option<String> = self
            .flap
            .as_ref()
            .filter(|f| replay_ns.rem_euclid(f.period_ns) < f.off_ns)
            .map(|f| f.modality.clone());
        let mut out = Vec::with_capacity(chunks.len());
        for mut chunk in chunks {
            if silent.as_ref() == Some(&chunk.modality) {
                self.counts.flapped_chunks += 1;
                continue;
            }
            if self.rng.uniform(0.0, 1.0) < self.corrupt_fraction {
                self.corrupt(&mut chunk);
            }
            out.push(chunk);
        }
        out
    }

    fn corrupt(&mut self, chunk: &mut SensorChunk) {
        let n = chunk.timestamps_ns.len();
        match self.rng.next_u64() % 3 {
            0 => {
                chunk.values.iter_mut().for_each(|v| *v = f32::NAN);
                self.counts.nan_chunks += 1;
            }
            1 => {
                // One more channel than the sensor has: every sample gains a value.
                chunk.channel_count += 1;
                chunk.values = vec![0.0; n * chunk.channel_count as usize];
                self.counts.bad_shape_chunks += 1;
            }
            _ if n >= 2 => {
                chunk.timestamps_ns.swap(0, n - 1);
                self.counts.swapped_chunks += 1;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use har_core::streams::Source;

    fn chunk(modality: &str) -> SensorChunk {
        SensorChunk {
            source: Source {
                device_id: "d".into(),
                subject_id: "s".into(),
                session_id: "1".into(),
            },
            modality: modality.into(),
            chunk_seq: 0,
            sample_rate_hz: 50.0,
            channel_count: 3,
            timestamps_ns: (0..10).map(|i| i * 20_000_000).collect(),
            values: vec![1.0; 30],
            labels: None,
            ingest_ts_ns: 0,
        }
    }

    #[test]
    fn a_share_of_chunks_is_corrupted_and_a_flapping_modality_goes_silent() {
        let flap = Flap::parse("gyro:5:30").unwrap();
        let mut faults = FaultInjector::new(0.1, Some(flap), 7).unwrap();
        let mut kept = 0;
        for step in 0..3000i64 {
            let replay_ns = step * 100_000_000; // 0.1 s per step: 300 s
            kept += faults
                .apply(vec![chunk("acc"), chunk("gyro")], replay_ns)
                .len();
        }
        let c = faults.counts;
        // gyro silent 5 of every 30 s: 1/6 of its 3000 chunks.
        assert_eq!(c.flapped_chunks, 500);
        assert_eq!(kept, 6000 - 500);
        let corrupted = c.nan_chunks + c.bad_shape_chunks + c.swapped_chunks;
        assert!((450..=650).contains(&corrupted), "{c:?}");
        assert!(Flap::parse("gyro:30:5").is_err());
        assert!(FaultInjector::new(1.5, None, 0).is_err());
    }
}
