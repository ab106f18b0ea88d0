//! The fusion schemes as ONNX graphs (the config's [`Fusion`], as the runtime's
//! `har_runtime::fusion` computes them): DMFT's mid-fusion, the cross-modal fusion over
//! every level (seed S9) and the skeleton-guided fusion, mid or late (seed S2), each ending in
//! class logits `[B, K]`.

use har_runtime::config::{DmftConfig, Fusion};
use har_runtime::names::{self, dmft as dmft_names};
use har_runtime::weights::Params;

use crate::dmft::{dense, layer_norm, transformer_layer, MASKED_SCORE};
use crate::graph::Graph;
use crate::Result;

/// The fusion part over every modality's tokens (`tokens[m][l]`: level `l`'s `[B, S, G, D]`),
/// with the presence mask `[B, M]` when the graph takes one: class logits `[B, K]`.
pub fn logits(
    g: &mut Graph,
    config: &DmftConfig,
    p: &Params,
    tokens: &[Vec<String>],
    mask: Option<&str>,
) -> Result<String> {
    let pooled = match config.fusion {
        Fusion::Mid => fuse_mid(g, config, p, tokens, mask)?,
        Fusion::CrossModal => fuse_cross_modal(g, config, p, tokens, mask)?,
        Fusion::SkeletonGuided { late } => {
            return skeleton_guided(g, config, p, tokens, mask, late)
        }
    };
    head(g, config, p, &pooled, dmft_names::NORM, dmft_names::HEAD)
}

/// Layer norm `norm` and linear head `head` under `p` on pooled features `[B, D]`.
fn head(
    g: &mut Graph,
    config: &DmftConfig,
    p: &Params,
    pooled: &str,
    norm: &str,
    head: &str,
) -> Result<String> {
    let normed = layer_norm(g, &p.pp(norm), pooled, config.dim)?;
    let head = p.pp(head);
    Ok(g.dense(
        head.prefix(),
        &normed,
        &dense(&head, config.dim, config.num_classes)?,
    ))
}

/// Score bias `[B, N]` leaving out missing modalities' tokens: `columns` lists the modalities
/// (mask columns) in token order with their token counts, which sum to `N`.
fn token_bias(g: &mut Graph, mask: &str, columns: &[(usize, usize)]) -> String {
    let columns: Vec<String> = columns
        .iter()
        .map(|&(m, tokens)| {
            let column = g.gather(mask, &[m as i64], false, 1);
            let shape = g.ints(&[2], &[1, tokens as i64]);
            g.op("Expand", &[&column, &shape], &[])
        })
        .collect();
    let keep = g.concat(&columns, 1);
    let one = g.scalar(1.0);
    let dropped = g.sub(&keep, &one);
    let big = g.scalar(-MASKED_SCORE);
    g.mul(&dropped, &big)
}

/// Every modality with `tokens_of(m)` tokens, as [`token_bias`] columns.
fn all_columns(config: &DmftConfig, tokens_of: impl Fn(usize) -> usize) -> Vec<(usize, usize)> {
    (0..config.modalities.len())
        .map(|m| (m, tokens_of(m)))
        .collect()
}

/// Score biases of the mid-fusion: for the fusion layer (`[B·S, 1, 1, G]`) and for the
/// group pool (`[B·S, G, 1]`).
fn mid_biases(g: &mut Graph, config: &DmftConfig, mask: &str) -> (String, String) {
    let bias = token_bias(g, mask, &all_columns(config, |m| config.token_groups(m)));
    let bias = g.unsqueeze(&bias, &[1]);
    let steps = g.ints(&[3], &[1, config.steps() as i64, 1]);
    let per_step = g.op("Expand", &[&bias, &steps], &[]);
    let total: usize = (0..config.modalities.len())
        .map(|m| config.token_groups(m))
        .sum();
    let for_layer = g.reshape(&per_step, &[-1, 1, 1, total as i64]);
    let for_pool = g.reshape(&per_step, &[-1, total as i64, 1]);
    (for_layer, for_pool)
}

