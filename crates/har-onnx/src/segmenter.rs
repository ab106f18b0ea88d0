//! The per-step segmentation model (`har_runtime::segmenter`) as ONNX: the whole-sequence
//! form of what the runtime computes step by step.
//!
//! Input `steps` `[batch, steps, patch_len · channels]`: each step's samples, sample-major,
//! channels in the card's modality order, raw values after alignment (the card's
//! standardisation is inside the graph). Outputs `logits` and `probabilities`
//! `[batch, steps, classes]`. The causal convolution is a zero pad and `kernel` shifted slices;
//! the attention masks are built in the graph from the sequence length (`Range`, compared), so
//! one file takes sequences of any length. Step `t` sees steps `t − window + 1 ..= t` (every
//! earlier step for a global attention without `global_window`), exactly as the runtime's
//! stream from a fresh state.

use std::path::Path;

use har_runtime::names::{recurrent, segmenter as names};
use har_runtime::segmenter::{Segmenter, SegmenterCard, SegmenterConfig, WEIGHTS_FILE};
use har_runtime::weights::{Params, Weights};

use crate::dmft::{dense, layer_norm, BATCH, LOGITS_OUTPUT, MASKED_SCORE, PROBABILITIES_OUTPUT};
use crate::graph::{Graph, RecurrentWeights};
use crate::proto::{DataType, Dim};
use crate::{to_json, Exported, Result};
use har_runtime::config::RecurrentCell;

/// Name of the segmenter's input.
pub const STEPS_INPUT: &str = "steps";

/// Exports the segmenter directory `dir` (`segmenter.json`, `segmenter.safetensors`); every
/// weight must be used, as when the runtime loads it.
pub fn export(dir: &Path) -> Result<Exported> {
    // Loading through the runtime checks the card and every shape first.
    let (card, _) = Segmenter::read_dir(dir)?;
    let weights = Weights::read(&dir.join(WEIGHTS_FILE))?;
    let mut g = Graph::default();
    emit(&mut g, &card, &weights.root())?;
    weights.finish()?;
    let name = dir
        .file_name()
        .map_or_else(|| "segmenter".into(), |n| n.to_string_lossy().into_owned());
    let metadata = vec![
        ("har.model_id".to_string(), name.clone()),
        ("har.classes".to_string(), to_json(&card.classes)),
        ("har.card".to_string(), to_json(&card)),
        (
            "har.inputs".to_string(),
            format!(
                "`steps` [batch, steps, {}]: {} samples per step, sample-major, channels {:?}, \
                 raw values after alignment (standardised inside the graph)",
                card.config.step_width(),
                card.config.patch_len,
                card.modalities
            ),
        ),
    ];
    let parameters = g.parameters;
    Ok(Exported {
        bytes: g.finish(&name, &metadata),
        inputs: vec![STEPS_INPUT.to_string()],
        parameters,
        model_id: name,
    })
}

/// The additive attention mask `[S, S]` of a sequence as long as `x`'s axis 1: 0 where step
/// `t` sees step `k` (`0 ≤ t − k < window`, or `0 ≤ t − k` without a window), else a large
/// negative score.
fn causal_bias(g: &mut Graph, x: &str, window: Option<usize>) -> String {
    let shape = g.op("Shape", &[x], &[]);
    let len = g.gather(&shape, &[1], true, 0);
    let zero = g.ints(&[], &[0]);
    let one = g.ints(&[], &[1]);
    let idx = g.op("Range", &[&zero, &len, &one], &[]);
    let rows = g.unsqueeze(&idx, &[1]);
    let cols = g.unsqueeze(&idx, &[0]);
    let back = g.sub(&rows, &cols);
    let minus_one = g.ints(&[], &[-1]);
    let mut seen = g.op("Greater", &[&back, &minus_one], &[]);
    if let Some(w) = window {
        let w = g.ints(&[], &[w as i64]);
        let inside = g.op("Less", &[&back, &w], &[]);
        seen = g.op("And", &[&seen, &inside], &[]);
    }
    let open = g.scalar(0.0);
    let closed = g.scalar(MASKED_SCORE);
    g.op("Where", &[&seen, &open, &closed], &[])
}

