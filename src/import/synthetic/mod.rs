//! SYNTHETIC paired data: a kinematic body doing parameterised activities, observed at once by
//! a skeleton tracker (joint positions, 30 Hz) and a wrist-worn IMU (50 Hz) whose readings are
//! derived from the same motion: specific force `Rᵀ(a − g)` and angular rate `ω` of the right
//! forearm, in the sensor (segment) frame, plus Gaussian noise.
//!
//! For tests that need skeleton AND body-worn IMU of the same motion. Datasets it writes are
//! marked `synthetic: true`; they are never evidence that a model works on real data.
//!
//! Two presets: [`SyntheticConfig::default`] (six distinct activities, clean sensors: every
//! model scores 100 %, good for tests) and [`SyntheticConfig::benchmark`] (twelve activities
//! with one-limb and tempo pairs, varied bodies and styles, and the sensor faults of
//! [`faults`]: a paired benchmark that can rank fusion methods; docs/synthetic-benchmark.md).
//!
//! World frame: x forward, y left, z up, metres. Each recording is a sequence of activity
//! bouts; consecutive bouts cross-fade their joint angles over [`CROSSFADE_S`] seconds, a span
//! left unlabelled.

use std::path::Path;

use crate::dataset::{ClassInfo, Dataset, DatasetManifest, DatasetWriter, Split};
use crate::error::Result;
use crate::recording::{LabelInterval, ModalityInfo, ModalityStream, Recording, SkeletonLayout};

use crate::rng::Rng;

pub mod body;
pub mod faults;

use body::{transpose_apply, Mat3, Vec3, PARENTS};
pub use body::{Body, Pose, CATALOGUE, JOINTS};
pub use faults::{RecordingFaults, SensorFaults};

/// Standard gravity, m/s².
pub const GRAVITY: f64 = 9.80665;
/// Cross-fade between bouts, seconds.
pub const CROSSFADE_S: f64 = 1.0;
/// The default dataset's activities, in label order (label = index): the first six of
/// [`CATALOGUE`].
pub const ACTIVITIES: [&str; 6] = [
    "standing", "walking", "running", "waving", "sitting", "jumping",
];
/// A scripted sequence of activity bouts performed by one body.
#[derive(Debug, Clone, PartialEq)]
pub struct Motion {
    /// Who moves.
    pub body: Body,
    /// (start time s, activity) of each bout, increasing; the last lasts until `duration_s`.
    pub bouts: Vec<(f64, usize)>,
    /// Total duration, seconds.
    pub duration_s: f64,
}

impl Motion {
    /// The pose at `t`: the current bout's, cross-faded (smoothstep) from the previous bout's
    /// during the first [`CROSSFADE_S`] of a bout.
    pub fn pose(&self, t: f64) -> Pose {
        let k = self.bouts.iter().rposition(|b| b.0 <= t).unwrap_or(0);
        let (start, activity) = self.bouts[k];
        let current = self.body.activity_pose(activity, t);
        if k == 0 || t - start >= CROSSFADE_S {
            return current;
        }
        let x = (t - start) / CROSSFADE_S;
        let w = x * x * (3.0 - 2.0 * x);
        self.body
            .activity_pose(self.bouts[k - 1].1, t)
            .lerp(&current, w)
    }

    /// Joint positions at `t`.
    pub fn joints(&self, t: f64) -> [Vec3; 15] {
        self.body.forward_kinematics(&self.pose(t)).0
    }

    /// The wrist IMU's position and orientation (sensor frame → world) at `t`.
    pub fn imu_frame(&self, t: f64) -> (Vec3, Mat3) {
        let (joints, orientation) = self.body.forward_kinematics(&self.pose(t));
        (joints[8], orientation)
    }

    /// Noise-free IMU reading at `t`: specific force (g) and angular rate (rad/s), both in the
    /// sensor frame, by central differences of the analytic motion.
    pub fn imu_reading(&self, t: f64) -> (Vec3, Vec3) {
        let h = 1e-3;
        let (p_prev, r_prev) = self.imu_frame(t - h);
        let (p, r) = self.imu_frame(t);
        let (p_next, r_next) = self.imu_frame(t + h);
        let accel = [0, 1, 2].map(|i| (p_next[i] - 2.0 * p[i] + p_prev[i]) / (h * h));
        let specific =
            transpose_apply(&r, [accel[0], accel[1], accel[2] + GRAVITY]).map(|v| v / GRAVITY);
        // Body angular rate: ω× = Rᵀ Ṙ, Ṙ by central difference; take the skew part.
        let mut s = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                s[i][j] = (0..3)
                    .map(|k| r[k][i] * (r_next[k][j] - r_prev[k][j]) / (2.0 * h))
                    .sum();
            }
        }
        let omega = [
            (s[2][1] - s[1][2]) / 2.0,
            (s[0][2] - s[2][0]) / 2.0,
            (s[1][0] - s[0][1]) / 2.0,
        ];
        (specific, omega)
    }
}

