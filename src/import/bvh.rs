//! BVH motion capture (e.g. the CMU BVH conversion in Debian's `assimp-testmodels`, 120 Hz,
//! 31 joints): hierarchy and motion parsing, and forward kinematics to 3-D joint positions,
//! which become a skeleton modality. End sites are not joints of the output. A file with fewer
//! motion lines than its `Frames:` line declares is an error (truncated); extra lines are kept.

use std::path::{Path, PathBuf};

use crate::dataset::{Dataset, DatasetManifest, DatasetWriter, Split};
use crate::error::{HarError, Result};
use crate::recording::{ModalityInfo, ModalityStream, Recording, SkeletonLayout};

/// One channel of a BVH joint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Translation along axis 0/1/2 (x/y/z).
    Position(usize),
    /// Rotation in degrees about axis 0/1/2.
    Rotation(usize),
}

/// A joint of the hierarchy.
#[derive(Debug, Clone, PartialEq)]
pub struct BvhJoint {
    /// Joint name.
    pub name: String,
    /// Parent joint index.
    pub parent: Option<usize>,
    /// Offset from the parent, in the file's units.
    pub offset: [f64; 3],
    /// Channels in file order.
    pub channels: Vec<Channel>,
    /// Index of this joint's first channel within a frame.
    pub first_channel: usize,
}

/// A parsed BVH file.
#[derive(Debug, Clone, PartialEq)]
pub struct Bvh {
    /// Joints in file order (the root first).
    pub joints: Vec<BvhJoint>,
    /// Seconds per frame.
    pub frame_time_s: f64,
    /// Frames × channels.
    pub frames: Vec<Vec<f64>>,
}

struct Tokens<'a> {
    path: &'a Path,
    words: Vec<(usize, &'a str)>,
    pos: usize,
}

impl<'a> Tokens<'a> {
    /// Line of the word read last (the one an error is about).
    fn line(&self) -> usize {
        self.words
            .get(self.pos.saturating_sub(1))
            .map_or(0, |w| w.0)
    }
    fn error(&self, problem: impl Into<String>) -> HarError {
        HarError::format(self.path, format!("line {}", self.line()), problem)
    }
    fn next(&mut self) -> Result<&'a str> {
        let word = self
            .words
            .get(self.pos)
            .map(|w| w.1)
            .ok_or_else(|| self.error("unexpected end of file"))?;
        self.pos += 1;
        Ok(word)
    }
    fn expect(&mut self, word: &str) -> Result<()> {
        let got = self.next()?;
        if got.eq_ignore_ascii_case(word) {
            Ok(())
        } else {
            Err(self.error(format!("expected `{word}`, found `{got}`")))
        }
    }
    fn number(&mut self) -> Result<f64> {
        let word = self.next()?;
        word.parse()
            .map_err(|_| self.error(format!("`{word}` is not a number")))
    }
}

/// Joints a hierarchy may have (and so the nesting depth of joint blocks, which are parsed
/// recursively): real skeletons have tens.
const MAX_JOINTS: usize = 1024;

/// Parses a joint block after its `ROOT`/`JOINT` keyword.
fn parse_joint(
    tokens: &mut Tokens,
    parent: Option<usize>,
    joints: &mut Vec<BvhJoint>,
    channel_count: &mut usize,
) -> Result<()> {
    let name = tokens.next()?.to_string();
    tokens.expect("{")?;
    tokens.expect("OFFSET")?;
    let offset = [tokens.number()?, tokens.number()?, tokens.number()?];
    if joints.len() >= MAX_JOINTS {
        return Err(tokens.error(format!("more than {MAX_JOINTS} joints")));
    }
    tokens.expect("CHANNELS")?;
    let declared = tokens.number()?;
    if !(declared.fract() == 0.0 && (0.0..=6.0).contains(&declared)) {
        return Err(tokens.error(format!("CHANNELS {declared}: a joint has 0 to 6 channels")));
    }
    let n = declared as usize;
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n {
        let word = tokens.next()?;
        let axis = match word.chars().next().map(|c| c.to_ascii_lowercase()) {
            Some('x') => 0,
            Some('y') => 1,
            Some('z') => 2,
            _ => return Err(tokens.error(format!("unknown channel `{word}`"))),
        };
        channels.push(match word.to_ascii_lowercase().get(1..) {
            Some("position") => Channel::Position(axis),
            Some("rotation") => Channel::Rotation(axis),
            _ => return Err(tokens.error(format!("unknown channel `{word}`"))),
        });
    }
    let index = joints.len();
    joints.push(BvhJoint {
        name,
        parent,
        offset,
        channels,
        first_channel: *channel_count,
    });
    *channel_count += n;
    loop {
        let word = tokens.next()?;
        match word {
            "}" => return Ok(()),
            w if w.eq_ignore_ascii_case("JOINT") => {
                parse_joint(tokens, Some(index), joints, channel_count)?
            }
            w if w.eq_ignore_ascii_case("End") => {
                tokens.expect("Site")?;
                tokens.expect("{")?;
                tokens.expect("OFFSET")?;
                for _ in 0..3 {
                    tokens.number()?;
                }
                tokens.expect("}")?;
            }
            other => return Err(tokens.error(format!("unexpected `{other}` in joint block"))),
        }
    }
}

