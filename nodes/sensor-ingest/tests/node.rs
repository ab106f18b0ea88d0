//! sensor-ingest in-process (dora's testing mode): a replay at max speed whose graph never
//! acknowledges (a dead downstream node) ends in bounded time with every chunk either sent or
//! counted as shed — never a crawl.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use har_dataflow::pacing::{FlowSettings, Speed};
use har_dataflow::replay::{Replay, ReplayConfig};
use har_dataflow::testing::{rows_of, Script};
use har_sensor_ingest::{recordings, run, Settings, SourceSettings};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn a_graph_that_never_acknowledges_is_shed_and_the_replay_ends() {
    let dataset = repo().join("samples/hapt-user02");
    let config = ReplayConfig {
        copies: 4,
        ..ReplayConfig::default()
    };
    let total_chunks = Replay::new(recordings(&dataset, &[]).unwrap(), &config)
        .unwrap()
        .take_until(i64::MAX)
        .len() as u64;
    let settings = Settings {
        source: SourceSettings::Replay {
            dataset,
            recordings: Vec::new(),
            config,
            speed: Speed::Max,
            flow: FlowSettings {
                stall: Duration::from_millis(100),
                ..FlowSettings::default()
            },
            faults: None,
        },
    };
    let dir = tempfile::tempdir().unwrap();
    let mut script = Script::new(dir.path());
    // No acknowledgement ever, only empty messages to wake the paced loop (testing mode
    // blocks until the next scripted event); the stream stays open.
    script.ticks("tick", 0.005, 30.0);
    script.stop(600.0);
    let (runtime, mut captured) = script.start("sensor-ingest").unwrap();
    let started = Instant::now();
    run(runtime, &settings).unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "the replay took {took:?}");

    let messages = captured.messages();
    let sent = rows_of(&messages, "chunks").len() as u64;
    let last = rows_of(&messages, "health")
        .pop()
        .expect("a final health row");
    let shed = last["dropped"].as_u64().unwrap();
    assert!(shed > 0 && sent > 0);
    assert_eq!(
        sent + shed,
        total_chunks,
        "every chunk sent or counted as shed"
    );
    // In flight, then probes: 4 batches, then 5 probes before giving up.
    assert!(last["degraded"].as_u64().unwrap() > 0, "{last}");
}
