//! The manifest against the real ONNX graph: input and output names, ranks, shapes (dynamic dimensions
//! allowed), element types, layout, and the head's class count against the labels. Pure: it works on the
//! [`TensorInfo`] lists the engine reads from the session, so every message is unit-tested without ONNX
//! Runtime. Each problem names the manifest field, what the graph expects and what the manifest says.

use super::manifest::{Head, Layout, Manifest};

/// One input or output of the graph as ONNX Runtime reports it. Dynamic dimensions are negative.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// `f32`, `u8`, `i64`, …; `non-tensor` for sequences and maps.
    pub dtype: String,
    pub shape: Vec<i64>,
}

/// Shape as written in messages: dynamic dimensions as `?`.
pub fn shape_text(shape: &[i64]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| if *d < 0 { "?".into() } else { d.to_string() })
        .collect();
    format!("[{}]", dims.join(", "))
}

fn dim_ok(found: i64, expected: i64) -> bool {
    found < 0 || found == expected
}

fn find<'a>(list: &'a [TensorInfo], name: &str) -> Option<&'a TensorInfo> {
    list.iter().find(|t| t.name == name)
}

fn names(list: &[TensorInfo]) -> String {
    list.iter()
        .map(|t| format!("`{}`", t.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every way the manifest and the graph disagree; empty when they match.
pub fn check(m: &Manifest, inputs: &[TensorInfo], outputs: &[TensorInfo]) -> Vec<String> {
    let mut p = Vec::new();
    check_input(m, inputs, &mut p);
    // A wrong input size also changes NanoDet's expected cell counts; report the cause only.
    let input_ok = p.is_empty();
    check_outputs(m, outputs, input_ok, &mut p);
    p
}

fn check_input(m: &Manifest, inputs: &[TensorInfo], p: &mut Vec<String>) {
    let i = &m.input;
    let Some(t) = find(inputs, &i.name) else {
        p.push(format!(
            "input.name: expected one of the graph's inputs [{}], found `{}`",
            names(inputs),
            i.name
        ));
        return;
    };
    if t.dtype != i.dtype {
        p.push(format!(
            "input.dtype: expected `{}` (the graph's input `{}`), found `{}`",
            t.dtype, t.name, i.dtype
        ));
    }
    let s = &t.shape;
    if s.len() != 4 {
        p.push(format!(
            "input.name: expected a rank-4 image tensor ([1, 3, H, W] or [1, H, W, 3]), found `{}` with shape {}",
            t.name,
            shape_text(s)
        ));
        return;
    }
    // A channel axis of 3 on the other side than declared means the layout is wrong, whatever the sizes.
    let (c_first, c_last) = (s[1] == 3, s[3] == 3);
    let graph_layout = match i.layout {
        Layout::Nchw if !dim_ok(s[1], 3) && c_last => Some(Layout::Nhwc),
        Layout::Nhwc if !dim_ok(s[3], 3) && c_first => Some(Layout::Nchw),
        _ => None,
    };
    if let Some(actual) = graph_layout {
        p.push(format!(
            "input.layout: expected `{}` (the graph's input `{}` is {}), found `{}`",
            actual.as_str(),
            t.name,
            shape_text(s),
            i.layout.as_str()
        ));
        return;
    }
    let (c, h, w) = match i.layout {
        Layout::Nchw => (s[1], s[2], s[3]),
        Layout::Nhwc => (s[3], s[1], s[2]),
    };
    let shown = || format!("the graph's input `{}` is {}", t.name, shape_text(s));
    if !dim_ok(s[0], 1) {
        p.push(format!(
            "input.name: expected a batch dimension of 1 or dynamic, found {} ({})",
            s[0],
            shown()
        ));
    }
    if !dim_ok(c, 3) {
        p.push(format!(
            "input.layout: expected 3 colour channels on the `{}` channel axis, found {c} ({})",
            i.layout.as_str(),
            shown()
        ));
    }
    for (field, graph, manifest) in [("input.height", h, i.height), ("input.width", w, i.width)] {
        if !dim_ok(graph, manifest as i64) {
            p.push(format!(
                "{field}: expected {graph} ({}), found {manifest}",
                shown()
            ));
        }
    }
}

/// The named output, checked for presence, element type and rank.
fn output<'a>(
    outputs: &'a [TensorInfo],
    name: &str,
    rank: usize,
    p: &mut Vec<String>,
) -> Option<&'a TensorInfo> {
    let Some(t) = find(outputs, name) else {
        p.push(format!(
            "output: expected tensor names from the graph's outputs [{}], found `{name}`",
            names(outputs)
        ));
        return None;
    };
    if t.dtype != "f32" {
        p.push(format!(
            "output: expected `{name}` to hold f32, found `{}`",
            t.dtype
        ));
    }
    if t.shape.len() != rank {
        p.push(format!(
            "output.head: expected `{name}` of rank {rank}, found {}",
            shape_text(&t.shape)
        ));
        return None;
    }
    Some(t)
}

fn check_outputs(m: &Manifest, outputs: &[TensorInfo], input_ok: bool, p: &mut Vec<String>) {
    let labels = m.labels.len() as i64;
    let head = m.output.kind();
    // The class count of a tensor, or a message when it differs from the labels.
    let mut classes = |t: &TensorInfo, graph_classes: i64, layout: &str| {
        if graph_classes >= 0 && graph_classes != labels {
            p.push(format!(
                "labels: expected {graph_classes} labels (head {head}: `{}` is {}, laid out {layout}), found {labels}",
                t.name,
                shape_text(&t.shape)
            ));
        }
    };
    match &m.output {
        Head::Nanodet {
            strides,
            reg_max,
            scores,
            boxes,
        } => {
            let mut shapes = Vec::new();
            for (k, &stride) in strides.iter().enumerate() {
                let cells =
                    (m.input.width.div_ceil(stride) * m.input.height.div_ceil(stride)) as i64;
                let bins = 4 * (*reg_max as i64 + 1);
                if let Some(s) = scores
                    .get(k)
                    .and_then(|n| output(outputs, n, 3, &mut shapes))
                {
                    if input_ok && !dim_ok(s.shape[1], cells) {
                        shapes.push(format!("output.strides: expected the cell count of `{}` ({}) to be {cells} for stride {stride} on a {}×{} input, found {}", s.name, shape_text(&s.shape), m.input.width, m.input.height, s.shape[1]));
                    }
                    if k == 0 {
                        classes(s, s.shape[2], "[1, cells, classes]");
                    }
                }
                if let Some(b) = boxes
                    .get(k)
                    .and_then(|n| output(outputs, n, 3, &mut shapes))
                    && !dim_ok(b.shape[2], bins)
                {
                    shapes.push(format!("output.reg_max: expected {} (`{}` is {}: 4 × (reg_max + 1) bins), found {reg_max}", b.shape[2] / 4 - 1, b.name, shape_text(&b.shape)));
                }
            }
            p.extend(shapes);
        }
        Head::Yolov5 { name } => {
            let mut extra = Vec::new();
            if let Some(t) = output(outputs, name, 3, &mut extra) {
                classes(t, t.shape[2] - 5, "[1, N, 5 + classes]");
            }
            p.extend(extra);
        }
        Head::Yolov8 { name } => {
            let mut extra = Vec::new();
            if let Some(t) = output(outputs, name, 3, &mut extra) {
                if t.shape[2] >= 0 && t.shape[2] == labels + 4 && t.shape[1] != labels + 4 {
                    extra.push(format!("output.head: expected `{}` laid out [1, 4 + classes, N] for yolov8, found {} — a transposed export; use head = \"yolov5\" only if it has an objectness column, otherwise re-export without transposing", t.name, shape_text(&t.shape)));
                } else {
                    classes(t, t.shape[1] - 4, "[1, 4 + classes, N]");
                }
            }
            p.extend(extra);
        }
        Head::DensityMap { name } => {
            let mut extra = Vec::new();
            if let Some(t) = output(outputs, name, 4, &mut extra) {
                if !dim_ok(t.shape[1], 1) {
                    extra.push(format!("output.head: expected `{}` to be one map [1, 1, H, W] for density_map, found {}", t.name, shape_text(&t.shape)));
                } else if labels != 1 {
                    extra.push(format!("labels: expected 1 label (what the density map counts, e.g. [\"person\"]), found {labels}"));
                }
            }
            p.extend(extra);
        }
        Head::Embedding { name } => {
            let mut extra = Vec::new();
            if let Some(t) = output(outputs, name, 2, &mut extra)
                && !dim_ok(t.shape[0], 1)
            {
                extra.push(format!("output.head: expected `{}` to be one vector [1, D] per picture for embedding, found {}", t.name, shape_text(&t.shape)));
            }
            p.extend(extra);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(head: &str, labels: usize, layout: &str) -> Manifest {
        let labels: Vec<String> = (0..labels).map(|i| format!("\"c{i}\"")).collect();
        toml::from_str(&format!(
            r#"name = "m"
version = "1"
task = "{task}"
sha256 = "00"
license = "x"
source = "x"
labels = [{labels}]
[input]
name = "images"
width = 640
height = 480
layout = "{layout}"
dtype = "f32"
color = "rgb"
scale = 0.0039
resize = "letterbox"
[output]
{head}
"#,
            task = if head.contains("density") {
                "density"
            } else {
                "detect"
            },
            labels = labels.join(", ")
        ))
        .unwrap()
    }

    fn t(name: &str, dtype: &str, shape: &[i64]) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            dtype: dtype.into(),
            shape: shape.to_vec(),
        }
    }

    const V8: &str = "head = \"yolov8\"\nname = \"output0\"";

    #[test]
    fn a_matching_yolov8_graph_with_dynamic_batch_passes() {
        let m = manifest(V8, 80, "nchw");
        let p = check(
            &m,
            &[t("images", "f32", &[-1, 3, 480, 640])],
            &[t("output0", "f32", &[-1, 84, -1])],
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn nhwc_declared_for_an_nchw_graph_names_the_layout() {
        let m = manifest(V8, 80, "nhwc");
        let p = check(
            &m,
            &[t("images", "f32", &[1, 3, 480, 640])],
            &[t("output0", "f32", &[1, 84, 6300])],
        );
        assert_eq!(
            p,
            vec![
                "input.layout: expected `nchw` (the graph's input `images` is [1, 3, 480, 640]), found `nhwc`"
            ]
        );
    }

    #[test]
    fn sizes_dtype_and_label_count_are_each_named() {
        let m = manifest(V8, 79, "nchw");
        let p = check(
            &m,
            &[t("images", "u8", &[1, 3, 640, 640])],
            &[t("output0", "f32", &[1, 84, 8400])],
        );
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            p[0].starts_with(
                "input.dtype: expected `u8` (the graph's input `images`), found `f32`"
            )
        );
        assert!(p[1].starts_with(
            "input.height: expected 640 (the graph's input `images` is [1, 3, 640, 640]), found 480"
        ));
        assert!(
            p[2].starts_with("labels: expected 80 labels (head yolov8: `output0` is [1, 84, 8400]"),
            "{}",
            p[2]
        );
        assert!(p[2].ends_with("found 79"));
    }

    #[test]
    fn missing_tensors_list_what_the_graph_has() {
        let m = manifest("head = \"yolov5\"\nname = \"out\"", 80, "nchw");
        let p = check(
            &m,
            &[t("x", "f32", &[1, 3, 480, 640])],
            &[t("output0", "f32", &[1, 18900, 85])],
        );
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[0],
            "input.name: expected one of the graph's inputs [`x`], found `images`"
        );
        assert_eq!(
            p[1],
            "output: expected tensor names from the graph's outputs [`output0`], found `out`"
        );
    }

    #[test]
    fn a_transposed_yolov8_export_is_called_what_it_is() {
        let m = manifest(V8, 80, "nchw");
        let p = check(
            &m,
            &[t("images", "f32", &[1, 3, 480, 640])],
            &[t("output0", "f32", &[1, 6300, 84])],
        );
        assert!(p[0].contains("a transposed export"), "{p:?}");
    }

    #[test]
    fn a_density_map_counts_one_label() {
        let head = "head = \"density_map\"\nname = \"density\"";
        let ok = check(
            &manifest(head, 1, "nchw"),
            &[t("images", "f32", &[1, 3, 480, 640])],
            &[t("density", "f32", &[1, 1, 60, 80])],
        );
        assert!(ok.is_empty(), "{ok:?}");
        let p = check(
            &manifest(head, 2, "nchw"),
            &[t("images", "f32", &[1, 3, 480, 640])],
            &[t("density", "f32", &[1, 1, 60, 80])],
        );
        assert_eq!(
            p,
            vec![
                "labels: expected 1 label (what the density map counts, e.g. [\"person\"]), found 2"
            ]
        );
    }
}
