//! How soon a camera that comes back is analysed again: the committed street clip served by the in-process
//! RTSP server, which goes down and comes back on the same port (short and long outages, short up-windows,
//! as a flapping pole camera does), and one camera's supervisor (the daemon's own ingest, keyframe
//! sampling) taking frames. For each up-window: the time from the server listening again to the first frame
//! out of ingest, and whether the window was missed entirely. Results are in docs/benchmarks.md.
//!
//! Run: `cargo bench --bench reconnect` (about 10 minutes). `RECONNECT_FLAPS` changes the number of flaps;
//! under `cargo test --all-targets` it makes one short flap (a smoke test of the harness).

use rand::Rng;
use std::time::{Duration, Instant};
use streetsight::base::Shutdown;
use streetsight::cli::demo::{Clip, ClipServer, free_port};
use streetsight::ingest::{CameraStats, FrameQueue, spawn_camera};

fn main() {
    streetsight::daemon::init_process().expect("GStreamer");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let clip = Clip::load(&root.join("tests/media/vtest.mp4")).expect("the street clip");
    let port = free_port().expect("a free port");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let text = format!(
        "[device]\nid = \"bench\"\n[uplink]\nbroker = \"mqtt://127.0.0.1:1\"\n[models.nanodet]\npath = \"{}\"\n[[camera]]\nid = \"cam\"\nurl = \"rtsp://127.0.0.1:{port}/cam\"\nmodel = \"nanodet\"\n",
        root.join("models/nanodet-g-416").display()
    );
    let path = dir.path().join("streetsight.toml");
    let loaded = streetsight::plan::load_str(&path, &text).expect("a valid configuration");
    let source =
        streetsight::plan::camera_source(loaded.config.cameras[0].get_ref(), &loaded.base_dir)
            .expect("the camera source");

    let queue = FrameQueue::new(2);
    let shutdown = Shutdown::new();
    let frames = queue.receiver().clone();
    let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let consumer = {
        let arrivals = arrivals.clone();
        std::thread::spawn(move || {
            while let Ok(frame) = frames.recv() {
                arrivals.lock().unwrap().push(Instant::now());
                drop(frame);
            }
        })
    };
    let mut server = Some(ClipServer::start(clip.clone(), port, "/cam", None).expect("the server"));
    let camera = spawn_camera(
        source,
        queue,
        std::sync::Arc::new(CameraStats::default()),
        shutdown.clone(),
    );
    std::thread::sleep(Duration::from_secs(5));

    // `cargo bench` passes --bench; `cargo test --all-targets` runs this once as a smoke test: one short flap.
    let benching = std::env::args().any(|a| a == "--bench");
    let flaps: usize = std::env::var("RECONNECT_FLAPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 12 } else { 1 });
    let mut rng = rand::rng();
    let mut delays = Vec::new();
    let mut missed = 0;
    println!("flap  down_s  up_s  first_frame_after_s");
    for i in 0..flaps {
        // Mostly short outages; every fifth one two minutes long (what used to grow the delay to a minute).
        let down = if !benching {
            2.0
        } else if i % 5 == 4 {
            120.0
        } else {
            rng.random_range(2.0..30.0)
        };
        let up = rng.random_range(6.0..12.0);
        if let Some(s) = server.take() {
            s.stop();
        }
        std::thread::sleep(Duration::from_secs_f64(down));
        server = Some(ClipServer::start(clip.clone(), port, "/cam", None).expect("the server"));
        let back = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(up));
        let first = arrivals
            .lock()
            .unwrap()
            .iter()
            .find(|t| **t >= back)
            .copied();
        match first {
            Some(t) => {
                let d = t.duration_since(back).as_secs_f64();
                delays.push(d);
                println!("{i:4}  {down:6.1}  {up:4.1}  {d:6.2}");
            }
            None => {
                missed += 1;
                println!("{i:4}  {down:6.1}  {up:4.1}  missed");
            }
        }
    }
    shutdown.trigger();
    drop(server);
    camera.join();
    drop(consumer);
    delays.sort_by(f64::total_cmp);
    let median = delays.get(delays.len() / 2).copied().unwrap_or(f64::NAN);
    let max = delays.last().copied().unwrap_or(f64::NAN);
    println!(
        "flaps {flaps}: first frame after the camera is back — median {median:.2} s, max {max:.2} s; up-windows missed: {missed}"
    );
}