/// Settings of the synthetic dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    /// Subjects 1..=N; odd ones train, even ones test.
    pub subjects: u32,
    /// Recordings per subject.
    pub sessions_per_subject: u32,
    /// Shortest and longest bout, seconds.
    pub bout_seconds: (f64, f64),
    /// IMU rate.
    pub imu_rate_hz: f64,
    /// Skeleton rate.
    pub skeleton_rate_hz: f64,
    /// Noise standard deviations: acc (g), gyro (rad/s), joints (m).
    pub noise: (f64, f64, f64),
    /// Seed of everything random.
    pub seed: u64,
    /// Activities: the first N of [`CATALOGUE`] (6: [`ACTIVITIES`]).
    pub activities: usize,
    /// Half-range of the subjects' body scale and tempo around 1 (vigour: 1.5 times it).
    pub subject_spread: f64,
    /// Half-range of the subjects' carriage style around neutral (0: all neutral).
    pub style_spread: f64,
    /// Sensor faults.
    pub faults: SensorFaults,
    /// Dataset name in the manifest.
    pub name: String,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            subjects: 8,
            sessions_per_subject: 2,
            bout_seconds: (8.0, 15.0),
            imu_rate_hz: 50.0,
            skeleton_rate_hz: 30.0,
            noise: (0.01, 0.02, 0.005),
            seed: 7,
            activities: ACTIVITIES.len(),
            subject_spread: 0.1,
            style_spread: 0.0,
            faults: SensorFaults::default(),
            name: "synthetic_paired".into(),
        }
    }
}

impl SyntheticConfig {
    /// The paired benchmark: twelve activities, 24 subjects (12 train, 12 test) of widely
    /// varied build, tempo and style, noisier sensors with the faults of [`faults`].
    pub fn benchmark() -> Self {
        Self {
            subjects: 24,
            sessions_per_subject: 2,
            bout_seconds: (6.0, 12.0),
            noise: (0.03, 0.05, 0.04),
            seed: 11,
            activities: CATALOGUE.len(),
            subject_spread: 0.2,
            style_spread: 1.0,
            faults: SensorFaults {
                placement_deg: 30.0,
                acc_bias: 0.03,
                gyro_drift: 0.01,
                joint_glitch: (0.02, 0.1),
                occlusions_per_min: 10.0,
                skeleton_losses_per_min: 4.0,
                imu_losses_per_min: 1.0,
                outage_s: (1.0, 5.0),
            },
            name: "synthetic_benchmark".into(),
            ..Self::default()
        }
    }
}

/// The synthetic modalities: wrist acc (g), wrist gyro (rad/s), skeleton (m).
pub fn modalities(config: &SyntheticConfig) -> Vec<ModalityInfo> {
    vec![
        ModalityInfo::inertial("wrist_acc", config.imu_rate_hz, "g", &["x", "y", "z"]),
        ModalityInfo::inertial("wrist_gyro", config.imu_rate_hz, "rad/s", &["x", "y", "z"]),
        ModalityInfo::skeleton(
            "skeleton",
            config.skeleton_rate_hz,
            "m",
            SkeletonLayout {
                joints: JOINTS.iter().map(|j| j.to_string()).collect(),
                parents: PARENTS.to_vec(),
                centre_joint: 0,
                torso_top_joint: 1,
            },
        ),
    ]
}

/// The motion script of one subject's session: every activity of the config once, in random
/// order.
pub fn motion(config: &SyntheticConfig, subject: u32, session: u32) -> Motion {
    let mut rng = Rng::new(
        config.seed ^ (u64::from(subject) << 32) ^ u64::from(session).wrapping_mul(0x9E37),
    );
    let spread = config.subject_spread;
    let mut body = Body::new(
        rng.uniform(1.0 - spread, 1.0 + spread),
        rng.uniform(1.0 - spread, 1.0 + spread),
        rng.uniform(1.0 - 1.5 * spread, 1.0 + 1.5 * spread),
    );
    if config.style_spread > 0.0 {
        body.style = rng.uniform(-config.style_spread, config.style_spread);
    }
    let mut order: Vec<usize> = (0..config.activities.clamp(1, CATALOGUE.len())).collect();
    rng.shuffle(&mut order);
    let mut bouts = Vec::new();
    let mut t = 0.0;
    for activity in order {
        bouts.push((t, activity));
        t += rng.uniform(config.bout_seconds.0, config.bout_seconds.1);
    }
    Motion {
        body,
        bouts,
        duration_s: t,
    }
}

