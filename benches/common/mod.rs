//! What several benches share: the bundled model and ONNX Runtime alone on it, the yardstick other costs
//! are read against.

use criterion::Criterion;
use std::hint::black_box;
use streetsight::detect::Manifest;

pub fn manifest() -> Manifest {
    Manifest::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/nanodet-g-416"))
        .expect("bundled model manifest")
}

/// ONNX Runtime alone on NanoDet-g 416 with `threads` intra-op threads, input already in place.
pub fn ort_alone(c: &mut Criterion, threads: usize) {
    let m = manifest();
    let input = vec![0.5f32; 3 * 416 * 416];
    let mut opened = streetsight::detect::open(&m, threads)
        .expect("ONNX Runtime and the bundled model (run scripts/setup.sh)");
    c.bench_function(
        &format!("onnx runtime alone: NanoDet-g 416, {threads} threads"),
        |b| {
            b.iter(|| {
                let t = ort::value::TensorRef::from_array_view(([1usize, 3, 416, 416], &input[..]))
                    .unwrap();
                let out = opened
                    .session
                    .run(ort::inputs![m.input.name.as_str() => t])
                    .unwrap();
                black_box(out.len())
            })
        },
    );
}
