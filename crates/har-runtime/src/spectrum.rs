//! The window spectrum behind DMFT's optional *spectral token* (`DmftConfig::spectral_tokens`):
//! per channel, the log mean power of the window's DFT in about half-octave bands from the
//! lowest bin up to a quarter of the sample rate.
//!
//! Why: walking, walking upstairs and downstairs differ in cadence and in how sharp each step
//! is — energy in frequency bands over the whole 2.56 s window. A linear classifier on these
//! band powers separates walking from downstairs for the test subject whose gait the
//! transformer confuses (subject 10 of HAPT) at 98 %, so the model gets them as one more
//! token per channel group instead of having to rebuild them from 0.32 s patches.
//!
//! The same numbers come from candle tensors (the training crate multiplies by
//! [`SpectrumTables::cos`], [`SpectrumTables::sin`] and [`SpectrumTables::band_matrix`]) and from
//! plain slices (the runtime multiplies by [`SpectrumTables::dft_matrix`] with its dense kernel,
//! then [`SpectrumTables::log_band_power_from_dft`]).

/// Floor added to a band's mean power before the logarithm (normalised units²).
pub const BAND_POWER_FLOOR: f32 = 1e-6;

/// Band edges in DFT bins: bins `edges[i]..edges[i + 1]` form band `i`. Edges grow by about
/// √2 from bin 1 (the DC bin, the window mean, is left out: patch tokens carry it) up to bin
/// `window_len / 4` (12.5 Hz at 50 Hz); windows too short for two bands get one band of bins
/// `1..=window_len / 2`.
pub fn band_edges(window_len: usize) -> Vec<usize> {
    let top = (window_len / 4).max(1) + 1;
    let mut edges = vec![1usize];
    let mut i = 0;
    while *edges.last().unwrap_or(&top) < top {
        i += 1;
        let next = (2f64.powf(i as f64 / 2.0).round() as usize).clamp(1, top);
        if next > *edges.last().unwrap_or(&0) {
            edges.push(next);
        }
    }
    if edges.len() < 3 {
        return vec![1, (window_len / 2).max(1) + 1];
    }
    edges
}

/// DFT and band tables for one window length.
#[derive(Debug, Clone)]
pub struct SpectrumTables {
    window_len: usize,
    edges: Vec<usize>,
    /// `[T, K]` cosines and sines of bins `1..=K`, row-major (`t` major).
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// `[T, 2K]`, row-major: for sample `t`, the cosines of bins `1..=K`, then their sines.
    dft: Vec<f32>,
}

impl SpectrumTables {
    /// Tables for windows of `window_len` samples.
    pub fn new(window_len: usize) -> Self {
        let edges = band_edges(window_len);
        let bins = edges[edges.len() - 1] - 1;
        let mut cos = Vec::with_capacity(window_len * bins);
        let mut sin = Vec::with_capacity(window_len * bins);
        for t in 0..window_len {
            let angle = |k: usize| 2.0 * std::f64::consts::PI * (k * t) as f64 / window_len as f64;
            cos.extend((1..=bins).map(|k| angle(k).cos() as f32));
            sin.extend((1..=bins).map(|k| angle(k).sin() as f32));
        }
        let dft = cos
            .chunks_exact(bins)
            .zip(sin.chunks_exact(bins))
            .flat_map(|(c, s)| c.iter().chain(s).copied())
            .collect();
        Self {
            window_len,
            edges,
            cos,
            sin,
            dft,
        }
    }

    /// Number of bands.
    pub fn bands(&self) -> usize {
        self.edges.len() - 1
    }

    /// Number of DFT bins used (K).
    pub fn bins(&self) -> usize {
        self.edges[self.edges.len() - 1] - 1
    }

    /// The `[T, 2K]` DFT matrix: a channel's samples (a row of `T`) times it give the real
    /// parts of bins `1..=K`, then the (negated) imaginary parts.
    pub fn dft_matrix(&self) -> &[f32] {
        &self.dft
    }

    /// `[K, bands]`: averages each band's bins, scaled by `1 / T` (power per sample).
    pub fn band_matrix(&self) -> Vec<f32> {
        let (bins, bands) = (self.bins(), self.bands());
        let mut m = vec![0f32; bins * bands];
        for band in 0..bands {
            let (lo, hi) = (self.edges[band], self.edges[band + 1]);
            for k in lo..hi {
                m[(k - 1) * bands + band] = 1.0 / ((hi - lo) * self.window_len) as f32;
            }
        }
        m
    }

    /// `[T, K]` cosines of bins `1..=K`, row-major (`t` major).
    pub fn cos(&self) -> &[f32] {
        &self.cos
    }

    /// `[T, K]` sines of bins `1..=K`, row-major (`t` major).
    pub fn sin(&self) -> &[f32] {
        &self.sin
    }

    /// Log band powers of one channel from its DFT row (`2K` values: a row of samples times
    /// [`Self::dft_matrix`]), appended to `out`.
    pub fn log_band_power_from_dft(&self, dft_row: &[f32], out: &mut Vec<f32>) {
        let bins = self.bins();
        let (re, im) = dft_row.split_at(bins);
        for band in 0..self.bands() {
            let (lo, hi) = (self.edges[band], self.edges[band + 1]);
            let power: f32 = (lo - 1..hi - 1)
                .map(|k| re[k] * re[k] + im[k] * im[k])
                .sum();
            let mean = power / ((hi - lo) * self.window_len) as f32;
            out.push((mean + BAND_POWER_FLOOR).ln());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_bins_one_to_a_quarter_of_the_window() {
        let edges = band_edges(128);
        assert_eq!(edges, vec![1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 33]);
        assert!(band_edges(100).windows(2).all(|w| w[0] < w[1]));
        assert_eq!(*band_edges(100).last().unwrap(), 26);
        assert_eq!(band_edges(4), vec![1, 3]);
    }

    #[test]
    fn a_sine_puts_its_power_in_its_band_and_both_paths_agree() {
        let tables = SpectrumTables::new(128);
        // 5 cycles per window: bin 5, band 3 (bins 4..6); channel 1 is constant.
        let window: Vec<f32> = (0..128)
            .flat_map(|t| {
                [
                    (2.0 * std::f32::consts::PI * 5.0 * t as f32 / 128.0).sin(),
                    0.3,
                ]
            })
            .collect();
        // The slice path: each channel's samples times the DFT matrix.
        let plain = |channel: usize| {
            let k2 = 2 * tables.bins();
            let mut row = vec![0f32; k2];
            for (t, sample) in window.chunks_exact(2).enumerate() {
                for (r, w) in row
                    .iter_mut()
                    .zip(&tables.dft_matrix()[t * k2..(t + 1) * k2])
                {
                    *r += sample[channel] * w;
                }
            }
            let mut out = Vec::new();
            tables.log_band_power_from_dft(&row, &mut out);
            out
        };
        let sine = plain(0);
        let loudest = sine
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
            .0;
        assert_eq!(loudest, 3);
        assert!(plain(1)
            .iter()
            .all(|v| (v - BAND_POWER_FLOOR.ln()).abs() < 1e-2));
    }
}