/// Score biases of the cross-modal fusion over the joint token set of `N = S·ΣG` tokens: for
/// its layers (`[B, 1, 1, N]`) and its pools (`[B, N, 1]`).
fn cross_modal_biases(g: &mut Graph, config: &DmftConfig, mask: &str) -> (String, String) {
    let per_modality = |m| config.steps() * config.token_groups(m);
    let bias = token_bias(g, mask, &all_columns(config, per_modality));
    let n: usize = (0..config.modalities.len()).map(per_modality).sum();
    let for_layer = g.reshape(&bias, &[-1, 1, 1, n as i64]);
    let for_pool = g.reshape(&bias, &[-1, n as i64, 1]);
    (for_layer, for_pool)
}

/// The layer and pool biases of a masked graph as borrowed names (`None` without a mask).
fn bias_pair(biases: &Option<(String, String)>) -> (Option<&str>, Option<&str>) {
    match biases {
        Some((layer, pool)) => (Some(layer.as_str()), Some(pool.as_str())),
        None => (None, None),
    }
}

/// DMFT's mid-fusion of the tokens (one level per modality): the pooled feature `[B, D]`.
fn fuse_mid(
    g: &mut Graph,
    config: &DmftConfig,
    p: &Params,
    tokens: &[Vec<String>],
    mask: Option<&str>,
) -> Result<String> {
    let (d, s_len) = (config.dim, config.steps());
    let biases = mask.map(|mask| mid_biases(g, config, mask));
    let total: usize = (0..config.modalities.len())
        .map(|m| config.token_groups(m))
        .sum();
    let last: Vec<String> = tokens.iter().map(|levels| levels[0].clone()).collect();
    let all = g.concat(&last, 2);
    let steps = g.reshape(&all, &[-1, total as i64, d as i64]);
    let (layer_bias, pool_bias) = bias_pair(&biases);
    let steps = transformer_layer(
        g,
        &p.pp(dmft_names::FUSION_LAYER),
        config,
        &steps,
        layer_bias,
    )?;
    let query = p.pp(dmft_names::GROUP_POOL).get(names::QUERY, &[d, 1])?;
    let fused = g.attention_pool(dmft_names::GROUP_POOL, &steps, &query, pool_bias);
    let mut fused = g.reshape(&fused, &[-1, s_len as i64, d as i64]);
    for l in 0..config.joint_layers {
        fused = transformer_layer(g, &p.pp(dmft_names::joint_layer(l)), config, &fused, None)?;
    }
    let query = p.pp(dmft_names::TIME_POOL).get(names::QUERY, &[d, 1])?;
    Ok(g.attention_pool(dmft_names::TIME_POOL, &fused, &query, None))
}

/// The cross-modal fusion (seed S9): per level, the joint token set of every modality
/// through its layers and pool, gated by a sigmoid; the levels summed: `[B, D]`.
fn fuse_cross_modal(
    g: &mut Graph,
    config: &DmftConfig,
    p: &Params,
    tokens: &[Vec<String>],
    mask: Option<&str>,
) -> Result<String> {
    let d = config.dim;
    let biases = mask.map(|mask| cross_modal_biases(g, config, mask));
    let (layer_bias, pool_bias) = bias_pair(&biases);
    let mut sum: Option<String> = None;
    for l in 0..config.token_levels() {
        let parts: Vec<String> = tokens
            .iter()
            .enumerate()
            .map(|(m, levels)| {
                let n = (config.steps() * config.token_groups(m)) as i64;
                g.reshape(&levels[l], &[-1, n, d as i64])
            })
            .collect();
        let mut joint = g.concat(&parts, 1);
        for k in 0..config.joint_layers {
            let q = p.pp(dmft_names::cross_layer(l, k));
            joint = transformer_layer(g, &q, config, &joint, layer_bias)?;
        }
        let pool = p.pp(dmft_names::level_pool(l));
        let query = pool.get(names::QUERY, &[d, 1])?;
        let feature = g.attention_pool(pool.prefix(), &joint, &query, pool_bias);
        let gate = p.pp(dmft_names::level_gate(l));
        let gate = g.dense(gate.prefix(), &feature, &dense(&gate, d, d)?);
        let gate = g.unary("Sigmoid", &gate);
        let gated = g.mul(&feature, &gate);
        sum = Some(match sum {
            Some(sum) => g.add(&sum, &gated),
            None => gated,
        });
    }
    sum.ok_or_else(|| {
        har_runtime::RuntimeError::Invalid("cross-modal fusion without levels".into()).into()
    })
}

