//! Shared helpers for the integration tests: the real parts (RTSP server, mosquitto, ONNX model) and the
//! event schema.
#![allow(dead_code)]

pub mod bridge;
pub mod browser;
pub mod clips;
pub mod config_check;
pub mod dispatch;
pub mod http;
pub mod nats;
pub mod onnx;
pub mod postgres;
pub mod workorder;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use streetsight::cli::demo::{Received, Subscriber};
use streetsight::incident::IncidentEvent;

pub fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn clip_path() -> PathBuf {
    repo("tests/media/vtest.mp4")
}

pub fn model_dir() -> PathBuf {
    repo("models/nanodet-g-416")
}

/// The JSON Schema every published event must satisfy.
pub fn event_schema() -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo("docs/schema/event.v1.json")).unwrap())
            .unwrap();
    jsonschema::validator_for(&schema).expect("the event schema compiles")
}

/// Everything a subscriber saw: events (validated against the schema) and evidence payloads by topic.
#[derive(Default)]
pub struct Seen {
    pub events: Vec<IncidentEvent>,
    pub evidence: std::collections::HashMap<String, Vec<u8>>,
    pub status: Vec<serde_json::Value>,
    pub telemetry: Vec<serde_json::Value>,
    /// Durable notices about model versions (`model_events`).
    pub model_events: Vec<serde_json::Value>,
    /// Order of arrival: topic suffixes.
    pub order: Vec<String>,
}

impl Seen {
    pub fn absorb(&mut self, m: Received, schema: &jsonschema::Validator) {
        let suffix = m
            .topic
            .splitn(4, '/')
            .nth(3)
            .unwrap_or_default()
            .to_string();
        self.order.push(suffix.clone());
        if suffix == "events" {
            let value: serde_json::Value =
                serde_json::from_slice(&m.payload).expect("event is JSON");
            let errors: Vec<String> = schema
                .iter_errors(&value)
                .map(|e| format!("{} at {}", e, e.instance_path))
                .collect();
            assert!(
                errors.is_empty(),
                "event violates the schema: {errors:?}\n{value:#}"
            );
            self.events.push(serde_json::from_value(value).unwrap());
        } else if let Some(id) = suffix.strip_prefix("evidence/") {
            self.evidence.insert(id.to_string(), m.payload);
        } else if suffix == "telemetry" {
            self.telemetry
                .push(serde_json::from_slice(&m.payload).expect("telemetry is JSON"));
        } else if suffix == "model_events" {
            self.model_events
                .push(serde_json::from_slice(&m.payload).expect("model event is JSON"));
        } else if suffix == "status" {
            self.status
                .push(serde_json::from_slice(&m.payload).expect("status is JSON"));
        }
    }
}

/// The events so far as (camera, category, phase): what an assertion shows when the expected one is missing.
pub fn event_list(events: &[IncidentEvent]) -> Vec<(&str, &str, streetsight::incident::Phase)> {
    events
        .iter()
        .map(|e| (e.camera.id.as_str(), e.category.as_str(), e.phase))
        .collect()
}

/// Receive until `done(seen)` or `timeout` (scaled for emulated runs, see [`scaled`]).
pub async fn collect_until(
    sub: &Subscriber,
    seen: &mut Seen,
    schema: &jsonschema::Validator,
    timeout: Duration,
    done: impl Fn(&Seen) -> bool,
) -> bool {
    let deadline = Instant::now() + scaled(timeout);
    while !done(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match tokio::time::timeout(left, sub.next()).await {
            Ok(Some(m)) => seen.absorb(m, schema),
            _ => return done(seen),
        }
    }
    true
}

/// Write a configuration file into `dir` and load it.
pub fn load_config(dir: &Path, text: &str) -> streetsight::config::LoadedConfig {
    let path = dir.join("streetsight.toml");
    std::fs::write(&path, text).unwrap();
    streetsight::plan::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// A daemon running in this process, with a subscriber on its broker.
pub struct RunningDaemon {
    pub sub: Subscriber,
    pub shutdown: streetsight::base::Shutdown,
    pub handle:
        tokio::task::JoinHandle<anyhow::Result<std::sync::Arc<streetsight::uplink::UplinkStats>>>,
}

impl RunningDaemon {
    /// Subscribe to `filter` on `broker_url` first (so nothing is missed), then start the daemon.
    pub async fn start(
        loaded: streetsight::config::LoadedConfig,
        broker_url: &str,
        filter: &str,
    ) -> RunningDaemon {
        let sub = Subscriber::connect(broker_url, filter).await.unwrap();
        let shutdown = streetsight::base::Shutdown::new();
        let handle = tokio::spawn(streetsight::daemon::run(
            loaded,
            shutdown.clone(),
            Duration::from_secs(5),
        ));
        RunningDaemon {
            sub,
            shutdown,
            handle,
        }
    }

    /// Trigger shutdown and wait for a clean exit.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.handle.await.unwrap().unwrap();
    }
}

