//! DMFT (seed S1) as an ONNX graph, emitted layer by layer as the runtime's
//! [`har_runtime::dmft`] assembles it and from the same weights under the same names
//! ([`har_runtime::names::dmft`]): standardisation, the modality encoders (patch — and
//! detail / statistics / spectral — tokens with embeddings and transformer layers, or stacked
//! LSTM / GRU layers), masked fusion (DMFT's per-step fusion, pooling, joint layers and time
//! pooling, or the cross-modal fusion over every level), norm and head.
//! The batch dimension is dynamic.

use har_core::preprocess::Normalizer;
use har_runtime::config::{DmftConfig, Encoder, RecurrentCell, RecurrentInput};
use har_runtime::layers::LAYER_NORM_EPS;
use har_runtime::names::{self, dmft as dmft_names, multiview, recurrent, transformer};
use har_runtime::patch_input::{PATCH_VARIANCE_FLOOR, WINDOW_VARIANCE_FLOOR};
use har_runtime::spectrum::{SpectrumTables, BAND_POWER_FLOOR};
use har_runtime::weights::Params;

use crate::graph::{DenseWeights, Graph, RecurrentWeights};
use crate::proto::{DataType, Dim};
use crate::Result;

/// Name of the batch dimension.
pub const BATCH: &str = "batch";
/// Name of the optional mask input: `[batch, modalities]`, 1 where the modality is present.
pub const MASK_INPUT: &str = "present";
/// Name of the logits output.
pub const LOGITS_OUTPUT: &str = "logits";
/// Name of the probabilities output.
pub const PROBABILITIES_OUTPUT: &str = "probabilities";
/// Added to the scores of a missing modality's tokens: softmax gives them weight 0.
pub(crate) const MASKED_SCORE: f32 = -1e9;

/// Reads a dense layer at `p`.
pub(crate) fn dense(p: &Params, in_dim: usize, out_dim: usize) -> Result<DenseWeights> {
    Ok(DenseWeights {
        weight: p.get(names::WEIGHT, &[out_dim, in_dim])?,
        bias: p.get(names::BIAS, &[out_dim])?,
        in_dim,
        out_dim,
    })
}

/// Layer norm at `p` applied to `x`.
pub(crate) fn layer_norm(g: &mut Graph, p: &Params, x: &str, d: usize) -> Result<String> {
    let weight = p.get(names::WEIGHT, &[d])?;
    let bias = p.get(names::BIAS, &[d])?;
    Ok(g.layer_norm(p.prefix(), x, &weight, &bias, LAYER_NORM_EPS as f32))
}

/// A pre-norm transformer layer at `p` over `x` (`[B, L, D]`).
pub(crate) fn transformer_layer(
    g: &mut Graph,
    p: &Params,
    config: &DmftConfig,
    x: &str,
    bias: Option<&str>,
) -> Result<String> {
    let (d, widths) = (config.dim, config.layer_widths(p.prefix()));
    let (heads, ffn, inner) = (widths.heads, widths.ffn, widths.heads * config.head_dim());
    let a = p.pp(transformer::ATTENTION);
    let qkv = dense(&a.pp(transformer::QKV), d, 3 * inner)?;
    let out = dense(&a.pp(transformer::OUT), inner, d)?;
    let normed = layer_norm(g, &p.pp(transformer::NORM1), x, d)?;
    let attended = g.attention(a.prefix(), &normed, &qkv, &out, heads, bias);
    let x = g.add(x, &attended);
    let normed = layer_norm(g, &p.pp(transformer::NORM2), &x, d)?;
    let hidden = g.dense(
        &format!("{}.ffn_in", p.prefix()),
        &normed,
        &dense(&p.pp(transformer::FFN_IN), d, ffn)?,
    );
    let hidden = g.gelu(&hidden);
    let out = g.dense(
        &format!("{}.ffn_out", p.prefix()),
        &hidden,
        &dense(&p.pp(transformer::FFN_OUT), ffn, d)?,
    );
    Ok(g.add(&x, &out))
}

