//! The bridge's tests' parts: a pole that is a real MQTT client, the agent's events and pictures, the
//! bridge's files, and small waits.

use super::postgres::Postgres;
use super::workorder::Workorder;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use streetsight::base::Shutdown;

pub const WO_SECRET: &[u8] = b"city-work-order-shared-secret-0001";
pub const URL_SECRET: &[u8] = b"bridge-evidence-url-signing-key-01";

/// A pole: a real MQTT client publishing under `streetsight/v1/{id}/`. It answers `verify` commands the way
/// the agent does (fresh picture, then a `verified` event naming the request) with the next of `answers`
/// (`None`: it stays silent, like a pole that is down) — the real agent's own answers are tested in
/// tests/commands.rs and, through the bridge, in `the_case_loop_closes_a_real_poles_case_by_itself`.
pub struct Pole {
    id: String,
    client: rumqttc::AsyncClient,
    pub answers: Arc<Mutex<VecDeque<Option<&'static str>>>>,
    _loop: tokio::task::JoinHandle<()>,
}

impl Pole {
    pub async fn connect(broker_port: u16, id: &str) -> Pole {
        let mut o = rumqttc::MqttOptions::new(format!("pole-sim-{id}"), "127.0.0.1", broker_port);
        o.set_max_packet_size(4 << 20, 4 << 20);
        let (client, mut events) = rumqttc::AsyncClient::new(o, 64);
        let answers: Arc<Mutex<VecDeque<Option<&'static str>>>> = Arc::default();
        let (queue, answering, device) = (answers.clone(), client.clone(), id.to_string());
        client
            .subscribe(
                format!("streetsight/v1/{id}/cmd/verify"),
                rumqttc::QoS::AtLeastOnce,
            )
            .await
            .unwrap();
        let task = tokio::spawn(async move {
            let mut n = 100;
            loop {
                match events.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let cmd: Value = serde_json::from_slice(&p.payload).unwrap();
                        let Some(Some(result)) = queue.lock().unwrap().pop_front() else {
                            continue;
                        };
                        n += 1;
                        let fresh = picture(n as u8);
                        let incident = cmd["incident_id"].as_str().unwrap();
                        let mut e = event(incident, n, "verified", "crowd_density", &fresh);
                        e["verification"] = json!(result);
                        e["request_id"] = cmd["request_id"].clone();
                        e["time"] = json!("2026-11-23T10:00:00.000Z");
                        let topic = |tail: String| format!("streetsight/v1/{device}/{tail}");
                        let qos = rumqttc::QoS::AtLeastOnce;
                        let id = e["event_id"].as_str().unwrap().to_string();
                        answering
                            .publish(topic(format!("evidence/{id}")), qos, false, fresh)
                            .await
                            .unwrap();
                        answering
                            .publish(
                                topic("events".into()),
                                qos,
                                false,
                                serde_json::to_vec(&e).unwrap(),
                            )
                            .await
                            .unwrap();
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        Pole {
            id: id.into(),
            client,
            answers,
            _loop: task,
        }
    }

    pub async fn publish(&self, tail: &str, payload: Vec<u8>) {
        self.client
            .publish(
                format!("streetsight/v1/{}/{tail}", self.id),
                rumqttc::QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .unwrap();
    }

    /// The evidence first, then the event — as the agent sends them.
    pub async fn incident_event(&self, event: &Value, picture: Option<&[u8]>) {
        if let Some(p) = picture {
            self.publish(
                &format!("evidence/{}", event["event_id"].as_str().unwrap()),
                p.to_vec(),
            )
            .await;
        }
        self.publish("events", serde_json::to_vec(event).unwrap())
            .await;
    }
}

/// A real JPEG, its colour telling incidents apart.
pub fn picture(shade: u8) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(64, 48, image::Rgb([shade, 120, 200 - shade / 2]));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .unwrap();
    out
}

pub fn event(incident: &str, n: u32, phase: &str, category: &str, picture: &[u8]) -> Value {
    json!({
        "schema": "streetsight.event/1",
        "event_id": format!("{incident}-e{n}"),
        "incident_id": incident,
        "phase": phase,
        "time": "2026-11-23T08:51:36.000Z",
        "local_time": "2026-11-23T16:51:36+08:00",
        "description": format!("2026年11月23日 16:51，文三路7号杆（人行道，人行道）{phase}：{category}。"),
        "category": category,
        "codes": { "name": if category == "crowd_density" { "人群聚集" } else { "乱堆物堆料" }, "local": "99-01" },
        "device": { "id": "pole-7", "name": "文三路7号杆", "gb28181_id": "34020000085050000001" },
        "camera": { "id": "walkway", "name": "人行道" },
        "zone": { "id": "walkway", "name": "人行道", "grid_code": "330106001002003", "lat": 30.2741, "lon": 120.1551 },
        "first_seen": "2026-11-23T08:51:35.120Z",
        "last_seen": "2026-11-23T08:51:35.120Z",
        "dwell_s": 0.0,
        "confidence": 0.76,
        "objects": [],
        "evidence": [ { "kind": "annotated", "topic": format!("evidence/{incident}-e{n}"), "content_type": "image/jpeg",
                        "bytes": picture.len(), "sha256": streetsight::base::sha256_hex(picture), "width": 64, "height": 48 } ],
        "agent": { "name": "streetsight", "version": "0.1.0" }
    })
}

pub fn write_config(
    dir: &Path,
    replica: &str,
    broker: u16,
    pg: &Postgres,
    wo: &Workorder,
    listen: u16,
) -> std::path::PathBuf {
    // Shared by the replicas: written whole or not at all, so a replica starting meanwhile never reads half.
    let shared =
        |name: &str, bytes: &[u8]| streetsight::base::write_atomic(&dir.join(name), bytes).unwrap();
    shared("wo.secret", WO_SECRET);
    shared("url.secret", URL_SECRET);
    shared(
        "mapping.toml",
        r#"time_zone = "Asia/Shanghai"
[body]
title = "{category_name}：{zone.name}"
description = "{description}"
filed_at = "{local_time}"
address = "{address|device.name}"
street_office = "{extensions.street_office}"
type_code = "{codes.city_type_id|codes.local}"
grid_code = "{zone.grid_code}"
channel_id = "{camera.gb28181_id|device.gb28181_id}"
longitude = "{zone.lon}"
latitude = "{zone.lat}"
photos = "{evidence_urls}"
incident = "{incident_id}"
[categories.illegal_dumping]
type_code = "99-99"
[resolved_before_dispatch]
default = "keep"
street_vending = "cancel"
hanging_laundry = "close"
"#
        .as_bytes(),
    );
    let path = dir.join(format!("bridge-{replica}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"[broker]
url = "mqtt://127.0.0.1:{broker}"
client_id = "bridge-{replica}"
[database]
url = "{db}"
[workorder]
url = "{wo}"
mapping = "mapping.toml"
secret_file = "wo.secret"
retry_max_s = 2
evidence_wait_s = 5
verify_timeout_s = 10
[evidence]
dir = "evidence"
secret_file = "url.secret"
url_ttl_s = 600
[http]
listen = "127.0.0.1:{listen}"
public_url = "http://127.0.0.1:{listen}/"
"#,
            db = pg.url(),
            wo = wo.url,
        ),
    )
    .unwrap();
    path
}

/// `write_config` for a bridge that reads the NATS JetStream cluster at `servers`.
pub fn write_nats_config(
    dir: &Path,
    replica: &str,
    servers: &[String],
    pg: &Postgres,
    wo: &Workorder,
    listen: u16,
) -> std::path::PathBuf {
    let path = write_config(dir, replica, 0, pg, wo, listen);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "url = \"mqtt://127.0.0.1:0\"",
        &format!("url = {servers:?}"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A free loopback port for a bridge's HTTP listener.
pub fn listen_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn start_bridge(config: &Path) -> (Shutdown, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let settings = streetsight::bridge::load_settings(config).unwrap();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(streetsight::bridge::run(settings, shutdown.clone()));
    (shutdown, task)
}

pub async fn until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GET `url` (status 0: nothing listens yet). Inside the tests' multi-threaded runtime the blocking call
/// hands this worker's queued tasks to another first, so a server task parked here cannot wait on it.
pub fn get(url: &str) -> (u16, Vec<u8>) {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| get_blocking(url))
        }
        _ => get_blocking(url),
    }
}

fn get_blocking(url: &str) -> (u16, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let Ok(r) = agent.get(url).call() else {
        return (0, Vec::new()); // not listening yet
    };
    let status = r.status().as_u16();
    (status, r.into_body().read_to_vec().unwrap())
}

pub fn incidents(wo: &Workorder) -> Vec<String> {
    wo.board()
        .cases
        .iter()
        .map(|(_, _, b)| b["incident"].as_str().unwrap().to_string())
        .collect()
}

/// Re-check report `i` the work-order system received: for case `case`, with `result`, its description
/// containing `phrase`. Returns the report.
pub fn check_report(wo: &Workorder, i: usize, case: &str, result: &str, phrase: &str) -> Value {
    let (got, _, report) = wo.board().reports[i].clone();
    println!("{got}: {report}");
    assert_eq!(
        (got.as_str(), report["result"].as_str()),
        (case, Some(result)),
        "{report}"
    );
    let text = report["description"].as_str().unwrap_or_default();
    assert!(text.contains(phrase), "{phrase:?} not in {report}");
    report
}
