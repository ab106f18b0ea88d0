//! Scene moments for training and evaluation: every generated scene's members windowed as the
//! window classifier was trained (its alignment, window, stride and standardisation), each
//! window run through the classifier on the runtime for its fused feature (the head's input)
//! and its own logits, and the members' windows of one instant gathered into a **moment**.
//! Only windows inside one scene step are kept (a window across two steps has no single
//! scene label set).

use std::collections::BTreeMap;
use std::path::Path;

use har_core::dataset::Dataset;
use har_core::preprocess::{align, extract_windows, LabelPolicy, WindowConfig};
use har_core::scenes::{SceneManifest, SceneRole};
use har_runtime::model_dir::LoadedModel;

use crate::error::{ModelError, Result};

/// One member's window: its fused feature, the classifier's logits, its true activity.
type MemberWindow = (Vec<f32>, Vec<f32>, usize);

/// The members' windows of one instant of one scene.
#[derive(Debug, Clone)]
pub struct Moment {
    /// Index of the scene in the manifest.
    pub scene: usize,
    /// Window start (ns from the scene's start).
    pub start_ns: i64,
    /// Members' fused features, `K × E`.
    pub features: Vec<f32>,
    /// The classifier's own logits per member, `K × A`.
    pub classifier_logits: Vec<f32>,
    /// Each member's true activity, as an index of the classifier's classes.
    pub activities: Vec<usize>,
    /// The scene label set, as indices of [`SceneManifest::label_space`].
    pub labels: Vec<usize>,
}

/// Every moment of the scenes of `role`, in scene and time order; with `dropped`, that
/// modality is left out of every window (a dead sensor: the classifier's degraded features).
pub fn moments(
    dataset_dir: &Path,
    manifest: &SceneManifest,
    classifier: &mut LoadedModel,
    role: SceneRole,
    dropped: Option<&str>,
) -> Result<Vec<Moment>> {
    let dataset = Dataset::open(dataset_dir)?;
    let space: Vec<i32> = manifest.label_space().iter().map(|c| c.id).collect();
    let classes: Vec<i32> = classifier.card.classes.iter().map(|c| c.id).collect();
    let step_samples = manifest.settings.step_samples;
    let window = WindowConfig {
        label_policy: LabelPolicy::Pure,
        ..classifier.card.preprocess.window
    };
    let mut out = Vec::new();
    for (s, scene) in manifest.scenes.iter().enumerate() {
        if scene.role != role {
            continue;
        }
        // Per window start: one (feature, logits, activity) per member.
        let mut by_start: BTreeMap<i64, Vec<Option<MemberWindow>>> = BTreeMap::new();
        let mut period = f64::NAN;
        for (m, member) in scene.members.iter().enumerate() {
            let entry = dataset
                .manifest
                .recordings
                .iter()
                .find(|e| e.id == member.recording)
                .ok_or_else(|| {
                    ModelError::Invalid(format!(
                        "{}: scene {} names recording {} the dataset lacks",
                        dataset_dir.display(),
                        scene.id,
                        member.recording
                    ))
                })?;
            let recording = dataset.read(entry)?;
            let aligned = align(&recording, &classifier.card.preprocess.align)?;
            period = 1e9 / aligned.rate_hz;
            let mut windows = extract_windows(&aligned, &window)?;
            classifier.normalizer.apply(&mut windows)?;
            for i in 0..windows.len() {
                let start = windows.start_ns[i];
                let first = (start as f64 / period).round() as usize;
                if first % step_samples + window.length > step_samples {
                    continue;
                }
                let Some(activity) = classes.iter().position(|&c| c == windows.labels[i]) else {
                    continue;
                };
                let inputs: Vec<Option<&[f32]>> = (0..windows.modalities.len())
                    .map(|mi| {
                        (Some(windows.modalities[mi].name.as_str()) != dropped)
                            .then(|| windows.window(i, mi))
                    })
                    .collect();
                let embedded = classifier.model.embed_available(&inputs)?;
                by_start
                    .entry(start)
                    .or_insert_with(|| vec![None; scene.members.len()])[m] =
                    Some((embedded.embedding, embedded.logits, activity));
            }
        }
        for (start_ns, members) in by_start {
            if members.iter().any(Option::is_none) {
                continue;
            }
            let first = (start_ns as f64 / period).round() as usize;
            let step = &scene.steps[(first / step_samples).min(scene.steps.len() - 1)];
            let mut moment = Moment {
                scene: s,
                start_ns,
                features: Vec::new(),
                classifier_logits: Vec::new(),
                activities: Vec::new(),
                labels: step
                    .labels
                    .iter()
                    .filter_map(|l| space.iter().position(|x| x == l))
                    .collect(),
            };
            for (feature, logits, activity) in members.into_iter().flatten() {
                moment.features.extend(feature);
                moment.classifier_logits.extend(logits);
                moment.activities.push(activity);
            }
            out.push(moment);
        }
    }
    if out.is_empty() {
        return Err(ModelError::Invalid(format!(
            "{}: no {role:?} scene moments",
            dataset_dir.display()
        )));
    }
    Ok(out)
}