/// Modality `m`'s encoder over its standardised input `[B, T, C]`: the tokens `[B, S, G, D]`
/// of each level (one level but for the multi-level cross-modal fusion).
fn encode(
    g: &mut Graph,
    config: &DmftConfig,
    m: usize,
    x: &str,
    p: &Params,
) -> Result<Vec<String>> {
    match config.encoder {
        Encoder::Patch | Encoder::Transformer => encode_patches(g, config, m, x, p),
        Encoder::Mvf => {
            let mixed = multiview(g, config, m, x, &p.pp(dmft_names::MULTIVIEW))?;
            encode_patches(g, config, m, &mixed, p)
        }
        Encoder::Recurrent { cell, over } => {
            Ok(vec![encode_recurrent(g, config, m, cell, over, x, p)?])
        }
    }
}

/// The multi-view module (`layers::MultiView`) over `x` (`[B, T, C]`).
fn multiview(g: &mut Graph, config: &DmftConfig, m: usize, x: &str, p: &Params) -> Result<String> {
    let (t, c) = (config.window_len as i64, config.modalities[m].channels);
    let (shared, axes) = config.mvf_channels(m);
    let conv = |name: &str, channels: usize, kernel: usize| -> Result<(Vec<f32>, Vec<f32>)> {
        let q = p.pp(name);
        Ok((
            q.get(names::WEIGHT, &[channels, 1, kernel])?,
            q.get(names::BIAS, &[channels])?,
        ))
    };
    let (time_w, time_b) = conv(multiview::TIME, shared, multiview::TIME_KERNEL)?;
    let (across_w, across_b) = conv(multiview::CHANNEL, axes, multiview::CHANNEL_KERNEL)?;
    let scale = p.get(multiview::SCALE, &[shared])?;
    let shift = p.get(multiview::SHIFT, &[shared])?;
    let indices: Vec<i64> = (0..shared as i64).collect();
    let part = g.gather(x, &indices, false, 2);
    // Along time: channels first.
    let by_channel = g.transpose(&part, &[0, 2, 1]);
    let along = g.depthwise_conv(
        &format!("{}.time", p.prefix()),
        &by_channel,
        &time_w,
        &time_b,
    );
    let along = g.transpose(&along, &[0, 2, 1]);
    // Across channels: each sample's positions, the axes as channels.
    let positions = g.reshape(&part, &[-1, (shared / axes) as i64, axes as i64]);
    let positions = g.transpose(&positions, &[0, 2, 1]);
    let across = g.depthwise_conv(
        &format!("{}.channel", p.prefix()),
        &positions,
        &across_w,
        &across_b,
    );
    let across = g.transpose(&across, &[0, 2, 1]);
    let across = g.reshape(&across, &[-1, t, shared as i64]);
    let summed = g.add(&along, &across);
    let normed = g.standardise(&summed, 1, WINDOW_VARIANCE_FLOOR);
    let scale = g.constant(&format!("{}.scale", p.prefix()), &[shared], &scale);
    let shift = g.constant(&format!("{}.shift", p.prefix()), &[shared], &shift);
    let scaled = g.mul(&normed, &scale);
    let shifted = g.add(&scaled, &shift);
    let mixed = g.gelu(&shifted);
    if shared == c {
        return Ok(mixed);
    }
    let rest: Vec<i64> = (shared as i64..c as i64).collect();
    let rest = g.gather(x, &rest, false, 2);
    Ok(g.concat(&[mixed, rest], 2))
}

