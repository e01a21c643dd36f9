//! A power cut loses nothing: the daemon process is killed with SIGKILL in the middle of producing events
//! while its broker is unreachable; restarted with the broker up, it delivers every event it had reported as
//! stored, and its SQLite outbox passes an integrity check.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use streetsight::cli::demo::{Clip, ClipServer, Mosquitto, Subscriber, free_port};
use support::*;

/// Run `streetsight run`; every "Incident event stored." line's event id is sent on the channel.
fn start_daemon(config: &std::path::Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = streetsight_bin()
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("Incident event stored.")
                && let Some(id) = line
                    .split("event=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
            {
                let _ = tx.send(id.to_string());
            }
        }
    });
    (child, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_loses_no_stored_event() {
    streetsight::daemon::init_process().unwrap();
    let camera = ClipServer::start(Clip::load(&clip_path()).unwrap(), 0, "/cam", None).unwrap();
    let broker_port = free_port().unwrap(); // nothing listens yet: the uplink is down
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("streetsight.toml");
    std::fs::write(
        &config,
        flapping_config(
            "cut-pole",
            &camera.url("/cam"),
            &format!("mqtt://127.0.0.1:{broker_port}"),
            work.path(),
        ),
    )
    .unwrap();

    let (mut first, stored_rx) = start_daemon(&config);
    let mut stored = Vec::new();
    let deadline = Instant::now() + scaled(Duration::from_secs(90));
    while stored.len() < 8 && Instant::now() < deadline {
        if let Ok(id) = stored_rx.recv_timeout(Duration::from_millis(200)) {
            stored.push(id);
        }
    }
    assert!(
        stored.len() >= 8,
        "the daemon stored events while the broker was down: {stored:?}"
    );
    first.kill().unwrap(); // SIGKILL: no shutdown path runs
    first.wait().unwrap();
    while let Ok(id) = stored_rx.try_recv() {
        stored.push(id);
    }

    let broker = Mosquitto::start(broker_port).unwrap();
    let sub = Subscriber::connect(&broker.url(), "streetsight/v1/cut-pole/#")
        .await
        .unwrap();
    let (mut second, _rx) = start_daemon(&config);
    let schema = event_schema();
    let mut seen = Seen::default();
    let all = collect_until(&sub, &mut seen, &schema, Duration::from_secs(60), |s| {
        stored
            .iter()
            .all(|id| s.events.iter().any(|e| &e.event_id == id))
    })
    .await;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(second.id().to_string())
        .status();
    let _ = second.wait();
    let missing: Vec<_> = stored
        .iter()
        .filter(|id| !seen.events.iter().any(|e| &e.event_id == *id))
        .collect();
    assert!(
        all,
        "events stored before the SIGKILL never arrived: {missing:?}"
    );
    // The replayed backlog comes first and in order.
    let first_ids: Vec<_> = seen
        .events
        .iter()
        .take(stored.len())
        .map(|e| e.event_id.clone())
        .collect();
    assert_eq!(
        first_ids, stored,
        "the backlog is replayed first, in the order it was stored"
    );
    let store = streetsight::uplink::Store::open(
        &work.path().join("outbox.sqlite"),
        streetsight::uplink::Bounds {
            max_bytes: u64::MAX,
            max_age: Duration::from_secs(3600),
        },
    )
    .unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    eprintln!(
        "power cut: {} events stored before SIGKILL, all delivered after restart",
        stored.len()
    );
}
