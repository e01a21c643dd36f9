//! A full disk loses no event. The state directory is a real 8 MiB tmpfs (mounted by the test; it needs
//! root, as CI has), the evidence archive's cap (128 MiB) is far larger than the disk, and the broker is
//! down while the binary produces events with two large evidence images each. Every event it reports as
//! stored must reach the broker once it is back; evidence gives way first and is counted; `/healthz` is
//! unhealthy while the reserve is eaten into; no empty, partial or temporary file is left; the drained
//! outbox gives its space back.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use streetsight::cli::demo::{Mosquitto, Subscriber, free_port};
use support::*;

/// A tmpfs of `mb` MiB at `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mb: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount(8) is installed");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let m = e.metadata().unwrap();
        if m.is_dir() {
            out.extend(files(&e.path()));
        } else {
            out.push((e.path(), m.len()));
        }
    }
    out
}

fn health(port: u16) -> (u16, serde_json::Value) {
    let (code, body) = http_get(port, "/healthz");
    (code, serde_json::from_str(&body).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_drops_evidence_first_and_loses_no_event() {
    streetsight::daemon::init_process().unwrap();
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let _disk = Tmpfs::mount(&state, 8);
    let camera_port = free_port().unwrap();
    let _camera = ServedClip::start(camera_port);
    let broker_port = free_port().unwrap(); // nothing listens yet: the uplink is down
    let http_port = free_port().unwrap();
    let config = work.path().join("streetsight.toml");
    let text =
        flapping_config(
            "disk-pole",
            &ServedClip::url(camera_port),
            &format!("mqtt://127.0.0.1:{broker_port}"),
            &state,
        )
        .replace(
            "[storage]\n",
            "[storage]\nreserve_mb = 2\njpeg_quality = 95\nevidence_max_mb = 128\n",
        ) + &format!("[evidence]\nclean_frame = true\n[ops]\nhttp = \"127.0.0.1:{http_port}\"\n");
    std::fs::write(&config, text).unwrap();

    let log = std::fs::File::create(work.path().join("daemon.log")).unwrap();
    let mut child = streetsight_bin()
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut daemon = KillOnDrop(child);
    let (tx, stored_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut log = log;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            use std::io::Write;
            let _ = writeln!(log, "{line}");
            let _ = tx.send(line);
        }
    });
    let mut stored = Vec::new();
    let mut lost = Vec::new();
    let mut absorb = |rx: &mpsc::Receiver<String>, stored: &mut Vec<String>| {
        while let Ok(line) = rx.try_recv() {
            if line.contains("Incident event stored.")
                && let Some(id) = line
                    .split("event=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
            {
                stored.push(id.to_string());
            }
            if line.contains("it is lost") {
                lost.push(line);
            }
        }
    };

    // Run until the disk is short, and on for a while under the shortage.
    let deadline = Instant::now() + scaled(Duration::from_secs(180));
    let mut short_at = None;
    let mut unhealthy = None;
    while short_at.is_none_or(|t: Instant| t.elapsed() < Duration::from_secs(15)) {
        assert!(
            Instant::now() < deadline,
            "the disk never ran short; {} events stored",
            stored.len()
        );
        std::thread::sleep(Duration::from_millis(500));
        absorb(&stored_rx, &mut stored);
        let (code, body) = health(http_port);
        if body["disk"]["short"] == true && short_at.is_none() {
            short_at = Some(Instant::now());
            unhealthy = Some((code, body));
        }
    }
    let stored_before_broker = stored.len();
    let (code, body) = unhealthy.unwrap();
    assert_eq!(code, 503, "unhealthy while the disk is short: {body}");
    assert!(
        body["disk"]["problem"]
            .as_str()
            .unwrap()
            .contains("kept for events"),
        "{body}"
    );
    let (_, metrics) = http_get(http_port, "/metrics");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
            .parse()
            .unwrap()
    };
    let dropped = value("streetsight_evidence_dropped_disk_total");
    let outbox_dropped = value("streetsight_outbox_dropped_total{kind=\"evidence\"}");
    assert!(
        dropped + outbox_dropped > 0.0,
        "evidence gave way and was counted: {metrics}"
    );
    assert!(
        metrics.contains("streetsight_outbox_dropped_total{kind=\"event\"} 0"),
        "no event dropped: {metrics}"
    );

    // The broker comes back: every stored event is delivered.
    let broker = Mosquitto::start(broker_port).unwrap();
    let sub = Subscriber::connect(&broker.url(), "streetsight/v1/disk-pole/#")
        .await
        .unwrap();
    let schema = event_schema();
    let mut seen = Seen::default();
    let target: Vec<String> = stored.clone();
    let all = collect_until(&sub, &mut seen, &schema, Duration::from_secs(120), |s| {
        target
            .iter()
            .all(|id| s.events.iter().any(|e| &e.event_id == id))
    })
    .await;
    let missing = target
        .iter()
        .filter(|id| !seen.events.iter().any(|e| &e.event_id == *id))
        .count();
    assert!(
        all,
        "{missing} of {} stored events never arrived",
        target.len()
    );
    // Drained, the outbox shrinks and the disk has its reserve again.
    let deadline = Instant::now() + scaled(Duration::from_secs(60));
    loop {
        let (_, body) = health(http_port);
        if body["disk"]["short"] == false {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the disk stayed short after the outbox drained: {body}\n{:?}",
            files(&state)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    terminate(&daemon.0);
    daemon.0.wait().unwrap();
    absorb(&stored_rx, &mut stored);
    assert!(lost.is_empty(), "events lost: {lost:?}");

    // No empty, partial or temporary evidence; every kept JPEG is whole.
    let left = files(&state);
    for (path, len) in &left {
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(!name.ends_with(".tmp"), "temporary file left: {name}");
        if name.ends_with(".jpg") || name.ends_with(".ref") {
            assert!(*len > 0, "empty file left: {name}");
            image::load_from_memory(&std::fs::read(path).unwrap())
                .unwrap_or_else(|e| panic!("{name} is not a whole JPEG: {e}"));
        }
    }
    let outbox: u64 = left
        .iter()
        .filter(|(p, _)| p.to_string_lossy().contains("outbox.sqlite"))
        .map(|(_, l)| l)
        .sum();
    eprintln!(
        "full disk: {stored_before_broker} events stored while the broker was down and the 8 MiB disk filled, {} in all, every one delivered; evidence dropped for space {dropped}, evicted from the outbox {outbox_dropped}; outbox files after draining {outbox} bytes",
        stored.len()
    );
    assert!(
        outbox < 2 * 1024 * 1024,
        "the drained outbox gave its space back: {outbox} bytes"
    );
}
