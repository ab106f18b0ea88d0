//! UTD-MHAD (Chen, Jafari, Kehtarnavaz 2015): 27 actions × 8 subjects × 4 trials, a wearable
//! inertial sensor (`a{A}_s{S}_t{T}_inertial.mat`, variable `d_iner`, N × 6: acc x,y,z in g,
//! gyro x,y,z in deg/s, 50 Hz) and Kinect v1 skeletons (`a{A}_s{S}_t{T}_skeleton.mat`,
//! variable `d_skel`, 20 joints × 3 × T in metres, 30 Hz). Researchers hold it locally; the
//! importer walks a root folder for files of exactly that layout. Both streams of a trial are
//! taken to start together (t = 0). Split: odd subjects train, even subjects test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::mat::read_variable;
use crate::dataset::{ClassInfo, Dataset, DatasetManifest, DatasetWriter, Split};
use crate::error::{HarError, Result};
use crate::recording::{LabelInterval, ModalityInfo, ModalityStream, Recording, SkeletonLayout};

/// Inertial sample rate.
pub const INERTIAL_RATE_HZ: f64 = 50.0;
/// Skeleton frame rate.
pub const SKELETON_RATE_HZ: f64 = 30.0;

/// Kinect v1 joints in UTD-MHAD order.
pub const JOINTS: [&str; 20] = [
    "head",
    "shoulder_center",
    "spine",
    "hip_center",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "left_hand",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "right_hand",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_foot",
    "right_hip",
    "right_knee",
    "right_ankle",
    "right_foot",
];
/// Parent of each joint (Kinect v1 tree rooted at the hip centre).
const PARENTS: [Option<usize>; 20] = [
    Some(1),
    Some(2),
    Some(3),
    None,
    Some(1),
    Some(4),
    Some(5),
    Some(6),
    Some(1),
    Some(8),
    Some(9),
    Some(10),
    Some(3),
    Some(12),
    Some(13),
    Some(14),
    Some(3),
    Some(16),
    Some(17),
    Some(18),
];

/// The 27 action names, for labels 1..=27.
pub const ACTIONS: [&str; 27] = [
    "right_arm_swipe_left",
    "right_arm_swipe_right",
    "right_hand_wave",
    "two_hand_front_clap",
    "right_arm_throw",
    "cross_arms_in_chest",
    "basketball_shoot",
    "right_hand_draw_x",
    "right_hand_draw_circle_cw",
    "right_hand_draw_circle_ccw",
    "draw_triangle",
    "bowling",
    "front_boxing",
    "baseball_swing_from_right",
    "tennis_right_hand_forehand_swing",
    "arm_curl",
    "tennis_serve",
    "two_hand_push",
    "right_hand_knock_on_door",
    "right_hand_catch_object",
    "right_hand_pick_up_and_throw",
    "jogging_in_place",
    "walking_in_place",
    "sit_to_stand",
    "stand_to_sit",
    "forward_lunge",
    "squat",
];

/// The UTD-MHAD modalities: acc (g), gyro (deg/s) at 50 Hz, skeleton (m) at 30 Hz.
pub fn modalities() -> Vec<ModalityInfo> {
    vec![
        ModalityInfo::inertial("acc", INERTIAL_RATE_HZ, "g", &["x", "y", "z"]),
        ModalityInfo::inertial("gyro", INERTIAL_RATE_HZ, "deg/s", &["x", "y", "z"]),
        ModalityInfo::skeleton(
            "skeleton",
            SKELETON_RATE_HZ,
            "m",
            SkeletonLayout {
                joints: JOINTS.iter().map(|j| j.to_string()).collect(),
                parents: PARENTS.to_vec(),
                centre_joint: 3,
                torso_top_joint: 1,
            },
        ),
    ]
}

/// Trial key (action, subject, trial) parsed from `a{A}_s{S}_t{T}_{kind}.mat`.
pub fn parse_file_name(path: &Path) -> Option<((u32, u32, u32), String)> {
    let stem = path.file_stem()?.to_str()?;
    let mut parts = stem.splitn(4, '_');
    let a = parts.next()?.strip_prefix('a')?.parse().ok()?;
    let s = parts.next()?.strip_prefix('s')?.parse().ok()?;
    let t = parts.next()?.strip_prefix('t')?.parse().ok()?;
    Some(((a, s, t), parts.next()?.to_string()))
}

fn timestamps(n: usize, rate: f64) -> Vec<i64> {
    (0..n)
        .map(|i| (i as f64 * 1e9 / rate).round() as i64)
        .collect()
}

