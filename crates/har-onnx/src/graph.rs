//! A small builder of ONNX graphs: constants become initializers, every operator call returns
//! the name of its output, and the layers DMFT is built from (dense, layer norm, multi-head
//! attention, GELU feed-forward, attention pooling, LSTM / GRU) are emitted from standard
//! opset-17 operators only, so any ONNX runtime runs them.

use har_runtime::config::RecurrentCell;

use crate::proto::{self, Attribute, DataType, Dim, Message};

/// The opset the exporter writes.
pub const OPSET: i64 = 17;

/// A graph under construction.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    inputs: Vec<Message>,
    outputs: Vec<Message>,
    counter: usize,
    /// Parameters stored (f32 values), for the summary.
    pub parameters: usize,
}

/// A recurrent layer's weights as the runtime stores them (PyTorch's layout and gate order).
pub struct RecurrentWeights {
    /// `gates·H × I`.
    pub w_ih: Vec<f32>,
    /// `gates·H × H`.
    pub w_hh: Vec<f32>,
    /// `gates·H`.
    pub b_ih: Vec<f32>,
    /// `gates·H`.
    pub b_hh: Vec<f32>,
    /// Input width `I`.
    pub input: usize,
    /// Hidden width `H`.
    pub hidden: usize,
}

/// A dense layer's weights as the runtime stores them: `weight` is `out × in`, row-major.
pub struct DenseWeights {
    /// `out × in`.
    pub weight: Vec<f32>,
    /// `out`.
    pub bias: Vec<f32>,
    /// Input width.
    pub in_dim: usize,
    /// Output width.
    pub out_dim: usize,
}

impl Graph {
    fn fresh(&mut self, hint: &str) -> String {
        self.counter += 1;
        format!("{hint}_{}", self.counter)
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, data_type: DataType, shape: &[Dim]) -> String {
        self.inputs.push(proto::value_info(name, data_type, shape));
        name.to_string()
    }

    /// Declares `value` a graph output named `name`.
    pub fn output(&mut self, value: &str, name: &str, shape: &[Dim]) {
        self.op_named("Identity", &[value], name, &[]);
        self.outputs
            .push(proto::value_info(name, DataType::Float, shape));
    }

