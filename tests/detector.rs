//! NanoDet on ONNX Runtime on real frames of the committed street clip, and bundles that lie about the
//! model are refused with a message that says what does not match.

mod support;

use std::path::Path;
use std::sync::Mutex;
use streetsight::base::ImageView;
use streetsight::detect::{Detector, Manifest};
use support::*;

// ONNX Runtime allows one environment per process; sessions are made one at a time.
static ORT: Mutex<()> = Mutex::new(());

#[test]
fn nanodet_finds_the_walkers_on_real_frames() {
    let _g = ORT.lock().unwrap();
    let mut det = Detector::load(Manifest::load(&model_dir()).unwrap(), 2).unwrap();
    let person = det.manifest.label_index("person").unwrap();
    let frames = decode_clip(80); // 10 frames spread over the 795
    assert_eq!(frames.len(), 10);
    let mut counts = Vec::new();
    for (w, h, rgb) in &frames {
        let dets = det
            .detect(ImageView::new(*w, *h, w * 3, rgb).unwrap())
            .unwrap();
        let people: Vec<_> = dets
            .iter()
            .filter(|d| d.class == person && d.score >= 0.5)
            .collect();
        for p in &people {
            let b = p.bbox;
            assert!(
                b.x1 < b.x2 && b.y1 < b.y2 && b.y2 - b.y1 > b.x2 - b.x1,
                "a standing walker's box is taller than wide: {b:?}"
            );
        }
        counts.push(people.len());
    }
    // People visible on frames 0, 80, …, 720, counted by eye on frames 0, 400 and 720 (3, 3, 8) and by an
    // independent Python/onnxruntime implementation of the same model on all ten. Allow one miss or merge.
    let truth = [3, 5, 7, 7, 5, 3, 3, 5, 6, 8];
    for (i, (c, t)) in counts.iter().zip(truth).enumerate() {
        assert!(
            c.abs_diff(t) <= 1,
            "frame {}: {c} people found, {t} there (all: {counts:?})",
            i * 80
        );
    }
    assert!(
        counts.iter().sum::<usize>().abs_diff(truth.iter().sum()) <= 2,
        "{counts:?} vs {truth:?}"
    );
}

/// Copy the bundled model into a temporary bundle whose manifest is edited by `edit`.
fn edited_bundle(edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        model_dir().join("model.onnx"),
        dir.path().join("model.onnx"),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(model_dir().join("manifest.toml")).unwrap();
    std::fs::write(dir.path().join("manifest.toml"), edit(manifest)).unwrap();
    dir
}

fn load_error(dir: &Path) -> String {
    let _g = ORT.lock().unwrap();
    match Manifest::load(dir) {
        Err(e) => e.to_string(),
        Ok(m) => Detector::load(m, 1)
            .err()
            .map(|e| e.to_string())
            .expect("the bundle must be refused"),
    }
}

#[test]
fn a_model_whose_hash_differs_from_its_manifest_is_refused() {
    let dir = edited_bundle(|m| {
        let start = m.find("sha256 = \"").unwrap() + 10;
        format!("{}{}{}", &m[..start], "0".repeat(64), &m[start + 64..])
    });
    let e = load_error(dir.path());
    assert!(
        e.contains(&format!(
            "sha256: expected {} (the manifest), found 2c5104f7",
            "0".repeat(64)
        )),
        "{e}"
    );
}

#[test]
fn a_manifest_with_the_wrong_input_size_is_refused() {
    let dir = edited_bundle(|m| m.replace("width = 416", "width = 320"));
    let e = load_error(dir.path());
    assert!(
        e.ends_with("input.width: expected 416 (the graph's input `input_1:0` is [1, 3, 416, 416]), found 320"),
        "only the cause, not the cell counts it changes: {e}"
    );
}

#[test]
fn a_manifest_with_the_wrong_label_count_is_refused() {
    let dir = edited_bundle(|m| m.replacen(", \"toothbrush\",", ",", 1));
    let e = load_error(dir.path());
    assert!(
        e.ends_with("labels: expected 80 labels (head nanodet: `Identity:0` is [1, 2704, 80], laid out [1, cells, classes]), found 79"),
        "{e}"
    );
}

