//! The preprocess node in-process (dora's testing mode): the shipped recording streamed as
//! chunk messages, with a malformed message and a device of the wrong shape among them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use har_core::dataset::Dataset;
use har_core::schema::SchemaName;
use har_core::streams::SensorChunk;
use har_dataflow::health::Health;
use har_dataflow::inference::read_streaming_spec;
use har_dataflow::replay::{Replay, ReplayConfig};
use har_dataflow::runtime::Ending;
use har_dataflow::testing::{rows_of, Script};
use har_dataflow::windower::StreamingPreprocessor;
use har_preprocess::{run, Settings};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The first 30 s of the shipped recording as chunks.
fn chunks() -> Vec<SensorChunk> {
    let dataset = Dataset::open(&repo().join("samples/hapt-user02")).unwrap();
    let recording = dataset.read(&dataset.manifest.recordings[0]).unwrap();
    let mut replay = Replay::new(vec![recording], &ReplayConfig::default()).unwrap();
    replay.take_until(30_000_000_000)
}

#[test]
fn windows_match_the_library_and_bad_input_is_rejected_alone() {
    let settings = Settings {
        model: repo().join("models/hapt-student"),
        stride: None,
    };
    let chunks = chunks();
    let mut expected =
        StreamingPreprocessor::new(read_streaming_spec(&settings.model, None).unwrap()).unwrap();
    let expected: Vec<_> = chunks
        .iter()
        .flat_map(|c| expected.push(c).unwrap())
        .collect();
    assert!(expected.len() > 20);

    let dir = tempfile::tempdir().unwrap();
    let mut script = Script::new(dir.path());
    let mut bad_device = chunks[0].clone();
    bad_device.source.device_id = "one-channel".into();
    bad_device.channel_count = 1;
    bad_device.values.truncate(bad_device.timestamps_ns.len());
    for (i, group) in chunks.chunks(20).enumerate() {
        let mut message = group.to_vec();
        if i == 1 {
            message.insert(3, bad_device.clone());
        }
        script.rows(0.01 * i as f64, "chunks", &message).unwrap();
        if i == 2 {
            // A batch that claims to be chunks but is not.
            let health = Health::new("run", "other", Duration::ZERO).row(0).unwrap();
            let at = 0.01 * i as f64;
            script
                .batch(at, "chunks", Some(SchemaName::SensorChunk), None, health)
                .unwrap();
        }
    }
    script.all_closed(1.0);
    let (runtime, mut captured) = script.start("preprocess").unwrap();
    let summary = run(runtime, &settings).unwrap();
    assert_eq!(summary.ending, Ending::InputsClosed);
    assert_eq!(summary.rejected, 1, "the malformed message");

    let messages = captured.messages();
    let mut sent: Vec<(String, u64)> = ["acc", "gyro"]
        .iter()
        .flat_map(|m| {
            rows_of(&messages, m)
                .into_iter()
                .map(move |r| (m.to_string(), r["window_id"].as_u64().unwrap()))
        })
        .collect();
    let mut wanted: Vec<(String, u64)> = expected
        .iter()
        .map(|w| (w.key.modality.clone(), w.key.window_id))
        .collect();
    sent.sort();
    wanted.sort();
    assert_eq!(
        sent, wanted,
        "every window of the good device, none of the bad one"
    );

    let health = rows_of(&messages, "health");
    let last = health.last().expect("a final health row");
    // One rejected message, one rejected chunk.
    assert_eq!(last["dropped"].as_u64(), Some(2), "{last}");
    assert_eq!(last["received"].as_u64(), Some(chunks.len() as u64 + 1));
}
