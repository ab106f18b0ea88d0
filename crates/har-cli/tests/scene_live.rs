//! A generated scene through the graph: a `dora run` of `dataflows/hapt-scene.yml` replays
//! the three members of `samples/hapt-scene` (semi-synthetic: real HAPT test-subject
//! signals) as three devices of one scene; the `scenes` table keeps its schema, holds one row
//! per member per window with all three members present, and gives the same activities and
//! label sets as the scene model run offline on the same windows (`har_model::scenes`'s
//! moments, the runtime model). Needs the dora CLI and the node binaries, as
//! `tests/dataflow.rs`.

use std::collections::BTreeMap;

use har_core::scenes::{SceneManifest, SceneRole};
use har_core::schema::SchemaName;
use har_model::scenes::data::moments;
use har_runtime::scene::SceneModel;

mod common;
use common::flow::{assert_table_schema, repo, Flow, DORA};

#[test]
fn a_generated_scene_through_the_graph_matches_the_offline_scene_model() {
    let _one = DORA.lock().unwrap_or_else(|e| e.into_inner());
    let flow = Flow::from_yml("dataflows/hapt-scene.yml", &[("HAR_SCENE_BEAM", "1")]);
    flow.run();

    assert_table_schema(&flow, "scenes", SchemaName::LogScenes);
    let rows = flow.sql(
        "SELECT scene_id, window_id, start_ns, device_id, activity_label, true_label, \
         scene_labels, members, expected_members, model_id FROM scenes \
         ORDER BY window_id, device_id",
    );
    let windows = flow.sql("SELECT count(DISTINCT window_id) AS n FROM predictions");
    let n_windows = windows[0]["n"].as_u64().unwrap() as usize;
    assert!(n_windows >= 90, "{n_windows} windows");
    assert_eq!(rows.len(), 3 * n_windows, "one row per member per window");
    for r in &rows {
        assert_eq!(r["scene_id"].as_str(), Some("scene000"));
        assert_eq!(r["members"].as_u64(), Some(3), "{r}");
        assert_eq!(r["expected_members"].as_u64(), Some(3), "{r}");
        assert!(r["model_id"].as_str().unwrap().starts_with("hapt-scene@"));
    }

    // Offline: the scene model on the same members' windows (those inside one scene step).
    let dir = repo().join("samples/hapt-scene");
    let manifest = SceneManifest::load(&dir).unwrap();
    let mut classifier = har_runtime::model_dir::load(&repo().join("models/hapt-student")).unwrap();
    let offline = moments(&dir, &manifest, &mut classifier, SceneRole::Test, None).unwrap();
    let (card, model) = SceneModel::read_dir(&repo().join("models/hapt-scene")).unwrap();
    let mut logged: BTreeMap<i64, Vec<&serde_json::Value>> = BTreeMap::new();
    for r in &rows {
        logged
            .entry(r["start_ns"].as_i64().unwrap())
            .or_default()
            .push(r);
    }
    let mut compared = 0;
    for m in &offline {
        let online = &logged[&m.start_ns];
        let out = model.forward(&m.features).unwrap();
        let k = card.config.activities;
        let activities: Vec<i64> = (0..m.activities.len())
            .map(|j| {
                let row = &out.activity_logits[j * k..(j + 1) * k];
                let best = (0..k).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
                i64::from(card.activities[best].id)
            })
            .collect();
        let got: Vec<i64> = online
            .iter()
            .map(|r| r["activity_label"].as_i64().unwrap())
            .collect();
        assert_eq!(got, activities, "window at {} ns", m.start_ns);
        let set: Vec<&str> = model
            .decode(&out.memory, 1)
            .best_set()
            .iter()
            .map(|&l| card.labels[l].name.as_str())
            .collect();
        assert_eq!(online[0]["scene_labels"].as_str().unwrap(), set.join(","));
        compared += 1;
    }
    assert!(compared >= 80, "{compared} windows compared");

    // The members' activities with context against the truth.
    let accuracy = flow.sql(
        "SELECT avg(CASE WHEN activity_label = true_label THEN 1.0 ELSE 0.0 END) AS accuracy \
         FROM scenes WHERE true_label IS NOT NULL",
    );
    let accuracy = accuracy[0]["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.9, "member accuracy {accuracy}");
}
