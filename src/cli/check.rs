//! `streetsight check`: what an installer runs before leaving the pole. One row per item — configuration,
//! ONNX Runtime, each model (loaded and run once), each camera (connected once: codec, resolution, frame rate,
//! time to first frame), the font Chinese evidence captions are drawn with, the broker (the configured TLS, a
//! QoS 1 test message acknowledged), the state directory — each PASS or FAIL with what was found and, for
//! failures, what to do.
//!
//! Cameras are probed in parallel with a timeout, so a dead camera costs seconds, not the daemon's patience.
//! The broker test message goes to `{prefix}/{device}/check` under a separate client id (`…-check`), so a
//! running daemon keeps its session and its `status` last will is not touched.

use crate::base::ImageView;
use crate::config::{Config, LoadedConfig};
use crate::ingest::{CameraSource, IngestError, Probe};
use crate::uplink::{Topics, mqtt_options};
use rumqttc::{AsyncClient, Event, LastWill, Packet, QoS};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How thoroughly and how patiently to check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Only configuration, ONNX Runtime and models (no network): what the systemd unit runs before start.
    pub offline: bool,
    /// Longest wait for a camera's first frame and for the broker's acknowledgement.
    pub timeout: Duration,
    /// How long to count frames for a camera's frame rate.
    pub fps_window: Duration,
    /// Cameras whose probed frame becomes their reference view (`--confirm-view`).
    pub confirm_view: Vec<String>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            offline: false,
            timeout: Duration::from_secs(10),
            fps_window: Duration::from_secs(2),
            confirm_view: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub item: String,
    pub outcome: Outcome,
    pub detail: String,
    /// For failures: what to do about it.
    pub fix: Option<String>,
}

