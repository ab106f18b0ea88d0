//! SYNTHETIC paired data: a kinematic body doing parameterised activities, observed at once by
//! a skeleton tracker (joint positions, 30 Hz) and a wrist-worn IMU (50 Hz) whose readings are
//! derived from the same motion: specific force `Rᵀ(a − g)` and angular rate `ω` of the right
//! forearm, in the sensor (segment) frame, plus Gaussian noise.
//!
//! For tests that need skeleton AND body-worn IMU of the same motion. Datasets it writes are
//! marked `synthetic: true`; they are never evidence that a model works on real data.
//!
//! World frame: x forward, y left, z up, metres. Each recording is a sequence of activity
//! bouts; consecutive bouts cross-fade their joint angles over [`CROSSFADE_S`] seconds, a span
//! left unlabelled.

use std::f64::consts::PI;
use std::path::Path;

use crate::dataset::{ClassInfo, Dataset, DatasetManifest, DatasetWriter, Split};
use crate::error::Result;
use crate::recording::{LabelInterval, ModalityInfo, ModalityStream, Recording, SkeletonLayout};

use super::bvh::axis_rotation;
use crate::rng::Rng;

/// Standard gravity, m/s².
pub const GRAVITY: f64 = 9.80665;
/// Cross-fade between bouts, seconds.
pub const CROSSFADE_S: f64 = 1.0;
/// The activities, in label order (label = index).
pub const ACTIVITIES: [&str; 6] = [
    "standing", "walking", "running", "waving", "sitting", "jumping",
];
/// Skeleton joints.
pub const JOINTS: [&str; 15] = [
    "pelvis",
    "neck",
    "head",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
    "l_hip",
    "l_knee",
    "l_ankle",
    "r_hip",
    "r_knee",
    "r_ankle",
];
const PARENTS: [Option<usize>; 15] = [
    None,
    Some(0),
    Some(1),
    Some(1),
    Some(3),
    Some(4),
    Some(1),
    Some(6),
    Some(7),
    Some(0),
    Some(9),
    Some(10),
    Some(0),
    Some(12),
    Some(13),
];

type Mat3 = [[f64; 3]; 3];
type Vec3 = [f64; 3];

fn mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            out[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}
fn apply(a: &Mat3, v: Vec3) -> Vec3 {
    [0, 1, 2].map(|i| (0..3).map(|k| a[i][k] * v[k]).sum())
}
fn transpose_apply(a: &Mat3, v: Vec3) -> Vec3 {
    [0, 1, 2].map(|i| (0..3).map(|k| a[k][i] * v[k]).sum())
}
fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
fn rot(axis: usize, radians: f64) -> Mat3 {
    axis_rotation(axis, radians.to_degrees())
}

/// Joint angles (radians) and pelvis height (m) of one instant; see the module docs for axes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pose {
    /// Pelvis height above the ground.
    pub pelvis_z: f64,
    /// Forward lean of the trunk.
    pub trunk_pitch: f64,
    /// Hip flexion, [left, right] (thigh forward).
    pub hip_flex: [f64; 2],
    /// Knee flexion (shank backward).
    pub knee_flex: [f64; 2],
    /// Shoulder flexion (arm forward).
    pub shoulder_flex: [f64; 2],
    /// Shoulder abduction (arm sideways, away from the body).
    pub shoulder_abd: [f64; 2],
    /// Elbow flexion (forearm forward/up).
    pub elbow_flex: [f64; 2],
}

impl Pose {
    fn lerp(&self, other: &Pose, w: f64) -> Pose {
        let l = |a: f64, b: f64| a + (b - a) * w;
        let l2 = |a: [f64; 2], b: [f64; 2]| [l(a[0], b[0]), l(a[1], b[1])];
        Pose {
            pelvis_z: l(self.pelvis_z, other.pelvis_z),
            trunk_pitch: l(self.trunk_pitch, other.trunk_pitch),
            hip_flex: l2(self.hip_flex, other.hip_flex),
            knee_flex: l2(self.knee_flex, other.knee_flex),
            shoulder_flex: l2(self.shoulder_flex, other.shoulder_flex),
            shoulder_abd: l2(self.shoulder_abd, other.shoulder_abd),
            elbow_flex: l2(self.elbow_flex, other.elbow_flex),
        }
    }
}

