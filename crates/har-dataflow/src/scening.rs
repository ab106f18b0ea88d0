//! The scene node's logic: each window's fused features (one message per device, modality
//! `fused`, from fuse's `embeddings`) gathered per **scene** — the devices sharing a session
//! id — and window id; a complete window goes through the scene model
//! (`har_runtime::scene`): each member's activity with the others' context, and the scene's
//! label set decoded by beam search.
//!
//! **Grouping.** A scene's members are the devices seen in it so far; nothing announces
//! them, so a scene first **settles**: no window is released before some member is
//! `max_lag` windows past the scene's first window (time for every device to show up).
//! Then a window is released when every member has sent it. A window still missing members
//! is released anyway once a member is `max_lag` windows further on (or at the end of the
//! stream), with the members present (`expected_members` > `members` in its rows; counted
//! as degraded): a dead device never stalls its scene. Features of a window already released
//! are late and counted; the windows waiting are bounded per scene (the oldest released
//! beyond it).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float32Array, Int32Array, Int64Array, RecordBatch, StringArray, UInt32Array,
    UInt64Array,
};
use har_core::dataset::ClassInfo;
use har_core::schema::{build_batch, SchemaName};
use har_core::streams::TokenMessage;
use har_runtime::scene::SceneModel;

use crate::error::{DataflowError, Result};

/// Windows waiting per scene at most.
pub const MAX_PENDING_PER_SCENE: usize = 256;

/// One member's feature of one window.
#[derive(Debug, Clone)]
struct MemberWindow {
    device: String,
    subject: String,
    start_ns: i64,
    end_ns: i64,
    label: Option<i32>,
    feature: Vec<f32>,
}

/// A window of a scene released for the model: its members present and how many the scene
/// had.
#[derive(Debug, Clone)]
pub struct SceneWindow {
    /// Scene id.
    pub scene: String,
    /// Window id.
    pub window_id: u64,
    members: Vec<MemberWindow>,
    /// Members the scene had when the window was released.
    pub expected: usize,
}

impl SceneWindow {
    /// Devices present, in the order the scene first saw them.
    pub fn devices(&self) -> Vec<&str> {
        self.members.iter().map(|m| m.device.as_str()).collect()
    }
}

/// Counts of the grouping, for node health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCounters {
    /// Windows released with every member.
    pub complete: u64,
    /// Windows released without some member (degraded).
    pub incomplete: u64,
    /// Features arriving after their window was released.
    pub late: u64,
    /// Features of a window the device already sent.
    pub duplicates: u64,
}

#[derive(Debug, Default)]
struct SceneState {
    /// Devices in order of appearance.
    members: Vec<String>,
    /// Per window id: the members' features so far.
    pending: BTreeMap<u64, Vec<MemberWindow>>,
    /// Newest window id per member.
    newest: HashMap<String, u64>,
    /// Every window below this was released.
    released_below: u64,
    /// The first window id the scene saw.
    first_window: Option<u64>,
}

/// Gathers members' features per scene and window.
#[derive(Debug)]
pub struct SceneGrouper {
    max_lag: u64,
    scenes: BTreeMap<String, SceneState>,
    /// What happened so far.
    pub counters: GroupCounters,
}

impl SceneGrouper {
    /// Windows missing a member wait until another member is `max_lag` windows ahead.
    pub fn new(max_lag: u64) -> Self {
        Self {
            max_lag: max_lag.max(1),
            scenes: BTreeMap::new(),
            counters: GroupCounters::default(),
        }
    }

    /// Takes one member's feature; returns the windows it completed or pushed out, in
    /// window order per scene.
    pub fn insert(&mut self, t: TokenMessage) -> Vec<SceneWindow> {
        let scene_id = t.key.source.session_id.clone();
        let device = t.key.source.device_id.clone();
        let id = t.key.window_id;
        let state = self.scenes.entry(scene_id.clone()).or_default();
        if id < state.released_below {
            self.counters.late += 1;
            return Vec::new();
        }
        if !state.members.contains(&device) {
            state.members.push(device.clone());
        }
        let slot = state.pending.entry(id).or_default();
        if slot.iter().any(|m| m.device == device) {
            self.counters.duplicates += 1;
            return Vec::new();
        }
        slot.push(MemberWindow {
            device: device.clone(),
            subject: t.key.source.subject_id.clone(),
            start_ns: t.key.start_ns,
            end_ns: t.key.end_ns,
            label: t.key.label,
            feature: t.values,
        });
        let newest = state.newest.entry(device).or_insert(id);
        *newest = (*newest).max(id);
        let lead = state.newest.values().copied().max().unwrap_or(id);
        let first_window = *state.first_window.get_or_insert(id);
        let settled = lead >= first_window.saturating_add(self.max_lag);
        let mut out = Vec::new();
        // Release, in order, every window that is complete or that a member has left behind.
        while let Some((&first, slot)) = state.pending.iter().next() {
            let complete = settled && slot.len() >= state.members.len();
            let overdue = lead >= first.saturating_add(self.max_lag);
            let overflow = state.pending.len() > MAX_PENDING_PER_SCENE;
            if !(complete || overdue || overflow) {
                break;
            }
            let slot = state.pending.remove(&first).expect("first key");
            out.push(Self::release(
                &scene_id,
                first,
                slot,
                state,
                &mut self.counters,
            ));
        }
        out
    }

