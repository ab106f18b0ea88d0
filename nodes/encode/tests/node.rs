//! The encode node in-process (dora's testing mode): tokens equal the library's for every
//! window, and a window of the wrong modality is rejected alone.

use std::path::{Path, PathBuf};

use har_core::dataset::Dataset;
use har_dataflow::inference::{read_streaming_spec, StreamModel};
use har_dataflow::replay::{Replay, ReplayConfig};
use har_dataflow::testing::{rows_of, Script};
use har_dataflow::windower::StreamingPreprocessor;
use har_encode::{run, Settings};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn tokens_match_the_library_and_a_foreign_window_is_rejected_alone() {
    let settings = Settings {
        model: repo().join("models/hapt-student"),
        modality: "acc".into(),
    };
    let dataset = Dataset::open(&repo().join("samples/hapt-user02")).unwrap();
    let recording = dataset.read(&dataset.manifest.recordings[0]).unwrap();
    let mut replay = Replay::new(vec![recording], &ReplayConfig::default()).unwrap();
    let mut pre =
        StreamingPreprocessor::new(read_streaming_spec(&settings.model, None).unwrap()).unwrap();
    let windows: Vec<_> = replay
        .take_until(20_000_000_000)
        .iter()
        .flat_map(|c| pre.push(c).unwrap())
        .collect();
    let acc: Vec<_> = windows
        .iter()
        .filter(|w| w.key.modality == "acc")
        .cloned()
        .collect();
    let gyro = windows
        .iter()
        .find(|w| w.key.modality == "gyro")
        .unwrap()
        .clone();
    let mut model = StreamModel::load(&settings.model).unwrap();
    let expected = model.encode(0, &acc).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut script = Script::new(dir.path());
    let mut message = acc.clone();
    message.insert(1, gyro);
    script.rows(0.0, "windows", &message).unwrap();
    script.all_closed(0.0);
    let (runtime, mut captured) = script.start("encode-acc").unwrap();
    run(runtime, &settings).unwrap();

    let messages = captured.messages();
    let tokens = rows_of(&messages, "tokens");
    assert_eq!(tokens.len(), expected.len());
    for (sent, want) in tokens.iter().zip(&expected) {
        assert_eq!(sent["window_id"].as_u64(), Some(want.key.window_id));
        let values: Vec<f64> = sent["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(values.len(), want.values.len());
        for (a, b) in values.iter().zip(&want.values) {
            assert!((a - *b as f64).abs() < 1e-6);
        }
    }
    let last = rows_of(&messages, "health")
        .pop()
        .expect("a final health row");
    assert_eq!(last["dropped"].as_u64(), Some(1), "{last}");
}
