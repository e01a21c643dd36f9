//! The daemon as systemd runs it (`Type=notify`, `WatchdogSec=`): the real binary is started with
//! `NOTIFY_SOCKET` pointing at a datagram socket this test owns and `WATCHDOG_USEC` set. It must say READY=1,
//! feed the watchdog while its camera (a real RTSP server in a separate process) streams, stop feeding it once
//! the camera has been dead for longer than `[ops] watchdog_grace_s`, feed it again when the camera returns,
//! and say STOPPING=1 on SIGTERM.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::{Duration, Instant};
use streetsight::cli::demo::{Mosquitto, free_port};
use support::*;

/// `[ops] watchdog_grace_s`: short, so the test is quick; stretched under emulation, where analysing a frame
/// takes seconds.
fn grace_s() -> u64 {
    scaled(Duration::from_secs(4)).as_secs()
}

/// Notifications received from the daemon, each a datagram of newline-separated assignments.
struct Notifications {
    socket: UnixDatagram,
    log: Vec<(Instant, String)>,
}

impl Notifications {
    /// Receive until `want` matches a datagram (returned) or `timeout` passes (None).
    fn until(&mut self, timeout: Duration, want: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            self.log.push((Instant::now(), text.clone()));
            if want(&text) {
                return Some(text);
            }
        }
    }

    /// Everything received during `window`.
    fn during(&mut self, window: Duration) -> Vec<String> {
        let first = self.log.len();
        let _ = self.until(window, |_| false);
        self.log[first..].iter().map(|(_, t)| t.clone()).collect()
    }
}

fn feeds(messages: &[String]) -> usize {
    messages
        .iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count()
}

#[test]
fn watchdog_is_fed_only_while_a_camera_delivers_frames() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut notes = Notifications {
        socket,
        log: Vec::new(),
    };
    let grace = grace_s();
    let port = free_port().unwrap();
    let mut camera = Some(ServedClip::start(port));
    let broker = Mosquitto::start(0).unwrap();
    let config = dir.path().join("streetsight.toml");
    std::fs::write(
        &config,
        flapping_config(
            "notify-pole",
            &ServedClip::url(port),
            &broker.url(),
            dir.path(),
        ) + &format!("\n[ops]\nwatchdog_grace_s = {grace}\n"),
    )
    .unwrap();
    let daemon = KillOnDrop(
        streetsight_bin()
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "1000000")
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let ready = notes.until(scaled(Duration::from_secs(60)), |m| {
        m.lines().any(|l| l == "READY=1")
    });
    assert!(ready.is_some(), "READY=1 arrives; got {:?}", notes.log);
    let ready_at = Instant::now();

    // Streaming: once past the grace counted from start, feeding can only come from real frames.
    let streaming = notes.until(scaled(Duration::from_secs(60)), |m| {
        m.contains("1/1 cameras delivering frames")
    });
    assert!(streaming.is_some(), "the camera streams: {:?}", notes.log);
    let past_grace = ready_at + Duration::from_secs(grace + 1);
    notes.during(past_grace.saturating_duration_since(Instant::now()));
    let while_streaming = notes.during(Duration::from_secs(2 * grace));
    // One feed every 500 ms (half of WATCHDOG_USEC): 4 × grace in 2 × grace seconds; half is enough.
    assert!(
        feeds(&while_streaming) as u64 >= 2 * grace,
        "WATCHDOG=1 keeps coming while the camera streams: {while_streaming:?}"
    );
    assert!(
        !while_streaming.iter().any(|m| m.contains("Unhealthy")),
        "{while_streaming:?}"
    );

    drop(camera.take()); // the camera loses power
    let unhealthy = notes.until(scaled(Duration::from_secs(grace + 10)), |m| {
        m.contains("STATUS=Unhealthy: no camera delivered a frame")
    });
    assert!(
        unhealthy.is_some(),
        "the status says why once the grace has passed"
    );
    let starved = notes.during(Duration::from_secs(grace));
    assert_eq!(
        feeds(&starved),
        0,
        "no WATCHDOG=1 while every camera has been down longer than the grace: {starved:?}"
    );
    assert!(
        !starved.is_empty(),
        "the daemon still sends its status line while starving the watchdog"
    );

    camera = Some(ServedClip::start(port)); // power is back
    let fed_again = notes.until(scaled(Duration::from_secs(90)), |m| {
        m.lines().any(|l| l == "WATCHDOG=1")
    });
    assert!(
        fed_again.is_some(),
        "feeding resumes when frames arrive again"
    );

    terminate(&daemon.0);
    let stopping = notes.until(scaled(Duration::from_secs(30)), |m| {
        m.lines().any(|l| l == "STOPPING=1")
    });
    assert!(stopping.is_some(), "STOPPING=1 on SIGTERM");
    drop(camera);
}
