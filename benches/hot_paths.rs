//! Hot paths of a frame's way through the agent: preprocessing a decoded frame into the model's input tensor
//! (stretch and letterbox, 416 and 640), decoding each head's output, NMS up to YOLOv8-640's 8,400
//! candidates, the crowd rule's count, tracker and zone steps; and, as the yardstick, ONNX Runtime alone and
//! the whole `Detector::detect` on NanoDet.
//! Results are recorded in docs/benchmarks.md.

use common::manifest;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use streetsight::base::{BBox, Detection, ImageView};
use streetsight::detect::{Preprocessor, nms_per_class};

mod common;

fn preprocess(c: &mut Criterion) {
    use streetsight::detect::ResizeMode;
    let base = manifest().input;
    let frame =
        |w: usize, h: usize| -> Vec<u8> { (0..w * h * 3).map(|i| (i * 31 % 251) as u8).collect() };
    let cases = [
        (768usize, 576usize, 416usize, ResizeMode::Stretch),
        (1920, 1080, 416, ResizeMode::Stretch),
        (1920, 1080, 416, ResizeMode::Letterbox),
        (1920, 1080, 640, ResizeMode::Stretch),
        (1920, 1080, 640, ResizeMode::Letterbox),
    ];
    for (w, h, size, resize) in cases {
        let mut spec = base.clone();
        (spec.width, spec.height, spec.resize) = (size, size, resize);
        let mut p = Preprocessor::new(&spec);
        let data = frame(w, h);
        let img = ImageView::new(w, h, w * 3, &data).unwrap();
        c.bench_function(
            &format!("preprocess {w}x{h} -> {size}x{size} {resize:?} NCHW f32"),
            |b| b.iter(|| black_box(p.run(black_box(&img))[0])),
        );
    }
}

/// The decoder's own 4:2:0 picture: into the model's input directly (only the input's pixels converted), and
/// the whole frame to RGB (what evidence, crops and snapshots pay, once per frame that needs it).
fn from_yuv(c: &mut Criterion) {
    use streetsight::base::{ColorMatrix, FrameView, YuvLayout, YuvView};
    use streetsight::detect::ResizeMode;
    let base = manifest().input;
    for (w, h) in [(1920usize, 1080usize), (1280, 720)] {
        let (cw, ch) = (w / 2, h / 2);
        let data: Vec<u8> = (0..w * h + 2 * cw * ch)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let layout = YuvLayout::packed_i420(w, h, ColorMatrix::Bt709);
        let yuv = YuvView::new(layout, &data).unwrap();
        for resize in [ResizeMode::Stretch, ResizeMode::Letterbox] {
            let mut spec = base.clone();
            (spec.width, spec.height, spec.resize) = (416, 416, resize);
            let mut p = Preprocessor::new(&spec);
            c.bench_function(
                &format!("preprocess I420 {w}x{h} -> 416x416 {resize:?} NCHW f32"),
                |b| b.iter(|| black_box(p.run(FrameView::Yuv(black_box(yuv)))[0])),
            );
        }
        c.bench_function(&format!("I420 {w}x{h} -> packed RGB"), |b| {
            b.iter(|| black_box(black_box(yuv).to_rgb()[0]))
        });
    }
}

fn candidates(n: usize) -> Vec<Detection> {
    // Deterministic clustered boxes: 8 objects with n/8 overlapping candidates each, over 3 classes.
    (0..n)
        .map(|i| {
            let obj = i % 8;
            let jitter = (i / 8) as f32 * 0.0005;
            let x = 0.1 * obj as f32 + jitter;
            Detection {
                class: obj % 3,
                score: 0.3 + ((i * 7919) % 700) as f32 / 1000.0,
                bbox: BBox {
                    x1: x,
                    y1: 0.3 + jitter,
                    x2: x + 0.08,
                    y2: 0.6 + jitter,
                },
            }
        })
        .collect()
}

fn nms(c: &mut Criterion) {
    for n in [100usize, 1000, 3549, 8400] {
        let cands = candidates(n);
        c.bench_function(&format!("nms {n} candidates"), |b| {
            b.iter(|| black_box(nms_per_class(black_box(cands.clone()), 0.45).len()))
        });
    }
    // The worst case: 8,400 disjoint boxes of one class (a 120 × 70 grid), nothing suppressed. The
    // per-class cap bounds it at 8,400 × 300 overlap tests.
    let spread: Vec<Detection> = (0..8400)
        .map(|i| {
            let (x, y) = ((i % 120) as f32 / 120.0, (i / 120) as f32 / 70.0);
            Detection {
                class: 0,
                score: 0.3 + ((i * 7919) % 700) as f32 / 1000.0,
                bbox: BBox {
                    x1: x,
                    y1: y,
                    x2: x + 0.006,
                    y2: y + 0.01,
                },
            }
        })
        .collect();
    c.bench_function("nms 8400 disjoint candidates of one class", |b| {
        b.iter(|| black_box(nms_per_class(black_box(spread.clone()), 0.45).len()))
    });
}

