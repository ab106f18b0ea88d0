//! The fuse node in-process (dora's testing mode): every window that reached it is predicted
//! by the end of the stream — including those still waiting for a modality when the inputs
//! closed — and a malformed token is rejected alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use har_core::dataset::Dataset;
use har_core::streams::TokenMessage;
use har_dataflow::inference::{read_streaming_spec, StreamModel};
use har_dataflow::replay::{Replay, ReplayConfig};
use har_dataflow::testing::{rows_of, Script};
use har_dataflow::windower::StreamingPreprocessor;
use har_fuse::{run, Settings};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Tokens of the first 30 s of the shipped recording, per modality (acc, gyro).
fn tokens(model_dir: &Path) -> [Vec<TokenMessage>; 2] {
    let dataset = Dataset::open(&repo().join("samples/hapt-user02")).unwrap();
    let recording = dataset.read(&dataset.manifest.recordings[0]).unwrap();
    let mut replay = Replay::new(vec![recording], &ReplayConfig::default()).unwrap();
    let spec = read_streaming_spec(model_dir, None).unwrap();
    let mut pre = StreamingPreprocessor::new(spec).unwrap();
    let windows: Vec<_> = replay
        .take_until(30_000_000_000)
        .iter()
        .flat_map(|c| pre.push(c).unwrap())
        .collect();
    let mut model = StreamModel::load(model_dir).unwrap();
    ["acc", "gyro"].map(|name| {
        let m = model.modality_index(name).unwrap();
        let of: Vec<_> = windows
            .iter()
            .filter(|w| w.key.modality == name)
            .cloned()
            .collect();
        model.encode(m, &of).unwrap()
    })
}

#[test]
fn held_windows_are_predicted_at_the_end_and_bad_tokens_rejected_alone() {
    let settings = Settings {
        model: repo().join("models/hapt-student"),
        // Longer than the script: only the end of the stream releases incomplete windows.
        deadline: Duration::from_secs(60),
        max_pending: 1000,
        enroll_poll: None,
        embeddings: false,
    };
    let [acc, mut gyro] = tokens(&settings.model);
    let n = acc.len();
    assert!(n >= 10 && gyro.len() == n);
    // The last 3 windows never get their gyro tokens; window 2's gyro token has the wrong size.
    gyro.truncate(n - 3);
    gyro[2].dim = 1;
    gyro[2].num_tokens = gyro[2].values.len() as u32;

    let dir = tempfile::tempdir().unwrap();
    let mut script = Script::new(dir.path());
    script.rows(0.0, "acc", &acc).unwrap();
    script.rows(0.0, "gyro", &gyro).unwrap();
    // All at once: dora delivers the stop ahead of the queued inputs.
    script.all_closed(0.0);
    let (runtime, mut captured) = script.start("fuse").unwrap();
    let summary = run(runtime, &settings).unwrap();
    assert_eq!(summary.received, (2 * n - 3) as u64);

    let messages = captured.messages();
    let predictions = rows_of(&messages, "predictions");
    let ids: Vec<u64> = predictions
        .iter()
        .map(|p| p["window_id"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (0..n as u64).filter(|&i| i != 2).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "every window but the malformed one");
    let degraded: Vec<u64> = predictions
        .iter()
        .filter(|p| p["degraded"].as_bool() == Some(true))
        .map(|p| p["window_id"].as_u64().unwrap())
        .collect();
    assert_eq!(degraded, (n as u64 - 3..n as u64).collect::<Vec<_>>());
    let last = rows_of(&messages, "health")
        .pop()
        .expect("a final health row");
    assert_eq!(last["dropped"].as_u64(), Some(1), "{last}");
    assert_eq!(last["degraded"].as_u64(), Some(3), "{last}");
}
