//! `har segment train` end to end on a generated (SYNTHETIC) dataset: the per-time-step
//! segmentation model trains, saves, and scores the test recordings with the segmentation
//! metrics — the plumbing only; evidence about people is the HAPT table in docs/results.md.

mod common;
use common::har_ok;

#[test]
fn the_segmenter_trains_saves_and_scores_whole_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("synthetic");
    let out = dir.path().join("segmenter");
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    har_ok(&["data", "import", "synthetic", "--out", &path(&data)]);
    let said = har_ok(&[
        "segment",
        "train",
        "--dataset",
        &path(&data),
        "--out",
        &path(&out),
        "--epochs",
        "2",
        "--dim",
        "8",
        "--min-duration",
        "0.5",
    ]);
    let text = String::from_utf8(said.stdout).unwrap();
    assert!(text.contains("frame accuracy"), "{text}");
    for file in ["segmenter.json", "segmenter.safetensors", "report.json"] {
        assert!(out.join(file).exists(), "{file}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let accuracy = report["frame_accuracy"].as_f64().unwrap();
    assert!(
        (0.0..=100.0).contains(&accuracy) && !report["recordings"].as_array().unwrap().is_empty()
    );
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("segmenter.json")).unwrap()).unwrap();
    assert_eq!(card["provenance"]["history"].as_array().unwrap().len(), 2);
    // The saved model reloads and scores the test recordings exactly as at training.
    let again = har_ok(&[
        "segment",
        "eval",
        "--segmenter",
        &path(&out),
        "--dataset",
        &path(&data),
        "--min-duration",
        "0.5",
    ]);
    let again = String::from_utf8(again.stdout).unwrap();
    assert!(
        again.contains(&format!("frame accuracy {accuracy:.2} %")),
        "{again} vs {accuracy}"
    );
}