    fn release(
        scene: &str,
        window_id: u64,
        mut members: Vec<MemberWindow>,
        state: &mut SceneState,
        counters: &mut GroupCounters,
    ) -> SceneWindow {
        state.released_below = state.released_below.max(window_id + 1);
        let expected = state.members.len();
        if members.len() >= expected {
            counters.complete += 1;
        } else {
            counters.incomplete += 1;
        }
        let order = |d: &str| state.members.iter().position(|m| m == d);
        members.sort_by_key(|m| order(&m.device));
        SceneWindow {
            scene: scene.to_string(),
            window_id,
            members,
            expected,
        }
    }

    /// Releases every window still waiting (the end of the stream).
    pub fn drain(&mut self) -> Vec<SceneWindow> {
        let mut out = Vec::new();
        for (scene, state) in &mut self.scenes {
            let pending = std::mem::take(&mut state.pending);
            for (id, slot) in pending {
                out.push(Self::release(scene, id, slot, state, &mut self.counters));
            }
        }
        out
    }

    /// Windows waiting, all scenes.
    pub fn pending(&self) -> usize {
        self.scenes.values().map(|s| s.pending.len()).sum()
    }
}

/// What the scene model says about one window of a scene: one row per member present.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneRow {
    /// Scene id.
    pub scene: String,
    /// Window id.
    pub window_id: u64,
    /// Window start and end (sensor clock).
    pub start_ns: i64,
    /// Window end.
    pub end_ns: i64,
    /// The member's device and subject.
    pub device: String,
    /// Subject.
    pub subject: String,
    /// The member's activity with context: class id, name, probability.
    pub activity: (i32, String, f32),
    /// Ground truth of the member's window.
    pub true_label: Option<i32>,
    /// The decoded label set's names, comma-separated.
    pub scene_labels: String,
    /// Its log-probability.
    pub scene_label_score: f32,
    /// Members present and expected.
    pub members: (u32, u32),
}

/// Runs the scene model on a released window: rows for its members. An error names the
/// window when a feature does not fit the model.
pub fn score_window(
    model: &SceneModel,
    activities: &[ClassInfo],
    labels: &[ClassInfo],
    beam: usize,
    window: &SceneWindow,
) -> Result<Vec<SceneRow>> {
    let c = model.config();
    let mut features = Vec::with_capacity(window.members.len() * c.input_dim);
    for m in &window.members {
        if m.feature.len() != c.input_dim {
            return Err(DataflowError::stream(
                &format!("embeddings of {}", m.device),
                "dim",
                format!(
                    "scene {} window {}: {} values, the scene model reads {}",
                    window.scene,
                    window.window_id,
                    m.feature.len(),
                    c.input_dim
                ),
            ));
        }
        features.extend_from_slice(&m.feature);
    }
    let out = model.forward(&features)?;
    let decoded = model.decode(&out.memory, beam);
    let set = decoded.best_set();
    let names: Vec<&str> = set.iter().map(|&l| labels[l].name.as_str()).collect();
    let score = decoded
        .hypotheses
        .first()
        .map_or(f32::NEG_INFINITY, |h| h.score);
    let present = (window.members.len() as u32, window.expected as u32);
    Ok(window
        .members
        .iter()
        .enumerate()
        .map(|(j, m)| {
            let mut p = out.activity_logits[j * c.activities..(j + 1) * c.activities].to_vec();
            let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            p.iter_mut().for_each(|v| *v = (*v - max).exp());
            let total: f32 = p.iter().sum();
            let (k, best) = p
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or((0, 0.0), |(k, v)| (k, *v));
            SceneRow {
                scene: window.scene.clone(),
                window_id: window.window_id,
                start_ns: m.start_ns,
                end_ns: m.end_ns,
                device: m.device.clone(),
                subject: m.subject.clone(),
                activity: (activities[k].id, activities[k].name.clone(), best / total),
                true_label: m.label,
                scene_labels: names.join(","),
                scene_label_score: score,
                members: present,
            }
        })
        .collect())
}

