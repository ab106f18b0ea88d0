//! What the model tests share: the BasicMotions fixture as a dataset and its windowing.
#![allow(dead_code)] // each test binary uses part of these helpers

use std::io::Read;
use std::path::Path;

use har_core::dataset::Dataset;
use har_core::import::basic_motions;
use har_core::preprocess::{LabelPolicy, PreprocessConfig, WindowConfig};

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
