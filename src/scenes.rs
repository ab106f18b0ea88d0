//! Scenes: several people wearing sensors in the same place at the same time (issue 20). No
//! public multi-person wearable set is reachable here, so scenes are **generated** from real
//! single-person recordings (HAPT) — semi-synthetic: every member's signal is a real recording
//! of one subject, cut into stretches of one activity and laid end to end, values untouched;
//! only the composition (who does what when, together) is scripted.
//!
//! A scene has 2–4 members, distinct subjects of one pool (training, validation or test
//! subjects), and a sequence of **steps** of `step_samples` samples. Each step follows a
//! script that creates real co-occurrence structure:
//!
//! | script | members | group label |
//! |---|---|---|
//! | walk together | all WALKING | `WALKING_TOGETHER` |
//! | climb together | all WALKING_UPSTAIRS, or all WALKING_DOWNSTAIRS | `CLIMBING_TOGETHER` |
//! | meeting | all SITTING | `MEETING` |
//! | care | one LAYING, the others STANDING | `CARE` |
//! | independent | each an activity drawn on its own | none |
//!
//! A member's recording has subject id = the real subject and session id = the **scene id**:
//! the devices of one scene are those sharing a session id, which is how the dataflow's scene
//! node groups them. `scenes.json` beside the dataset lists each scene's members and steps
//! (scripts, member activities, label set). Everything is drawn from one seed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dataset::{ClassInfo, Dataset, DatasetManifest, DatasetWriter, Split};
use crate::error::{HarError, Result};
use crate::recording::{LabelInterval, ModalityStream, Recording};
use crate::rng::Rng;

/// The scene file's name in a generated dataset.
pub const SCENES_FILE: &str = "scenes.json";

/// Activities a script uses (HAPT's ids).
pub const WALKING: i32 = 1;
/// Walking upstairs.
pub const UPSTAIRS: i32 = 2;
/// Walking downstairs.
pub const DOWNSTAIRS: i32 = 3;
/// Sitting.
pub const SITTING: i32 = 4;
/// Standing.
pub const STANDING: i32 = 5;
/// Lying.
pub const LAYING: i32 = 6;

/// The group labels, ids after the activities'.
pub fn group_labels() -> Vec<ClassInfo> {
    ClassInfo::numbered(
        &["WALKING_TOGETHER", "CLIMBING_TOGETHER", "MEETING", "CARE"],
        101,
    )
}

/// What a step's members do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Script {
    /// All walk.
    WalkTogether,
    /// All climb the stairs, up or down.
    ClimbTogether,
    /// All sit.
    Meeting,
    /// One lies, the others stand by.
    Care,
    /// Each does an activity of their own.
    Independent,
}

impl Script {
    /// The group label id of the script, if any.
    pub fn group_label(self) -> Option<i32> {
        match self {
            Script::WalkTogether => Some(101),
            Script::ClimbTogether => Some(102),
            Script::Meeting => Some(103),
            Script::Care => Some(104),
            Script::Independent => None,
        }
    }

    /// Draws the members' activities.
    fn activities(self, members: usize, rng: &mut Rng) -> Vec<i32> {
        let pick = |rng: &mut Rng, n: usize| (rng.next_u64() % n as u64) as usize;
        match self {
            Script::WalkTogether => vec![WALKING; members],
            Script::ClimbTogether => {
                vec![[UPSTAIRS, DOWNSTAIRS][pick(rng, 2)]; members]
            }
            Script::Meeting => vec![SITTING; members],
            Script::Care => {
                let lying = pick(rng, members);
                (0..members)
                    .map(|i| if i == lying { LAYING } else { STANDING })
                    .collect()
            }
            Script::Independent => (0..members)
                .map(|_| [WALKING, UPSTAIRS, DOWNSTAIRS, SITTING, STANDING, LAYING][pick(rng, 6)])
                .collect(),
        }
    }
}

/// Which subjects a scene's members come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SceneRole {
    /// Training subjects (minus the validation ones).
    Train,
    /// Training subjects held out for choices.
    Validation,
    /// Test subjects.
    Test,
}