/// `log_scenes` rows of `run_id` by `model_id`, stamped `closed_ts_ns`.
pub fn scene_batch(
    run_id: &str,
    model_id: &str,
    rows: &[SceneRow],
    closed_ts_ns: i64,
) -> Result<RecordBatch> {
    let strings = |f: &dyn Fn(&SceneRow) -> &str| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    Ok(build_batch(
        SchemaName::LogScenes,
        vec![
            Arc::new(StringArray::from(vec![run_id; rows.len()])),
            strings(&|r| r.scene.as_str()),
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|r| r.window_id),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.start_ns),
            )),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.end_ns))),
            strings(&|r| r.device.as_str()),
            strings(&|r| r.subject.as_str()),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| r.activity.0),
            )),
            strings(&|r| r.activity.1.as_str()),
            Arc::new(Float32Array::from_iter_values(
                rows.iter().map(|r| r.activity.2),
            )),
            Arc::new(Int32Array::from(
                rows.iter().map(|r| r.true_label).collect::<Vec<_>>(),
            )),
            strings(&|r| r.scene_labels.as_str()),
            Arc::new(Float32Array::from_iter_values(
                rows.iter().map(|r| r.scene_label_score),
            )),
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.members.0),
            )),
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.members.1),
            )),
            Arc::new(StringArray::from(vec![model_id; rows.len()])),
            Arc::new(Int64Array::from(vec![closed_ts_ns; rows.len()])),
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use har_core::streams::{Source, WindowKey};

    fn feature(scene: &str, device: &str, window: u64) -> TokenMessage {
        TokenMessage {
            key: WindowKey {
                window_id: window,
                source: Source {
                    device_id: device.into(),
                    subject_id: format!("subject-{device}"),
                    session_id: scene.into(),
                },
                modality: "fused".into(),
                start_ns: window as i64 * 1_280_000_000,
                end_ns: window as i64 * 1_280_000_000 + 2_540_000_000,
                label: Some(1),
                ingest_ts_ns: 0,
                preprocess_ts_ns: 0,
            },
            num_tokens: 1,
            dim: 2,
            values: vec![window as f32, 1.0],
            encode_ts_ns: 0,
        }
    }

    fn ids(windows: &[SceneWindow]) -> Vec<u64> {
        windows.iter().map(|w| w.window_id).collect()
    }

    #[test]
    fn members_of_one_session_form_a_scene_and_a_window_waits_for_all_of_them() {
        let mut g = SceneGrouper::new(2);
        // Scene A: devices a1, a2; scene B: b1 alone — never mixed. Nothing is released
        // before a scene settles (a member 2 windows past its first).
        for (scene, device, w) in [
            ("A", "a1", 0),
            ("A", "a2", 0),
            ("B", "b1", 0),
            ("A", "a1", 1),
            ("A", "a2", 1),
        ] {
            assert!(
                g.insert(feature(scene, device, w)).is_empty(),
                "{scene} {device} {w}"
            );
        }
        let a = g.insert(feature("A", "a1", 2));
        assert_eq!(ids(&a), [0, 1], "window 2 still waits for a2");
        assert!(a
            .iter()
            .all(|w| w.scene == "A" && w.devices() == ["a1", "a2"] && w.expected == 2));
        assert_eq!(ids(&g.insert(feature("A", "a2", 2))), [2]);
        assert!(g.insert(feature("B", "b1", 1)).is_empty());
        let b = g.insert(feature("B", "b1", 2));
        assert_eq!(ids(&b), [0, 1, 2], "a one-member scene, once settled");
        assert!(b.iter().all(|w| w.devices() == ["b1"]));
        assert_eq!(g.counters.complete, 6);
        assert_eq!(g.counters.incomplete, 0);
    }

    #[test]
    fn a_dead_member_never_stalls_its_scene_and_late_or_repeated_features_are_counted() {
        let mut g = SceneGrouper::new(3);
        g.insert(feature("A", "a1", 0));
        g.insert(feature("A", "a2", 0));
        // a2 goes silent; a1 goes on.
        assert!(g.insert(feature("A", "a1", 1)).is_empty());
        assert!(g.insert(feature("A", "a1", 2)).is_empty());
        assert_eq!(
            ids(&g.insert(feature("A", "a1", 3))),
            [0],
            "settled: the complete window"
        );
        let released = g.insert(feature("A", "a1", 4));
        assert_eq!(ids(&released), [1], "a1 is 3 windows past window 1");
        assert_eq!(released[0].devices(), ["a1"]);
        assert_eq!(released[0].expected, 2);
        assert_eq!(g.counters.incomplete, 1);
        // a2's window 1 arrives too late; a repeated feature is a duplicate.
        assert!(g.insert(feature("A", "a2", 1)).is_empty());
        assert_eq!(g.counters.late, 1);
        g.insert(feature("A", "a1", 4));
        assert_eq!(g.counters.duplicates, 1);
        // The end of the stream releases the rest, in order.
        assert_eq!(ids(&g.drain()), [2, 3, 4]);
        assert_eq!(g.pending(), 0);
    }

    #[test]
    fn the_windows_waiting_per_scene_are_bounded() {
        let mut g = SceneGrouper::new(u64::MAX);
        let mut released = g.insert(feature("A", "a1", 0)).len();
        released += g.insert(feature("A", "a2", 0)).len();
        for w in 1..=(MAX_PENDING_PER_SCENE as u64 + 10) {
            released += g.insert(feature("A", "a1", w)).len();
        }
        assert_eq!(g.pending(), MAX_PENDING_PER_SCENE);
        assert_eq!(released, 11, "the oldest released beyond the bound");
    }
}
