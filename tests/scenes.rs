//! The scene generator on a SYNTHETIC source dataset whose samples say where they came from
//! (channel 0: the sample's index in its recording, channel 1: the subject, channel 2: the
//! source label): every member's signal is an untouched stretch of its own subject's
//! recording with the step's activity, members of a scene are distinct subjects sharing the
//! scene id as session, roles never share subjects, label sets follow the scripts, and the
//! same seed gives the same scenes.

use har_core::dataset::{ClassInfo, Dataset, DatasetManifest, DatasetWriter, Split};
use har_core::recording::{intervals_from_sample_labels, ModalityInfo, ModalityStream, Recording};
use har_core::scenes::{generate, SceneManifest, SceneRole, SceneSettings, Script};

const BOUT: usize = 300;
const ACTIVITIES: [i32; 6] = [1, 2, 3, 4, 5, 6];

fn source(dir: &std::path::Path) -> Dataset {
    let info = |name| ModalityInfo::inertial(name, 50.0, "u", &["index", "subject", "label"]);
    let manifest = DatasetManifest {
        name: "provenance".into(),
        description: "synthetic: samples name their origin".into(),
        licence: "none".into(),
        citation: "none".into(),
        synthetic: true,
        source: None,
        classes: ClassInfo::numbered(&["W", "U", "D", "SIT", "STAND", "LIE"], 1),
        modalities: vec![info("acc"), info("gyro")],
        recordings: vec![],
    };
    let mut writer = DatasetWriter::create(dir, manifest).unwrap();
    for subject in 1..=8 {
        // Every activity twice, in bouts of BOUT samples.
        let labels: Vec<i32> = (0..2)
            .flat_map(|_| {
                ACTIVITIES
                    .iter()
                    .flat_map(|&a| std::iter::repeat_n(a, BOUT))
            })
            .collect();
        let ts: Vec<i64> = (0..labels.len() as i64).map(|i| i * 20_000_000).collect();
        let values: Vec<f32> = labels
            .iter()
            .enumerate()
            .flat_map(|(i, &l)| [i as f32, subject as f32, l as f32])
            .collect();
        let stream = |name| ModalityStream {
            info: info(name),
            timestamps_ns: ts.clone(),
            values: values.clone(),
        };
        let recording = Recording {
            id: format!("s{subject}"),
            subject_id: subject.to_string(),
            session_id: "1".into(),
            streams: vec![stream("acc"), stream("gyro")],
            labels: intervals_from_sample_labels(&ts, &labels, 20e6),
        };
        let split = if subject <= 6 {
            Split::Train
        } else {
            Split::Test
        };
        writer.add(&recording, split).unwrap();
    }
    writer.finish().unwrap()
}

fn settings(seed: u64) -> SceneSettings {
    SceneSettings {
        seed,
        scenes: [4, 2, 3],
        members_min: 2,
        members_max: 2,
        steps: 6,
        step_samples: 100,
        validation_fraction: 0.4,
    }
}

#[test]
fn scenes_are_real_stretches_of_distinct_subjects_with_scripted_label_sets() {
    let dir = tempfile::tempdir().unwrap();
    let source = source(&dir.path().join("source"));
    let out = dir.path().join("scenes");
    let manifest = generate(&source, &out, &settings(5)).unwrap();
    assert_eq!(manifest, SceneManifest::load(&out).unwrap());
    assert_eq!(manifest.scenes.len(), 9);
    let generated = Dataset::open(&out).unwrap();
    assert!(generated.manifest.synthetic);
    // Roles never share subjects; test scenes use test subjects.
    let train = &manifest.subjects["train"];
    let validation = &manifest.subjects["validation"];
    assert_eq!(validation.len(), 2);
    assert!(train.iter().all(|s| !validation.contains(s)));
    assert_eq!(manifest.subjects["test"], ["7", "8"]);
    for scene in &manifest.scenes {
        let pool = match scene.role {
            SceneRole::Train => train,
            SceneRole::Validation => validation,
            SceneRole::Test => &manifest.subjects["test"],
        };
        let subjects: Vec<&String> = scene.members.iter().map(|m| &m.subject).collect();
        assert_eq!(subjects.len(), 2);
        assert_ne!(subjects[0], subjects[1], "members are distinct people");
        assert!(subjects.iter().all(|s| pool.contains(s)));
        for step in &scene.steps {
            assert_eq!(
                step.script.group_label().is_some(),
                step.script != Script::Independent
            );
            for a in &step.activities {
                assert!(step.labels.contains(a));
            }
            if let Some(g) = step.script.group_label() {
                assert!(step.labels.contains(&g));
            }
            if step.script == Script::Meeting {
                assert!(step.activities.iter().all(|&a| a == 4));
            }
        }
        for (m, member) in scene.members.iter().enumerate() {
            let entry = generated
                .manifest
                .recordings
                .iter()
                .find(|e| e.id == member.recording)
                .unwrap();
            assert_eq!(entry.session_id, scene.id, "the scene id is the session");
            let recording = generated.read(entry).unwrap();
            let acc = recording.stream("acc").unwrap();
            assert_eq!(acc.len(), 6 * 100);
            for (s, step) in scene.steps.iter().enumerate() {
                let rows = &acc.values[s * 300..(s + 1) * 300];
                let first = rows[0];
                for (k, row) in rows.chunks_exact(3).enumerate() {
                    assert_eq!(row[0], first + k as f32, "a contiguous stretch");
                    assert_eq!(
                        row[1],
                        member.subject.parse::<f32>().unwrap(),
                        "own subject"
                    );
                    assert_eq!(row[2], step.activities[m] as f32, "the step's activity");
                }
            }
            assert_eq!(
                recording.labels_at(&acc.timestamps_ns)[150],
                scene.steps[1].activities[m]
            );
        }
    }
    // The same seed, the same scenes; another seed, others.
    let again = generate(&source, &dir.path().join("again"), &settings(5)).unwrap();
    assert_eq!(again.scenes, manifest.scenes);
    let other = generate(&source, &dir.path().join("other"), &settings(6)).unwrap();
    assert_ne!(other.scenes, manifest.scenes);
}

#[test]
fn impossible_settings_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let source = source(&dir.path().join("source"));
    let mut s = settings(1);
    s.members_max = 3; // only two test subjects
    let err = generate(&source, &dir.path().join("x"), &s)
        .unwrap_err()
        .to_string();
    assert!(err.contains("members"), "{err}");
    let mut s = settings(1);
    s.members_min = 1;
    assert!(generate(&source, &dir.path().join("y"), &s).is_err());
}
