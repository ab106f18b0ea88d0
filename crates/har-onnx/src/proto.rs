//! The part of ONNX's protobuf schema (`onnx.proto3`, IR version 8) an exported model needs,
//! written by hand: a few message types and the wire format (varints and length-delimited
//! fields). Only writing is needed, so no code generator and no protobuf crate.

/// ONNX's `TensorProto.DataType` codes used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// FLOAT (1).
    Float = 1,
    /// INT64 (7).
    Int64 = 7,
}

/// Protobuf wire types.
const VARINT: u64 = 0;
const FIXED32: u64 = 5;
const LENGTH_DELIMITED: u64 = 2;

/// A protobuf message being written.
#[derive(Debug, Default, Clone)]
pub struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u64, wire: u64) {
        self.varint((field << 3) | wire);
    }

    /// An integer field (int64 / int32 / enum).
    pub fn int(&mut self, field: u64, v: i64) -> &mut Self {
        self.key(field, VARINT);
        self.varint(v as u64);
        self
    }

    /// A float field.
    pub fn float(&mut self, field: u64, v: f32) -> &mut Self {
        self.key(field, FIXED32);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A bytes field.
    pub fn bytes(&mut self, field: u64, v: &[u8]) -> &mut Self {
        self.key(field, LENGTH_DELIMITED);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    /// A string field.
    pub fn string(&mut self, field: u64, v: &str) -> &mut Self {
        self.bytes(field, v.as_bytes())
    }

    /// An embedded message field.
    pub fn message(&mut self, field: u64, m: &Message) -> &mut Self {
        self.bytes(field, &m.0)
    }

    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// A node attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attribute {
    /// INT (type 2).
    Int(i64),
    /// FLOAT (type 1).
    Float(f32),
    /// INTS (type 7).
    Ints(Vec<i64>),
}

/// `AttributeProto`.
pub fn attribute(name: &str, value: &Attribute) -> Message {
    let mut m = Message::default();
    m.string(1, name);
    match value {
        Attribute::Float(f) => m.float(2, *f).int(20, 1),
        Attribute::Int(i) => m.int(3, *i).int(20, 2),
        Attribute::Ints(values) => {
            for v in values {
                m.int(8, *v);
            }
            m.int(20, 7)
        }
    };
    m
}

/// `NodeProto`.
pub fn node(
    op: &str,
    name: &str,
    inputs: &[String],
    outputs: &[String],
    attributes: &[(&str, Attribute)],
) -> Message {
    let mut m = Message::default();
    for i in inputs {
        m.string(1, i);
    }
    for o in outputs {
        m.string(2, o);
    }
    m.string(3, name).string(4, op);
    for (name, value) in attributes {
        m.message(5, &attribute(name, value));
    }
    m
}

/// `TensorProto` with raw little-endian data.
pub fn tensor(name: &str, dims: &[usize], data_type: DataType, raw: &[u8]) -> Message {
    let mut m = Message::default();
    for &d in dims {
        m.int(1, d as i64);
    }
    m.int(2, data_type as i64).string(8, name).bytes(9, raw);
    m
}

/// One dimension of a value's shape: fixed, or named (dynamic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A symbolic size, e.g. `batch`.
    Named(String),
}

/// `ValueInfoProto` of a tensor.
pub fn value_info(name: &str, data_type: DataType, shape: &[Dim]) -> Message {
    let mut dims = Message::default();
    for d in shape {
        let mut dim = Message::default();
        match d {
            Dim::Fixed(n) => dim.int(1, *n as i64),
            Dim::Named(s) => dim.string(2, s),
        };
        dims.message(1, &dim);
    }
    let mut tensor_type = Message::default();
    tensor_type.int(1, data_type as i64).message(2, &dims);
    let mut type_proto = Message::default();
    type_proto.message(1, &tensor_type);
    let mut m = Message::default();
    m.string(1, name).message(2, &type_proto);
    m
}

/// `GraphProto`.
pub fn graph(
    name: &str,
    nodes: &[Message],
    initializers: &[Message],
    inputs: &[Message],
    outputs: &[Message],
) -> Message {
    let mut m = Message::default();
    for n in nodes {
        m.message(1, n);
    }
    m.string(2, name);
    for t in initializers {
        m.message(5, t);
    }
    for i in inputs {
        m.message(11, i);
    }
    for o in outputs {
        m.message(12, o);
    }
    m
}

/// `ModelProto`: IR version 8, the default domain at `opset`, and metadata key/values.
pub fn model(
    graph: &Message,
    opset: i64,
    producer: &str,
    metadata: &[(String, String)],
) -> Message {
    let mut opset_import = Message::default();
    opset_import.string(1, "").int(2, opset);
    let mut m = Message::default();
    m.int(1, 8)
        .string(2, producer)
        .string(3, env!("CARGO_PKG_VERSION"))
        .message(7, graph)
        .message(8, &opset_import);
    for (key, value) in metadata {
        let mut entry = Message::default();
        entry.string(1, key).string(2, value);
        m.message(14, &entry);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_encode_as_protobuf_does() {
        let mut m = Message::default();
        m.int(1, 150);
        assert_eq!(m.clone().into_bytes(), [0x08, 0x96, 0x01]);
        let mut s = Message::default();
        s.string(2, "testing");
        assert_eq!(
            s.into_bytes(),
            [0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']
        );
        let mut n = Message::default();
        n.int(3, -1);
        assert_eq!(
            n.into_bytes().len(),
            1 + 10,
            "negative int64s take ten bytes"
        );
    }
}