/// Parses BVH text (`path` names the source in errors).
pub fn parse_bvh(path: &Path, text: &str) -> Result<Bvh> {
    let (head, motion) = text.split_once("MOTION").ok_or_else(|| {
        HarError::format(path, "MOTION", "missing MOTION section (truncated file?)")
    })?;
    let words = head
        .lines()
        .enumerate()
        .flat_map(|(i, line)| line.split_whitespace().map(move |w| (i + 1, w)))
        .collect();
    let mut tokens = Tokens {
        path,
        words,
        pos: 0,
    };
    tokens.expect("HIERARCHY")?;
    tokens.expect("ROOT")?;
    let mut joints = Vec::new();
    let mut channel_count = 0;
    parse_joint(&mut tokens, None, &mut joints, &mut channel_count)?;

    let motion_line = head.lines().count();
    let mut lines = motion
        .lines()
        .enumerate()
        .map(|(i, l)| (i + motion_line, l))
        .filter(|(_, l)| !l.trim().is_empty());
    let mut header_value = |key: &str| -> Result<f64> {
        let (n, line) = lines
            .next()
            .ok_or_else(|| HarError::format(path, key, "missing"))?;
        let value = line.trim().strip_prefix(key).ok_or_else(|| {
            HarError::format(path, format!("line {n}"), format!("expected `{key}`"))
        })?;
        super::parse_f64(path, || format!("line {n}, {key}"), value)
    };
    let declared_frames = header_value("Frames:")?;
    if !(declared_frames.fract() == 0.0 && declared_frames >= 0.0) {
        return Err(HarError::format(
            path,
            "Frames",
            format!("{declared_frames} is not a frame count"),
        ));
    }
    // The count only checks the motion lines; memory follows the lines really there.
    let frame_count = declared_frames.min(usize::MAX as f64) as usize;
    let frame_time_s = header_value("Frame Time:")?;
    if frame_time_s.is_nan() || frame_time_s <= 0.0 {
        return Err(HarError::format(path, "Frame Time", "must be positive"));
    }
    let mut frames = Vec::new();
    for (n, line) in lines {
        let values = line
            .split_whitespace()
            .map(|w| super::parse_f64(path, || format!("line {n}"), w))
            .collect::<Result<Vec<f64>>>()?;
        if values.len() != channel_count {
            return Err(HarError::format(
                path,
                format!("line {n}"),
                format!(
                    "{} values, the hierarchy has {channel_count} channels",
                    values.len()
                ),
            ));
        }
        frames.push(values);
    }
    // Fewer frames than declared means a truncated file; some exporters write one more frame
    // than they declare, which is kept (and logged).
    if frames.len() < frame_count {
        return Err(HarError::format(
            path,
            "Frames",
            format!(
                "declares {frame_count} frames, file has {} (truncated?)",
                frames.len()
            ),
        ));
    }
    if frames.len() > frame_count {
        tracing::warn!(file = %path.display(), declared = frame_count, found = frames.len(), "more frames than declared; keeping all");
    }
    Ok(Bvh {
        joints,
        frame_time_s,
        frames,
    })
}

type Mat3 = [[f64; 3]; 3];

fn mat_mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

fn mat_vec(a: &Mat3, v: &[f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|i| (0..3).map(|k| a[i][k] * v[k]).sum())
}

/// Rotation by `degrees` about axis 0/1/2.
pub fn axis_rotation(axis: usize, degrees: f64) -> Mat3 {
    let (s, c) = degrees.to_radians().sin_cos();
    match axis {
        0 => [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]],
        1 => [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]],
        _ => [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]],
    }
}