#[test]
fn a_bundle_without_its_model_file_is_refused() {
    let dir = edited_bundle(|m| m.replace("file = \"model.onnx\"", "file = \"missing.onnx\""));
    let e = load_error(dir.path());
    assert!(
        e.contains("the model file") && e.contains("missing.onnx") && e.contains("does not exist"),
        "{e}"
    );
}

/// The daemon hands the model the decoder's own 4:2:0 picture (converted only at the model's input pixels)
/// instead of a full RGB conversion of the frame. On real frames of the street clip both give the same
/// people: every box of either path scored ≥ 0.4 has a same-class box in the other path with IoU ≥ 0.75
/// and a score within 0.08 (measured: 366 boxes, worst IoU 0.81, worst score difference 0.03).
#[test]
fn the_decoders_own_picture_gives_the_detections_of_its_rgb_conversion() {
    let _g = ORT.lock().unwrap();
    let mut det = Detector::load(Manifest::load(&model_dir()).unwrap(), 2).unwrap();
    let rgb = decode_clip(40);
    let yuv = decode_clip_yuv(40);
    assert_eq!((rgb.len(), yuv.len()), (20, 20));
    let (mut boxes, mut worst_iou, mut worst_score) = (0, 1.0f32, 0.0f32);
    for (i, ((w, h, rgb), frame)) in rgb.iter().zip(&yuv).enumerate() {
        assert!(matches!(
            frame.picture(),
            streetsight::base::FrameView::Yuv(_)
        ));
        let view = ImageView::new(*w, *h, w * 3, rgb).unwrap();
        let from_rgb = det.detect(view).unwrap();
        let from_yuv = det.detect(frame.picture()).unwrap();
        for (these, those, which) in [
            (&from_rgb, &from_yuv, "RGB"),
            (&from_yuv, &from_rgb, "4:2:0"),
        ] {
            for d in these.iter().filter(|d| d.score >= 0.4) {
                boxes += 1;
                let best = those
                    .iter()
                    .filter(|o| o.class == d.class)
                    .max_by(|a, b| iou(a.bbox, d.bbox).total_cmp(&iou(b.bbox, d.bbox)));
                let Some(o) = best else {
                    panic!(
                        "frame {}: the {which} path's {d:?} has no match in {those:?}",
                        i * 40
                    );
                };
                worst_iou = worst_iou.min(iou(o.bbox, d.bbox));
                worst_score = worst_score.max((o.score - d.score).abs());
            }
        }
        // The evidence picture (the lazy RGB view) is the converter's picture within a few levels:
        // GStreamer's `videoconvert` fast path is 1–4 levels darker than the standard BT.601 conversion
        // (measured against ffmpeg's swscale, which agrees with ours within 0.03 levels on average).
        let lazy = frame.view().to_packed();
        let mut signed = [0f64; 3];
        let mut max = 0;
        for (k, (a, b)) in lazy.iter().zip(rgb).enumerate() {
            signed[k % 3] += *a as f64 - *b as f64;
            max = max.max(a.abs_diff(*b));
        }
        let signed = signed.map(|v| v / (lazy.len() / 3) as f64);
        assert!(
            max <= 8 && signed.iter().all(|v| (0.0..=4.5).contains(v)),
            "frame {}: RGB views differ by up to {max}, on average {signed:?}",
            i * 40
        );
    }
    eprintln!("{boxes} boxes: worst IoU {worst_iou:.3}, worst score difference {worst_score:.3}");
    assert!(boxes > 100, "{boxes}");
    assert!(worst_iou >= 0.75, "worst IoU {worst_iou}");
    assert!(worst_score <= 0.08, "worst score difference {worst_score}");
}

fn iou(a: streetsight::base::BBox, b: streetsight::base::BBox) -> f32 {
    let ix = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let iy = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let inter = ix * iy;
    let area = |r: streetsight::base::BBox| (r.x2 - r.x1) * (r.y2 - r.y1);
    inter / (area(a) + area(b) - inter).max(1e-9)
}
