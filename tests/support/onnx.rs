//! A small ONNX writer for tests: just enough protobuf (ModelProto, GraphProto, NodeProto, TensorProto,
//! ValueInfoProto, AttributeProto) to build graphs whose output is a fixed tensor, so a decoder's boxes can be
//! asserted exactly through the real ONNX Runtime. Python's `onnx` is not available in CI, hence this.
//!
//! Field numbers are those of onnx/onnx.proto (IR version 8, opset 13).

/// ONNX element types used here.
pub const FLOAT: i64 = 1;
pub const UINT8: i64 = 2;

/// A dimension of a declared shape: fixed or symbolic (dynamic).
#[derive(Clone, Copy)]
pub enum Dim {
    Fixed(i64),
    Named(&'static str),
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

fn int(out: &mut Vec<u8>, field: u64, v: i64) {
    key(out, field, 0);
    varint(out, v as u64);
}

fn bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    key(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn string(out: &mut Vec<u8>, field: u64, s: &str) {
    bytes(out, field, s.as_bytes());
}

/// TensorProto with f32 values in `raw_data`.
pub fn tensor_f32(name: &str, dims: &[i64], values: &[f32]) -> Vec<u8> {
    assert_eq!(dims.iter().product::<i64>() as usize, values.len());
    let mut t = Vec::new();
    for &d in dims {
        int(&mut t, 1, d);
    }
    int(&mut t, 2, FLOAT);
    string(&mut t, 8, name);
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    bytes(&mut t, 9, &raw);
    t
}

/// ValueInfoProto of a tensor.
pub fn value_info(name: &str, elem_type: i64, dims: &[Dim]) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in dims {
        let mut dim = Vec::new();
        match d {
            Dim::Fixed(v) => int(&mut dim, 1, *v),
            Dim::Named(p) => string(&mut dim, 2, p),
        }
        bytes(&mut shape, 1, &dim);
    }
    let mut tensor_type = Vec::new();
    int(&mut tensor_type, 1, elem_type);
    bytes(&mut tensor_type, 2, &shape);
    let mut type_proto = Vec::new();
    bytes(&mut type_proto, 1, &tensor_type);
    let mut v = Vec::new();
    string(&mut v, 1, name);
    bytes(&mut v, 2, &type_proto);
    v
}

/// NodeProto with integer attributes.
pub fn node(op: &str, inputs: &[&str], outputs: &[&str], int_attrs: &[(&str, i64)]) -> Vec<u8> {
    let mut n = Vec::new();
    for i in inputs {
        string(&mut n, 1, i);
    }
    for o in outputs {
        string(&mut n, 2, o);
    }
    string(&mut n, 3, &format!("{op}_{}", outputs[0]));
    string(&mut n, 4, op);
    for (name, v) in int_attrs {
        let mut a = Vec::new();
        string(&mut a, 1, name);
        int(&mut a, 3, *v);
        int(&mut a, 20, 2); // AttributeType INT
        bytes(&mut n, 5, &a);
    }
    n
}

/// A graph's parts, each already encoded.
#[derive(Default)]
pub struct Graph {
    pub nodes: Vec<Vec<u8>>,
    pub initializers: Vec<Vec<u8>>,
    pub inputs: Vec<Vec<u8>>,
    pub outputs: Vec<Vec<u8>>,
}

impl Graph {
    /// ModelProto bytes (IR 8, default domain opset 13).
    pub fn model(&self) -> Vec<u8> {
        let mut g = Vec::new();
        for n in &self.nodes {
            bytes(&mut g, 1, n);
        }
        string(&mut g, 2, "test");
        for t in &self.initializers {
            bytes(&mut g, 5, t);
        }
        for i in &self.inputs {
            bytes(&mut g, 11, i);
        }
        for o in &self.outputs {
            bytes(&mut g, 12, o);
        }
        let mut m = Vec::new();
        int(&mut m, 1, 8);
        string(&mut m, 2, "streetsight-tests");
        let mut opset = Vec::new();
        string(&mut opset, 1, "");
        int(&mut opset, 2, 13);
        bytes(&mut m, 8, &opset);
        bytes(&mut m, 7, &g);
        m
    }
}

/// A model whose one output is `values` (shape `value_dims`) whatever the input:
/// `output = Add(values, Mul(ReduceSum(Cast(input)), 0))`, so the input is really consumed.
pub struct FixedOutput<'a> {
    pub input: &'a str,
    pub input_type: i64,
    pub input_dims: &'a [Dim],
    pub output: &'a str,
    /// As declared in the graph (may be symbolic).
    pub output_dims: &'a [Dim],
    pub value_dims: &'a [i64],
    pub values: &'a [f32],
}

impl FixedOutput<'_> {
    pub fn model(&self) -> Vec<u8> {
        Graph {
            nodes: vec![
                node("Cast", &[self.input], &["as_float"], &[("to", FLOAT)]),
                node("ReduceSum", &["as_float"], &["sum"], &[("keepdims", 0)]),
                node("Mul", &["sum", "zero"], &["nothing"], &[]),
                node("Add", &["values", "nothing"], &[self.output], &[]),
            ],
            initializers: vec![
                tensor_f32("values", self.value_dims, self.values),
                tensor_f32("zero", &[], &[0.0]),
            ],
            inputs: vec![value_info(self.input, self.input_type, self.input_dims)],
            outputs: vec![value_info(self.output, FLOAT, self.output_dims)],
        }
        .model()
    }
}

