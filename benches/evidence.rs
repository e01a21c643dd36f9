//! Cost of making evidence: obscuring heads, the caption, and JPEG encoding of a real street frame.

use criterion::{Criterion, criterion_group, criterion_main};
use image::{Rgb, RgbImage};
use std::hint::black_box;
use streetsight::base::BBox;
use streetsight::incident::{PrivacyParams, blur_heads, draw_text};

fn frame() -> RgbImage {
    RgbImage::from_fn(768, 576, |x, y| {
        Rgb([(x * 7) as u8, (y * 13) as u8, ((x ^ y) * 3) as u8])
    })
}

/// Ten pedestrians of vtest-like sizes (about 30x75 to 70x150 px) spread over the frame.
fn people() -> Vec<BBox> {
    (0..10)
        .map(|i| {
            let (x, y) = (0.05 + 0.09 * i as f32, 0.2 + 0.05 * (i % 4) as f32);
            let (w, h) = (0.04 + 0.005 * i as f32, 0.13 + 0.013 * i as f32);
            BBox {
                x1: x,
                y1: y,
                x2: x + w,
                y2: y + h,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let (base, people, params) = (frame(), people(), PrivacyParams::default());
    c.bench_function("blur_heads/10_people_768x576", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |img| blur_heads(img, black_box(&people), &params),
            criterion::BatchSize::LargeInput,
        )
    });
    let caption = "street_vending  zone=stall-1  2026-11-23 14:05:09+08:00  cam=north";
    c.bench_function("draw_text/caption_scale2", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |img| {
                draw_text(
                    img,
                    4,
                    4,
                    black_box(caption),
                    2,
                    Rgb([255; 3]),
                    Some(Rgb([0; 3])),
                )
            },
            criterion::BatchSize::LargeInput,
        )
    });
}

/// The street frame of the hot-path benches, scaled to 1080p: what a 1080p camera's evidence costs to encode.
fn street_1080p() -> RgbImage {
    let jpeg =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/vtest-frame720.jpg");
    let img = image::open(&jpeg).expect("bench frame").to_rgb8();
    image::imageops::resize(&img, 1920, 1080, image::imageops::FilterType::Triangle)
}

fn jpeg(c: &mut Criterion) {
    let img = street_1080p();
    c.bench_function("jpeg_encode/street_1920x1080_q85", |b| {
        b.iter(|| black_box(streetsight::incident::encode_evidence(black_box(&img), 85).unwrap()))
    });
}

criterion_group!(benches, bench, jpeg);
criterion_main!(benches);