/// A subject's body: segment lengths and personal motion style.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Body {
    /// Spine (pelvis → neck).
    pub spine: f64,
    /// Neck → head.
    pub head: f64,
    /// Half the shoulder width.
    pub shoulder_half_width: f64,
    /// Half the hip width.
    pub hip_half_width: f64,
    /// Upper arm.
    pub upper_arm: f64,
    /// Forearm.
    pub forearm: f64,
    /// Thigh.
    pub thigh: f64,
    /// Shank (knee → ankle).
    pub shank: f64,
    /// Multiplies every rhythm's frequency.
    pub tempo: f64,
    /// Multiplies every movement's amplitude.
    pub vigour: f64,
}

impl Body {
    /// A body of the given overall scale (1.0 ≈ 1.75 m tall) and style.
    pub fn new(scale: f64, tempo: f64, vigour: f64) -> Self {
        Self {
            spine: 0.5 * scale,
            head: 0.2 * scale,
            shoulder_half_width: 0.18 * scale,
            hip_half_width: 0.1 * scale,
            upper_arm: 0.3 * scale,
            forearm: 0.27 * scale,
            thigh: 0.45 * scale,
            shank: 0.45 * scale,
            tempo,
            vigour,
        }
    }

    fn leg(&self) -> f64 {
        self.thigh + self.shank + 0.05
    }

    /// The pose of `activity` at time `t` (seconds); rhythms are continuous in `t`.
    pub fn activity_pose(&self, activity: usize, t: f64) -> Pose {
        let (v, f) = (self.vigour, self.tempo);
        let stand = Pose {
            pelvis_z: self.leg(),
            trunk_pitch: 0.03 * (2.0 * PI * 0.3 * f * t).sin(),
            hip_flex: [0.0; 2],
            knee_flex: [0.05; 2],
            shoulder_flex: [0.05 * (2.0 * PI * 0.25 * f * t).sin(); 2],
            shoulder_abd: [0.1; 2],
            elbow_flex: [0.15; 2],
        };
        let gait = |freq: f64, hip: f64, knee: f64, arm: f64, elbow: f64, bob: f64, lean: f64| {
            let phi = 2.0 * PI * freq * f * t;
            let knee_at = |p: f64| 0.15 + knee * v * (1.0 - (p + 0.6).cos());
            Pose {
                pelvis_z: self.leg() - 1.5 * bob + bob * v * (2.0 * phi).cos(),
                trunk_pitch: lean,
                hip_flex: [0.1 + hip * v * phi.sin(), 0.1 + hip * v * (phi + PI).sin()],
                knee_flex: [knee_at(phi), knee_at(phi + PI)],
                shoulder_flex: [-arm * v * phi.sin(), arm * v * phi.sin()],
                shoulder_abd: [0.1; 2],
                elbow_flex: [elbow; 2],
            }
        };
        match activity {
            0 => stand,
            1 => gait(0.9, 0.35, 0.3, 0.3, 0.3, 0.02, 0.05),
            2 => gait(1.4, 0.6, 0.55, 0.6, 1.4, 0.05, 0.15),
            3 => Pose {
                shoulder_abd: [0.1, 2.3 + 0.35 * v * (2.0 * PI * 2.0 * f * t).sin()],
                elbow_flex: [0.15, 0.4],
                ..stand
            },
            4 => Pose {
                pelvis_z: self.shank + 0.05,
                trunk_pitch: -0.05 + 0.02 * (2.0 * PI * 0.2 * f * t).sin(),
                hip_flex: [1.5; 2],
                knee_flex: [1.5; 2],
                shoulder_flex: [0.3; 2],
                shoulder_abd: [0.1; 2],
                elbow_flex: [1.2; 2],
            },
            _ => {
                // Smooth hops: up at φ = π, crouched at φ = 0.
                let phi = 2.0 * PI * 1.5 * f * t;
                let air = ((1.0 - phi.cos()) / 2.0).powi(2);
                let crouch = ((1.0 + phi.cos()) / 2.0).powi(2);
                Pose {
                    pelvis_z: self.leg() + 0.1 * v * air - 0.1 * crouch,
                    trunk_pitch: 0.1 * crouch,
                    hip_flex: [0.3 * crouch; 2],
                    knee_flex: [0.1 + 0.6 * crouch; 2],
                    shoulder_flex: [0.5 * v * air; 2],
                    shoulder_abd: [0.15; 2],
                    elbow_flex: [0.3; 2],
                }
            }
        }
    }