/// One camera on `camera_url` with crowd levels one person apart, no hysteresis, no sustain and no clear
/// time, so the walkers' changing count produces an event every few seconds while frames flow.
pub fn flapping_config(device: &str, camera_url: &str, broker_url: &str, state: &Path) -> String {
    format!(
        r#"[device]
id = "{device}"
[uplink]
broker = "{broker_url}"
[storage]
state_dir = "{state}"
[models.nanodet]
path = "{model}"
[[camera]]
id = "cam"
url = "{camera_url}"
model = "nanodet"
[[camera.zone]]
id = "all"
points = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
area_m2 = 1.0
[[camera.crowd_density]]
zone = "all"
levels = [{{ name = "l4", min_density = 4.0 }}, {{ name = "l5", min_density = 5.0 }}, {{ name = "l6", min_density = 6.0 }}, {{ name = "l7", min_density = 7.0 }}]
hysteresis = 0.0
sustain_s = 0
clear_s = 0
"#,
        state = state.display(),
        model = model_dir().display()
    )
}

/// A command running the `streetsight` binary under test. For cross-testing (no binfmt_misc under qemu),
/// `STREETSIGHT_TEST_WRAPPER` names a program and arguments to run it through, e.g. `qemu-aarch64 -L /`.
pub fn streetsight_bin() -> std::process::Command {
    let exe = env!("CARGO_BIN_EXE_streetsight");
    match std::env::var("STREETSIGHT_TEST_WRAPPER")
        .ok()
        .filter(|w| !w.trim().is_empty())
    {
        Some(wrapper) => {
            let mut words = wrapper.split_whitespace();
            let mut cmd = std::process::Command::new(words.next().expect("non-empty wrapper"));
            cmd.args(words).arg(exe);
            cmd
        }
        None => std::process::Command::new(exe),
    }
}

/// Decode every `step`-th frame of the clip to packed RGB.
pub fn decode_clip(step: usize) -> Vec<(usize, usize, Vec<u8>)> {
    let mut out = Vec::new();
    each_clip_sample("videoconvert ! video/x-raw,format=RGB", step, |sample| {
        let info = gstreamer_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
        let (w, h, stride) = (
            info.width() as usize,
            info.height() as usize,
            info.stride()[0] as usize,
        );
        let map = sample.buffer().unwrap().map_readable().unwrap();
        let mut rgb = Vec::with_capacity(w * h * 3);
        for row in map.chunks(stride).take(h) {
            rgb.extend_from_slice(&row[..w * 3]);
        }
        out.push((w, h, rgb));
    });
    out
}

/// Every `step`-th frame of the clip as the daemon's ingest makes it: the decoder's own 4:2:0 picture.
pub fn decode_clip_yuv(step: usize) -> Vec<streetsight::base::Frame> {
    let camera: std::sync::Arc<str> = "clip".into();
    let mut out = Vec::new();
    each_clip_sample(
        "videoconvert ! video/x-raw,format={I420,NV12}",
        step,
        |sample| {
            let frame = streetsight::ingest::frame_from_sample(sample, &camera, out.len() as u64);
            out.push(frame.expect("the decoder's picture is I420 or NV12"));
        },
    );
    out
}

/// Decode the clip through `tail` (what follows the decoder) and call `each` on every `step`-th sample.
fn each_clip_sample(tail: &str, step: usize, mut each: impl FnMut(&gstreamer::Sample)) {
    use gstreamer::prelude::*;
    streetsight::ingest::init_gstreamer().unwrap();
    let p = gstreamer::parse::launch(&format!("filesrc name=src ! qtdemux ! h264parse ! avdec_h264 ! {tail} ! appsink name=sink sync=false")).unwrap().downcast::<gstreamer::Pipeline>().unwrap();
    p.by_name("src")
        .unwrap()
        .set_property("location", clip_path().to_str().unwrap());
    let sink = p
        .by_name("sink")
        .unwrap()
        .downcast::<gstreamer_app::AppSink>()
        .unwrap();
    p.set_state(gstreamer::State::Playing).unwrap();
    let mut n = 0;
    while let Ok(sample) = sink.pull_sample() {
        if n % step == 0 {
            each(&sample);
        }
        n += 1;
    }
    p.set_state(gstreamer::State::Null).unwrap();
}

