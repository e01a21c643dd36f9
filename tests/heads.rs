//! Every output head through the real ONNX Runtime, on graphs built by the tests whose output is a known
//! tensor (tests/support/onnx.rs): the decoded boxes, mapped back through letterbox or stretch onto the
//! frame, and the density map are asserted exactly. Bundles that lie about their graph are refused, each
//! with a message naming the field, what the graph has and what the manifest says.

mod support;

use std::sync::Mutex;
use streetsight::base::{BBox, ImageView};
use streetsight::detect::{Detector, Manifest};
use support::onnx::*;

// ONNX Runtime allows one environment per process; sessions are made one at a time.
static ORT: Mutex<()> = Mutex::new(());

/// A packed RGB image with `pad` bytes at the end of each row.
fn image(width: usize, height: usize, pad: usize) -> Vec<u8> {
    let stride = width * 3 + pad;
    (0..stride * height).map(|i| (i * 13 % 256) as u8).collect()
}

fn load(dir: &std::path::Path) -> Result<Detector, String> {
    let _g = ORT.lock().unwrap_or_else(|e| e.into_inner());
    let m = Manifest::load(dir).map_err(|e| e.to_string())?;
    Detector::load(m, 1).map_err(|e| e.to_string())
}

fn assert_box(got: BBox, want: [f32; 4]) {
    let g = [got.x1, got.y1, got.x2, got.y2];
    assert!(
        g.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
        "{g:?} != {want:?}"
    );
}

#[test]
fn yolov8_boxes_come_back_onto_a_letterboxed_wide_frame_exactly() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), YOLOV8_MANIFEST, &yolov8_model());
    let mut det = load(dir.path()).unwrap();
    // 128×64 into 64×64: scale 0.5, the frame fills rows 16..48 of the input.
    let data = image(128, 64, 7);
    let out = det
        .run(ImageView::new(128, 64, 128 * 3 + 7, &data).unwrap())
        .unwrap();
    assert!(out.density.is_none());
    let got: Vec<(&str, f32)> = out
        .detections
        .iter()
        .map(|d| (det.manifest.labels[d.class].as_str(), d.score))
        .collect();
    assert_eq!(got, vec![("person", 0.9), ("umbrella", 0.7), ("cart", 0.3)]);
    // Input box (24..40, 24..40) → frame x 24/64.., y (24 − 16)/32..
    assert_box(out.detections[0].bbox, [0.375, 0.25, 0.625, 0.75]);
    assert_box(out.detections[1].bbox, [0.1875, 0.25, 0.3125, 0.5]);
    assert_box(out.detections[2].bbox, [0.6875, 0.5, 0.8125, 1.0]);
}

#[test]
fn yolov5_with_objectness_on_an_nhwc_input_with_dynamic_dimensions() {
    #[rustfmt::skip]
    let values = [
        32.0, 16.0, 16.0, 8.0, 0.9, 0.5, 1.0, // class 1 at 0.9 × 1.0
        8.0, 8.0, 4.0, 4.0, 0.3, 0.9, 0.1,    // class 0 at 0.3 × 0.9 = 0.27
        40.0, 40.0, 4.0, 4.0, 0.2, 1.0, 1.0,  // objectness below 0.25
    ];
    let model = FixedOutput {
        input: "x",
        input_type: FLOAT,
        input_dims: &[
            Dim::Named("batch"),
            Dim::Fixed(64),
            Dim::Fixed(64),
            Dim::Fixed(3),
        ],
        output: "y",
        output_dims: &[Dim::Named("batch"), Dim::Named("anchors"), Dim::Fixed(7)],
        value_dims: &[1, 3, 7],
        values: &values,
    }
    .model();
    let manifest = r#"name = "tiny-yolov5"
version = "1"
task = "detect"
sha256 = "{sha256}"
license = "Apache-2.0"
source = "tests"
labels = ["bin", "overflow"]
[input]
name = "x"
width = 64
height = 64
layout = "nhwc"
dtype = "f32"
color = "bgr"
mean = [0.0, 0.0, 0.0]
std = [255.0, 255.0, 255.0]
resize = "stretch"
[output]
head = "yolov5"
name = "y"
"#;
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), manifest, &model);
    let mut det = load(dir.path()).unwrap();
    let data = image(100, 50, 0);
    let dets = det
        .detect(ImageView::new(100, 50, 300, &data).unwrap())
        .unwrap();
    assert_eq!(dets.len(), 2, "{dets:?}");
    assert_eq!((dets[0].class, dets[0].score), (1, 0.9));
    assert_box(dets[0].bbox, [0.375, 0.1875, 0.625, 0.3125]);
    assert_eq!(dets[1].class, 0);
    assert!((dets[1].score - 0.27).abs() < 1e-6);
    assert_box(dets[1].bbox, [0.09375, 0.09375, 0.15625, 0.15625]);
}