/// A recurrent encoder: stacked LSTM / GRU layers, tokens `[B, S, 1, D]`.
fn encode_recurrent(
    g: &mut Graph,
    config: &DmftConfig,
    m: usize,
    cell: RecurrentCell,
    over: RecurrentInput,
    x: &str,
    p: &Params,
) -> Result<String> {
    let (d, steps) = (config.dim, config.patch_steps() as i64);
    let gates = match cell {
        RecurrentCell::Lstm => 4,
        RecurrentCell::Gru => 3,
    };
    let input = match over {
        RecurrentInput::Samples => x.to_string(),
        RecurrentInput::Patches => {
            let width = config.recurrent_input_len(m, over) as i64;
            g.reshape(x, &[-1, steps, width])
        }
    };
    // Time first, as the operators read it.
    let mut hidden = g.transpose(&input, &[1, 0, 2]);
    for l in 0..config.modality_layers {
        let width = config.recurrent_layer_input(m, l, over);
        let q = p.pp(dmft_names::recurrent_layer(l));
        let weights = RecurrentWeights {
            w_ih: q.get(recurrent::WEIGHT_IH, &[gates * d, width])?,
            w_hh: q.get(recurrent::WEIGHT_HH, &[gates * d, d])?,
            b_ih: q.get(recurrent::BIAS_IH, &[gates * d])?,
            b_hh: q.get(recurrent::BIAS_HH, &[gates * d])?,
            input: width,
            hidden: d,
        };
        hidden = g.recurrent(q.prefix(), &hidden, cell, &weights);
    }
    if over == RecurrentInput::Samples {
        // The hidden state after each patch's last sample.
        let p_len = config.patch_len as i64;
        let ends: Vec<i64> = (0..steps).map(|k| (k + 1) * p_len - 1).collect();
        hidden = g.gather(&hidden, &ends, false, 0);
    }
    let batch_first = g.transpose(&hidden, &[1, 0, 2]);
    Ok(g.unsqueeze(&batch_first, &[2]))
}

/// DMFT's patch encoder (and the plain transformer): tokens `[B, S, G, D]`, after each layer
/// when the fusion takes several levels.
fn encode_patches(
    g: &mut Graph,
    config: &DmftConfig,
    m: usize,
    x: &str,
    p: &Params,
) -> Result<Vec<String>> {
    let spec = &config.modalities[m];
    let (t, d, s_len) = (config.window_len, config.dim, config.steps());
    let patch = config.patch_len;
    let patch_steps = config.patch_steps() as i64;
    let options = config.patch_options();
    // Each channel standardised over the window (`standardise_window`).
    let detail = options
        .window_detail
        .then(|| g.standardise(x, 1, WINDOW_VARIANCE_FLOOR));
    let log_power = config.spectral_tokens.then(|| {
        // Per channel, log mean power in bands of the window's DFT (`SpectrumTables`).
        let tables = SpectrumTables::new(t);
        let (bins, bands) = (tables.bins(), tables.bands());
        let dft = g.constant("spectrum.dft", &[t, 2 * bins], tables.dft_matrix());
        let band = tables.band_matrix();
        let both: Vec<f32> = band.iter().chain(&band).copied().collect();
        let band = g.constant("spectrum.bands", &[2 * bins, bands], &both);
        let by_channel = g.transpose(x, &[0, 2, 1]);
        let spectrum = g.matmul(&by_channel, &dft);
        let squared = g.mul(&spectrum, &spectrum);
        let power = g.matmul(&squared, &band);
        let floor = g.scalar(BAND_POWER_FLOOR);
        let power = g.add(&power, &floor);
        (g.unary("Log", &power), bands)
    });
    let groups = spec.groups.len();
    let group_embedding = p.get(dmft_names::GROUP_EMBEDDING, &[groups, d])?;
    let position_embedding = p.get(dmft_names::POSITION_EMBEDDING, &[s_len, d])?;
    let mut group_tokens = Vec::with_capacity(groups);
    for (gi, group) in spec.groups.iter().enumerate() {
        let channels: Vec<i64> = group.iter().map(|&c| c as i64).collect();
        let width = (patch * group.len()) as i64;
        let xg = g.gather(x, &channels, false, 2);
        let mut parts = vec![g.reshape(&xg, &[-1, patch_steps, width])];
        if let Some(detail) = &detail {
            let dg = g.gather(detail, &channels, false, 2);
            parts.push(g.reshape(&dg, &[-1, patch_steps, width]));
        }
        if options.patch_stats {
            // Per patch and channel, ½·ln(var + floor) (`patch_log_std`).
            let patches = g.reshape(&xg, &[-1, patch_steps, patch as i64, group.len() as i64]);
            let mean = g.mean(&patches, &[2]);
            let centred = g.sub(&patches, &mean);
            let squared = g.mul(&centred, &centred);
            let var = g.mean(&squared, &[2]);
            let floor = g.scalar(PATCH_VARIANCE_FLOOR);
            let var = g.add(&var, &floor);
            let log = g.unary("Log", &var);
            let half = g.scalar(0.5);
            let log_std = g.mul(&log, &half);
            parts.push(g.reshape(&log_std, &[-1, patch_steps, group.len() as i64]));
        }
        let input = g.concat(&parts, -1);
        let projection = p.pp(dmft_names::patch_projection(gi));
        let mut tokens = g.dense(
            projection.prefix(),
            &input,
            &dense(&projection, options.input_len(group.len()), d)?,
        );
        if let Some((log_power, bands)) = &log_power {
            let pg = g.gather(log_power, &channels, false, 1);
            let pg = g.reshape(&pg, &[-1, 1, (group.len() * bands) as i64]);
            let projection = p.pp(dmft_names::spectral_projection(gi));
            let spectral = g.dense(
                projection.prefix(),
                &pg,
                &dense(&projection, group.len() * bands, d)?,
            );
            tokens = g.concat(&[tokens, spectral], 1);
        }
        let embedding: Vec<f32> = (0..s_len * d)
            .map(|i| group_embedding[gi * d + i % d] + position_embedding[i])
            .collect();
        let embedding = g.constant(
            &format!("{}.embedding{gi}", p.prefix()),
            &[s_len, d],
            &embedding,
        );
        let tokens = g.add(&tokens, &embedding);
        group_tokens.push(g.unsqueeze(&tokens, &[2]));
    }
    let mut tokens = g.concat(&group_tokens, 2);
    let (s, gl, dl) = (s_len as i64, groups as i64, d as i64);
    let mut levels = Vec::new();
    for l in 0..config.modality_layers {
        if groups > 1 {
            let across = g.reshape(&tokens, &[-1, gl, dl]);
            let across = transformer_layer(
                g,
                &p.pp(dmft_names::spatial_layer(l)),
                config,
                &across,
                None,
            )?;
            tokens = g.reshape(&across, &[-1, s, gl, dl]);
        }
        let by_group = g.transpose(&tokens, &[0, 2, 1, 3]);
        let along = g.reshape(&by_group, &[-1, s, dl]);
        let along = transformer_layer(
            g,
            &p.pp(dmft_names::temporal_layer(l)),
            config,
            &along,
            None,
        )?;
        let by_group = g.reshape(&along, &[-1, gl, s, dl]);
        tokens = g.transpose(&by_group, &[0, 2, 1, 3]);
        if config.token_levels() > 1 {
            levels.push(tokens.clone());
        }
    }
    if config.token_levels() > 1 {
        Ok(levels)
    } else {
        Ok(vec![tokens])
    }
}

