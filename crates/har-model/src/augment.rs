//! Training-time augmentation of normalised windows: Gaussian jitter and random rotations of
//! the inertial sensors' frame.
//!
//! Jitter σ is in normalised units. Still postures differ in micro-motion of about 0.01–0.03
//! normalised units (standing sways, sitting does not), so a σ of that size hides the cue;
//! docs/model.md has the measurements.
//!
//! A rotation simulates a sensor worn turned on the body: every 3-axis inertial modality of the
//! window (they share one device frame) is rotated by the same random angle in
//! `[-rotation_deg, rotation_deg]` about `rotation_axis` of the sensor frame (or a random
//! axis), in physical units — the window is de-normalised, rotated and normalised again.
//! There is deliberately no random gain: a gain changes the gravity offset of an
//! accelerometer channel, which is exactly the tilt that separates sitting from standing.

use har_core::preprocess::ChannelStats;
use har_core::rng::Rng;
use serde::{Deserialize, Serialize};

/// What augmentation training applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    /// σ of Gaussian jitter added to every value, in normalised units (0: none).
    pub jitter_std: f64,
    /// Largest rotation of the inertial sensors' frame in degrees (0: none).
    pub rotation_deg: f64,
    /// Rotation axis in the sensor frame (0 = x, 1 = y, 2 = z); `None`: a random axis per
    /// window.
    pub rotation_axis: Option<usize>,
    /// Largest relative change of the motion's amplitude: each window's deviation from its
    /// own per-channel mean is scaled by a random factor in `[1 − a, 1 + a]`, shared by its
    /// modalities (people move with different vigour; the gravity offset stays). 0: none.
    #[serde(default)]
    pub amplitude_scale: f64,
}

impl Default for AugmentConfig {
    /// Jitter σ = 0.03 and no rotation: what models trained before this option used.
    fn default() -> Self {
        Self {
            jitter_std: 0.03,
            rotation_deg: 0.0,
            rotation_axis: None,
            amplitude_scale: 0.0,
        }
    }
}

/// A 3 × 3 rotation matrix, row-major.
pub type Rotation = [[f32; 3]; 3];

