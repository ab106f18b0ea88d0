//! What the model tests share: the BasicMotions fixture as a dataset and its windowing; random
//! parameters and differences for the engines' equivalence tests.
#![allow(dead_code)] // each test binary uses part of these helpers

use std::io::Read;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use har_core::dataset::Dataset;
use har_core::import::basic_motions;
use har_core::preprocess::{LabelPolicy, PreprocessConfig, WindowConfig};
use har_core::rng::Rng;

/// The UEA BasicMotions fixture (`tests/fixtures`) imported into `dir/bm`.
pub fn basic_motions(dir: &Path) -> Dataset {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    for split in ["TRAIN", "TEST"] {
        let mut text = String::new();
        let file =
            std::fs::File::open(fixtures.join(format!("BasicMotions_{split}.ts.gz"))).unwrap();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .unwrap();
        std::fs::write(dir.join(format!("{split}.ts")), text).unwrap();
    }
    basic_motions::import(
        &dir.join("TRAIN.ts"),
        &dir.join("TEST.ts"),
        &dir.join("bm"),
        None,
    )
    .unwrap()
}

/// 100-sample windows, stride 100, pure labels (one window per case).
pub fn preprocess() -> PreprocessConfig {
    PreprocessConfig {
        window: WindowConfig {
            length: 100,
            stride: 100,
            label_policy: LabelPolicy::Pure,
        },
        ..Default::default()
    }
}

/// Sets every parameter of `varmap` to `scale` × standard normal draws from `seed` (the
/// initialisation's zero biases and unit norms would test less).
pub fn randomise(varmap: &VarMap, scale: f32, seed: u64) {
    let mut rng = Rng::new(seed);
    for var in varmap.all_vars() {
        let values: Vec<f32> = (0..var.elem_count())
            .map(|_| scale * rng.normal() as f32)
            .collect();
        var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap())
            .unwrap();
    }
}

/// Largest absolute difference of two equally long slices.
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}