impl Bvh {
    /// World positions of every joint in one frame (joints × 3). Each joint's local transform
    /// is its offset plus position channels, then its rotation channels applied in file order
    /// (`Zrotation Yrotation Xrotation` gives R = Rz·Ry·Rx).
    pub fn joint_positions(&self, frame: usize) -> Vec<[f64; 3]> {
        let values = &self.frames[frame];
        let mut rotations: Vec<Mat3> = Vec::with_capacity(self.joints.len());
        let mut positions: Vec<[f64; 3]> = Vec::with_capacity(self.joints.len());
        for joint in &self.joints {
            let mut translation = joint.offset;
            let mut local = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
            for (k, channel) in joint.channels.iter().enumerate() {
                let v = values[joint.first_channel + k];
                match *channel {
                    Channel::Position(axis) => translation[axis] += v,
                    Channel::Rotation(axis) => local = mat_mul(&local, &axis_rotation(axis, v)),
                }
            }
            let (rotation, position) = match joint.parent {
                None => (local, translation),
                Some(p) => {
                    let moved = mat_vec(&rotations[p], &translation);
                    (
                        mat_mul(&rotations[p], &local),
                        [0, 1, 2].map(|a| positions[p][a] + moved[a]),
                    )
                }
            };
            rotations.push(rotation);
            positions.push(position);
        }
        positions
    }

    /// The skeleton layout: joints, parents, the root as centre, and the neck (or the last
    /// spine joint) as torso top.
    pub fn layout(&self) -> SkeletonLayout {
        let find = |needle: &str| {
            self.joints
                .iter()
                .position(|j| j.name.to_ascii_lowercase().contains(needle))
        };
        let torso_top = find("neck")
            .or_else(|| {
                self.joints
                    .iter()
                    .rposition(|j| j.name.to_ascii_lowercase().contains("spine"))
            })
            .unwrap_or(if self.joints.len() > 1 { 1 } else { 0 });
        SkeletonLayout {
            joints: self.joints.iter().map(|j| j.name.clone()).collect(),
            parents: self.joints.iter().map(|j| j.parent).collect(),
            centre_joint: 0,
            torso_top_joint: torso_top,
        }
    }

    /// The motion as a skeleton stream of world joint positions.
    pub fn to_stream(&self, name: &str, units: &str) -> ModalityStream {
        let rate = 1.0 / self.frame_time_s;
        let info = ModalityInfo::skeleton(name, rate, units, self.layout());
        let values = (0..self.frames.len())
            .flat_map(|f| self.joint_positions(f))
            .flat_map(|p| p.map(|v| v as f32))
            .collect();
        ModalityStream {
            info,
            timestamps_ns: (0..self.frames.len())
                .map(|f| (f as f64 * self.frame_time_s * 1e9).round() as i64)
                .collect(),
            values,
        }
    }
}

/// Reads a BVH file.
pub fn read_bvh(path: &Path) -> Result<Bvh> {
    let text = std::fs::read_to_string(path).map_err(|e| HarError::io(path, e))?;
    parse_bvh(path, &text)
}

/// Imports every `.bvh` file in `dir` (unlabelled mocap, all in the train split) into a dataset.
/// The first file (by name) fixes the skeleton; files with other joints are skipped, logged and
/// returned, since one dataset has one skeleton layout.
pub fn import(dir: &Path, out: &Path) -> Result<(Dataset, Vec<PathBuf>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| HarError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("bvh")))
        .collect();
    files.sort();
    let first = files
        .first()
        .ok_or_else(|| HarError::format(dir, "files", "no .bvh files"))?;
    let reference = read_bvh(first)?.to_stream("skeleton", "bvh units").info;
    let reference_joints = reference.channel_names.clone();
    let manifest = DatasetManifest {
        name: "cmu_bvh".into(),
        description: "CMU Graphics Lab motion capture (BVH conversion): unlabelled skeleton motion".into(),
        licence: "free for research and commercial use (CMU); BVH conversion by B. Hahne, no added restrictions".into(),
        citation: "The data used in this project was obtained from mocap.cs.cmu.edu. The database was created with \
                   funding from NSF EIA-0196217."
            .into(),
        synthetic: false,
        source: None,
        classes: Vec::new(),
        modalities: vec![reference],
        recordings: Vec::new(),
    };
    let mut writer = DatasetWriter::create(out, manifest)?;
    let mut skipped = Vec::new();
    for path in &files {
        let stream = read_bvh(path)?.to_stream("skeleton", "bvh units");
        if stream.info.channel_names != reference_joints {
            tracing::warn!(file = %path.display(), "skipping: its skeleton differs from the first file's");
            skipped.push(path.clone());
            continue;
        }
        let id = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let recording = Recording {
            subject_id: id.split('_').next().unwrap_or("unknown").to_string(),
            session_id: id.clone(),
            id,
            streams: vec![stream],
            labels: Vec::new(),
        };
        writer
            .add(&recording, Split::Train)
            .map_err(|e| HarError::format(path, "skeleton", e.to_string()))?;
    }
    Ok((writer.finish()?, skipped))
}