/// The rotation by `angle` radians about the unit vector `axis` (Rodrigues' formula).
pub fn rotation_about(axis: [f64; 3], angle: f64) -> Rotation {
    let [x, y, z] = axis;
    let (s, c) = angle.sin_cos();
    let t = 1.0 - c;
    let m = [
        [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
        [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
        [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
    ];
    m.map(|row| row.map(|v| v as f32))
}

impl AugmentConfig {
    /// A random rotation for one window, or `None` without rotation.
    pub fn draw_rotation(&self, rng: &mut Rng) -> Option<Rotation> {
        if self.rotation_deg == 0.0 {
            return None;
        }
        let angle = rng
            .uniform(-self.rotation_deg, self.rotation_deg)
            .to_radians();
        let axis = match self.rotation_axis {
            Some(a) => {
                let mut v = [0.0; 3];
                v[a.min(2)] = 1.0;
                v
            }
            None => {
                let v = [rng.normal(), rng.normal(), rng.normal()];
                let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
                v.map(|x| x / norm)
            }
        };
        Some(rotation_about(axis, angle))
    }

    /// A random amplitude factor for one window (1 without amplitude scaling).
    pub fn draw_amplitude(&self, rng: &mut Rng) -> f32 {
        if self.amplitude_scale == 0.0 {
            return 1.0;
        }
        rng.uniform(1.0 - self.amplitude_scale, 1.0 + self.amplitude_scale) as f32
    }

    /// Augments one normalised window `[T, C]` of a modality in place: the rotation when
    /// both it and `stats` (the normalisation of a 3-axis inertial modality) are given, the
    /// amplitude factor, then jitter.
    pub fn apply(
        &self,
        window: &mut [f32],
        channels: usize,
        stats: Option<&ChannelStats>,
        rotation: Option<&Rotation>,
        amplitude: f32,
        rng: &mut Rng,
    ) {
        if let (Some(r), Some(stats)) = (rotation, stats) {
            let (mean, std) = (&stats.mean, &stats.std);
            for sample in window.chunks_exact_mut(3) {
                let raw: [f32; 3] = std::array::from_fn(|c| sample[c] * std[c] + mean[c]);
                for (c, value) in sample.iter_mut().enumerate() {
                    let rotated = r[c][0] * raw[0] + r[c][1] * raw[1] + r[c][2] * raw[2];
                    *value = (rotated - mean[c]) / std[c];
                }
            }
        }
        if amplitude != 1.0 {
            // Normalisation is affine per channel, so scaling about the window's mean in
            // normalised units scales the physical motion alike.
            let steps = (window.len() / channels.max(1)).max(1) as f32;
            for c in 0..channels {
                let mean = window.iter().skip(c).step_by(channels).sum::<f32>() / steps;
                for v in window.iter_mut().skip(c).step_by(channels) {
                    *v = mean + amplitude * (*v - mean);
                }
            }
        }
        if self.jitter_std > 0.0 {
            for v in window.iter_mut() {
                *v += (self.jitter_std * rng.normal()) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> ChannelStats {
        ChannelStats {
            modality: "acc".into(),
            channel_names: vec!["x".into(), "y".into(), "z".into()],
            mean: vec![0.9, -0.1, 0.1],
            std: vec![0.4, 0.5, 0.3],
        }
    }

    fn raw(window: &[f32], stats: &ChannelStats) -> Vec<[f32; 3]> {
        window
            .chunks_exact(3)
            .map(|s| std::array::from_fn(|c| s[c] * stats.std[c] + stats.mean[c]))
            .collect()
    }

    #[test]
    fn rotation_about_x_keeps_x_and_the_vector_length_in_physical_units() {
        let config = AugmentConfig {
            jitter_std: 0.0,
            rotation_deg: 90.0,
            rotation_axis: Some(0),
            amplitude_scale: 0.0,
        };
        let stats = stats();
        let original: Vec<f32> = (0..30).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut rng = Rng::new(3);
        let rotation = config.draw_rotation(&mut rng).expect("a rotation");
        let mut window = original.clone();
        config.apply(&mut window, 3, Some(&stats), Some(&rotation), 1.0, &mut rng);
        assert_ne!(window, original);
        for (before, after) in raw(&original, &stats).iter().zip(raw(&window, &stats)) {
            assert!((before[0] - after[0]).abs() < 1e-5);
            let norm = |v: &[f32; 3]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm(before) - norm(&after)).abs() < 1e-5);
        }
    }

    #[test]
    fn rotation_matrix_is_orthonormal_and_quarter_turn_maps_y_to_z() {
        let r = rotation_about([1.0, 0.0, 0.0], std::f64::consts::FRAC_PI_2);
        let y_to = [r[0][1], r[1][1], r[2][1]];
        assert!((y_to[2] - 1.0).abs() < 1e-6 && y_to[0].abs() < 1e-6 && y_to[1].abs() < 1e-6);
        let mut rng = Rng::new(9);
        let random = AugmentConfig {
            rotation_deg: 180.0,
            ..Default::default()
        }
        .draw_rotation(&mut rng)
        .expect("a rotation");
        for i in 0..3 {
            for j in 0..3 {
                let dot: f32 = (0..3).map(|k| random[i][k] * random[j][k]).sum();
                assert!((dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn no_rotation_without_an_angle_and_jitter_only_where_asked() {
        let mut rng = Rng::new(1);
        let config = AugmentConfig {
            jitter_std: 0.0,
            ..Default::default()
        };
        assert!(config.draw_rotation(&mut rng).is_none());
        let mut window = vec![0.5f32; 12];
        config.apply(&mut window, 3, None, None, 1.0, &mut rng);
        assert!(window.iter().all(|v| *v == 0.5));
        AugmentConfig::default().apply(&mut window, 3, None, None, 1.0, &mut rng);
        assert!(window.iter().any(|v| *v != 0.5));
    }

    #[test]
    fn amplitude_scaling_keeps_each_channels_mean_and_scales_its_deviation() {
        let config = AugmentConfig {
            jitter_std: 0.0,
            amplitude_scale: 0.2,
            ..Default::default()
        };
        let mut rng = Rng::new(4);
        let factor = config.draw_amplitude(&mut rng);
        assert!((0.8..=1.2).contains(&factor) && factor != 1.0);
        let original: Vec<f32> = (0..40)
            .map(|i| (i as f32 * 0.7).cos() + (i % 2) as f32)
            .collect();
        let mut window = original.clone();
        config.apply(&mut window, 2, None, None, factor, &mut rng);
        for c in 0..2 {
            let mean = |w: &[f32]| w.iter().skip(c).step_by(2).sum::<f32>() / 20.0;
            let (m0, m1) = (mean(&original), mean(&window));
            assert!((m0 - m1).abs() < 1e-5);
            for (a, b) in original.iter().zip(&window).skip(c).step_by(2) {
                assert!(((b - m1) - factor * (a - m0)).abs() < 1e-5);
            }
        }
    }
}
