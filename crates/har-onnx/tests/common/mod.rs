//! What the ONNX tests share: running a graph in tract and comparing outputs.
#![allow(dead_code)] // each test binary uses part of these helpers

use tract_onnx::prelude::*;

/// Runs ONNX `bytes` in tract on `(shape, values)` inputs, the batch dimension left symbolic
/// as the file declares it; every output flattened.
pub fn run_onnx(bytes: &[u8], inputs: Vec<(Vec<usize>, Vec<f32>)>) -> Vec<Vec<f32>> {
    run(bytes, inputs, false)
}

/// As [`run_onnx`], with the inputs' shapes fixed before optimisation: tract 0.23's LSTM and
/// GRU cannot be optimised with a symbolic batch (they unwrap `UndeterminedSymbol("batch")`).
pub fn run_onnx_fixed(bytes: &[u8], inputs: Vec<(Vec<usize>, Vec<f32>)>) -> Vec<Vec<f32>> {
    run(bytes, inputs, true)
}

fn run(bytes: &[u8], inputs: Vec<(Vec<usize>, Vec<f32>)>, fixed: bool) -> Vec<Vec<f32>> {
    let mut model = tract_onnx::onnx().model_for_read(&mut &bytes[..]).unwrap();
    if fixed {
        for (i, (shape, _)) in inputs.iter().enumerate() {
            model = model.with_input_fact(i, f32::fact(shape).into()).unwrap();
        }
    }
    let model = model.into_optimized().unwrap().into_runnable().unwrap();
    let values: TVec<TValue> = inputs
        .into_iter()
        .map(|(shape, data)| Tensor::from_shape(&shape, &data).unwrap().into())
        .collect();
    model
        .run(values)
        .unwrap()
        .iter()
        .map(|t| {
            t.to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect()
        })
        .collect()
}

/// Largest absolute difference.
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The `present` input of per-window presence flags.
pub fn mask(present: &[Vec<bool>]) -> Vec<f32> {
    present
        .iter()
        .flatten()
        .map(|&p| f32::from(u8::from(p)))
        .collect()
}