impl Row {
    fn pass(item: impl Into<String>, detail: impl Into<String>) -> Row {
        Row {
            item: item.into(),
            outcome: Outcome::Pass,
            detail: detail.into(),
            fix: None,
        }
    }
    fn fail(item: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Row {
        Row {
            item: item.into(),
            outcome: Outcome::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// All rows, in the order they are printed.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|r| r.outcome == Outcome::Pass)
    }

    /// The table an installer reads: item, PASS/FAIL, detail, and under each failure its fix.
    pub fn render(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|r| r.item.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = format!("{:width$}  RESULT  DETAIL\n", "ITEM");
        for r in &self.rows {
            let result = match r.outcome {
                Outcome::Pass => "PASS",
                Outcome::Fail => "FAIL",
            };
            let _ = writeln!(out, "{:width$}  {result:6}  {}", r.item, r.detail);
            if let Some(fix) = &r.fix {
                let _ = writeln!(out, "{:width$}  {:6}  fix: {fix}", "", "");
            }
        }
        let failed: Vec<&str> = self
            .rows
            .iter()
            .filter(|r| r.outcome == Outcome::Fail)
            .map(|r| r.item.as_str())
            .collect();
        if failed.is_empty() {
            let _ = writeln!(out, "\nPASS: all {} checks passed", self.rows.len());
        } else {
            let _ = writeln!(
                out,
                "\nFAIL: {} of {} checks failed: {}",
                failed.len(),
                self.rows.len(),
                failed.join(", ")
            );
        }
        out
    }
}

/// Check everything `opts` asks for. The configuration has already loaded without errors.
pub async fn run(loaded: &LoadedConfig, opts: &CheckOptions) -> Report {
    let config = &loaded.config;
    let mut report = Report::default();
    report.rows.push(Row::pass(
        "config",
        format!(
            "{} ({} camera(s), {} model(s))",
            loaded.path.display(),
            config.cameras.len(),
            config.models.len()
        ),
    ));
    if let Err(e) = crate::daemon::init_process() {
        report.rows.push(Row::fail(
            "gstreamer",
            e.to_string(),
            "install the GStreamer packages (the .deb depends on them)",
        ));
        return report;
    }
    let mut camera_rows = Vec::new();
    let mut frames = BTreeMap::new();
    let mut broker_rows = Vec::new();
    if !opts.offline {
        let brokers = check_brokers(loaded, opts.timeout);
        let cameras = probe_cameras(loaded, opts);
        let (b, probed) = tokio::join!(brokers, cameras);
        broker_rows = b;
        for (id, row, frame) in probed {
            camera_rows.push(row);
            if let Some(f) = frame {
                frames.insert(id, f);
            }
        }
    }
    report.rows.push(match crate::detect::init_runtime() {
        Ok(_) => Row::pass(
            "onnx runtime",
            crate::detect::runtime_library_path()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        Err(e) => Row::fail(
            "onnx runtime",
            e.to_string(),
            "reinstall the package (it ships the library in /usr/lib/streetsight) or set STREETSIGHT_ORT_LIB",
        ),
    });
    for name in config.models.keys() {
        report.rows.push(check_model(loaded, name, &frames));
    }
    report.rows.extend(camera_rows);
    if !opts.offline {
        report.rows.extend(
            super::view::judge_views(
                config,
                |id| frames.get(id).map(|p| &p.frame),
                &opts.confirm_view,
            )
            .into_iter()
            .map(|v| Row {
                item: format!("view {}", v.camera),
                outcome: if v.ok { Outcome::Pass } else { Outcome::Fail },
                detail: v.detail,
                fix: v.fix,
            }),
        );
    }
    report.rows.extend(scene_rows(config));
    report.rows.push(caption_font_row(config));
    report.rows.extend(broker_rows);
    if !opts.offline {
        report.rows.push(check_storage(config));
    }
    report
}

/// Each scene-change zone's reference: kept on the gateway, or still to be taken. Not a failure either way —
/// the first quiet frame becomes the reference — but an installer should know before leaving the pole.
fn scene_rows(config: &Config) -> Vec<Row> {
    config
        .cameras
        .iter()
        .flat_map(|c| {
            let cam = c.get_ref();
            crate::plan::scene_reference_states(config, cam)
                .into_iter()
                .map(|(zone, state)| Row::pass(format!("scene {}/{zone}", cam.id), state))
        })
        .collect()
}

/// What `zh-CN` evidence captions are drawn with. Never a failure: without a Chinese font the captions are
/// in English and the events go out all the same (a configured font that is missing fails the configuration).
fn caption_font_row(config: &Config) -> Row {
    let row = |detail: String| Row::pass("caption font", detail);
    if config.device.language == crate::base::Language::En {
        return row("language = \"en\": English captions".into());
    }
    let fallback = "zh-CN captions fall back to English; apt install fonts-wqy-microhei, or set device.caption_font";
    let Some(path) = crate::plan::caption_font_path(config) else {
        let looked = crate::plan::CAPTION_FONTS.join(", ");
        return row(format!("no Chinese font installed ({looked}): {fallback}"));
    };
    row(match crate::plan::load_caption_font(&path) {
        Ok(_) => format!("{}: zh-CN captions", path.display()),
        Err(e) => format!("{} cannot be used ({e}): {fallback}", path.display()),
    })
}

/// Load a model and run it once on a frame from a camera that uses it, or on a blank frame.
fn check_model(loaded: &LoadedConfig, name: &str, frames: &BTreeMap<String, Probe>) -> Row {
    let item = format!("model {name}");
    let dir = loaded.resolve(&loaded.config.models[name].get_ref().path);
    let mut detector = match crate::plan::load_model(loaded, name) {
        Ok(d) => d,
        Err(e) => {
            return Row::fail(
                item,
                e,
                format!(
                    "install a complete bundle in {} (manifest.toml and the .onnx whose sha256 it names)",
                    dir.display()
                ),
            );
        }
    };
    let camera_frame = loaded.config.cameras.iter().find_map(|c| {
        let c = c.get_ref();
        (c.model.get_ref() == name)
            .then(|| frames.get(&c.id).map(|p| (c.id.clone(), &p.frame)))
            .flatten()
    });
    let blank = vec![0u8; 640 * 480 * 3];
    let (source, view) = match &camera_frame {
        Some((id, frame)) => (format!("camera {id}'s frame"), frame.view()),
        None => (
            "a blank 640x480 frame".to_string(),
            ImageView::new(640, 480, 640 * 3, &blank).expect("a 640×480 RGB buffer"),
        ),
    };
    let started = Instant::now();
    match detector.detect(view) {
        Ok(found) => Row::pass(
            item,
            format!(
                "{} {} sha256 {}…; ran once on {source}: {} ms, {} object(s)",
                detector.manifest.name,
                detector.manifest.version,
                &detector.sha256[..12],
                started.elapsed().as_millis(),
                found.len()
            ),
        ),
        Err(e) => Row::fail(
            item,
            e.to_string(),
            "the model loads but does not run: check it against its manifest with the model's author",
        ),
    }
}

/// Probe every camera at once; each gives its row and, when it streamed, its probe (with a frame).
async fn probe_cameras(
    loaded: &LoadedConfig,
    opts: &CheckOptions,
) -> Vec<(String, Row, Option<Probe>)> {
    let mut tasks = Vec::new();
    for cam in &loaded.config.cameras {
        let cam = cam.get_ref();
        let item = format!("camera {}", cam.id);
        let source = match crate::plan::camera_source(cam, &loaded.base_dir) {
            Ok(s) => s,
            Err(e) => {
                let fix =
                    "provide the password file or environment variable the camera entry names";
                tasks.push(tokio::spawn(async move {
                    (String::new(), Row::fail(item, e, fix), None)
                }));
                continue;
            }
        };
        let (timeout, window) = (opts.timeout, opts.fps_window);
        let id = cam.id.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            let url = crate::base::redact_url(&source.url);
            match crate::ingest::probe(&source, timeout, window) {
                Ok(p) => {
                    let fps = p.fps.map_or("?".into(), |f| format!("{f:.1}"));
                    let codec = p
                        .codec
                        .as_deref()
                        .map_or(source.codec.name().to_string(), str::to_lowercase);
                    let fell_back = p.transport != source.transport;
                    let detail = format!(
                        "{url}: {codec} {}x{} at {fps} fps, first frame after {} ms{}",
                        p.width,
                        p.height,
                        p.first_frame_after.as_millis(),
                        if fell_back {
                            "; over UDP: the camera offers no stream over TCP (transport = \"udp\" says so)"
                        } else {
                            ""
                        }
                    );
                    (id, Row::pass(item, detail), Some(p))
                }
                Err(e) => {
                    let (detail, fix) = camera_failure(&source, &url, &e, timeout);
                    (id, Row::fail(item, detail, fix), None)
                }
            }
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        if let Ok(r) = t.await {
            out.push(r);
        }
    }
    out
}

/// What a camera's failure means and what to do, without the URL's credentials.
fn camera_failure(
    src: &CameraSource,
    url: &str,
    e: &IngestError,
    timeout: Duration,
) -> (String, String) {
    // GStreamer's debug text ends with the human part ("Failed to connect. (Generic error)"); the rest is
    // source locations.
    let text = match e {
        IngestError::Bus {
            error,
            debug: Some(d),
            ..
        } => format!("{error} ({})", d.lines().last().unwrap_or_default().trim()),
        IngestError::Bus { error, .. } => error.clone(),
        _ => e.to_string(),
    }
    .replace(&src.url, url)
    .replace('\n', " ");
    let lower = text.to_lowercase();
    let fix = if lower.contains("unauthorized") || lower.contains("401") {
        "the camera refused the login: check username and password_file / password_env"
    } else if lower.contains("not found") || lower.contains("404") {
        "the camera answered but has no stream at this path: check the url's path (e.g. the channel)"
    } else if matches!(e, IngestError::Stalled(_)) {
        "connected but no decodable frame: check codec = \"h264\"/\"h265\" matches the camera, and that the stream plays (ffprobe URL)"
    } else if let IngestError::CodecMismatch { announced, .. } = e {
        // Suggest only a codec streetsight decodes.
        let usable = announced
            .split('/')
            .find_map(crate::ingest::Codec::from_encoding);
        &match usable {
            Some(c) => format!(
                "set codec = \"{}\" for this camera (or switch the camera's stream to {})",
                c.name(),
                src.codec.name().to_uppercase()
            ),
            None => {
                "streetsight decodes H.264 and H.265: switch the camera's stream to one of them"
                    .to_string()
            }
        }
    } else if e.wrong_transport() {
        match src.transport {
            crate::ingest::RtspTransport::Auto => {
                "the camera offers no stream over TCP, nor over UDP (or UDP is blocked on the way): check the camera's RTSP settings"
            }
            crate::ingest::RtspTransport::Tcp => {
                "the camera offers no stream over TCP: set transport = \"udp\" for this camera"
            }
            crate::ingest::RtspTransport::Udp => {
                "the camera offers no stream over UDP (or UDP is blocked on the way): set transport = \"tcp\""
            }
        }
    } else if matches!(e, IngestError::Build(_)) {
        "a GStreamer element is missing: install gstreamer1.0-plugins-good, -bad and gstreamer1.0-libav"
    } else if lower.contains("not-negotiated") || lower.contains("not negotiated") {
        "the stream does not decode as configured: check codec = \"h264\"/\"h265\" and decoder"
    } else {
        "nothing usable answers at this address: check the camera's power and network, the url's host and port"
    };
    let detail = if matches!(e, IngestError::Stalled(_)) {
        format!("{url}: no frame within {} s", timeout.as_secs())
    } else {
        format!("{url}: {text}")
    };
    (detail, fix.to_string())
}

/// Every configured broker, one row each (`broker`, or `broker 1`, `broker 2`… for a list): a pole that
/// fails over must be able to reach each node of its cluster.
async fn check_brokers(loaded: &LoadedConfig, timeout: Duration) -> Vec<Row> {
    let urls = &loaded.config.uplink.broker.get_ref().0;
    let probes = urls.iter().enumerate().map(|(i, url)| {
        let item = if urls.len() == 1 {
            "broker".to_string()
        } else {
            format!("broker {}", i + 1)
        };
        check_broker(loaded, url, item, timeout)
    });
    let mut rows = Vec::new();
    for probe in probes {
        rows.push(probe.await);
    }
    rows
}

/// Connect to `broker` with the configured TLS, publish one QoS 1 message and wait for its PUBACK.
async fn check_broker(loaded: &LoadedConfig, broker: &str, item: String, timeout: Duration) -> Row {
    let config = &loaded.config;
    let item = item.as_str();
    let device = config.device.id.get_ref();
    let topics = Topics::new(config.uplink.topic_prefix.get_ref(), device);
    let mut uplink = crate::plan::uplink_settings(loaded);
    let client_id = format!(
        "{}-check",
        uplink
            .client_id
            .clone()
            .unwrap_or_else(|| format!("streetsight-{device}"))
    );
    uplink.client_id = Some(client_id.clone());
    let mut opts = match mqtt_options(&uplink, &topics, broker) {
        Ok(o) => o,
        Err(e) => {
            return Row::fail(
                item,
                e.to_string(),
                "make the files [uplink] and [uplink.tls] name readable by this user",
            );
        }
    };
    let topic = topics.under("check");
    // Never the daemon's `offline` status: a dropped check connection must not mark the device offline.
    opts.set_last_will(LastWill::new(&topic, "", QoS::AtMostOnce, false));
    let tls = match (&config.uplink.tls, broker.starts_with("mqtts:")) {
        (Some(t), true) if t.get_ref().cert.is_some() => "TLS with client certificate",
        (_, true) => "TLS",
        _ => "plain TCP",
    };
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    let started = Instant::now();
    let payload =
        serde_json::json!({ "check": client_id, "version": env!("CARGO_PKG_VERSION") }).to_string();
    let exchange = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client
                        .publish(&topic, QoS::AtLeastOnce, false, payload.clone())
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => return Ok(started.elapsed()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    let result = tokio::time::timeout(timeout, exchange).await;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
    match result {
        Ok(Ok(took)) => Row::pass(
            item,
            format!(
                "{broker} ({tls}): test message on {topic} acknowledged (PUBACK) after {} ms",
                took.as_millis()
            ),
        ),
        Ok(Err(e)) => Row::fail(item, format!("{broker} ({tls}): {e}"), broker_fix(&e)),
        Err(_) => Row::fail(
            item,
            format!(
                "{broker} ({tls}): no acknowledgement within {} s",
                timeout.as_secs()
            ),
            "check the address and port, and that a firewall does not drop the connection",
        ),
    }
}

fn broker_fix(error: &str) -> &'static str {
    let e = error.to_lowercase();
    if e.contains("unknownissuer") || e.contains("invalid peer certificate") {
        "the broker's certificate is not signed by [uplink.tls] ca: install the CA file that signed the broker's certificate"
    } else if e.contains("notvalidforname") || e.contains("dns name") {
        "the broker's certificate does not name this host: use the host name in its certificate in [uplink] broker"
    } else if e.contains("refused") && !e.contains("return code") {
        "nothing listens there: check [uplink] broker's host and port and that the broker runs"
    } else if e.contains("notauthorized") || e.contains("badusernamepassword") {
        "the broker refused this device: check username / password_file, or the broker's ACL for this client id"
    } else if e.contains("alert") || e.contains("certificate") || e.contains("tls") {
        "the TLS handshake failed: check [uplink.tls] cert and key are this device's, issued by the CA the broker trusts"
    } else {
        "the broker closed the connection: check [uplink] broker, the TLS files and the broker's log"
    }
}

/// The state directory exists, is writable, and how much room is left.
fn check_storage(config: &Config) -> Row {
    let dir = config.storage.state_dir.get_ref();
    let probe = dir.join(".streetsight-check");
    match std::fs::write(&probe, b"check").and_then(|_| std::fs::remove_file(&probe)) {
        Ok(()) => Row::pass(
            "storage",
            format!(
                "{} writable, {} MiB free",
                dir.display(),
                crate::base::disk_free_bytes(dir).unwrap_or(0) / (1024 * 1024)
            ),
        ),
        Err(e) => Row::fail(
            "storage",
            format!("{}: {e}", dir.display()),
            "create the directory writable by the service user (the package makes /var/lib/streetsight)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_with_one_failure_fails_and_names_it_with_its_fix() {
        let report = Report {
            rows: vec![
                Row::pass("config", "ok"),
                Row::fail("camera gate", "no frame within 10 s", "check the cable"),
            ],
        };
        assert!(!report.passed());
        let text = report.render();
        assert!(
            text.contains("camera gate  FAIL    no frame within 10 s"),
            "{text}"
        );
        assert!(text.contains("fix: check the cable"), "{text}");
        assert!(
            text.contains("FAIL: 1 of 2 checks failed: camera gate"),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_broker_ca_gets_the_ca_fix() {
        assert!(
            broker_fix("I/O: invalid peer certificate: UnknownIssuer").contains("[uplink.tls] ca")
        );
        assert!(broker_fix("I/O: Connection refused (os error 111)").contains("nothing listens"));
    }
}
