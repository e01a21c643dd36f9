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
            .detect(&ImageView::new(*w, *h, w * 3, rgb).unwrap())
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