/// Write `model` as `model.onnx` and `manifest` as `manifest.toml` into `dir`, with `{sha256}` in the
/// manifest replaced by the model's real hash.
pub fn write_bundle(dir: &std::path::Path, manifest: &str, model: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("model.onnx"), model).unwrap();
    let text = manifest.replace("{sha256}", &streetsight::base::sha256_hex(model));
    std::fs::write(dir.join("manifest.toml"), text).unwrap();
}

/// A YOLOv8-layout bundle: input `images` [1, 3, 64, 64], letterbox, RGB/255; output `output0`
/// [1, 4 + 3, 5] with three classes and five fixed candidates (cx, cy, w, h in input pixels):
///
/// | # | box            | person | umbrella | cart | after decoding and NMS at 0.25 / 0.45 |
/// |---|----------------|--------|----------|------|----------------------------------------|
/// | 0 | 32, 32, 16, 16 | 0.9    | 0.1      | 0.0  | person 0.9                             |
/// | 1 | 33, 32, 16, 16 | 0.8    | 0.0      | 0.0  | merged into 0 (IoU 0.88)               |
/// | 2 | 16, 28, 8, 8   | 0.1    | 0.7      | 0.2  | umbrella 0.7                           |
/// | 3 | 48, 40, 8, 16  | 0.2    | 0.1      | 0.3  | cart 0.3                               |
/// | 4 | 10, 10, 4, 4   | 0.1    | 0.2      | 0.1  | below the threshold                    |
pub const YOLOV8_MANIFEST: &str = r#"name = "tiny-yolov8"
version = "0.1.0"
task = "detect"
sha256 = "{sha256}"
license = "Apache-2.0"
source = "built by the tests"
labels = ["person", "umbrella", "cart"]
score_threshold = 0.25
nms_iou = 0.45

[input]
name = "images"
width = 64
height = 64
layout = "nchw"
dtype = "f32"
color = "rgb"
scale = 0.00392156862745098
resize = "letterbox"
pad = 114

[output]
head = "yolov8"
name = "output0"

[categories]
person = ["crowd_density"]
umbrella = ["street_vending"]
cart = ["street_vending"]
"#;

#[rustfmt::skip]
pub const YOLOV8_VALUES: [f32; 35] = [
    32.0, 33.0, 16.0, 48.0, 10.0, // cx
    32.0, 32.0, 28.0, 40.0, 10.0, // cy
    16.0, 16.0, 8.0, 8.0, 4.0,    // w
    16.0, 16.0, 8.0, 16.0, 4.0,   // h
    0.9, 0.8, 0.1, 0.2, 0.1,      // person
    0.1, 0.0, 0.7, 0.1, 0.2,      // umbrella
    0.0, 0.0, 0.2, 0.3, 0.1,      // cart
];

pub fn yolov8_model() -> Vec<u8> {
    FixedOutput {
        input: "images",
        input_type: FLOAT,
        input_dims: &[Dim::Fixed(1), Dim::Fixed(3), Dim::Fixed(64), Dim::Fixed(64)],
        output: "output0",
        output_dims: &[Dim::Fixed(1), Dim::Fixed(7), Dim::Named("candidates")],
        value_dims: &[1, 7, 5],
        values: &YOLOV8_VALUES,
    }
    .model()
}

/// A density-map bundle: input `img` [1, 3, 32, 32] stretched; output `density` [1, 1, 4, 4] summing to
/// 6.4 people, spread over the whole frame.
pub const DENSITY_MANIFEST: &str = r#"name = "tiny-density"
version = "0.1.0"
task = "density"
sha256 = "{sha256}"
license = "Apache-2.0"
source = "built by the tests"
labels = ["person"]

[input]
name = "img"
width = 32
height = 32
layout = "nchw"
dtype = "f32"
color = "rgb"
mean = [123.675, 116.28, 103.53]
std = [58.395, 57.12, 57.375]
resize = "stretch"

[output]
head = "density_map"
name = "density"

[categories]
person = ["crowd_density"]
"#;

pub fn density_model() -> Vec<u8> {
    FixedOutput {
        input: "img",
        input_type: FLOAT,
        input_dims: &[Dim::Fixed(1), Dim::Fixed(3), Dim::Fixed(32), Dim::Fixed(32)],
        output: "density",
        output_dims: &[Dim::Fixed(1), Dim::Fixed(1), Dim::Fixed(4), Dim::Fixed(4)],
        value_dims: &[1, 1, 4, 4],
        values: &[0.4; 16],
    }
    .model()
}
