//! The dataflow end to end: `dora run` on the shipped HAPT recording (the repository's
//! `dataflow.yml`, with paths made absolute and settings overridden per test), then the
//! Parquet logs checked with `har sql` and against the offline model on the same windows.
//!
//! Needs the dora CLI 1.1.0 on PATH (`pip install dora-rs-cli==1.1.0`) and the node binaries
//! built next to `har` (`cargo build --workspace`); `scripts/test.sh` does both before
//! `cargo test`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use candle_nn::VarMap;
use har_core::dataset::Dataset;
use har_core::preprocess::align;
use har_model::artifact;
use har_model::data::TensorData;
use har_model::dmft::Dmft;
use har_model::init::seeded_var_builder;
use har_model::train::predict_with;

mod common;
use common::flow::{node_pids, parquet_files, repo, wait_for_predictions, Flow, DORA};
use common::{har_ok, run_docs_snippet};

/// The offline (candle, monolithic) model's probabilities on every window of the shipped
/// recording, laid at the model's stride from the start; `present` as in `har eval --drop`.
/// An int8 model's reference is the runtime's offline forward (candle computes in f32).
fn offline_probabilities(
    model_dir: &Path,
    present: Option<&[bool]>,
) -> (Vec<Vec<f32>>, Vec<i64>, Vec<i32>) {
    let repo = repo();
    let model = artifact::load_candle(model_dir).unwrap();
    let card = har_runtime::card::read_card(model_dir).unwrap();
    let int8 = har_runtime::model_dir::read_weights(model_dir, &card)
        .unwrap()
        .is_quantized();
    let dataset = Dataset::open(&repo.join("samples/hapt-user02")).unwrap();
    let recording = dataset.read(&dataset.manifest.recordings[0]).unwrap();
    let aligned = align(&recording, &model.card.preprocess.align).unwrap();
    let (length, stride) = (
        model.card.preprocess.window.length,
        model.card.preprocess.window.stride,
    );
    let mut data = TensorData {
        values: vec![Vec::new(); aligned.streams.len()],
        shapes: aligned
            .streams
            .iter()
            .map(|(info, _)| (length, info.channels()))
            .collect(),
        targets: Vec::new(),
        rotatable: vec![None; aligned.streams.len()],
    };
    let mut starts = Vec::new();
    let mut start = 0;
    while start + length <= aligned.timestamps_ns.len() {
        for (m, (info, values)) in aligned.streams.iter().enumerate() {
            let c = info.channels();
            let mut window = values[start * c..(start + length) * c].to_vec();
            model.normalizer.apply_modality(m, &mut window);
            data.values[m].extend(window);
        }
        data.targets.push(0);
        starts.push(aligned.timestamps_ns[start]);
        start += stride;
    }
    let probabilities = if int8 {
        let mut runtime = har_runtime::model_dir::load(model_dir).unwrap().model;
        (0..data.len())
            .map(|i| {
                let inputs: Vec<Option<&[f32]>> = data
                    .values
                    .iter()
                    .zip(&data.shapes)
                    .enumerate()
                    .map(|(m, (v, &(t, c)))| {
                        present
                            .is_none_or(|p| p[m])
                            .then(|| &v[i * t * c..(i + 1) * t * c])
                    })
                    .collect();
                runtime.predict_available(&inputs).unwrap()
            })
            .collect()
    } else {
        predict_with(&model.model, &data, 64, present).unwrap()
    };
    let class_ids = model.card.classes.iter().map(|c| c.id).collect();
    (probabilities, starts, class_ids)
}

fn argmax(p: &[f32]) -> usize {
    (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap()
}

/// Every logged prediction equals the offline model's on the same window (the shipped student).
fn assert_matches_offline(flow: &Flow, present: Option<&[bool]>) {
    assert_matches_model(flow, &repo().join("models/hapt-student"), present);
}

/// Every logged prediction equals the offline model `model_dir`'s on the same window.
fn assert_matches_model(flow: &Flow, model_dir: &Path, present: Option<&[bool]>) {
    let (offline, starts, class_ids) = offline_probabilities(model_dir, present);
    let rows = flow.sql("SELECT window_id, start_ns, predicted_label, probabilities FROM predictions ORDER BY window_id");
    assert_eq!(rows.len(), offline.len(), "one prediction row per window");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["window_id"].as_u64(), Some(i as u64));
        assert_eq!(
            row["start_ns"].as_i64(),
            Some(starts[i]),
            "window {i} start"
        );
        assert_eq!(
            row["predicted_label"].as_i64(),
            Some(class_ids[argmax(&offline[i])] as i64),
            "window {i}"
        );
        let streamed: Vec<f64> = row["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for (s, o) in streamed.iter().zip(&offline[i]) {
            assert!(
                (s - *o as f64).abs() < 1e-3,
                "window {i}: {streamed:?} vs {:?}",
                offline[i]
            );
        }
    }
}

