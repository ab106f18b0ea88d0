//! What a patch token is projected from besides its values, with the options of
//! [`crate::config::DmftConfig`] that add them: `patch_stats` (each channel's log standard
//! deviation within the patch) and `window_detail` (the patch's values standardised per window
//! and channel). The candle model computes the same with tensor operations; the plain-Rust
//! forward pass ([`crate::layers::PatchTokenizer`]) calls these functions.

/// The patch options of a model (see [`crate::layers::PatchTokenizer`]): one description of a
/// patch token's input, for the config, the tokeniser and the FLOP count.
#[derive(Debug, Clone, Copy)]
pub struct PatchOptions {
    /// Samples per patch (P).
    pub patch_len: usize,
    /// Append the window-standardised values.
    pub window_detail: bool,
    /// Append each channel's log standard deviation within the patch.
    pub patch_stats: bool,
}

impl PatchOptions {
    /// Input width of a group's projection: its `P·|g|` values, as many standardised ones with
    /// `window_detail`, and `|g|` log standard deviations with `patch_stats`.
    pub fn input_len(&self, group_len: usize) -> usize {
        let values = self.patch_len * group_len;
        values
            + if self.window_detail { values } else { 0 }
            + if self.patch_stats { group_len } else { 0 }
    }
}

/// Floor added to a patch's variance before the logarithm (normalised units²): a standard
/// deviation of 0.001, below the sensor noise of a still posture (about 0.01).
pub const PATCH_VARIANCE_FLOOR: f32 = 1e-6;

/// The statistic a patch token gets per channel when `patch_stats` is on:
/// `½·ln(var + PATCH_VARIANCE_FLOOR)` of the patch's values (population variance). Still
/// postures differ in their micro-motion (standing sways, sitting does not) by a few
/// hundredths of a normalised unit, too small for a linear patch projection to see next to
/// the gravity offset; the logarithm puts it on the same scale.
pub fn patch_log_std(values: impl Iterator<Item = f32> + Clone) -> f32 {
    let (sum, n) = values
        .clone()
        .fold((0f32, 0usize), |(s, n), v| (s + v, n + 1));
    let mean = sum / n.max(1) as f32;
    let var = values.map(|v| (v - mean) * (v - mean)).sum::<f32>() / n.max(1) as f32;
    0.5 * (var + PATCH_VARIANCE_FLOOR).ln()
}

/// Floor added to a window's per-channel variance before standardising it (normalised
/// units²): a standard deviation of 0.001, below the stillest window's (about 0.005).
pub const WINDOW_VARIANCE_FLOOR: f32 = 1e-6;

/// Each channel of window `x` (`T × C`, row-major) minus its mean over the window, divided by
/// `√(var + WINDOW_VARIANCE_FLOOR)` (population variance): the per-patch *detail* values of
/// `window_detail`. Still postures differ in micro-motion a hundred times smaller than the
/// gravity offset and than walking; standardised, it is on the scale of every other input.
pub fn standardise_window(x: &[f32], channels: usize) -> Vec<f32> {
    if channels == 0 {
        return Vec::new();
    }
    let t = (x.len() / channels).max(1) as f32;
    let mut mean = vec![0f32; channels];
    for sample in x.chunks_exact(channels) {
        mean.iter_mut().zip(sample).for_each(|(m, v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= t);
    let mut var = vec![0f32; channels];
    for sample in x.chunks_exact(channels) {
        for ((v, m), x) in var.iter_mut().zip(&mean).zip(sample) {
            *v += (x - m) * (x - m);
        }
    }
    let scale: Vec<f32> = var
        .iter()
        .map(|v| 1.0 / (v / t + WINDOW_VARIANCE_FLOOR).sqrt())
        .collect();
    x.chunks_exact(channels)
        .flat_map(|sample| {
            sample
                .iter()
                .zip(&mean)
                .zip(&scale)
                .map(|((x, m), s)| (x - m) * s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standardised_window_has_zero_mean_and_unit_variance_per_channel() {
        // Two channels: a slow wave of amplitude 0.01 on a gravity offset, and a fast one.
        let x: Vec<f32> = (0..64)
            .flat_map(|i| {
                let t = i as f32;
                [0.8 + 0.01 * (t * 0.2).sin(), 2.0 * (t * 1.3).cos()]
            })
            .collect();
        let z = standardise_window(&x, 2);
        for c in 0..2 {
            let column: Vec<f32> = z.iter().skip(c).step_by(2).copied().collect();
            let mean = column.iter().sum::<f32>() / 64.0;
            let var = column.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 64.0;
            assert!(mean.abs() < 1e-4, "channel {c}: mean {mean}");
            // The floor shrinks the small channel's variance a little: 1 / (1 + floor / var).
            assert!((var - 1.0).abs() < 0.03, "channel {c}: variance {var}");
        }
    }

    #[test]
    fn standardising_ignores_offset_and_gain_but_not_a_constant_channel() {
        let x: Vec<f32> = (0..32).map(|i| (i as f32 * 0.7).sin()).collect();
        let moved: Vec<f32> = x.iter().map(|v| 3.0 * v - 5.0).collect();
        for (a, b) in standardise_window(&x, 1)
            .iter()
            .zip(standardise_window(&moved, 1))
        {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        // A constant channel has nothing to standardise: zeros, not a division by zero.
        assert!(standardise_window(&[0.5; 16], 1).iter().all(|v| *v == 0.0));
    }

    #[test]
    fn the_log_std_of_a_patch_is_half_the_log_of_its_variance() {
        let values = [1.0f32, -1.0, 1.0, -1.0];
        assert!(
            (patch_log_std(values.iter().copied()) - 0.5 * (1.0 + PATCH_VARIANCE_FLOOR).ln()).abs()
                < 1e-6
        );
        assert!(
            (patch_log_std([2.0f32; 4].iter().copied()) - 0.5 * PATCH_VARIANCE_FLOOR.ln()).abs()
                < 1e-5
        );
    }
}