/// A branch's temporal layers and pool over time, `layer(l)` and `pool` under `p`: step
/// features `[B, S, D]` → `[B, D]`.
fn branch(
    g: &mut Graph,
    config: &DmftConfig,
    p: &Params,
    steps: &str,
    layer: fn(usize) -> String,
    pool: &str,
) -> Result<String> {
    let mut xs = steps.to_string();
    for l in 0..config.joint_layers {
        xs = transformer_layer(g, &p.pp(layer(l)), config, &xs, None)?;
    }
    let query = p.pp(pool).get(names::QUERY, &[config.dim, 1])?;
    Ok(g.attention_pool(pool, &xs, &query, None))
}

/// The skeleton-guided fusion (seed S2; `har_runtime::fusion` spells it out), mid or late:
/// class logits `[B, K]`. With a mask, both motion paths are built and the mask picks, as in
/// training.
fn skeleton_guided(
    g: &mut Graph,
    config: &DmftConfig,
    p: &Params,
    tokens: &[Vec<String>],
    mask: Option<&str>,
    late: bool,
) -> Result<String> {
    let (d, s) = (config.dim as i64, config.steps() as i64);
    let (skeleton_m, parts) = config
        .skeleton_guided_parts()
        .map_err(har_runtime::RuntimeError::Invalid)?;
    let motion_ms: Vec<usize> = (0..config.modalities.len())
        .filter(|&m| m != skeleton_m)
        .collect();
    let j = config.token_groups(skeleton_m) as i64;
    let columns: Vec<(usize, usize)> = motion_ms
        .iter()
        .map(|&m| (m, config.token_groups(m)))
        .collect();
    let k: i64 = columns.iter().map(|c| c.1 as i64).sum();
    let joints = g.reshape(&tokens[skeleton_m][0], &[-1, j, d]);
    let motion: Vec<String> = motion_ms.iter().map(|&m| tokens[m][0].clone()).collect();
    let motion = g.concat(&motion, 2);
    let motion = g.reshape(&motion, &[-1, k, d]);
    // Presence: the skeleton and any motion sensor `[B, 1, 1]`, the motion keys' bias per
    // step `[B·S, K]`.
    let presence = mask.map(|mask| {
        let sk = g.gather(mask, &[skeleton_m as i64], false, 1);
        let sk = g.reshape(&sk, &[-1, 1, 1]);
        let indices: Vec<i64> = motion_ms.iter().map(|&m| m as i64).collect();
        let columns_on = g.gather(mask, &indices, false, 1);
        let mo = g.op(
            "ReduceMax",
            &[&columns_on],
            &[
                ("axes", crate::proto::Attribute::Ints(vec![1])),
                ("keepdims", crate::proto::Attribute::Int(1)),
            ],
        );
        let mo = g.reshape(&mo, &[-1, 1, 1]);
        let bias = token_bias(g, mask, &columns);
        let bias = g.unsqueeze(&bias, &[1]);
        let steps = g.ints(&[3], &[1, s, 1]);
        let bias = g.op("Expand", &[&bias, &steps], &[]);
        let bias = g.reshape(&bias, &[-1, k]);
        (sk, mo, bias)
    });
    // Each joint's motion: attention of its query over the step's motion keys.
    let query = p.pp(dmft_names::JOINT_QUERY);
    let queries = g.dense(
        query.prefix(),
        &joints,
        &dense(&query, d as usize, d as usize)?,
    );
    let key = p.pp(dmft_names::MOTION_KEY);
    let keys = g.dense(key.prefix(), &motion, &dense(&key, d as usize, d as usize)?);
    let keys = g.transpose(&keys, &[0, 2, 1]);
    let scores = g.matmul(&queries, &keys);
    let scale = g.scalar(1.0 / (d as f32).sqrt());
    let mut scores = g.mul(&scores, &scale);
    if let Some((_, _, bias)) = &presence {
        let bias = g.reshape(bias, &[-1, 1, k]);
        scores = g.add(&scores, &bias);
    }
    let attention = g.softmax(&scores, -1);
    let near = g.matmul(&attention, &motion);
    // Level 1: the joints of each part; level 2: the parts.
    let joint_query = p
        .pp(dmft_names::JOINT_POOL)
        .get(names::QUERY, &[d as usize, 1])?;
    let (mut part_skeleton, mut part_motion) = (Vec::new(), Vec::new());
    for part in &parts {
        let indices: Vec<i64> = part.iter().map(|&j| j as i64).collect();
        let members = g.gather(&joints, &indices, false, 1);
        let weights = g.pool_weights(dmft_names::JOINT_POOL, &members, &joint_query, None);
        part_skeleton.push(g.matmul(&weights, &members));
        let near_members = g.gather(&near, &indices, false, 1);
        part_motion.push(g.matmul(&weights, &near_members));
    }
    let part_skeleton = g.concat(&part_skeleton, 1);
    let part_motion = g.concat(&part_motion, 1);
    let part_query = p
        .pp(dmft_names::PART_POOL)
        .get(names::QUERY, &[d as usize, 1])?;
    let weights = g.pool_weights(dmft_names::PART_POOL, &part_skeleton, &part_query, None);
    let skeleton = g.matmul(&weights, &part_skeleton);
    let skeleton = g.reshape(&skeleton, &[-1, s, d]);
    let guided = g.matmul(&weights, &part_motion);
    let guided = g.reshape(&guided, &[-1, s, d]);
    // Read with or without a mask (a graph without one never lacks the skeleton).
    let pool_query = p
        .pp(dmft_names::MOTION_POOL)
        .get(names::QUERY, &[d as usize, 1])?;
    let (motion, fused) = match &presence {
        None => {
            let fused = g.add(&skeleton, &guided);
            (guided, fused)
        }
        Some((sk, mo, bias)) => {
            let bias = g.reshape(bias, &[-1, k, 1]);
            let pooled =
                g.attention_pool(dmft_names::MOTION_POOL, &motion, &pool_query, Some(&bias));
            let pooled = g.reshape(&pooled, &[-1, s, d]);
            let one = g.scalar(1.0);
            let no_skeleton = g.sub(&one, sk);
            let guided = g.mul(&guided, sk);
            let pooled = g.mul(&pooled, &no_skeleton);
            let motion = g.add(&guided, &pooled);
            let skeleton_part = g.mul(&skeleton, sk);
            let motion_part = g.mul(&motion, mo);
            let fused = g.add(&skeleton_part, &motion_part);
            (motion, fused)
        }
    };
    if !late {
        let pooled = branch(
            g,
            config,
            p,
            &fused,
            dmft_names::joint_layer,
            dmft_names::TIME_POOL,
        )?;
        return head(g, config, p, &pooled, dmft_names::NORM, dmft_names::HEAD);
    }
    let pooled = branch(
        g,
        config,
        p,
        &skeleton,
        dmft_names::joint_layer,
        dmft_names::TIME_POOL,
    )?;
    let skeleton_logits = head(g, config, p, &pooled, dmft_names::NORM, dmft_names::HEAD)?;
    let pooled = branch(
        g,
        config,
        p,
        &motion,
        dmft_names::motion_layer,
        dmft_names::MOTION_TIME_POOL,
    )?;
    let motion_logits = head(
        g,
        config,
        p,
        &pooled,
        dmft_names::MOTION_NORM,
        dmft_names::MOTION_HEAD,
    )?;
    // The mix: softmax of the learned logits over the present branches.
    let mix = p.get(dmft_names::BRANCH_MIX, &[2])?;
    let (w_sk, w_mo) = (mix[0].exp(), mix[1].exp());
    Ok(match &presence {
        None => {
            let c_sk = g.scalar(w_sk / (w_sk + w_mo));
            let c_mo = g.scalar(w_mo / (w_sk + w_mo));
            let a = g.mul(&skeleton_logits, &c_sk);
            let b = g.mul(&motion_logits, &c_mo);
            g.add(&a, &b)
        }
        Some((sk, mo, _)) => {
            let sk = g.reshape(sk, &[-1, 1]);
            let mo = g.reshape(mo, &[-1, 1]);
            let w_sk = g.scalar(w_sk);
            let w_mo = g.scalar(w_mo);
            let w_sk = g.mul(&sk, &w_sk);
            let w_mo = g.mul(&mo, &w_mo);
            let total = g.add(&w_sk, &w_mo);
            let a = g.mul(&skeleton_logits, &w_sk);
            let b = g.mul(&motion_logits, &w_mo);
            let sum = g.add(&a, &b);
            g.div(&sum, &total)
        }
    })
}
