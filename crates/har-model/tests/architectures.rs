//! Every architecture `har train --arch` offers goes the whole way on real data (the UEA
//! BasicMotions fixture; the skeleton-guided ones, which need a skeleton, on a small SYNTHETIC
//! skeleton + wrist IMU set, the only paired data a test can make): trains a few epochs with a falling loss, saves a model directory
//! whose card names the architecture, reloads in candle, and runs
//! in the runtime equal to candle within 1e-4 — through the whole forward and through the
//! split encoder / fusion path the dataflow's nodes use.

use har_core::dataset::Split;
use har_model::artifact;
use har_model::data::{split_windows, ClassMap, Holdout, TensorData};
use har_model::dmft::DmftConfig;
use har_model::pipeline::{self, DataOptions};
use har_model::train::{predict, Silent, TrainConfig};
use har_runtime::config::ARCHITECTURES;

mod common;
use common::basic_motions;

#[test]
fn every_architecture_trains_saves_loads_and_runs_in_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = basic_motions(dir.path());
    let settings = TrainConfig {
        epochs: 3,
        batch_size: 8,
        ..Default::default()
    };
    let data = DataOptions {
        dataset: dataset.root.clone(),
        classes: vec![],
        window: 100,
        stride: 100,
        train_stride: None,
        holdout: Holdout::Fraction(0.0),
    };
    let synthetic = har_core::import::synthetic::generate(
        &har_core::import::synthetic::SyntheticConfig {
            subjects: 2,
            sessions_per_subject: 1,
            bout_seconds: (5.0, 6.0),
            ..Default::default()
        },
        &dir.path().join("synthetic"),
    )
    .unwrap();
    for arch in ARCHITECTURES {
        let needs_skeleton = arch.starts_with("sga");
        let (dataset, data, window) = if needs_skeleton {
            let data = DataOptions {
                dataset: synthetic.root.clone(),
                window: 64,
                stride: 32,
                ..data.clone()
            };
            (&synthetic, data, 64)
        } else {
            (&dataset, data.clone(), 100)
        };
        let prepared = pipeline::prepare(&data, &settings, "test").unwrap();
        let classes = prepared.classes.classes.len();
        let config = DmftConfig {
            dim: 16,
            ..DmftConfig::teacher(prepared.modalities.clone(), window, classes).student()
        }
        .with_arch(arch)
        .unwrap();
        let out = dir.path().join(arch);
        let saved =
            pipeline::fit_and_save("student", config, prepared, &settings, None, &out, &Silent)
                .unwrap();
        let losses: Vec<f64> = saved.history.iter().map(|r| r.train_loss).collect();
        assert!(
            losses.iter().all(|l| l.is_finite()) && losses[2] < losses[0],
            "{arch}: train losses {losses:?}"
        );
        assert_eq!(saved.card.config.arch_name(), arch);
        assert!(saved
            .card
            .model_id()
            .starts_with(&format!("{arch}-student@")));

        let candle = artifact::load_candle(&out).unwrap();
        let classes = ClassMap {
            classes: candle.card.classes.clone(),
        };
        let windows =
            split_windows(dataset, Split::Test, &candle.card.preprocess, &classes).unwrap();
        let test = TensorData::new(&windows, &candle.normalizer, &classes).unwrap();
        let expected = predict(&candle.model, &test, 64).unwrap();

        let mut runtime = har_runtime::model_dir::load(&out).unwrap();
        assert_eq!(runtime.card.config.encoder, candle.card.config.encoder);
        for (i, want) in expected.iter().enumerate() {
            let inputs: Vec<&[f32]> = test
                .values
                .iter()
                .zip(&test.shapes)
                .map(|(v, &(t, c))| &v[i * t * c..(i + 1) * t * c])
                .collect();
            let whole = runtime.model.predict(&inputs).unwrap();
            let diff = whole
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-4, "{arch}, window {i}: runtime vs candle {diff}");
            let tokens: Vec<Vec<f32>> = inputs
                .iter()
                .enumerate()
                .map(|(m, x)| runtime.model.encode(m, x).unwrap())
                .collect();
            let refs: Vec<Option<&[f32]>> = tokens.iter().map(|t| Some(t.as_slice())).collect();
            assert_eq!(
                runtime.model.fuse(&refs).unwrap(),
                whole,
                "{arch}: split path"
            );
        }
    }
}