/// Generates one recording (skeleton + wrist IMU of one motion, with noise).
pub fn generate_recording(config: &SyntheticConfig, subject: u32, session: u32) -> Recording {
    let motion = motion(config, subject, session);
    let mut rng = Rng::new(
        config.seed.wrapping_add(0xA5A5) ^ (u64::from(subject) << 40) ^ u64::from(session),
    );
    let mut faults = RecordingFaults::draw(
        &config.faults,
        motion.duration_s,
        config.seed ^ 0xFA17_u64.rotate_left(48) ^ (u64::from(subject) << 24) ^ u64::from(session),
    );
    let infos = modalities(config);
    let clock = |rate: f64| (0..(motion.duration_s * rate) as usize).map(move |k| k as f64 / rate);
    let (mut acc, mut gyro, mut imu_ts) = (Vec::new(), Vec::new(), Vec::new());
    let dt = 1.0 / config.imu_rate_hz;
    for t in clock(config.imu_rate_hz) {
        let (f, w) = motion.imu_reading(t);
        let (f, w) = faults.imu(dt, f, w);
        let (f, w) = (
            f.map(|v| (v + config.noise.0 * rng.normal()) as f32),
            w.map(|v| (v + config.noise.1 * rng.normal()) as f32),
        );
        if faults.imu_lost(t) && acc.len() >= 3 {
            let (a, g) = (acc.len() - 3, gyro.len() - 3);
            acc.extend_from_within(a..);
            gyro.extend_from_within(g..);
        } else {
            acc.extend(f);
            gyro.extend(w);
        }
        imu_ts.push((t * 1e9).round() as i64);
    }
    let (mut skeleton, mut skeleton_ts) = (Vec::new(), Vec::new());
    for t in clock(config.skeleton_rate_hz) {
        let mut joints = motion.joints(t);
        faults.skeleton(t, &mut joints);
        let lost = faults.skeleton_lost(t);
        // The noise is drawn even while the body is lost, so faults never shift it.
        skeleton.extend(joints.iter().flatten().map(|v| {
            let noisy = (v + config.noise.2 * rng.normal()) as f32;
            if lost {
                0.0
            } else {
                noisy
            }
        }));
        skeleton_ts.push((t * 1e9).round() as i64);
    }
    let mut labels = Vec::new();
    for (k, &(start, activity)) in motion.bouts.iter().enumerate() {
        let end = motion.bouts.get(k + 1).map_or(motion.duration_s, |b| b.0);
        let labelled_from = if k == 0 { start } else { start + CROSSFADE_S };
        labels.push(LabelInterval {
            start_ns: (labelled_from * 1e9).round() as i64,
            end_ns: (end * 1e9).round() as i64,
            label: activity as i32,
        });
    }
    Recording {
        id: format!("synth_s{subject}_r{session}"),
        subject_id: subject.to_string(),
        session_id: session.to_string(),
        streams: vec![
            ModalityStream {
                info: infos[0].clone(),
                timestamps_ns: imu_ts.clone(),
                values: acc,
            },
            ModalityStream {
                info: infos[1].clone(),
                timestamps_ns: imu_ts,
                values: gyro,
            },
            ModalityStream {
                info: infos[2].clone(),
                timestamps_ns: skeleton_ts,
                values: skeleton,
            },
        ],
        labels,
    }
}

/// Generates the whole synthetic dataset into `out`.
pub fn generate(config: &SyntheticConfig, out: &Path) -> Result<Dataset> {
    let manifest = DatasetManifest {
        name: config.name.clone(),
        description: "SYNTHETIC: kinematic body, skeleton + wrist IMU derived from the same motion"
            .into(),
        licence: "generated by har-core; no restrictions".into(),
        citation: "synthetic data, not a measurement".into(),
        synthetic: true,
        source: None,
        classes: ClassInfo::numbered(&CATALOGUE[..config.activities.clamp(1, CATALOGUE.len())], 0),
        modalities: modalities(config),
        recordings: Vec::new(),
    };
    let mut writer = DatasetWriter::create(out, manifest)?;
    for subject in 1..=config.subjects {
        for session in 1..=config.sessions_per_subject {
            let split = if subject % 2 == 1 {
                Split::Train
            } else {
                Split::Test
            };
            writer.add(&generate_recording(config, subject, session), split)?;
        }
    }
    writer.finish()
}
