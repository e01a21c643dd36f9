//! ONNX Runtime alone: CPU time per NanoDet-g 416 inference with a given number of intra-op threads — the
//! inference half of "the limit" the end-to-end benchmark divides the agent's cost by. Not a criterion
//! bench: criterion measures wall time, and with several threads CPU time is what a gateway pays.
//!
//!     cargo bench --bench inference_cpu -- --threads 1 --runs 200 [--model models/nanodet-g-416-int8]
//!
//! Prints one JSON line: `{"model", "threads", "runs", "cpu_ms_per_run", "wall_ms_per_run"}`.

use std::time::Instant;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let (threads, runs) = (arg("--threads", 1), arg("--runs", 200));
    let args: Vec<String> = std::env::args().collect();
    let model = args
        .iter()
        .position(|a| a == "--model")
        .and_then(|i| args.get(i + 1))
        .map_or("models/nanodet-g-416", String::as_str);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(model);
    let m = streetsight::detect::Manifest::load(&dir).expect("the bundled model's manifest");
    let mut opened = streetsight::detect::open(&m, threads)
        .expect("ONNX Runtime and the bundled model (run scripts/setup.sh)");
    let (w, h) = (m.input.width, m.input.height);
    // NanoDet is convolutions and activations only: its cost does not depend on the pixel values.
    let input = vec![0.5f32; 3 * w * h];
    let mut once = || {
        let t = ort::value::TensorRef::from_array_view(([1usize, 3, h, w], &input[..]))
            .expect("input tensor");
        let out = opened
            .session
            .run(ort::inputs![m.input.name.as_str() => t])
            .expect("inference");
        std::hint::black_box(out.len());
    };
    for _ in 0..10 {
        once(); // warm-up: memory arenas, thread pool
    }
    let cpu0 = streetsight::base::process_cpu_seconds().expect("/proc/self/stat");
    let wall0 = Instant::now();
    for _ in 0..runs {
        once();
    }
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = streetsight::base::process_cpu_seconds().expect("/proc/self/stat") - cpu0;
    println!(
        "{}",
        serde_json::json!({
            "model": m.name,
            "threads": threads,
            "runs": runs,
            "cpu_ms_per_run": cpu * 1000.0 / runs as f64,
            "wall_ms_per_run": wall * 1000.0 / runs as f64,
        })
    );
}