/// Emits the whole model: inputs (raw windows per modality, and the mask when asked),
/// standardisation, encoders, fusion and head; outputs logits and probabilities.
pub fn emit(
    g: &mut Graph,
    config: &DmftConfig,
    root: &Params,
    normalizer: &Normalizer,
    with_mask: bool,
) -> Result<()> {
    let batch = Dim::Named(BATCH.into());
    let mut tokens = Vec::with_capacity(config.modalities.len());
    for (m, spec) in config.modalities.iter().enumerate() {
        let shape = [
            batch.clone(),
            Dim::Fixed(config.window_len),
            Dim::Fixed(spec.channels),
        ];
        let x = g.input(&spec.name, DataType::Float, &shape);
        let stats = &normalizer.modalities[m];
        let mean = g.constant(
            &format!("{}.mean", spec.name),
            &[spec.channels],
            &stats.mean,
        );
        let std = g.constant(&format!("{}.std", spec.name), &[spec.channels], &stats.std);
        let centred = g.sub(&x, &mean);
        let x = g.div(&centred, &std);
        let p = root.pp(dmft_names::encoder(&spec.name));
        tokens.push(encode(g, config, m, &x, &p)?);
    }
    let mask = with_mask.then(|| {
        let shape = [batch.clone(), Dim::Fixed(config.modalities.len())];
        g.input(MASK_INPUT, DataType::Float, &shape)
    });
    let p = root.pp(dmft_names::FUSION);
    let logits = crate::fusion::logits(g, config, &p, &tokens, mask.as_deref())?;
    let probabilities = g.softmax(&logits, -1);
    let out_shape = [batch, Dim::Fixed(config.num_classes)];
    g.output(&logits, LOGITS_OUTPUT, &out_shape);
    g.output(&probabilities, PROBABILITIES_OUTPUT, &out_shape);
    Ok(())
}
