//! Sensor faults of the synthetic benchmark: what real capture does to clean motion, drawn
//! once per recording from its own seeded stream (so a dataset without faults is the same as
//! before they existed). IMU: a sensor misplaced on the forearm, a constant accelerometer bias,
//! a drifting gyroscope bias, and link losses during which the receiver repeats the last
//! sample. Skeleton: glitching joints, limbs occluded (frozen where last seen), and stretches
//! where the tracker loses the body and reports every joint as 0.

use super::body::{transpose_apply, Mat3, Vec3};
use crate::rng::Rng;

/// How the sensors of a recording misbehave (all zero: clean sensors, Gaussian noise only).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SensorFaults {
    /// Largest misplacement of the wrist sensor, degrees: its frame is turned about a random
    /// axis by up to this, once per recording.
    pub placement_deg: f64,
    /// σ of each accelerometer axis's constant bias, g (per recording).
    pub acc_bias: f64,
    /// Gyroscope bias drift: σ of its random walk per axis, rad/s per √s.
    pub gyro_drift: f64,
    /// Tracking glitches: probability per frame and joint, and the jump's σ per axis (m).
    pub joint_glitch: (f64, f64),
    /// Occlusions per minute: a random limb's three joints freeze where last seen.
    pub occlusions_per_min: f64,
    /// Tracker losses per minute: every joint reads 0 for the outage.
    pub skeleton_losses_per_min: f64,
    /// IMU link losses per minute: the receiver repeats the last sample for the outage.
    pub imu_losses_per_min: f64,
    /// Shortest and longest occlusion or outage, seconds.
    pub outage_s: (f64, f64),
}

/// The three joints of each limb: left arm, right arm, left leg, right leg.
const LIMBS: [[usize; 3]; 4] = [[3, 4, 5], [6, 7, 8], [9, 10, 11], [12, 13, 14]];

/// One recording's faults, drawn from [`SensorFaults`].
#[derive(Debug, Clone)]
pub struct RecordingFaults {
    rng: Rng,
    glitch: (f64, f64),
    gyro_drift: f64,
    /// Sensor frame in the forearm's frame.
    misplacement: Mat3,
    acc_bias: Vec3,
    gyro_bias: Vec3,
    imu_losses: Vec<(f64, f64)>,
    skeleton_losses: Vec<(f64, f64)>,
    /// (start, end, limb) of each occlusion.
    occlusions: Vec<(f64, f64, usize)>,
    /// Where each limb's joints froze, while occluded.
    frozen: [Option<[Vec3; 3]>; 4],
}

/// Outages of a Poisson process of `per_min` events a minute over `duration_s`.
fn outages(per_min: f64, duration_s: f64, length_s: (f64, f64), rng: &mut Rng) -> Vec<(f64, f64)> {
    let mut spans = Vec::new();
    if per_min <= 0.0 {
        return spans;
    }
    let mut t = 0.0;
    loop {
        t += -(1.0 - rng.uniform(0.0, 1.0)).ln() * 60.0 / per_min;
        if t >= duration_s {
            return spans;
        }
        let end = t + rng.uniform(length_s.0, length_s.1);
        spans.push((t, end));
        t = end;
    }
}

fn inside(spans: &[(f64, f64)], t: f64) -> bool {
    spans.iter().any(|&(a, b)| a <= t && t < b)
}

/// Rotation by `angle` radians about the unit vector `axis` (Rodrigues).
fn axis_angle(axis: Vec3, angle: f64) -> Mat3 {
    let (s, c) = angle.sin_cos();
    let [x, y, z] = axis;
    let k = 1.0 - c;
    [
        [c + x * x * k, x * y * k - z * s, x * z * k + y * s],
        [y * x * k + z * s, c + y * y * k, y * z * k - x * s],
        [z * x * k - y * s, z * y * k + x * s, c + z * z * k],
    ]
}

impl RecordingFaults {
    /// Draws the faults of a recording of `duration_s` from `faults`, seeded by `seed`.
    pub fn draw(faults: &SensorFaults, duration_s: f64, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let axis = {
            let v = [rng.normal(), rng.normal(), rng.normal()];
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-9);
            v.map(|x| x / n)
        };
        let angle = faults.placement_deg.to_radians() * rng.uniform(-1.0, 1.0);
        let acc_bias = [0; 3].map(|_| faults.acc_bias * rng.normal());
        let imu_losses = outages(
            faults.imu_losses_per_min,
            duration_s,
            faults.outage_s,
            &mut rng,
        );
        let skeleton_losses = outages(
            faults.skeleton_losses_per_min,
            duration_s,
            faults.outage_s,
            &mut rng,
        );
        let occlusions = outages(
            faults.occlusions_per_min,
            duration_s,
            faults.outage_s,
            &mut rng,
        )
        .into_iter()
        .map(|(a, b)| (a, b, (rng.next_u64() % 4) as usize))
        .collect();
        Self {
            rng,
            glitch: faults.joint_glitch,
            gyro_drift: faults.gyro_drift,
            misplacement: axis_angle(axis, angle),
            acc_bias,
            gyro_bias: [0.0; 3],
            imu_losses,
            skeleton_losses,
            occlusions,
            frozen: [None; 4],
        }
    }

    /// The IMU reading at `t` (`dt` after the previous one) as the misplaced, biased sensor
    /// reports it.
    pub fn imu(&mut self, dt: f64, specific_force: Vec3, rate: Vec3) -> (Vec3, Vec3) {
        if self.gyro_drift > 0.0 {
            let step = self.gyro_drift * dt.sqrt();
            for b in &mut self.gyro_bias {
                *b += step * self.rng.normal();
            }
        }
        let f = transpose_apply(&self.misplacement, specific_force);
        let w = transpose_apply(&self.misplacement, rate);
        (
            [0, 1, 2].map(|i| f[i] + self.acc_bias[i]),
            [0, 1, 2].map(|i| w[i] + self.gyro_bias[i]),
        )
    }

    /// Whether the IMU link is down at `t` (the receiver repeats its last sample).
    pub fn imu_lost(&self, t: f64) -> bool {
        inside(&self.imu_losses, t)
    }

    /// The tracker's joints at `t` from the true ones: occluded limbs frozen where last seen,
    /// glitches added.
    pub fn skeleton(&mut self, t: f64, joints: &mut [Vec3; 15]) {
        for (index, (limb, frozen)) in LIMBS.iter().zip(self.frozen.iter_mut()).enumerate() {
            let occluded = self
                .occlusions
                .iter()
                .any(|&(a, b, l)| l == index && a <= t && t < b);
            match (occluded, *frozen) {
                (true, Some(held)) => {
                    for (j, p) in limb.iter().zip(held) {
                        joints[*j] = p;
                    }
                }
                (true, None) => *frozen = Some(limb.map(|j| joints[j])),
                (false, _) => *frozen = None,
            }
        }
        if self.glitch.0 > 0.0 {
            for joint in joints.iter_mut() {
                if self.rng.uniform(0.0, 1.0) < self.glitch.0 {
                    let jump = [0; 3].map(|_| self.glitch.1 * self.rng.normal());
                    *joint = [0, 1, 2].map(|i| joint[i] + jump[i]);
                }
            }
        }
    }

    /// Whether the tracker has lost the body at `t` (every joint reads 0).
    pub fn skeleton_lost(&self, t: f64) -> bool {
        inside(&self.skeleton_losses, t)
    }
}