/// How scenes are generated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneSettings {
    /// Seed of every draw.
    pub seed: u64,
    /// Scenes per role: train, validation, test.
    pub scenes: [usize; 3],
    /// Fewest members of a scene.
    pub members_min: usize,
    /// Most members of a scene.
    pub members_max: usize,
    /// Steps per scene.
    pub steps: usize,
    /// Samples per step (512 = 10.24 s at 50 Hz).
    pub step_samples: usize,
    /// Share of the training subjects held out for validation scenes.
    pub validation_fraction: f64,
}

impl Default for SceneSettings {
    fn default() -> Self {
        Self {
            seed: 1,
            scenes: [120, 30, 40],
            members_min: 2,
            members_max: 4,
            steps: 12,
            step_samples: 512,
            validation_fraction: 0.2,
        }
    }
}

/// One step of a scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneStep {
    /// The script.
    pub script: Script,
    /// Each member's activity, in member order.
    pub activities: Vec<i32>,
    /// The scene's label set: the distinct activities and the group label, ascending.
    pub labels: Vec<i32>,
}

/// One member of a scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneMember {
    /// The member's recording id in the generated dataset.
    pub recording: String,
    /// The real subject.
    pub subject: String,
}

/// One generated scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// Scene id (the members' session id).
    pub id: String,
    /// Which subjects it was drawn from.
    pub role: SceneRole,
    /// Members in order.
    pub members: Vec<SceneMember>,
    /// Steps in order; step `s` covers samples `[s · step_samples, (s + 1) · step_samples)`.
    pub steps: Vec<SceneStep>,
}

/// `scenes.json`: the generator's settings, the label space and every scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneManifest {
    /// How they were generated.
    pub settings: SceneSettings,
    /// The source dataset's name.
    pub source: String,
    /// Activities (the source's classes the scripts use).
    pub activities: Vec<ClassInfo>,
    /// Group labels.
    pub groups: Vec<ClassInfo>,
    /// The subjects of each role.
    pub subjects: BTreeMap<String, Vec<String>>,
    /// The scenes.
    pub scenes: Vec<Scene>,
}