#[test]
fn dataflow_predicts_every_window_like_the_offline_model() {
    let _one = DORA.lock().unwrap_or_else(|e| e.into_inner());
    let flow = Flow::new(&[]);
    flow.run();
    assert_matches_offline(&flow, None);

    // Latencies are filled and add up: every stage took time, in order.
    let stats = flow.sql(
        "SELECT count(*) AS n, min(e2e_latency_us) AS min_e2e, min(preprocess_latency_us) AS min_pre, \
         min(encode_latency_us) AS min_enc, min(fuse_latency_us) AS min_fuse, \
         sum(CASE WHEN degraded THEN 1 ELSE 0 END) AS degraded, \
         min(e2e_latency_us - preprocess_latency_us - encode_latency_us - fuse_latency_us) AS min_log_us \
         FROM predictions",
    );
    let s = &stats[0];
    for column in ["min_e2e", "min_pre", "min_enc", "min_fuse", "min_log_us"] {
        assert!(s[column].as_f64().unwrap() > 0.0, "{column}: {s}");
    }
    assert_eq!(s["degraded"].as_i64(), Some(0));

    // Every node reported health, and nothing was lost on the way.
    let health = flow
        .sql("SELECT node, max(dropped) AS dropped FROM node_health GROUP BY node ORDER BY node");
    let nodes: Vec<&str> = health.iter().map(|r| r["node"].as_str().unwrap()).collect();
    assert_eq!(
        nodes,
        [
            "encode-acc",
            "encode-gyro",
            "fuse",
            "log",
            "preprocess",
            "segment",
            "sensor-ingest"
        ]
    );
    assert!(
        health.iter().all(|r| r["dropped"].as_u64() == Some(0)),
        "{health:?}"
    );

    // Window summaries: one per window and modality.
    let windows =
        flow.sql("SELECT modality, count(*) AS n FROM windows GROUP BY modality ORDER BY modality");
    assert_eq!(windows.len(), 2);
    assert!(windows
        .iter()
        .all(|r| r["n"].as_i64() == Some(s["n"].as_i64().unwrap())));

    // The logs read elsewhere: the Python snippets of docs/dataflow.md give what har sql gives.
    let expected: String = flow
        .sql("SELECT predicted_name, count(*) AS n FROM predictions GROUP BY predicted_name ORDER BY predicted_name")
        .iter()
        .map(|r| format!("{} {}\n", r["predicted_name"].as_str().unwrap(), r["n"]))
        .collect();
    for reader in ["pyarrow", "pandas", "duckdb"] {
        assert_eq!(
            run_docs_snippet(reader, &flow.logs()),
            expected,
            "docs/dataflow.md, {reader}"
        );
    }

    // The demo's picture: the replayed device's timeline.
    let png = flow.dir.path().join("timeline.png");
    let out = har_ok(&[
        "plot",
        "timeline",
        "--log-dir",
        flow.logs().to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
    ]);
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.contains(&format!("{} windows", s["n"])), "{said}");
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{} bytes",
        bytes.len()
    );
}

