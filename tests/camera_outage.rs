//! A camera outage never ends the daemon: the RTSP server (a separate process, killed like a camera losing
//! power) goes away for 40 s and comes back on the same port; the daemon reconnects within seconds and
//! events resume.

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use streetsight::cli::demo::{Mosquitto, free_port};
use support::*;

struct Camera(Child);

impl Camera {
    fn start(port: u16) -> Camera {
        let child = streetsight_bin()
            .arg("serve-clip")
            .arg(clip_path())
            .args(["--port", &port.to_string(), "--mount", "/cam"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + scaled(Duration::from_secs(20));
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "camera did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Camera(child)
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The flapping configuration plus a second camera at a port where nothing listens.
fn config_with_dead_camera(camera_url: &str, broker_url: &str, state: &std::path::Path) -> String {
    format!(
        "{}\n# A camera that never answers: it must not disturb the other one or the daemon.\n[[camera]]\nid = \"dead\"\nurl = \"rtsp://127.0.0.1:{}/nothing\"\nmodel = \"nanodet\"\n",
        flapping_config("outage-pole", camera_url, broker_url, state),
        free_port().unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_survives_a_camera_outage_and_resumes_events() {
    streetsight::ops::init_logging("info");
    let port = free_port().unwrap();
    let mut camera = Some(Camera::start(port));
    let broker = Mosquitto::start(0).unwrap();
    let work = tempfile::tempdir().unwrap();
    let loaded = load_config(
        work.path(),
        &config_with_dead_camera(
            &format!("rtsp://127.0.0.1:{port}/cam"),
            &broker.url(),
            work.path(),
        ),
    );
    let daemon =
        RunningDaemon::start(loaded, &broker.url(), "streetsight/v1/outage-pole/events").await;
    let schema = event_schema();

    let mut before = Seen::default();
    assert!(
        collect_until(
            &daemon.sub,
            &mut before,
            &schema,
            Duration::from_secs(90),
            |s| s.events.len() >= 2
        )
        .await,
        "events flow before the outage"
    );

    drop(camera.take()); // the camera loses power
    // Long enough for many reconnect attempts against a closed port (a growing backoff would be at half a
    // minute by now).
    let mut during = Seen::default();
    collect_until(
        &daemon.sub,
        &mut during,
        &schema,
        Duration::from_secs(40),
        |_| false,
    )
    .await;
    assert!(
        !daemon.handle.is_finished(),
        "the daemon is still running while the camera is down"
    );

    camera = Some(Camera::start(port)); // power is back
    let back = Instant::now();
    let mut after = Seen::default();
    let resumed = collect_until(
        &daemon.sub,
        &mut after,
        &schema,
        Duration::from_secs(120),
        |s| !s.events.is_empty(),
    )
    .await;
    // Seen again within seconds: the reconnect delay never grows past a few seconds (then a frame, its
    // analysis and an event).
    let took = back.elapsed();
    assert!(
        took < scaled(Duration::from_secs(15)),
        "events resumed only {took:?} after the camera came back"
    );
    assert!(
        !daemon.handle.is_finished(),
        "the daemon is still running after the outage"
    );
    daemon.stop().await;
    drop(camera);
    assert!(resumed, "events resumed after the camera came back");
}
