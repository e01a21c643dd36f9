//! Camera credentials: a camera that demands a password is reached with the password from a file or from the
//! environment, and the password never appears in the daemon's log — not even when it is written into the
//! URL. A wrong password is reported as a refused login (retried only every few minutes, as cameras lock
//! accounts). Runs the real `streetsight run` process against the in-process RTSP server with
//! authentication.

mod support;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};
use streetsight::cli::demo::{Clip, ClipServer, Mosquitto};
use support::*;

const PASSWORD: &str = "s3cret-Pole42";

#[test]
fn password_from_file_env_or_url_works_and_is_never_logged() {
    streetsight::daemon::init_process().unwrap();
    let camera = ClipServer::start(
        Clip::load(&clip_path()).unwrap(),
        0,
        "/cam",
        Some(("installer", PASSWORD)),
    )
    .unwrap();
    let broker = Mosquitto::start(0).unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("cam-password"), format!("{PASSWORD}\n")).unwrap();
    let port = camera.port();
    let text = format!(
        r#"[device]
id = "auth-pole"
[uplink]
broker = "{broker}"
[storage]
state_dir = "{state}"
[models.nanodet]
path = "{model}"
[[camera]]
id = "from-file"
url = "rtsp://127.0.0.1:{port}/cam"
username = "installer"
password_file = "cam-password"
model = "nanodet"
[[camera]]
id = "from-env"
url = "rtsp://127.0.0.1:{port}/cam"
username = "installer"
password_env = "AUTH_TEST_CAMERA_PASSWORD"
model = "nanodet"
[[camera]]
id = "in-url"
url = "rtsp://installer:{PASSWORD}@127.0.0.1:{port}/cam"
model = "nanodet"
[[camera]]
id = "wrong"
url = "rtsp://127.0.0.1:{port}/cam"
username = "installer"
password_env = "AUTH_TEST_WRONG_PASSWORD"
model = "nanodet"
"#,
        broker = broker.url(),
        state = work.path().display(),
        model = model_dir().display()
    );
    let config = work.path().join("streetsight.toml");
    std::fs::write(&config, text).unwrap();
    let mut child = streetsight_bin()
        .args(["run", "--config"])
        .arg(&config)
        .env("AUTH_TEST_CAMERA_PASSWORD", PASSWORD)
        .env("AUTH_TEST_WRONG_PASSWORD", "not-the-password")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the log on a thread; stop once the three good cameras stream and the wrong one has failed.
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let deadline = Instant::now() + scaled(Duration::from_secs(60));
    let done = |log: &str| {
        ["from-file", "from-env", "in-url"].iter().all(|c| {
            log.lines()
                .any(|l| l.contains("Camera streaming.") && l.contains(&format!("camera={c}")))
        }) && log
            .lines()
            .any(|l| l.contains("camera=wrong") && l.contains("refused the login (401)"))
    };
    while !done(&log) && Instant::now() < deadline {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
            log.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
        log.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        done(&log),
        "expected three streaming cameras and a refused one; log:\n{log}"
    );
    assert!(
        !log.contains(PASSWORD),
        "the camera password leaked into the log:\n{log}"
    );
    assert!(
        log.contains("rtsp://***@127.0.0.1"),
        "the URL with credentials is logged redacted:\n{log}"
    );
}