/// Another architecture needs nothing of the nodes: a model directory whose card says LSTM,
/// MVF or CMSA with two levels (the student's shape and normaliser, seeded weights) runs
/// through the same graph, every window predicted as the offline model predicts it.
#[test]
fn other_architectures_and_compressed_models_run_in_the_dataflow_with_no_special_case() {
    let _one = DORA.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let shipped = artifact::load_candle(&repo().join("models/hapt-student")).unwrap();
    let mut models = Vec::new();
    for arch in ["lstm", "mvf", "cmsa"] {
        let mut card = shipped.card.clone();
        card.config = card.config.with_arch(arch).unwrap();
        if arch == "cmsa" {
            // Two levels: the encode nodes send both layers' tokens in one message.
            card.config.modality_layers = 2;
        }
        card.role = "seeded".into();
        let varmap = VarMap::new();
        Dmft::new(&card.config, seeded_var_builder(&varmap, 3)).unwrap();
        let model_dir = dir.path().join(arch);
        artifact::save(&model_dir, &mut card, &varmap, &shipped.normalizer, &[]).unwrap();
        models.push((model_dir, format!("{arch}-seeded@")));
    }
    // A compressed model (`har compress prune`): the shipped student, half its heads and
    // feed-forward units removed.
    let pruned = dir.path().join("pruned");
    har_model::compress::prune_model(&har_model::compress::PruneOptions {
        model: repo().join("models/hapt-student"),
        ratio: 0.5,
        width: None,
        fine_tune: har_model::compress::FineTune::None,
        mimic: Default::default(),
        out: pruned.clone(),
    })
    .unwrap();
    models.push((pruned, "dmft-student-pruned@".to_string()));
    // And in int8, calibrated on a few windows synthesised from the model.
    let int8 = dir.path().join("int8");
    let calibration = har_model::compress::CalibrationData::DataFree(
        har_model::compress::synthesis::SynthesisConfig {
            windows: 16,
            steps: 20,
            ..Default::default()
        },
    );
    har_model::compress::quantize_model(&repo().join("models/hapt-student"), &calibration, &int8)
        .unwrap();
    models.push((int8, "dmft-student-int8@".to_string()));
    for (model_dir, id_prefix) in models {
        let flow = Flow::new(&[("HAR_MODEL", model_dir.to_str().unwrap())]);
        flow.run();
        assert_matches_model(&flow, &model_dir, None);
        let ids = flow.sql("SELECT DISTINCT model_id FROM predictions");
        assert_eq!(ids.len(), 1);
        assert!(
            ids[0]["model_id"].as_str().unwrap().starts_with(&id_prefix),
            "{ids:?}"
        );
    }
}

#[test]
fn a_dead_sensor_gives_flagged_degraded_predictions() {
    let _one = DORA.lock().unwrap_or_else(|e| e.into_inner());
    let flow = Flow::new(&[("HAR_DROP_MODALITIES", "gyro"), ("HAR_DEADLINE_MS", "50")]);
    flow.run();
    let rows = flow.sql(
        "SELECT count(*) AS n, sum(CASE WHEN degraded THEN 1 ELSE 0 END) AS degraded, \
         min(array_to_string(modalities_present, ',')) AS present_min, \
         max(array_to_string(modalities_present, ',')) AS present_max FROM predictions",
    );
    let r = &rows[0];
    assert!(r["n"].as_i64().unwrap() > 200, "{r}");
    assert_eq!(r["degraded"], r["n"], "every prediction flagged: {r}");
    assert_eq!(
        (r["present_min"].as_str(), r["present_max"].as_str()),
        (Some("acc"), Some("acc"))
    );
    // Degraded predictions are the model's with the gyroscope missing.
    assert_matches_offline(&flow, Some(&[true, false]));
    let fuse = flow.sql("SELECT max(degraded) AS degraded FROM node_health WHERE node = 'fuse'");
    assert_eq!(fuse[0]["degraded"], r["n"]);
}

/// Process ids of this flow's log node (found by its log folder in its environment).

