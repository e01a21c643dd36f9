//! Overload with real parts: eight RTSP cameras (the committed clip, 10 fps) asking for every frame to be
//! analysed — about 80 frames/s, several times what two cores can infer with NanoDet — on a model with two
//! workers. The gateway must degrade by sampling less: frames are skipped before they are converted, none
//! pile up in a queue (none is dropped from one), every camera keeps being analysed, and both workers work.

mod support;

use std::collections::HashMap;
use std::time::Duration;
use streetsight::cli::demo::{Clip, ClipServer, Mosquitto};
use support::*;

const CAMERAS: usize = 8;

fn config(urls: &[String], broker: &str, http_port: u16, state: &std::path::Path) -> String {
    let mut text = format!(
        r#"[device]
id = "overload"

[uplink]
broker = "{broker}"
commands = false

[ops]
http = "127.0.0.1:{http_port}"

[storage]
state_dir = "{state}"

[models.nanodet]
path = "{model}"
threads = 1
workers = 2
"#,
        state = state.display(),
        model = model_dir().display(),
    );
    for (i, url) in urls.iter().enumerate() {
        text += &format!(
            r#"
[[camera]]
id = "cam{i}"
url = "{url}"
model = "nanodet"
sampling = {{ mode = "interval", interval_ms = 50 }}
"#
        );
    }
    text
}

/// `name{camera="…"} value` rows of one metric, by camera.
fn per_camera(metrics: &str, name: &str) -> HashMap<String, f64> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix("{camera=\""))
        .filter_map(|l| {
            let (cam, rest) = l.split_once("\"}")?;
            Some((cam.to_string(), rest.trim().parse().ok()?))
        })
        .collect()
}

/// Per camera, how much a counter grew from `before` to `after`.
fn delta(after: &str, before: &str, name: &str) -> HashMap<String, f64> {
    let (a, b) = (per_camera(after, name), per_camera(before, name));
    a.iter()
        .map(|(k, v)| (k.clone(), v - b.get(k).copied().unwrap_or(0.0)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overloaded_gateway_samples_less_and_keeps_every_camera_analysed() {
    streetsight::ops::init_logging("warn");
    streetsight::daemon::init_process().unwrap();
    let mounts: Vec<String> = (0..CAMERAS).map(|i| format!("/c{i}")).collect();
    let refs: Vec<&str> = mounts.iter().map(String::as_str).collect();
    let server =
        ClipServer::start_mounts(Clip::load(&clip_path()).unwrap(), 0, &refs, None).unwrap();
    let urls: Vec<String> = mounts.iter().map(|m| server.url(m)).collect();
    let broker = Mosquitto::start(0).unwrap();
    let work = tempfile::tempdir().unwrap();
    let http_port = streetsight::cli::demo::free_port().unwrap();
    let loaded = load_config(
        work.path(),
        &config(&urls, &broker.url(), http_port, work.path()),
    );
    let daemon = RunningDaemon::start(loaded, &broker.url(), "streetsight/v1/overload/#").await;

    // Wait until every camera has been analysed at least once, then watch for a while.
    let deadline = std::time::Instant::now() + scaled(Duration::from_secs(90));
    loop {
        let analysed = if std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok() {
            per_camera(
                &http_get(http_port, "/metrics").1,
                "streetsight_camera_frames_analysed_total",
            )
        } else {
            HashMap::new() // the endpoint is not up yet
        };
        if analysed.len() == CAMERAS && analysed.values().all(|&v| v > 0.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every camera analysed: {analysed:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Watch for at least 10 s and at least two analyses per camera: how long that takes depends on the machine
    // (natively ~1 s; under qemu, where 8 emulated decoders and NanoDet share 2 cores, ~6 minutes).
    let (_, before) = http_get(http_port, "/metrics");
    let window = std::time::Instant::now();
    let deadline = window + scaled(Duration::from_secs(120));
    let after = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (_, now) = http_get(http_port, "/metrics");
        let analysed: f64 = delta(&now, &before, "streetsight_camera_frames_analysed_total")
            .values()
            .sum();
        let enough =
            analysed >= 2.0 * CAMERAS as f64 && window.elapsed() >= Duration::from_secs(10);
        if enough || std::time::Instant::now() > deadline {
            break now;
        }
    };
    let workers: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| n.starts_with("model-nanodet"))
        .collect();
    daemon.stop().await;

    let analysed = delta(&after, &before, "streetsight_camera_frames_analysed_total");
    let skipped = delta(&after, &before, "streetsight_camera_frames_skipped_total");
    let dropped = per_camera(&after, "streetsight_camera_frames_dropped_total");
    assert_eq!(analysed.len(), CAMERAS);
    assert!(
        analysed.values().all(|&v| v >= 1.0),
        "every camera keeps being analysed while overloaded: {analysed:?}"
    );
    let (least, most) = analysed
        .values()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    assert!(
        most <= least * 4.0 + 2.0,
        "cameras are served about equally: {analysed:?}"
    );
    // 80 frames/s asked of two single-thread NanoDet workers: on the 2-core machines this runs on
    // (≈ 20 frames/s each at best) most due frames must be skipped.
    assert!(
        skipped.values().sum::<f64>() > analysed.values().sum::<f64>(),
        "overload shows as frames skipped before conversion (skipped {skipped:?}, analysed {analysed:?})"
    );
    assert!(
        dropped.values().all(|&v| v == 0.0),
        "no frame waited in a queue long enough to be pushed out: {dropped:?}"
    );
    let mut names = workers.clone();
    names.sort();
    names.dedup();
    assert_eq!(
        names,
        ["model-nanodet-0", "model-nanodet-1"],
        "two workers: {workers:?}"
    );
}
