//! A zone-state rule's cost per sample: the zone's crop through the EfficientNet-Lite0 embedder (pre-
//! processing + ONNX Runtime, 1 thread), with and without passers-by masked, and the nearest-example vote
//! over 40 examples — beside ONNX Runtime alone on NanoDet-g 416 (1 thread), the detector every analysed
//! frame already pays for. On the real street frame, the zone of tests/zone_state.rs. Results are in
//! docs/benchmarks.md.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use streetsight::base::{BBox, Detection, ImageView, unit};
use streetsight::detect::{Detector, Manifest};
use streetsight::rules::{CropPicture, Example, Polygon, ZoneStateParams, ZoneStateRule};

mod common;

fn rule() -> ZoneStateRule {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/efficientnet-lite0");
    let embedder = Detector::load(Manifest::load(&dir).expect("embedder bundle"), 1)
        .expect("ONNX Runtime and the embedder bundle (run scripts/setup.sh)");
    let mut r = ZoneStateRule::new(
        ZoneStateParams {
            states: vec!["clear".into(), "debris".into()],
            alarm: vec![false, true],
            sample_every: Duration::from_secs(1),
            window: 5,
            min_present: 3,
            margin: 0.1,
            exclude: vec![0],
            max_occluded: 0.3,
        },
        Polygon::new(&[[0.57, 0.42], [0.91, 0.42], [0.91, 0.61], [0.57, 0.61]]),
    );
    r.attach(Arc::new(Mutex::new(embedder)));
    r
}

fn zone_state(c: &mut Criterion) {
    let jpeg =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/vtest-frame720.jpg");
    let img = image::open(&jpeg).expect("bench frame").to_rgb8();
    let img = image::imageops::resize(&img, 768, 576, image::imageops::FilterType::Triangle);
    let view = ImageView::packed(768, 576, img.as_raw()).unwrap();
    let mut r = rule();
    let crop = view.crop(r.region()).unwrap();
    c.bench_function(
        &format!(
            "zone_state: embed a {}x{} zone crop",
            crop.width(),
            crop.height()
        ),
        |b| b.iter(|| black_box(r.embed(black_box(&view), &[]).unwrap().len())),
    );
    let person = |x1: f32| Detection {
        class: 0,
        score: 0.9,
        bbox: BBox {
            x1,
            y1: 0.38,
            x2: x1 + 0.04,
            y2: 0.55,
        },
    };
    let people = [person(0.62), person(0.8)];
    r.set_background(Some(CropPicture {
        width: crop.width(),
        height: crop.height(),
        rgb: crop.to_packed(),
    }));
    c.bench_function(
        "zone_state: embed the crop with two passers-by masked",
        |b| b.iter(|| black_box(r.embed(black_box(&view), &people).unwrap().len())),
    );
    // Forty examples (twenty per state), as many as `max_examples` keeps by default.
    let v = r.embed(&view, &[]).unwrap();
    let examples: Vec<Example> = (0..40)
        .map(|i| Example {
            id: format!("e{i}"),
            state: i % 2,
            vector: unit(
                v.iter()
                    .enumerate()
                    .map(|(k, x)| x + ((k * 7 + i) % 13) as f32 * 1e-3)
                    .collect(),
            ),
        })
        .collect();
    r.set_examples(examples);
    c.bench_function(
        &format!("zone_state: vote over 40 examples of {} values", v.len()),
        |b| b.iter(|| black_box(r.classify(black_box(&v)))),
    );
}

/// ONNX Runtime alone on NanoDet-g 416 with one thread: the yardstick.
fn inference(c: &mut Criterion) {
    common::ort_alone(c, 1);
}

criterion_group!(benches, zone_state, inference);
criterion_main!(benches);