#[test]
fn files_written_before_the_log_node_is_killed_still_read() {
    let _one = DORA.lock().unwrap_or_else(|e| e.into_inner());
    let flow = Flow::new(&[("HAR_SPEED", "20"), ("HAR_FLUSH_MS", "100")]);
    let mut child = flow.spawn("8s");
    // Wait for the first sealed prediction files, then kill the log node hard.
    let started = Instant::now();
    let predictions = flow.logs().join("predictions");
    loop {
        let mut files = Vec::new();
        parquet_files(&predictions, &mut files);
        if files.len() >= 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no log files appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pids = node_pids(&flow, "har-log");
    assert_eq!(pids.len(), 1, "one log node of this flow");
    Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "dora run reports the killed node");

    // Every sealed file reads completely; the SQL view sees exactly their rows.
    let mut files = Vec::new();
    parquet_files(&flow.logs(), &mut files);
    let mut prediction_rows = 0;
    for file in &files {
        let (batches, _) = har_core::recording::read_parquet(file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if file.starts_with(&predictions) {
            prediction_rows += batches.iter().map(|b| b.num_rows()).sum::<usize>();
        }
    }
    assert!(prediction_rows > 0);
    let counted = flow.sql("SELECT count(*) AS n FROM predictions");
    assert_eq!(counted[0]["n"].as_u64(), Some(prediction_rows as u64));
}

#[test]
fn a_killed_fuse_restarts_and_every_window_is_predicted_or_counted() {
    let _one = DORA.lock().unwrap_or_else(|e| e.into_inner());
    let flow = Flow::new(&[
        ("HAR_SPEED", "max"),
        ("HAR_COPIES", "32"),
        ("HAR_FLUSH_MS", "100"),
    ]);
    let started = Instant::now();
    let mut child = flow.spawn("240s");
    wait_for_predictions(&flow);
    let pids = node_pids(&flow, "har-fuse");
    assert_eq!(pids.len(), 1, "one fuse node of this flow");
    Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let took = started.elapsed();
    assert!(status.success(), "the restarted fuse finishes the run");
    assert!(took < Duration::from_secs(180), "the run took {took:?}");

    // Every window is either predicted or counted by the log node as lost.
    let windows = flow.sql(
        "SELECT count(DISTINCT device_id || '/' || CAST(window_id AS VARCHAR)) AS n FROM windows",
    );
    let predicted = flow.sql("SELECT count(*) AS n FROM predictions");
    let lost = flow.sql("SELECT max(dropped) AS n FROM node_health WHERE node = 'log'");
    let [windows, predicted, lost] =
        [windows, predicted, lost].map(|rows| rows[0]["n"].as_u64().unwrap());
    assert!(predicted > 0 && windows > 0);
    assert_eq!(
        predicted + lost,
        windows,
        "{predicted} predicted + {lost} counted as lost"
    );
    let duplicates = flow.sql(
        "SELECT count(*) AS n FROM (SELECT device_id, window_id FROM predictions \
         GROUP BY device_id, window_id HAVING count(*) > 1)",
    );
    assert_eq!(duplicates[0]["n"].as_u64(), Some(0));
}

/// The shipped recording as live CSV lines, acc and gyro interleaved in time order.
fn shipped_recording_as_csv() -> String {
    let dataset = Dataset::open(&repo().join("samples/hapt-user02")).unwrap();
    let recording = dataset.read(&dataset.manifest.recordings[0]).unwrap();
    let mut lines = String::new();
    let n = recording.streams[0].len();
    for i in 0..n {
        for stream in &recording.streams {
            let values: Vec<String> = stream.sample(i).iter().map(|v| format!("{v:?}")).collect();
            lines.push_str(&format!(
                "{},{},{},{},{}\n",
                recording.id,
                recording.subject_id,
                stream.info.name,
                stream.timestamps_ns[i],
                values.join(",")
            ));
        }
    }
    lines
}

#[test]
fn live_csv_over_tcp_predicts_like_the_replay() {
    use std::io::Write;
    let _one = DORA.lock().unwrap_or_else(|e| e.into_inner());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let source = format!("tcp:127.0.0.1:{port}");
    // The client sends the whole recording at once, far faster than real time: under load an
    // encoder can fall more than the default 200 ms behind the other, and fuse would rightly
    // predict those windows degraded. This test is about the live path's parity with the
    // replay, so windows wait for both modalities as long as the run lasts.
    let flow = Flow::new(&[
        ("HAR_SOURCE", &source),
        ("HAR_FLUSH_MS", "100"),
        ("HAR_DEADLINE_MS", "60000"),
    ]);
    let mut child = flow.spawn("20s");
    let started = Instant::now();
    let mut stream = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(_) if started.elapsed() < Duration::from_secs(15) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => panic!("sensor-ingest never listened on {port}: {e}"),
        }
    };
    stream
        .write_all(b"# a comment, then one malformed line\nnot,a,sample\n")
        .unwrap();
    stream
        .write_all(shipped_recording_as_csv().as_bytes())
        .unwrap();
    drop(stream);
    child.wait().unwrap();
    let degraded = flow.sql("SELECT window_id FROM predictions WHERE degraded ORDER BY window_id");
    assert!(
        degraded.is_empty(),
        "windows predicted without a modality (the fuse deadline passed): {degraded:?}"
    );
    assert_matches_offline(&flow, None);
    let ingest =
        flow.sql("SELECT max(dropped) AS dropped FROM node_health WHERE node = 'sensor-ingest'");
    assert_eq!(
        ingest[0]["dropped"].as_u64(),
        Some(1),
        "the malformed line is counted"
    );
}
