//! The onnxruntime snippet of docs/onnx.md, run as written on an exported student and the
//! shipped sample recording, prints the classes and confidences the project's runtime gives.

use std::path::{Path, PathBuf};

use har_core::dataset::Dataset;
use har_onnx::{export_to_file, ExportOptions};
use har_runtime::model_dir;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python snippet of docs/onnx.md, as written there.
fn docs_snippet() -> String {
    let docs = std::fs::read_to_string(repo().join("docs/onnx.md")).unwrap();
    let after = docs
        .split_once("<!-- onnxruntime-snippet -->")
        .expect("the docs mark the snippet")
        .1;
    let code = after.split_once("```python\n").unwrap().1;
    code.split_once("```").unwrap().0.to_string()
}

#[test]
fn onnxruntime_runs_the_exported_student_as_the_docs_show() {
    let dir = tempfile::tempdir().unwrap();
    let model = repo().join("models/hapt-student");
    let onnx = dir.path().join("hapt-student.onnx");
    export_to_file(&model, &onnx, ExportOptions::default()).unwrap();
    let script = dir.path().join("run_onnx.py");
    std::fs::write(&script, docs_snippet()).unwrap();
    let recording_dir = repo().join("samples/hapt-user02/recordings/user02_rec01");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&onnx)
        .arg(&recording_dir)
        .output()
        .expect("python3 runs (scripts/test.sh installs onnxruntime)");
    assert!(
        out.status.success(),
        "the snippet failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();

    // The same windows through the project's runtime.
    let mut loaded = model_dir::load(&model).unwrap();
    let dataset = Dataset::open(&repo().join("samples/hapt-user02")).unwrap();
    let recording = dataset.read(&dataset.manifest.recordings[0]).unwrap();
    let length = loaded.card.config.window_len;
    let (acc, gyro) = (
        recording.stream("acc").unwrap(),
        recording.stream("gyro").unwrap(),
    );
    let starts: Vec<usize> = (0..acc.len() - length).step_by(64 * 25).collect();
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), starts.len(), "{printed}");
    for (line, &start) in lines.iter().zip(&starts) {
        let mut a = acc.values[start * 3..(start + length) * 3].to_vec();
        let mut g = gyro.values[start * 3..(start + length) * 3].to_vec();
        loaded.normalizer.apply_modality(0, &mut a);
        loaded.normalizer.apply_modality(1, &mut g);
        let p = loaded.model.predict(&[&a, &g]).unwrap();
        let best = (0..p.len()).fold(0, |b, i| if p[i] > p[b] { i } else { b });
        let (name, confidence) = line.split_once(' ').unwrap();
        assert_eq!(name, loaded.card.classes[best].name, "window at {start}");
        let confidence: f32 = confidence.parse().unwrap();
        assert!(
            (confidence - p[best]).abs() <= 1.5e-3,
            "{line} vs {}",
            p[best]
        );
    }
}
