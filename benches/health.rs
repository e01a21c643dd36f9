//! The camera-health checks' cost per analysed frame — reading the picture (thumbnail, sharpness, colour,
//! raw samples) and judging it (Fourier–Mellin registration against the reference, texture, timers) — on
//! the real street frame at 768×576 and resized to 1920×1080, beside ONNX Runtime alone on NanoDet-g 416
//! (1 thread), so the ratio to inference is read from one run. Results are in docs/benchmarks.md.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};
use streetsight::base::ImageView;
use streetsight::health::{HealthParams, Monitor, Picture};

mod common;

fn frame(width: u32, height: u32) -> image::RgbImage {
    let jpeg =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/vtest-frame720.jpg");
    let img = image::open(&jpeg).expect("bench frame").to_rgb8();
    if img.dimensions() == (width, height) {
        img
    } else {
        image::imageops::resize(&img, width, height, image::imageops::FilterType::Triangle)
    }
}

fn health(c: &mut Criterion) {
    for (w, h) in [(768u32, 576u32), (1920, 1080)] {
        let img = frame(w, h);
        let view = ImageView::new(w as usize, h as usize, w as usize * 3, img.as_raw()).unwrap();
        c.bench_function(&format!("health: read a {w}x{h} frame"), |b| {
            b.iter(|| black_box(Picture::read(black_box(&view)).brightness))
        });
        let picture = Picture::read(view);
        let mut monitor = Monitor::new(HealthParams::default());
        let t0 = Instant::now();
        monitor.observe(&picture, t0);
        let mut n = 0u64;
        c.bench_function(
            &format!("health: judge a {w}x{h} frame against its reference"),
            |b| {
                b.iter(|| {
                    n += 1;
                    black_box(monitor.observe(black_box(&picture), t0 + Duration::from_secs(n)))
                })
            },
        );
        c.bench_function(&format!("health: read + judge a {w}x{h} frame"), |b| {
            b.iter(|| {
                n += 1;
                let p = Picture::read(black_box(&view));
                black_box(monitor.observe(&p, t0 + Duration::from_secs(n)))
            })
        });
    }
}

/// ONNX Runtime alone on NanoDet-g 416 with one thread (as `hot_paths` measures it): the yardstick.
fn inference(c: &mut Criterion) {
    common::ort_alone(c, 1);
}

criterion_group!(benches, health, inference);
criterion_main!(benches);
