//! The synthetic body: segment lengths, personal style, the joint angles of every activity
//! in the catalogue, and forward kinematics to joint positions and the wrist sensor's frame.

use std::f64::consts::PI;

use super::super::bvh::axis_rotation;

/// Every activity the body can do, in label order (label = index). The default dataset uses
/// the first six ([`super::ACTIVITIES`]); the benchmark all of them. Pairs that differ in one
/// limb (waving with either hand; standing, kicking and left-hand waving look alike to the
/// right-wrist sensor) or in tempo (walking, brisk walking) make the benchmark need both
/// modalities.
pub const CATALOGUE: [&str; 12] = [
    "standing",
    "walking",
    "running",
    "waving",
    "sitting",
    "jumping",
    "waving_left",
    "walking_brisk",
    "clapping",
    "drinking",
    "kicking",
    "squatting",
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
pub(super) const PARENTS: [Option<usize>; 15] = [
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

/// A rotation matrix (row-major).
pub type Mat3 = [[f64; 3]; 3];
/// A point or vector, metres.
pub type Vec3 = [f64; 3];

pub(super) fn mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            out[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}
pub(super) fn apply(a: &Mat3, v: Vec3) -> Vec3 {
    [0, 1, 2].map(|i| (0..3).map(|k| a[i][k] * v[k]).sum())
}
pub(super) fn transpose_apply(a: &Mat3, v: Vec3) -> Vec3 {
    [0, 1, 2].map(|i| (0..3).map(|k| a[k][i] * v[k]).sum())
}
pub(super) fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
pub(super) fn rot(axis: usize, radians: f64) -> Mat3 {
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
    pub(super) fn lerp(&self, other: &Pose, w: f64) -> Pose {
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
    /// Personal carriage, -1..1: how bent the elbows are held and how far the arms swing
    /// (0: the generator's neutral style).
    pub style: f64,
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
            style: 0.0,
        }
    }

    fn leg(&self) -> f64 {
        self.thigh + self.shank + 0.05
    }

    /// The pose of catalogue activity `activity` ([`CATALOGUE`]) at time `t` (seconds);
    /// rhythms are continuous in `t`.
    pub fn activity_pose(&self, activity: usize, t: f64) -> Pose {
        let (v, f) = (self.vigour, self.tempo);
        let (swing, elbow_rest) = (1.0 + 0.4 * self.style, 0.15 + 0.15 * self.style.max(0.0));
        let wave = |t: f64| 0.35 * v * (2.0 * PI * 2.0 * f * t).sin();
        let stand = Pose {
            pelvis_z: self.leg(),
            trunk_pitch: 0.03 * (2.0 * PI * 0.3 * f * t).sin(),
            hip_flex: [0.0; 2],
            knee_flex: [0.05; 2],
            shoulder_flex: [0.05 * (2.0 * PI * 0.25 * f * t).sin(); 2],
            shoulder_abd: [0.1; 2],
            elbow_flex: [elbow_rest; 2],
        };
        let gait = |freq: f64, hip: f64, knee: f64, arm: f64, elbow: f64, bob: f64, lean: f64| {
            let phi = 2.0 * PI * freq * f * t;
            let knee_at = |p: f64| 0.15 + knee * v * (1.0 - (p + 0.6).cos());
            let arm = arm * swing;
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
        // A slow rise and return, 0 → 1 → 0 once per period.
        let cycle = |freq: f64| (1.0 - (2.0 * PI * freq * f * t).cos()) / 2.0;
        match activity {
            0 => stand,
            1 => gait(0.9, 0.35, 0.3, 0.3, 0.3, 0.02, 0.05),
            2 => gait(1.4, 0.6, 0.55, 0.6, 1.4, 0.05, 0.15),
            3 => Pose {
                shoulder_abd: [0.1, 2.3 + wave(t)],
                elbow_flex: [elbow_rest, 0.4],
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
            5 => {
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
            // Waving with the left hand: the right-wrist sensor stands still.
            6 => Pose {
                shoulder_abd: [2.3 + wave(t), 0.1],
                elbow_flex: [0.4, elbow_rest],
                ..stand
            },
            // Walking at a brisker tempo (1.05 Hz against 0.9 Hz, × 1.17), the stride otherwise
            // the same: a pair told apart by tempo alone, which the subjects' own tempi (× 0.8–1.2
            // in the benchmark) blur — a designed confusion.
            7 => gait(1.05, 0.35, 0.3, 0.3, 0.3, 0.02, 0.05),
            8 => {
                // Clapping: both forearms forward, hands meeting in front twice a second.
                let open = 0.35 * v * (1.0 + (2.0 * PI * 2.2 * f * t).sin()) / 2.0;
                Pose {
                    shoulder_flex: [0.9; 2],
                    shoulder_abd: [open - 0.2; 2],
                    elbow_flex: [0.9; 2],
                    ..stand
                }
            }
            9 => {
                // Drinking: the right hand slowly to the mouth and back.
                let lift = cycle(0.25);
                Pose {
                    shoulder_flex: [stand.shoulder_flex[0], 0.2 + 0.5 * lift],
                    elbow_flex: [elbow_rest, 0.4 + 1.9 * lift],
                    ..stand
                }
            }
            10 => {
                // Kicking with the right leg; the arms only balance a little.
                let kick = (2.0 * PI * 0.7 * f * t).sin().max(0.0).powi(2);
                Pose {
                    hip_flex: [0.0, 0.1 + 0.9 * v * kick],
                    knee_flex: [0.1, 0.3 + 1.2 * kick * (1.0 - kick)],
                    shoulder_abd: [0.25; 2],
                    ..stand
                }
            }
            _ => {
                // Squatting: slow knee bends, arms forward for balance.
                let down = cycle(0.35);
                let leg = self.thigh + self.shank;
                Pose {
                    pelvis_z: self.leg() - 0.4 * leg * v.min(1.2) * down,
                    trunk_pitch: 0.3 * down,
                    hip_flex: [1.3 * down; 2],
                    knee_flex: [0.05 + 1.9 * down; 2],
                    shoulder_flex: [1.3 * down; 2],
                    shoulder_abd: [0.1; 2],
                    elbow_flex: [elbow_rest; 2],
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