/// YOLOv8-640 (`[1, 84, 8400]`) and YOLOv5-640 (`[1, 25200, 85]`) outputs: class scores mostly low, a few
/// hundred candidates above 0.25, as on a busy street.
fn decode_yolo(c: &mut Criterion) {
    use streetsight::detect::{decode_yolov5, decode_yolov8};
    let score = |i: usize| {
        if i.is_multiple_of(997) {
            0.6
        } else {
            (i % 13) as f32 / 100.0
        }
    };
    let v8: Vec<f32> = (0..84 * 8400)
        .map(|i| {
            if i < 4 * 8400 {
                (i % 640) as f32
            } else {
                score(i)
            }
        })
        .collect();
    let (mut best, mut out) = (Vec::new(), Vec::with_capacity(1024));
    c.bench_function("yolov8 decode 8400 candidates x 80 classes", |b| {
        b.iter(|| {
            out.clear();
            decode_yolov8(black_box(&v8), 80, (640, 640), 0.25, &mut best, &mut out);
            black_box(out.len())
        })
    });
    let v5: Vec<f32> = (0..25200 * 85)
        .map(|i| match i % 85 {
            0..4 => (i % 640) as f32,
            4 => {
                if (i / 85) % 50 == 0 {
                    0.8
                } else {
                    0.01
                }
            }
            _ => score(i),
        })
        .collect();
    c.bench_function("yolov5 decode 25200 candidates x 80 classes", |b| {
        b.iter(|| {
            out.clear();
            decode_yolov5(black_box(&v5), 80, (640, 640), 0.25, &mut out);
            black_box(out.len())
        })
    });
}

/// A density map of a 768×576 frame at 1/8 resolution (96 × 72), summed inside a 5-point crowd zone.
fn density_zone_sum(c: &mut Criterion) {
    use streetsight::detect::{DensityMap, Fit, ResizeMode};
    use streetsight::rules::Polygon;
    let zone = Polygon::new(&[[0.0, 0.3], [0.5, 0.2], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]]);
    let map = DensityMap {
        width: 96,
        height: 72,
        values: (0..96 * 72).map(|i| (i % 7) as f32 / 1000.0).collect(),
        fit: Fit::new(ResizeMode::Stretch, (768, 576), (768, 576)),
    };
    c.bench_function("density map 96x72 summed in a 5-point zone", |b| {
        b.iter(|| black_box(map.sum_where(|x, y| zone.contains(x, y))))
    });
}

fn decode(c: &mut Criterion) {
    use streetsight::detect::{StrideOutput, decode_nanodet};
    // NanoDet-g 416: strides 8/16/32 → 2704/676/169 cells, 80 classes, 4 × 11 bins. Scores mostly low with a
    // few hundred cells above the threshold, as on a busy street frame.
    let tensors: Vec<(usize, Vec<f32>, Vec<f32>)> = [(8usize, 2704usize), (16, 676), (32, 169)]
        .into_iter()
        .map(|(s, cells)| {
            let scores = (0..cells * 80)
                .map(|i| {
                    if i.is_multiple_of(997) {
                        0.6
                    } else {
                        (i % 13) as f32 / 100.0
                    }
                })
                .collect();
            let boxes = (0..cells * 44)
                .map(|i| ((i * 37) % 11) as f32 / 3.0)
                .collect();
            (s, scores, boxes)
        })
        .collect();
    let outputs: Vec<StrideOutput> = tensors
        .iter()
        .map(|(s, sc, bx)| StrideOutput {
            stride: *s,
            scores: sc,
            boxes: bx,
        })
        .collect();
    let mut out = Vec::with_capacity(1024);
    c.bench_function("nanodet decode 3549 cells x 80 classes", |b| {
        b.iter(|| {
            out.clear();
            decode_nanodet(black_box(&outputs), 80, 10, (416, 416), 0.35, &mut out);
            black_box(out.len())
        })
    });
}

fn crowd_count(c: &mut Criterion) {
    use streetsight::rules::{CrowdLevel, CrowdParams, CrowdRule, Polygon};
    let rule = CrowdRule::new(CrowdParams {
        zone: Polygon::new(&[[0.0, 0.3], [0.5, 0.2], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]]),
        area_m2: 40.0,
        classes: vec![0],
        min_score: 0.5,
        levels: vec![CrowdLevel {
            name: "a".into(),
            min_density: 2.0,
        }],
        hysteresis: 0.2,
        sustain: std::time::Duration::from_secs(10),
        clear: std::time::Duration::from_secs(30),
        max_count: None,
    });
    let dets = candidates(200);
    c.bench_function("crowd count 200 detections in a 5-point zone", |b| {
        b.iter(|| black_box(rule.count(black_box(&dets)).count))
    });
}

