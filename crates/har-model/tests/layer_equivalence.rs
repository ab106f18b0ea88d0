//! The layers for the coming encoders compute the same in both engines: candle's trainable
//! modules (`har_model::sequence_layers`) and the runtime's (`har_runtime::layers`), loaded
//! from the same weights under the same names, agree to 1e-4 on random sequences.

use candle_core::{Device, Module, Tensor};
use candle_nn::VarMap;
use har_core::rng::Rng;
use har_model::init::seeded_var_builder;
use har_model::runtime::varmap_weights;
use har_model::sequence_layers as candle_layers;
use har_runtime::layers::{self as runtime_layers, Padding};

const B: usize = 2;
const T: usize = 13;

fn sequence(channels: usize, seed: u64) -> (Tensor, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let values: Vec<f32> = (0..B * T * channels).map(|_| rng.normal() as f32).collect();
    (
        Tensor::from_slice(&values, (B, T, channels), &Device::Cpu).unwrap(),
        values,
    )
}

/// Sets every bias of `varmap` to random values (they start at 0, which would test nothing).
fn randomise_biases(varmap: &VarMap) {
    let mut rng = Rng::new(99);
    for (name, var) in varmap.data().lock().unwrap().iter() {
        if name.contains("bias") {
            let values: Vec<f32> = (0..var.elem_count()).map(|_| rng.normal() as f32).collect();
            var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
}

/// Runs `runtime` on each sequence of the batch and compares with candle's `[B, T, out]`.
fn compare(
    expected: &Tensor,
    values: &[f32],
    channels: usize,
    runtime: impl Fn(&[f32]) -> Vec<f32>,
) {
    let expected = expected.to_vec3::<f32>().unwrap();
    for (b, expected) in expected.iter().enumerate() {
        let got = runtime(&values[b * T * channels..(b + 1) * T * channels]);
        let want: Vec<f32> = expected.iter().flatten().copied().collect();
        assert_eq!(got.len(), want.len());
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, e)| (a - e).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-4, "sequence {b}: max difference {diff}");
    }
}

#[test]
fn depthwise_and_separable_convolutions_agree() {
    for (kernel, padding) in [
        (1, Padding::Same),
        (5, Padding::Same),
        (4, Padding::Causal),
        (1, Padding::Causal),
    ] {
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, 3);
        let depthwise =
            candle_layers::DepthwiseConv1d::new(6, kernel, padding, vb.pp("dw")).unwrap();
        let separable =
            candle_layers::SeparableConv1d::new(6, 4, kernel, padding, vb.pp("sep")).unwrap();
        randomise_biases(&varmap);
        let weights = varmap_weights(&varmap).unwrap();
        let root = weights.root();
        let dw = runtime_layers::DepthwiseConv1d::load(&root.pp("dw"), 6, kernel, padding).unwrap();
        let sep =
            runtime_layers::SeparableConv1d::load(&root.pp("sep"), 6, 4, kernel, padding).unwrap();
        weights.finish().unwrap();
        let (xs, values) = sequence(6, kernel as u64);
        compare(&depthwise.forward(&xs).unwrap(), &values, 6, |x| {
            let mut y = Vec::new();
            dw.apply(x, &mut y);
            y
        });
        compare(&separable.forward(&xs).unwrap(), &values, 6, |x| {
            let (mut buffer, mut y) = (Vec::new(), Vec::new());
            sep.apply(x, &mut buffer, &mut y);
            y
        });
    }
    // A causal convolution does not look ahead: changing the last sample changes only the
    // last output.
    let varmap = VarMap::new();
    candle_layers::DepthwiseConv1d::new(
        2,
        3,
        Padding::Causal,
        seeded_var_builder(&varmap, 1).pp("c"),
    )
    .unwrap();
    let weights = varmap_weights(&varmap).unwrap();
    let conv =
        runtime_layers::DepthwiseConv1d::load(&weights.root().pp("c"), 2, 3, Padding::Causal)
            .unwrap();
    let x: Vec<f32> = (0..2 * T).map(|i| (i as f32).sin()).collect();
    let mut moved = x.clone();
    moved[2 * T - 1] += 1.0;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    conv.apply(&x, &mut a);
    conv.apply(&moved, &mut b);
    assert_eq!(a[..2 * T - 1], b[..2 * T - 1]);
    assert_ne!(a[2 * T - 1], b[2 * T - 1]);
}

#[test]
fn lstm_and_gru_agree() {
    let varmap = VarMap::new();
    let vb = seeded_var_builder(&varmap, 7);
    let lstm = candle_layers::Lstm::new(5, 8, vb.pp("lstm")).unwrap();
    let gru = candle_layers::Gru::new(5, 8, vb.pp("gru")).unwrap();
    randomise_biases(&varmap);
    let weights = varmap_weights(&varmap).unwrap();
    let root = weights.root();
    let r_lstm = runtime_layers::Lstm::load(&root.pp("lstm"), 5, 8).unwrap();
    let r_gru = runtime_layers::Gru::load(&root.pp("gru"), 5, 8).unwrap();
    weights.finish().unwrap();
    let (xs, values) = sequence(5, 11);
    compare(&lstm.forward(&xs).unwrap(), &values, 5, |x| {
        let mut y = Vec::new();
        r_lstm.apply(x, &mut y);
        y
    });
    compare(&gru.forward(&xs).unwrap(), &values, 5, |x| {
        let mut y = Vec::new();
        r_gru.apply(x, &mut y);
        y
    });
}