/// Reads one trial from its inertial and skeleton files.
pub fn read_trial(key: (u32, u32, u32), inertial: &Path, skeleton: &Path) -> Result<Recording> {
    let (action, subject, trial) = key;
    if !(1..=ACTIONS.len() as u32).contains(&action) {
        return Err(HarError::format(
            inertial,
            "file name",
            format!("unknown action a{action}"),
        ));
    }
    let iner = read_variable(inertial, "d_iner")?;
    if iner.dims.len() != 2 || iner.dims[1] != 6 {
        return Err(HarError::format(
            inertial,
            "variable `d_iner`",
            format!("dimensions {:?}, expected N × 6", iner.dims),
        ));
    }
    let skel = read_variable(skeleton, "d_skel")?;
    if skel.dims.len() != 3 || skel.dims[0] != 20 || skel.dims[1] != 3 {
        return Err(HarError::format(
            skeleton,
            "variable `d_skel`",
            format!("dimensions {:?}, expected 20 × 3 × T", skel.dims),
        ));
    }
    let infos = modalities();
    let n = iner.dims[0];
    let columns = |range: std::ops::Range<usize>| -> Vec<f32> {
        (0..n)
            .flat_map(|row| range.clone().map(move |col| (row, col)))
            .map(|(r, c)| iner.at(&[r, c]) as f32)
            .collect()
    };
    let frames = skel.dims[2];
    let skeleton_values: Vec<f32> = (0..frames)
        .flat_map(|t| (0..20).flat_map(move |j| (0..3).map(move |a| (j, a, t))))
        .map(|(j, a, t)| skel.at(&[j, a, t]) as f32)
        .collect();
    let duration_ns = (n as f64 / INERTIAL_RATE_HZ * 1e9)
        .max(frames as f64 / SKELETON_RATE_HZ * 1e9)
        .round() as i64;
    let streams = vec![
        ModalityStream {
            info: infos[0].clone(),
            timestamps_ns: timestamps(n, INERTIAL_RATE_HZ),
            values: columns(0..3),
        },
        ModalityStream {
            info: infos[1].clone(),
            timestamps_ns: timestamps(n, INERTIAL_RATE_HZ),
            values: columns(3..6),
        },
        ModalityStream {
            info: infos[2].clone(),
            timestamps_ns: timestamps(frames, SKELETON_RATE_HZ),
            values: skeleton_values,
        },
    ];
    Ok(Recording {
        id: format!("a{action:02}_s{subject}_t{trial}"),
        subject_id: subject.to_string(),
        session_id: trial.to_string(),
        streams,
        labels: vec![LabelInterval {
            start_ns: 0,
            end_ns: duration_ns,
            label: action as i32,
        }],
    })
}

/// What an import left out: trials that lacked one of their two files.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ImportReport {
    /// Trials imported.
    pub imported: usize,
    /// Files whose partner file was missing (trial skipped).
    pub unpaired: Vec<PathBuf>,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| HarError::io(dir, e))? {
        let path = entry.map_err(|e| HarError::io(dir, e))?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "mat") {
            out.push(path);
        }
    }
    Ok(())
}

/// Imports every paired trial under `root` into a dataset at `out`. Trials lacking one of the
/// two files are skipped and listed in the report (and logged).
pub fn import(root: &Path, out: &Path) -> Result<(Dataset, ImportReport)> {
    let mut files = Vec::new();
    walk(root, &mut files)?;
    // (action, subject, trial) -> (inertial file, skeleton file)
    type Pair = (Option<PathBuf>, Option<PathBuf>);
    let mut trials: BTreeMap<(u32, u32, u32), Pair> = BTreeMap::new();
    for path in files {
        match parse_file_name(&path) {
            Some((key, kind)) if kind == "inertial" => {
                trials.entry(key).or_default().0 = Some(path)
            }
            Some((key, kind)) if kind == "skeleton" => {
                trials.entry(key).or_default().1 = Some(path)
            }
            _ => {} // depth, RGB or unrelated files
        }
    }
    if trials.is_empty() {
        return Err(HarError::format(
            root,
            "files",
            "no a{A}_s{S}_t{T}_inertial.mat / _skeleton.mat files",
        ));
    }
    let manifest = DatasetManifest {
        name: "utd_mhad".into(),
        description: "UTD-MHAD: 27 actions, 8 subjects, wearable inertial sensor + Kinect skeleton".into(),
        licence: "research use, as distributed by the University of Texas at Dallas".into(),
        citation: "C. Chen, R. Jafari, N. Kehtarnavaz. UTD-MHAD: A Multimodal Dataset for Human Action Recognition \
                   Utilizing a Depth Camera and a Wearable Inertial Sensor. ICIP 2015."
            .into(),
        synthetic: false,
        source: None,
        classes: ClassInfo::numbered(&ACTIONS, 1),
        modalities: modalities(),
        recordings: Vec::new(),
    };
    let mut writer = DatasetWriter::create(out, manifest)?;
    let mut report = ImportReport::default();
    for (key, pair) in trials {
        match pair {
            (Some(inertial), Some(skeleton)) => {
                let recording = read_trial(key, &inertial, &skeleton)?;
                let split = if key.1 % 2 == 1 {
                    Split::Train
                } else {
                    Split::Test
                };
                writer.add(&recording, split)?;
                report.imported += 1;
            }
            (one, other) => {
                let path = one.or(other).expect("a trial has at least one file");
                tracing::warn!(file = %path.display(), "skipping trial: its inertial/skeleton partner file is missing");
                report.unpaired.push(path);
            }
        }
    }
    Ok((writer.finish()?, report))
}