/// Test timeouts scaled for slow runs: `STREETSIGHT_TEST_TIME_SCALE` (cross/build sets it when the tests run
/// under qemu emulation, where everything is many times slower). Waits stay bounded; what is asserted does not
/// change.
pub fn scaled(d: Duration) -> Duration {
    let factor: f64 = std::env::var("STREETSIGHT_TEST_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|f: &f64| *f >= 1.0)
        .unwrap_or(1.0);
    d.mul_f64(factor)
}

/// The committed clip served as an RTSP camera by a separate `streetsight serve-clip` process, so a test can
/// cut its power (kill it) and bring it back on the same port. Killed on drop.
pub struct ServedClip(pub std::process::Child);

impl ServedClip {
    pub fn start(port: u16) -> ServedClip {
        let child = streetsight_bin()
            .arg("serve-clip")
            .arg(clip_path())
            .args(["--port", &port.to_string(), "--mount", "/cam"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + scaled(Duration::from_secs(20));
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "camera did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        ServedClip(child)
    }

    pub fn url(port: u16) -> String {
        format!("rtsp://127.0.0.1:{port}/cam")
    }
}

impl Drop for ServedClip {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child process (the daemon under test) killed on drop, whatever the test's outcome.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Send SIGTERM to a child (as systemd stops a service).
pub fn terminate(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`{name}-ca.pem`) and a certificate it signed (`{leaf}.pem`/`.key`), optionally with a SAN.
pub fn issue(dir: &Path, ca: &str, leaf: &str, cn: &str, san: Option<&str>) {
    if !dir.join(format!("{ca}.pem")).exists() {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ],
        );
    }
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &format!("{leaf}.key"),
            "-out",
            &format!("{leaf}.csr"),
        ],
    );
    let mut args = vec!["x509", "-req", "-in", &format!("{leaf}.csr")]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    args.extend(
        [
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{leaf}.pem"),
        ]
        .map(String::from),
    );
    // X.509 v3 with extensions, as rustls (webpki) requires; v1 certificates are refused.
    let ext = match san {
        Some(san) => format!("basicConstraints=CA:FALSE\nsubjectAltName={san}\n"),
        None => "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n".to_string(),
    };
    std::fs::write(dir.join(format!("{leaf}.ext")), ext).unwrap();
    args.extend(["-extfile".to_string(), format!("{leaf}.ext")]);
    openssl(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// A mosquitto requiring mutual TLS, with `city-ca` (signed the broker's and the `pole` device certificate) and
/// `rogue-ca` (signed the `rogue` certificate) in `dir`. mosquitto drops to its own user: files are made
/// world-readable.
pub fn mtls_broker(dir: &Path) -> (streetsight::cli::demo::Mosquitto, u16) {
    issue(
        dir,
        "city-ca",
        "broker",
        "broker",
        Some("IP:127.0.0.1,DNS:localhost"),
    );
    issue(dir, "city-ca", "pole", "tls-pole", None);
    issue(dir, "rogue-ca", "rogue", "tls-pole", None);
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let port = streetsight::cli::demo::free_port().unwrap();
    let tls = format!(
        "cafile {d}/city-ca.pem\ncertfile {d}/broker.pem\nkeyfile {d}/broker.key\nrequire_certificate true\nuse_identity_as_username true",
        d = dir.display()
    );
    (
        streetsight::cli::demo::Mosquitto::start_with(port, &tls).unwrap(),
        port,
    )
}

/// A minimal HTTP GET on loopback: (status code, body). The request goes out in two segments with a pause
/// between them, as slow clients send it: the server must read until the end of the headers.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(b"GET ").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    s.write_all(format!("{path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string(),
    )
}

/// Open and drop one RTSP session on the in-process test server: its first session now and then stalls
/// (a known quirk of the test server, not of the agent), so a test that measures one single session of its
/// own — `check` waits for one first frame and does not reconnect — takes the second. ffprobe is the
/// independent client; it is given 12 s and then stopped.
pub fn warm_up(url: &str) {
    let mut child = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "quiet",
            "-rtsp_transport",
            "tcp",
            "-show_streams",
            url,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ffprobe is installed (scripts/setup.sh installs ffmpeg)");
    let deadline = Instant::now() + Duration::from_secs(12);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}