#[test]
fn a_density_map_is_kept_and_its_padding_counts_for_no_zone() {
    // 4×4 map over a 32×32 letterboxed input; a 64×32 frame fills input rows 8..24, i.e. map rows 1 and 2.
    #[rustfmt::skip]
    let values = [
        1.0, 1.0, 1.0, 1.0,     // padding: a real model's noise there must not count in a zone
        0.5, 0.5, 1.0, 1.0,
        0.25, 0.25, 0.5, 0.5,
        0.0, 0.0, 0.0, 0.0,     // padding
    ];
    let model = FixedOutput {
        input: "img",
        input_type: FLOAT,
        input_dims: &[Dim::Fixed(1), Dim::Fixed(3), Dim::Fixed(32), Dim::Fixed(32)],
        output: "density",
        output_dims: &[
            Dim::Fixed(1),
            Dim::Fixed(1),
            Dim::Named("h"),
            Dim::Named("w"),
        ],
        value_dims: &[1, 1, 4, 4],
        values: &values,
    }
    .model();
    let manifest = r#"name = "tiny-density"
version = "1"
task = "density"
sha256 = "{sha256}"
license = "Apache-2.0"
source = "tests"
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
resize = "letterbox"
pad = 0
[output]
head = "density_map"
name = "density"
[categories]
person = ["crowd_density"]
"#;
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), manifest, &model);
    let mut det = load(dir.path()).unwrap();
    let data = image(64, 32, 3);
    let out = det
        .run(ImageView::new(64, 32, 64 * 3 + 3, &data).unwrap())
        .unwrap();
    assert!(out.detections.is_empty());
    let map = out.density.expect("a density model gives a map");
    assert_eq!((map.width, map.height), (4, 4));
    assert_eq!(map.total(), 8.5);
    assert_eq!(map.sum_where(|_, _| true), 4.5, "rows 1 and 2 only");
    assert_eq!(map.sum_where(|x, _| x < 0.5), 1.5);
}

/// The YOLOv8 bundle with its manifest edited by `edit`.
fn edited_yolov8(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), &edit(YOLOV8_MANIFEST), &yolov8_model());
    dir
}

fn refusal(dir: &std::path::Path) -> String {
    match load(dir) {
        Ok(_) => panic!("the bundle in {} must be refused", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn nhwc_declared_for_an_nchw_model_is_refused_naming_the_layout() {
    let dir = edited_yolov8(|m| m.replace("layout = \"nchw\"", "layout = \"nhwc\""));
    let e = refusal(dir.path());
    assert!(
        e.contains("input.layout: expected `nchw` (the graph's input `images` is [1, 3, 64, 64]), found `nhwc`"),
        "{e}"
    );
}

#[test]
fn a_label_count_that_differs_from_the_head_is_refused() {
    let dir = edited_yolov8(|m| {
        m.replace(", \"cart\"]", "]")
            .replace("cart = [\"street_vending\"]\n", "")
    });
    let e = refusal(dir.path());
    assert!(
        e.contains("labels: expected 3 labels (head yolov8: `output0` is [1, 7, 5], laid out [1, 4 + classes, N]), found 2"),
        "{e}"
    );
}

#[test]
fn a_wrong_hash_is_refused_with_both_hashes() {
    let model = yolov8_model();
    let dir = edited_yolov8(|m| m.replace("{sha256}", &"ab".repeat(32)));
    let e = refusal(dir.path());
    let real = streetsight::base::sha256_hex(&model);
    assert!(
        e.contains(&format!(
            "sha256: expected {} (the manifest), found {real}",
            "ab".repeat(32)
        )),
        "{e}"
    );
}

#[test]
fn a_missing_model_file_is_refused() {
    let dir = edited_yolov8(|m| {
        m.replace(
            "version = \"0.1.0\"",
            "version = \"0.1.0\"\nfile = \"v8.onnx\"",
        )
    });
    let e = refusal(dir.path());
    assert!(
        e.contains("the model file") && e.contains("v8.onnx") && e.contains("does not exist"),
        "{e}"
    );
}

#[test]
fn wrong_sizes_tensor_names_and_dtype_are_all_listed_at_once() {
    let model = FixedOutput {
        input: "images",
        input_type: UINT8,
        input_dims: &[Dim::Fixed(1), Dim::Fixed(3), Dim::Fixed(64), Dim::Fixed(64)],
        output: "output0",
        output_dims: &[Dim::Fixed(1), Dim::Fixed(7), Dim::Fixed(5)],
        value_dims: &[1, 7, 5],
        values: &YOLOV8_VALUES,
    }
    .model();
    let dir = tempfile::tempdir().unwrap();
    let manifest = YOLOV8_MANIFEST
        .replace("width = 64", "width = 640")
        .replace("name = \"output0\"", "name = \"output1\"");
    write_bundle(dir.path(), &manifest, &model);
    let e = refusal(dir.path());
    for part in [
        "input.dtype: expected `u8` (the graph's input `images`), found `f32`",
        "input.width: expected 64 (the graph's input `images` is [1, 3, 64, 64]), found 640",
        "output: expected tensor names from the graph's outputs [`output0`], found `output1`",
    ] {
        assert!(e.contains(part), "missing `{part}` in: {e}");
    }
}