/// One tracker update with 30 detections against ~30 live, confirmed tracks: walkers on a 6x5 grid, each
/// sampled at 5 fps and moving back and forth at 10–40 px per second so that the predictions matter.
fn tracker_step(c: &mut Criterion) {
    use std::time::{Duration, Instant};
    use streetsight::base::{BBox, Detection};
    use streetsight::track::{Tracker, TrackerParams};

    const FRAMES: usize = 64; // one back-and-forth cycle, so frame FRAMES follows frame FRAMES - 1 smoothly
    let frames: Vec<Vec<Detection>> = (0..FRAMES)
        .map(|k| {
            // Triangle wave 0 → 1 → 0 over the cycle.
            let phase = k as f32 / FRAMES as f32;
            let tri = 1.0 - (2.0 * phase - 1.0).abs();
            (0..30)
                .map(|i| {
                    let (col, row) = ((i % 6) as f32, (i / 6) as f32);
                    // 2–8 px per 0.2 s sample = 10–40 px/s at 768 px; up to ~250 px over half a cycle.
                    let amp = (2.0 + (i % 4) as f32 * 2.0) * (FRAMES / 2) as f32 / 768.0;
                    let x = 0.02 + col * 0.1 + amp * tri;
                    let y = 0.05 + row * 0.18;
                    Detection {
                        class: i % 2,
                        // Every fifth walker scores low now and then, so the second pass has work too.
                        score: if i % 5 == 0 && k % 4 == 2 { 0.35 } else { 0.8 },
                        bbox: BBox {
                            x1: x,
                            y1: y,
                            x2: x + 0.05,
                            y2: y + 0.17,
                        },
                    }
                })
                .collect()
        })
        .collect();

    let t0 = Instant::now();
    let step = Duration::from_millis(200);
    let mut tracker = Tracker::new(TrackerParams::default());
    // Warm up one full cycle: 30 confirmed tracks, then every update matches all 30 detections.
    let mut k = 0usize;
    while k < FRAMES {
        tracker.update(&frames[k % FRAMES], t0 + step * k as u32);
        k += 1;
    }
    assert_eq!(tracker.tracks().filter(|t| t.confirmed(2)).count(), 30);

    c.bench_function("tracker update: 30 detections, 30 live tracks", |b| {
        b.iter(|| {
            let now = t0 + step * k as u32;
            let ids = tracker.update(black_box(&frames[k % FRAMES]), now);
            k += 1;
            black_box(ids)
        })
    });
    // Ids stayed stable throughout: still exactly the 30 first tracks.
    assert!(tracker.tracks().map(|t| t.id).eq(1..=30));
}

/// Zone membership of an object by box overlap (6×6 point tests against a 5-point polygon).
fn zone_overlap(c: &mut Criterion) {
    use streetsight::rules::{Polygon, overlap_share};
    let zone = Polygon::new(&[[0.0, 0.3], [0.5, 0.2], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]]);
    let dets = candidates(30);
    c.bench_function("zone overlap share of 30 boxes, 5-point zone", |b| {
        b.iter(|| {
            dets.iter()
                .map(|d| overlap_share(black_box(&zone), &d.bbox))
                .sum::<f32>()
        })
    });
}

/// The whole `Detector::detect` on a real street frame: preprocessing + ONNX Runtime (2 intra-op threads) +
/// decoding + NMS. Subtract the pieces above to see what inference alone costs.
fn detect_real_frame(c: &mut Criterion) {
    let jpeg =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/vtest-frame720.jpg");
    let img = image::open(&jpeg).expect("bench frame").to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut det = streetsight::detect::Detector::load(manifest(), 2)
        .expect("ONNX Runtime and the bundled model (run scripts/setup.sh)");
    let view = ImageView::new(w, h, w * 3, img.as_raw()).unwrap();
    c.bench_function(
        "detect 768x576 street frame, NanoDet-g 416, 2 threads",
        |b| b.iter(|| black_box(det.detect(black_box(&view)).unwrap().len())),
    );
}

/// ONNX Runtime alone on NanoDet-g 416 (1 and 2 intra-op threads, input already in place): the yardstick
/// for the pre- and post-processing costs above.
fn bare_inference(c: &mut Criterion) {
    for threads in [1, 2] {
        common::ort_alone(c, threads);
    }
}

criterion_group!(
    benches,
    preprocess,
    from_yuv,
    decode,
    decode_yolo,
    nms,
    density_zone_sum,
    crowd_count,
    zone_overlap,
    tracker_step,
    bare_inference,
    detect_real_frame
);
criterion_main!(benches);