impl SceneManifest {
    /// Reads `scenes.json` of a generated dataset.
    pub fn load(dataset: &Path) -> Result<Self> {
        let path = dataset.join(SCENES_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| HarError::io(&path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| HarError::invalid(path.display().to_string(), "scenes", e.to_string()))
    }

    /// Every label of the label set space: activities, then groups.
    pub fn label_space(&self) -> Vec<ClassInfo> {
        self.activities
            .iter()
            .chain(&self.groups)
            .cloned()
            .collect()
    }
}

/// A stretch of one activity in a source recording: which recording, first sample, samples.
#[derive(Debug, Clone, Copy)]
struct Bout {
    recording: usize,
    start: usize,
    len: usize,
}

/// The scene label set of one step.
fn label_set(script: Script, activities: &[i32]) -> Vec<i32> {
    let mut labels: Vec<i32> = activities.to_vec();
    labels.extend(script.group_label());
    labels.sort_unstable();
    labels.dedup();
    labels
}

fn draw_script(rng: &mut Rng) -> Script {
    // Weights: together scripts most of the time, as in a ward or a team.
    const SCRIPTS: [(Script, u64); 5] = [
        (Script::WalkTogether, 20),
        (Script::ClimbTogether, 15),
        (Script::Meeting, 20),
        (Script::Care, 20),
        (Script::Independent, 25),
    ];
    let mut x = rng.next_u64() % 100;
    for (script, weight) in SCRIPTS {
        if x < weight {
            return script;
        }
        x -= weight;
    }
    Script::Independent
}

/// Generates scenes from `source` (a dataset with HAPT's activity ids; every modality of a
/// recording sampled on the same timestamps) and writes them as a dataset at `out`, with
/// `scenes.json` beside its manifest.
pub fn generate(source: &Dataset, out: &Path, settings: &SceneSettings) -> Result<SceneManifest> {
    if settings.members_min < 2 || settings.members_max < settings.members_min {
        return Err(HarError::invalid(
            "scene settings",
            "members",
            format!(
                "{}..={} (at least 2)",
                settings.members_min, settings.members_max
            ),
        ));
    }
    if settings.steps == 0 || settings.step_samples == 0 {
        return Err(HarError::invalid(
            "scene settings",
            "steps",
            "must be positive",
        ));
    }
    let mut rng = Rng::new(settings.seed);
    // Subjects per role.
    let mut train: Vec<String> = source.manifest.subjects(Split::Train).into_iter().collect();
    rng.shuffle(&mut train);
    let held = ((train.len() as f64 * settings.validation_fraction).round() as usize)
        .clamp(1, train.len().saturating_sub(1).max(1));
    let validation = train.split_off(train.len() - held);
    let test: Vec<String> = source.manifest.subjects(Split::Test).into_iter().collect();
    let pools = [
        (SceneRole::Train, train),
        (SceneRole::Validation, validation),
        (SceneRole::Test, test),
    ];
    // Every recording read once; bouts of at least one step per (subject, activity).
    let entries: Vec<_> = source.manifest.recordings.clone();
    let mut recordings = Vec::with_capacity(entries.len());
    let mut bouts: BTreeMap<(String, i32), Vec<Bout>> = BTreeMap::new();
    for (r, entry) in entries.iter().enumerate() {
        let recording = source.read(entry)?;
        let times = &recording.streams[0].timestamps_ns;
        if recording.streams.iter().any(|s| &s.timestamps_ns != times) {
            return Err(HarError::invalid(
                &recording.id,
                "streams",
                "modalities on different timestamps: scenes need them sampled together",
            ));
        }
        let labels = recording.labels_at(times);
        let mut start = 0;
        while start < labels.len() {
            let mut end = start;
            while end < labels.len() && labels[end] == labels[start] {
                end += 1;
            }
            if end - start >= settings.step_samples && (WALKING..=LAYING).contains(&labels[start]) {
                bouts
                    .entry((entry.subject_id.clone(), labels[start]))
                    .or_default()
                    .push(Bout {
                        recording: r,
                        start,
                        len: end - start,
                    });
            }
            start = end;
        }
        recordings.push(recording);
    }
    let manifest = DatasetManifest {
        name: format!("{}-scenes", source.manifest.name),
        description: format!(
            "SEMI-SYNTHETIC scenes generated from {} (har scene generate, seed {}): each member's \
             signal is real, cut into one-activity stretches of {} samples laid end to end; the \
             composition is scripted (see scenes.json).",
            source.manifest.name, settings.seed, settings.step_samples
        ),
        licence: source.manifest.licence.clone(),
        citation: source.manifest.citation.clone(),
        synthetic: true,
        source: source.manifest.source.clone(),
        classes: source.manifest.classes.clone(),
        modalities: source.manifest.modalities.clone(),
        recordings: Vec::new(),
    };
    let mut writer = DatasetWriter::create(out, manifest)?;
    let mut scenes = Vec::new();
    for ((role, pool), count) in pools.iter().zip(settings.scenes) {
        for _ in 0..count {
            let id = format!("scene{:03}", scenes.len());
            let scene = draw_scene(&id, *role, pool, &bouts, settings, &mut rng)?;
            for (m, member) in scene.members.iter().enumerate() {
                let recording =
                    member_recording(&scene, m, member, &recordings, &bouts, settings, &mut rng)?;
                let split = if *role == SceneRole::Test {
                    Split::Test
                } else {
                    Split::Train
                };
                writer.add(&recording, split)?;
            }
            scenes.push(scene);
        }
    }
    writer.finish()?;
    let scene_manifest = SceneManifest {
        settings: settings.clone(),
        source: source.manifest.name.clone(),
        activities: source
            .manifest
            .classes
            .iter()
            .filter(|c| (WALKING..=LAYING).contains(&c.id))
            .cloned()
            .collect(),
        groups: group_labels(),
        subjects: pools
            .iter()
            .map(|(role, pool)| (format!("{role:?}").to_lowercase(), pool.clone()))
            .collect(),
        scenes,
    };
    let path = out.join(SCENES_FILE);
    let json = serde_json::to_string_pretty(&scene_manifest)
        .map_err(|e| HarError::invalid(path.display().to_string(), "scenes", e.to_string()))?;
    std::fs::write(&path, json).map_err(|e| HarError::io(&path, e))?;
    Ok(scene_manifest)
}

/// Draws a scene's members and scripts (members who lack a bout of an activity never get it:
/// the script is drawn again).
fn draw_scene(
    id: &str,
    role: SceneRole,
    pool: &[String],
    bouts: &BTreeMap<(String, i32), Vec<Bout>>,
    settings: &SceneSettings,
    rng: &mut Rng,
) -> Result<Scene> {
    let span = (settings.members_max - settings.members_min + 1) as u64;
    let wanted = settings.members_min + (rng.next_u64() % span) as usize;
    if pool.len() < wanted {
        return Err(HarError::invalid(
            "scene settings",
            "members",
            format!("{wanted} members but only {} {role:?} subjects", pool.len()),
        ));
    }
    let mut order: Vec<&String> = pool.iter().collect();
    rng.shuffle(&mut order);
    let members: Vec<SceneMember> = order[..wanted]
        .iter()
        .enumerate()
        .map(|(m, subject)| SceneMember {
            recording: format!("{id}_m{m}"),
            subject: (*subject).clone(),
        })
        .collect();
    let mut steps = Vec::with_capacity(settings.steps);
    while steps.len() < settings.steps {
        let script = draw_script(rng);
        let activities = script.activities(wanted, rng);
        let available = members
            .iter()
            .zip(&activities)
            .all(|(m, a)| bouts.contains_key(&(m.subject.clone(), *a)));
        if available {
            steps.push(SceneStep {
                labels: label_set(script, &activities),
                script,
                activities,
            });
        }
    }
    Ok(Scene {
        id: id.to_string(),
        role,
        members,
        steps,
    })
}

/// Member `m`'s recording: for each step, a random stretch of one of the subject's bouts of
/// the step's activity, laid end to end on a fresh clock at the source's rate.
fn member_recording(
    scene: &Scene,
    m: usize,
    member: &SceneMember,
    recordings: &[Recording],
    bouts: &BTreeMap<(String, i32), Vec<Bout>>,
    settings: &SceneSettings,
    rng: &mut Rng,
) -> Result<Recording> {
    let n = settings.step_samples;
    let first = &recordings[0];
    let mut streams: Vec<ModalityStream> = first
        .streams
        .iter()
        .map(|s| ModalityStream {
            info: s.info.clone(),
            timestamps_ns: Vec::new(),
            values: Vec::new(),
        })
        .collect();
    let period = 1e9 / first.streams[0].info.sample_rate_hz;
    let mut labels = Vec::with_capacity(scene.steps.len());
    for (s, step) in scene.steps.iter().enumerate() {
        let activity = step.activities[m];
        let options = &bouts[&(member.subject.clone(), activity)];
        let bout = options[(rng.next_u64() % options.len() as u64) as usize];
        let offset = bout.start + (rng.next_u64() % (bout.len - n + 1) as u64) as usize;
        let source = &recordings[bout.recording];
        for (out, stream) in streams.iter_mut().zip(&source.streams) {
            let c = stream.info.channels();
            out.values
                .extend_from_slice(&stream.values[offset * c..(offset + n) * c]);
        }
        let start_ns = ((s * n) as f64 * period).round() as i64;
        let end_ns = (((s + 1) * n) as f64 * period).round() as i64;
        labels.push(LabelInterval {
            start_ns,
            end_ns,
            label: activity,
        });
    }
    let total = scene.steps.len() * n;
    for stream in &mut streams {
        stream.timestamps_ns = (0..total)
            .map(|k| (k as f64 * period).round() as i64)
            .collect();
    }
    // Consecutive steps of one activity form one interval.
    let mut merged: Vec<LabelInterval> = Vec::new();
    for l in labels {
        match merged.last_mut() {
            Some(last) if last.label == l.label && last.end_ns == l.start_ns => {
                last.end_ns = l.end_ns
            }
            _ => merged.push(l),
        }
    }
    Ok(Recording {
        id: member.recording.clone(),
        subject_id: member.subject.clone(),
        session_id: scene.id.clone(),
        streams,
        labels: merged,
    })
}