/// An attention block at `p` over `h` (`[B, S, D]`): `norm(h + attention(h))`.
fn attention_block(
    g: &mut Graph,
    p: &Params,
    config: &SegmenterConfig,
    h: &str,
    window: Option<usize>,
) -> Result<String> {
    let d = config.dim;
    let a = p.pp(names::ATTENTION);
    let qkv = dense(&a.pp(har_runtime::names::transformer::QKV), d, 3 * d)?;
    let out = dense(&a.pp(har_runtime::names::transformer::OUT), d, d)?;
    let bias = causal_bias(g, h, window);
    let attended = g.attention(a.prefix(), h, &qkv, &out, config.heads, Some(&bias));
    let sum = g.add(h, &attended);
    layer_norm(g, &p.pp(names::NORM), &sum, d)
}

/// Emits the model: input, standardisation, layers, outputs.
fn emit(g: &mut Graph, card: &SegmenterCard, root: &Params) -> Result<()> {
    let c = &card.config;
    let (d, k) = (c.dim, c.kernel);
    let batch = Dim::Named(BATCH.into());
    let steps = Dim::Named("steps".into());
    let x = g.input(
        STEPS_INPUT,
        DataType::Float,
        &[batch.clone(), steps.clone(), Dim::Fixed(c.step_width())],
    );
    // Standardisation: value `i` of a step is channel `i mod channels`.
    let tile = |v: &[f32]| -> Vec<f32> { v.iter().copied().cycle().take(c.step_width()).collect() };
    let mean = g.constant(
        "standardiser.mean",
        &[c.step_width()],
        &tile(&card.standardiser.mean),
    );
    let std = g.constant(
        "standardiser.std",
        &[c.step_width()],
        &tile(&card.standardiser.std),
    );
    let centred = g.sub(&x, &mean);
    let x = g.div(&centred, &std);

    let embed = dense(&root.pp(names::EMBED), c.step_width(), d)?;
    let embedded = g.dense(names::EMBED, &x, &embed);
    let embedded = g.gelu(&embedded);
    // Causal convolution: `k − 1` zero steps in front, then the `k` shifted copies side by
    // side (oldest first), as the runtime's window of recent embeddings.
    let pads = g.ints(&[6], &[0, (k - 1) as i64, 0, 0, 0, 0]);
    let padded = g.op("Pad", &[&embedded, &pads], &[]);
    let shifted: Vec<String> = (0..k)
        .map(|j| {
            let start = g.ints(&[1], &[j as i64]);
            let end_value = if j + 1 == k {
                i64::MAX
            } else {
                -((k - 1 - j) as i64)
            };
            let end = g.ints(&[1], &[end_value]);
            let axis = g.ints(&[1], &[1]);
            g.op("Slice", &[&padded, &start, &end, &axis], &[])
        })
        .collect();
    let unfolded = g.concat(&shifted, 2);
    let conv = dense(&root.pp(names::CONV), k * d, d)?;
    let conv = g.dense(names::CONV, &unfolded, &conv);
    let conv = g.gelu(&conv);
    let mut h = g.add(&embedded, &conv);
    if c.local {
        h = attention_block(g, &root.pp(names::LOCAL), c, &h, Some(c.local_window))?;
    }
    let q = root.pp(names::GRU);
    let weights = RecurrentWeights {
        w_ih: q.get(recurrent::WEIGHT_IH, &[3 * d, d])?,
        w_hh: q.get(recurrent::WEIGHT_HH, &[3 * d, d])?,
        b_ih: q.get(recurrent::BIAS_IH, &[3 * d])?,
        b_hh: q.get(recurrent::BIAS_HH, &[3 * d])?,
        input: d,
        hidden: d,
    };
    let time_first = g.transpose(&h, &[1, 0, 2]);
    let hidden = g.recurrent(q.prefix(), &time_first, RecurrentCell::Gru, &weights);
    h = g.transpose(&hidden, &[1, 0, 2]);
    if c.global {
        h = attention_block(g, &root.pp(names::GLOBAL), c, &h, c.global_window)?;
    }
    let head = dense(&root.pp(names::HEAD), d, c.num_classes)?;
    let logits = g.dense(names::HEAD, &h, &head);
    let probabilities = g.softmax(&logits, -1);
    let shape = [batch, steps, Dim::Fixed(c.num_classes)];
    g.output(&logits, LOGITS_OUTPUT, &shape);
    g.output(&probabilities, PROBABILITIES_OUTPUT, &shape);
    Ok(())
}
