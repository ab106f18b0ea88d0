//! A seeded mutation fuzzer for the file parsers: valid seed inputs are mutated (bit flips,
//! boundary bytes, absurd numbers spliced into text, cut, repeated and deleted ranges) and
//! fed to each parser; an `Err` is the expected answer to a broken file, a panic is a
//! finding. `tests/fuzz.rs` runs every target a bounded number of times in CI and replays
//! the saved crashing inputs under `tests/fuzz-regressions/<target>/`; `har fuzz` runs longer
//! and saves what it finds there.
//!
//! An allocation failure aborts the process instead of panicking, so a run that survives
//! also shows that no input made a parser try to allocate beyond the machine.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::error::{HarError, Result};
use crate::import::{basic_motions, bvh, hapt, mat, synthetic};
use crate::recording::Recording;
use crate::rng::Rng;

/// A parser under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A recording folder (`<modality>.parquet`, `labels.parquet`): one file mutated.
    Recording,
    /// sktime `.ts` text (BasicMotions).
    Ts,
    /// MAT v5 (UTD-MHAD), compressed or not.
    Mat,
    /// BVH motion capture text.
    Bvh,
    /// HAPT CSV text.
    HaptCsv,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 5] = [
        Target::Recording,
        Target::Ts,
        Target::Mat,
        Target::Bvh,
        Target::HaptCsv,
    ];

    /// The target's name (folder of its regression inputs, `har fuzz --target`).
    pub fn name(self) -> &'static str {
        match self {
            Target::Recording => "recording",
            Target::Ts => "ts",
            Target::Mat => "mat",
            Target::Bvh => "bvh",
            Target::HaptCsv => "hapt-csv",
        }
    }

    /// The target called `name`.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// What a fuzzing run saw.
#[derive(Debug, Default)]
pub struct FuzzReport {
    /// Inputs parsed.
    pub executions: u64,
    /// Inputs rejected with an error (the expected answer to a broken file).
    pub rejected: u64,
    /// Inputs that made the parser panic, with the panic message.
    pub crashes: Vec<(Vec<u8>, String)>,
}

/// The valid seed inputs of a target (built in memory: the fuzzer needs no data set).
pub fn seeds(target: Target, scratch: &Path) -> Result<Vec<Vec<u8>>> {
    Ok(match target {
        Target::Recording => recording_seed(scratch)?,
        Target::Ts => vec![TS_SEED.as_bytes().to_vec()],
        Target::Bvh => vec![BVH_SEED.as_bytes().to_vec()],
        Target::HaptCsv => vec![hapt_seed().into_bytes()],
        Target::Mat => {
            let arrays = [mat::MatArray {
                name: "d_iner".into(),
                dims: vec![4, 6],
                data: (0..24).map(f64::from).collect(),
            }];
            let mut seeds = Vec::new();
            for compress in [false, true] {
                let path = scratch.join(format!("seed-{compress}.mat"));
                mat::write_mat(&path, &arrays, compress)?;
                seeds.push(std::fs::read(&path).map_err(|e| HarError::io(&path, e))?);
            }
            seeds
        }
    })
}

/// Parses one input; `Ok` or `Err` both mean the parser held.
pub fn parse(target: Target, input: &[u8], scratch: &Path) -> Result<()> {
    let text = || String::from_utf8_lossy(input).into_owned();
    match target {
        Target::Ts => basic_motions::parse_ts(Path::new("fuzz.ts"), &text()).map(drop),
        Target::Bvh => bvh::parse_bvh(Path::new("fuzz.bvh"), &text()).map(drop),
        Target::HaptCsv => hapt::parse_csv(Path::new("user01_rec01.csv"), &text()).map(drop),
        Target::Mat => mat::parse_mat(Path::new("fuzz.mat"), input).map(drop),
        Target::Recording => {
            // The mutated file stands in for the recording's accelerometer stream.
            let folder = scratch.join("recording");
            let seed_folder = scratch.join("seed-recording");
            if !folder.exists() {
                copy_folder(&seed_folder, &folder)?;
            }
            let path = folder.join("wrist_acc.parquet");
            std::fs::write(&path, input).map_err(|e| HarError::io(&path, e))?;
            let result = Recording::read(&folder).and_then(|r| r.validate());
            let seed = seed_folder.join("wrist_acc.parquet");
            std::fs::copy(&seed, &path).map_err(|e| HarError::io(&path, e))?;
            result
        }
    }
}

/// Runs `iterations` mutated inputs of `target` from random seed `seed`.
pub fn run(target: Target, iterations: u64, seed: u64, scratch: &Path) -> Result<FuzzReport> {
    let seeds = seeds(target, scratch)?;
    let mut rng = Rng::new(seed);
    let mut report = FuzzReport::default();
    for _ in 0..iterations {
        let base = &seeds[(rng.next_u64() % seeds.len() as u64) as usize];
        let input = mutate(&mut rng, base);
        check(target, &input, scratch, &mut report);
    }
    Ok(report)
}

/// Parses one input under `catch_unwind` and records the outcome.
pub fn check(target: Target, input: &[u8], scratch: &Path, report: &mut FuzzReport) {
    report.executions += 1;
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = catch_unwind(AssertUnwindSafe(|| parse(target, input, scratch)));
    std::panic::set_hook(quiet);
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => report.rejected += 1,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            report.crashes.push((input.to_vec(), message));
        }
    }
}