    /// World positions of the 15 joints, and the right forearm's orientation (the IMU frame).
    pub fn forward_kinematics(&self, pose: &Pose) -> ([Vec3; 15], Mat3) {
        let pelvis = [0.0, 0.0, pose.pelvis_z];
        let trunk = rot(1, pose.trunk_pitch);
        let neck = add(pelvis, apply(&trunk, [0.0, 0.0, self.spine]));
        let head = add(neck, apply(&trunk, [0.0, 0.0, self.head]));
        let mut joints = [[0.0; 3]; 15];
        joints[0] = pelvis;
        joints[1] = neck;
        joints[2] = head;
        let mut right_forearm = trunk;
        for (side, sign) in [(0usize, 1.0), (1, -1.0)] {
            let shoulder = add(
                neck,
                apply(&trunk, [0.0, sign * self.shoulder_half_width, 0.0]),
            );
            let upper = mul(
                &mul(&trunk, &rot(0, sign * pose.shoulder_abd[side])),
                &rot(1, -pose.shoulder_flex[side]),
            );
            let elbow = add(shoulder, apply(&upper, [0.0, 0.0, -self.upper_arm]));
            let fore = mul(&upper, &rot(1, -pose.elbow_flex[side]));
            let wrist = add(elbow, apply(&fore, [0.0, 0.0, -self.forearm]));
            joints[3 + 3 * side] = shoulder;
            joints[4 + 3 * side] = elbow;
            joints[5 + 3 * side] = wrist;
            if side == 1 {
                right_forearm = fore;
            }
            let hip = add(pelvis, [0.0, sign * self.hip_half_width, 0.0]);
            let thigh = rot(1, -pose.hip_flex[side]);
            let knee = add(hip, apply(&thigh, [0.0, 0.0, -self.thigh]));
            let shank = mul(&thigh, &rot(1, pose.knee_flex[side]));
            let ankle = add(knee, apply(&shank, [0.0, 0.0, -self.shank]));
            joints[9 + 3 * side] = hip;
            joints[10 + 3 * side] = knee;
            joints[11 + 3 * side] = ankle;
        }
        (joints, right_forearm)
    }
}

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

/// The motion script of one subject's session: every activity once, in random order.
pub fn motion(config: &SyntheticConfig, subject: u32, session: u32) -> Motion {
    let mut rng = Rng::new(
        config.seed ^ (u64::from(subject) << 32) ^ u64::from(session).wrapping_mul(0x9E37),
    );
    let body = Body::new(
        rng.uniform(0.9, 1.1),
        rng.uniform(0.9, 1.1),
        rng.uniform(0.85, 1.15),
    );
    let mut order: Vec<usize> = (0..ACTIVITIES.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
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
    let infos = modalities(config);
    let clock = |rate: f64| (0..(motion.duration_s * rate) as usize).map(move |k| k as f64 / rate);
    let (mut acc, mut gyro, mut imu_ts) = (Vec::new(), Vec::new(), Vec::new());
    for t in clock(config.imu_rate_hz) {
        let (f, w) = motion.imu_reading(t);
        acc.extend(f.map(|v| (v + config.noise.0 * rng.normal()) as f32));
        gyro.extend(w.map(|v| (v + config.noise.1 * rng.normal()) as f32));
        imu_ts.push((t * 1e9).round() as i64);
    }
    let (mut skeleton, mut skeleton_ts) = (Vec::new(), Vec::new());
    for t in clock(config.skeleton_rate_hz) {
        skeleton.extend(
            motion
                .joints(t)
                .iter()
                .flatten()
                .map(|v| (v + config.noise.2 * rng.normal()) as f32),
        );
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
        name: "synthetic_paired".into(),
        description: "SYNTHETIC: kinematic body, skeleton + wrist IMU derived from the same motion"
            .into(),
        licence: "generated by har-core; no restrictions".into(),
        citation: "synthetic data, not a measurement".into(),
        synthetic: true,
        source: None,
        classes: ClassInfo::numbered(&ACTIVITIES, 0),
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