    /// A float constant.
    pub fn constant(&mut self, hint: &str, dims: &[usize], values: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), values.len(), "{hint}");
        let name = self.fresh(hint);
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers
            .push(proto::tensor(&name, dims, DataType::Float, &raw));
        self.parameters += values.len();
        name
    }

    /// A float scalar constant.
    pub fn scalar(&mut self, value: f32) -> String {
        let name = self.fresh("scalar");
        self.initializers.push(proto::tensor(
            &name,
            &[],
            DataType::Float,
            &value.to_le_bytes(),
        ));
        name
    }

    /// An int64 constant (shapes, axes, indices); `dims` empty for a scalar.
    pub fn ints(&mut self, dims: &[usize], values: &[i64]) -> String {
        let name = self.fresh("ints");
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers
            .push(proto::tensor(&name, dims, DataType::Int64, &raw));
        name
    }

    fn op_named(&mut self, op: &str, inputs: &[&str], output: &str, attrs: &[(&str, Attribute)]) {
        let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        let name = format!("{op}_{}", self.nodes.len());
        self.nodes.push(proto::node(
            op,
            &name,
            &inputs,
            &[output.to_string()],
            attrs,
        ));
    }

    /// An operator with one output.
    pub fn op(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, Attribute)]) -> String {
        let out = self.fresh(&op.to_ascii_lowercase());
        self.op_named(op, inputs, &out, attrs);
        out
    }

    /// `a + b` (broadcasting).
    pub fn add(&mut self, a: &str, b: &str) -> String {
        self.op("Add", &[a, b], &[])
    }

    /// `a - b`.
    pub fn sub(&mut self, a: &str, b: &str) -> String {
        self.op("Sub", &[a, b], &[])
    }

    /// `a * b`.
    pub fn mul(&mut self, a: &str, b: &str) -> String {
        self.op("Mul", &[a, b], &[])
    }

    /// `a / b`.
    pub fn div(&mut self, a: &str, b: &str) -> String {
        self.op("Div", &[a, b], &[])
    }

    /// Matrix product over the last two axes.
    pub fn matmul(&mut self, a: &str, b: &str) -> String {
        self.op("MatMul", &[a, b], &[])
    }

    /// Reshape to `shape` (0 copies the input's dimension, -1 is inferred).
    pub fn reshape(&mut self, x: &str, shape: &[i64]) -> String {
        let shape = self.ints(&[shape.len()], shape);
        self.op("Reshape", &[x, &shape], &[])
    }

    /// Axis permutation.
    pub fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.op(
            "Transpose",
            &[x],
            &[("perm", Attribute::Ints(perm.to_vec()))],
        )
    }

    /// The entries `indices` along `axis` (a scalar index drops the axis).
    pub fn gather(&mut self, x: &str, indices: &[i64], scalar: bool, axis: i64) -> String {
        let dims: &[usize] = if scalar { &[] } else { &[indices.len()] };
        let indices = self.ints(dims, indices);
        self.op("Gather", &[x, &indices], &[("axis", Attribute::Int(axis))])
    }

    /// Concatenation along `axis`.
    pub fn concat(&mut self, xs: &[String], axis: i64) -> String {
        if xs.len() == 1 {
            return xs[0].clone();
        }
        let refs: Vec<&str> = xs.iter().map(String::as_str).collect();
        self.op("Concat", &refs, &[("axis", Attribute::Int(axis))])
    }

    /// Inserts size-1 axes.
    pub fn unsqueeze(&mut self, x: &str, axes: &[i64]) -> String {
        let axes = self.ints(&[axes.len()], axes);
        self.op("Unsqueeze", &[x, &axes], &[])
    }

    /// Mean over `axes`, keeping them as size 1.
    pub fn mean(&mut self, x: &str, axes: &[i64]) -> String {
        self.op(
            "ReduceMean",
            &[x],
            &[
                ("axes", Attribute::Ints(axes.to_vec())),
                ("keepdims", Attribute::Int(1)),
            ],
        )
    }

    /// Softmax along `axis`.
    pub fn softmax(&mut self, x: &str, axis: i64) -> String {
        self.op("Softmax", &[x], &[("axis", Attribute::Int(axis))])
    }

    /// A unary operator (`Sqrt`, `Log`, `Tanh`, …).
    pub fn unary(&mut self, op: &str, x: &str) -> String {
        self.op(op, &[x], &[])
    }

    /// `x · Wᵀ + b` on the last axis.
    pub fn dense(&mut self, hint: &str, x: &str, w: &DenseWeights) -> String {
        let mut transposed = vec![0f32; w.weight.len()];
        for o in 0..w.out_dim {
            for i in 0..w.in_dim {
                transposed[i * w.out_dim + o] = w.weight[o * w.in_dim + i];
            }
        }
        let weight = self.constant(
            &format!("{hint}.weight"),
            &[w.in_dim, w.out_dim],
            &transposed,
        );
        let bias = self.constant(&format!("{hint}.bias"), &[w.out_dim], &w.bias);
        let product = self.matmul(x, &weight);
        self.add(&product, &bias)
    }

    /// Mean and variance normalisation over `axis`, `(x − μ) / √(σ² + eps)` (population
    /// variance): layer norm over the last axis, window standardisation over time.
    pub fn standardise(&mut self, x: &str, axis: i64, eps: f32) -> String {
        let mean = self.mean(x, &[axis]);
        let centred = self.sub(x, &mean);
        let squared = self.mul(&centred, &centred);
        let var = self.mean(&squared, &[axis]);
        let eps = self.scalar(eps);
        let var = self.add(&var, &eps);
        let std = self.unary("Sqrt", &var);
        self.div(&centred, &std)
    }

    /// Layer normalisation over the last axis with a learned scale and shift.
    pub fn layer_norm(
        &mut self,
        hint: &str,
        x: &str,
        weight: &[f32],
        bias: &[f32],
        eps: f32,
    ) -> String {
        let normed = self.standardise(x, -1, eps);
        let w = self.constant(&format!("{hint}.weight"), &[weight.len()], weight);
        let b = self.constant(&format!("{hint}.bias"), &[bias.len()], bias);
        let scaled = self.mul(&normed, &w);
        self.add(&scaled, &b)
    }

    /// GELU, tanh approximation (candle's and the runtime's).
    pub fn gelu(&mut self, x: &str) -> String {
        let cube = self.mul(x, x);
        let cube = self.mul(&cube, x);
        let c = self.scalar(0.044_715);
        let cube = self.mul(&cube, &c);
        let inner = self.add(x, &cube);
        let k = self.scalar(0.797_884_6);
        let inner = self.mul(&inner, &k);
        let t = self.unary("Tanh", &inner);
        let one = self.scalar(1.0);
        let t = self.add(&t, &one);
        let half = self.scalar(0.5);
        let hx = self.mul(x, &half);
        self.mul(&hx, &t)
    }

    /// Multi-head self-attention within sequences: `x` is `[B, L, D]`; `bias`, when given,
    /// is added to the scores (`[B, 1, 1, L]`: 0 for a key kept, a large negative number for a
    /// key left out).
    pub fn attention(
        &mut self,
        hint: &str,
        x: &str,
        qkv: &DenseWeights,
        out: &DenseWeights,
        heads: usize,
        bias: Option<&str>,
    ) -> String {
        // The inner width: `D`, or less in a pruned layer.
        let d = out.in_dim;
        let hd = d / heads;
        let qkv = self.dense(&format!("{hint}.qkv"), x, qkv);
        let split = self.reshape(&qkv, &[0, 0, 3, heads as i64, hd as i64]);
        // [3, B, H, L, hd]
        let split = self.transpose(&split, &[2, 0, 3, 1, 4]);
        let q = self.gather(&split, &[0], true, 0);
        let k = self.gather(&split, &[1], true, 0);
        let v = self.gather(&split, &[2], true, 0);
        let kt = self.transpose(&k, &[0, 1, 3, 2]);
        let scores = self.matmul(&q, &kt);
        let scale = self.scalar(1.0 / (hd as f32).sqrt());
        let mut scores = self.mul(&scores, &scale);
        if let Some(bias) = bias {
            scores = self.add(&scores, bias);
        }
        let weights = self.softmax(&scores, -1);
        let attended = self.matmul(&weights, &v);
        let attended = self.transpose(&attended, &[0, 2, 1, 3]);
        let attended = self.reshape(&attended, &[0, 0, d as i64]);
        self.dense(&format!("{hint}.out"), &attended, out)
    }

    /// A learned query's softmax-weighted sum of the rows of `x` (`[B, L, D]` → `[B, D]`);
    /// `bias` (`[B, L, 1]`) leaves rows out as in [`Graph::attention`].
    pub fn attention_pool(
        &mut self,
        hint: &str,
        x: &str,
        query: &[f32],
        bias: Option<&str>,
    ) -> String {
        let weights = self.pool_weights(hint, x, query, bias);
        let pooled = self.matmul(&weights, x);
        self.reshape(&pooled, &[-1, query.len() as i64])
    }

    /// The weights `[B, 1, L]` [`Graph::attention_pool`] sums the rows of `x` with.
    pub fn pool_weights(
        &mut self,
        hint: &str,
        x: &str,
        query: &[f32],
        bias: Option<&str>,
    ) -> String {
        let d = query.len();
        let q = self.constant(&format!("{hint}.query"), &[d, 1], query);
        let scores = self.matmul(x, &q);
        let scale = self.scalar(1.0 / (d as f32).sqrt());
        let mut scores = self.mul(&scores, &scale);
        if let Some(bias) = bias {
            scores = self.add(&scores, bias);
        }
        let weights = self.softmax(&scores, 1);
        self.transpose(&weights, &[0, 2, 1])
    }

    /// A recurrent layer over `x` (`[T, B, I]`, time first) with PyTorch's weight layout
    /// (`w_ih` `gates·H × I`, `w_hh` `gates·H × H`, biases `gates·H`; LSTM gates i, f, g, o, GRU
    /// gates r, z, n) as ONNX's `LSTM` / `GRU` operator (gates i, o, f, c / z, r, h; the GRU
    /// with `linear_before_reset`, PyTorch's form): every step's hidden state `[T, B, H]`.
    pub fn recurrent(
        &mut self,
        hint: &str,
        x: &str,
        cell: RecurrentCell,
        w: &RecurrentWeights,
    ) -> String {
        let h = w.hidden;
        let (op, order): (&str, &[usize]) = match cell {
            RecurrentCell::Lstm => ("LSTM", &[0, 3, 1, 2]),
            RecurrentCell::Gru => ("GRU", &[1, 0, 2]),
        };
        // Gate blocks of `h` rows each, in ONNX's order.
        let reorder = |values: &[f32], row: usize| -> Vec<f32> {
            order
                .iter()
                .flat_map(|&g| values[g * h * row..(g + 1) * h * row].iter().copied())
                .collect()
        };
        let gates = order.len();
        let input = w.input;
        let w_ih = reorder(&w.w_ih, input);
        let w_hh = reorder(&w.w_hh, h);
        let mut bias = reorder(&w.b_ih, 1);
        bias.extend(reorder(&w.b_hh, 1));
        let w_ih = self.constant(&format!("{hint}.w"), &[1, gates * h, input], &w_ih);
        let w_hh = self.constant(&format!("{hint}.r"), &[1, gates * h, h], &w_hh);
        let bias = self.constant(&format!("{hint}.b"), &[1, 2 * gates * h], &bias);
        let mut attrs = vec![("hidden_size", Attribute::Int(h as i64))];
        if cell == RecurrentCell::Gru {
            attrs.push(("linear_before_reset", Attribute::Int(1)));
        }
        // Y is [T, 1, B, H].
        let y = self.op(op, &[x, &w_ih, &w_hh, &bias], &attrs);
        self.reshape(&y, &[0, -1, h as i64])
    }

    /// A depthwise convolution along the last axis of `x` (`[N, C, L]`): `weight` `[C, 1, K]`
    /// (candle's layout), `bias` `[C]`, `(K − 1) / 2` zeros on each side (odd `K`).
    pub fn depthwise_conv(&mut self, hint: &str, x: &str, weight: &[f32], bias: &[f32]) -> String {
        let channels = bias.len();
        let kernel = weight.len() / channels;
        let w = self.constant(&format!("{hint}.weight"), &[channels, 1, kernel], weight);
        let b = self.constant(&format!("{hint}.bias"), &[channels], bias);
        let pad = ((kernel - 1) / 2) as i64;
        self.op(
            "Conv",
            &[x, &w, &b],
            &[
                ("group", Attribute::Int(channels as i64)),
                ("kernel_shape", Attribute::Ints(vec![kernel as i64])),
                ("pads", Attribute::Ints(vec![pad, pad])),
            ],
        )
    }

    /// The finished model's bytes.
    pub fn finish(self, name: &str, metadata: &[(String, String)]) -> Vec<u8> {
        let graph = proto::graph(
            name,
            &self.nodes,
            &self.initializers,
            &self.inputs,
            &self.outputs,
        );
        proto::model(&graph, OPSET, "har-onnx", metadata).into_bytes()
    }
}