/// Saved crashing inputs of `target` under `root` (one file each).
pub fn regression_inputs(root: &Path, target: Target) -> Result<Vec<PathBuf>> {
    let dir = root.join(target.name());
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| HarError::io(&dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Text a mutation splices in: the numbers and tokens that break size and time arithmetic.
const INTERESTING: [&str; 14] = [
    "0",
    "-1",
    "1e300",
    "-1e300",
    "NaN",
    "inf",
    "4294967296",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "100000000000",
    "0.5",
    "\u{0}",
    "\n",
];

/// One to four random edits of `base`.
pub fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut data = base.to_vec();
    let edits = 1 + rng.next_u64() % 4;
    for _ in 0..edits {
        let len = data.len().max(1);
        let at = (rng.next_u64() % len as u64) as usize;
        match rng.next_u64() % 7 {
            0 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] ^= 1 << (rng.next_u64() % 8);
            }
            1 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] = [0x00, 0xff, 0x7f, 0x80, b'9', b'-'][(rng.next_u64() % 6) as usize];
            }
            2 => {
                // An absurd number replacing the token at `at` (text formats).
                let token = INTERESTING[(rng.next_u64() % INTERESTING.len() as u64) as usize];
                let start = at.min(data.len());
                let end = data[start..]
                    .iter()
                    .position(|b| b.is_ascii_whitespace() || *b == b',')
                    .map_or(data.len(), |p| start + p);
                data.splice(start..end, token.bytes());
            }
            3 => data.truncate(at),
            4 if !data.is_empty() => {
                let end = (at + 1 + (rng.next_u64() % 64) as usize).min(data.len());
                data.drain(at.min(end)..end);
            }
            5 if !data.is_empty() => {
                let end = (at + 1 + (rng.next_u64() % 256) as usize).min(data.len());
                let piece = data[at.min(end)..end].to_vec();
                let times = 1 + rng.next_u64() % 8;
                for _ in 0..times {
                    data.splice(at..at, piece.iter().copied());
                }
            }
            _ => {
                // A 4- or 8-byte boundary integer overwriting binary fields.
                let value: u64 =
                    [0, u64::MAX, u32::MAX as u64, 1 << 31, 1 << 63][(rng.next_u64() % 5) as usize];
                let width = if rng.next_u64() % 2 == 0 { 4 } else { 8 };
                for (k, byte) in value.to_le_bytes()[..width].iter().enumerate() {
                    if let Some(b) = data.get_mut(at + k) {
                        *b = *byte;
                    }
                }
            }
        }
    }
    data
}

fn copy_folder(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| HarError::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| HarError::io(from, e))? {
        let path = entry.map_err(|e| HarError::io(from, e))?.path();
        let target = to.join(path.file_name().unwrap_or_default());
        std::fs::copy(&path, &target).map_err(|e| HarError::io(&target, e))?;
    }
    Ok(())
}

/// A short synthetic recording written under `scratch/seed-recording`; its accelerometer file is the
/// seed.
fn recording_seed(scratch: &Path) -> Result<Vec<Vec<u8>>> {
    let config = synthetic::SyntheticConfig {
        subjects: 1,
        sessions_per_subject: 1,
        ..Default::default()
    };
    let mut recording = synthetic::generate_recording(&config, 0, 0);
    recording.id = "seed-recording".into();
    recording.streams.retain(|s| s.info.name == "wrist_acc");
    let keep = recording.streams[0].timestamps_ns.len().min(64);
    let stream = &mut recording.streams[0];
    let channels = stream.info.channels();
    stream.timestamps_ns.truncate(keep);
    stream.values.truncate(keep * channels);
    let end = stream.timestamps_ns.last().copied().unwrap_or(0);
    recording.labels.retain(|l| l.end_ns <= end);
    let folder = recording.write(scratch, &|id| format!("class{id}"))?;
    let path = folder.join("wrist_acc.parquet");
    Ok(vec![
        std::fs::read(&path).map_err(|e| HarError::io(&path, e))?
    ])
}

fn hapt_seed() -> String {
    let mut text = String::from("sequence,acc-x,acc-y,acc-z,gyro-x,gyro-y,gyro-z,label\n");
    for i in 0..40 {
        let label = if i < 20 { 1 } else { -1 };
        text.push_str(&format!("{i},1.0,0.1,-0.2,0.01,0.02,0.03,{label}\n"));
    }
    text
}

const TS_SEED: &str = "@problemName Fuzz
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength true
@seriesLength 4
@classLabel true Walking Standing
@data
1.0,2.0,?,4.0:0.5,0.25,0.125,1.0:Walking
-1.0,2.5,3.0,4.5:1e3,2e-3,3,4:Standing
";

const BVH_SEED: &str = "HIERARCHY
ROOT Hips
{
  OFFSET 0.0 0.0 0.0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Spine
  {
    OFFSET 0.0 5.0 0.0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0.0 5.0 0.0
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.0333333
0 90 0 0 0 0 0 0 0
1 90 0 10 0 0 5 0 0
2 90 0 20 0 0 10 0 0
";
