//! MQTT 5 and 3.1.1 against a real mosquitto: with MQTT 5 (the default) every message says what it is
//! (content type; JSON marked as UTF-8) and telemetry carries a message expiry while events and evidence
//! never expire; with `protocol = "3.1.1"` the same events arrive.

mod support;

use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use streetsight::cli::demo::{Mosquitto, Subscriber};
use streetsight::incident::{Evidence, IncidentEvent, Publication};
use streetsight::uplink::Uplink;
use support::*;

fn publication(device: &str) -> Publication {
    let event_id = uuid::Uuid::now_v7().to_string();
    let jpeg = vec![0xFFu8, 0xD8, 0xFF, 0xD9];
    let sha = streetsight::base::sha256_hex(&jpeg);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let event: IncidentEvent = serde_json::from_value(json!({
        "schema": "streetsight.event/1", "event_id": event_id, "incident_id": event_id,
        "phase": "opened", "time": now, "category": "street_vending",
        "codes": { "gbt47678": "09006" }, "device": { "id": device },
        "camera": { "id": "cam" }, "zone": { "id": "z" },
        "first_seen": now, "last_seen": now, "dwell_s": 300.0, "confidence": 0.8,
        "objects": [], "evidence": [{ "kind": "annotated", "topic": format!("evidence/{event_id}"),
            "content_type": "image/jpeg", "bytes": 4, "sha256": sha, "width": 1, "height": 1 }],
        "model": { "name": "m", "version": "1", "sha256": "0".repeat(64) },
        "agent": { "name": "streetsight", "version": "0" },
    }))
    .unwrap();
    Publication {
        event,
        case: None,
        evidence: vec![Evidence {
            jpeg,
            sha256: sha,
            width: 1,
            height: 1,
        }],
    }
}

fn config(device: &str, broker: &str, state: &std::path::Path, protocol: &str) -> String {
    format!(
        r#"
[device]
id = "{device}"
[uplink]
broker = "{broker}"
telemetry_s = 1
commands = false
{protocol}
[storage]
state_dir = "{}"
[models.m]
path = "{}"
"#,
        state.display(),
        model_dir().display()
    )
}

/// Start an uplink for `text`, append one publication, and stop it once `done` or after 20 s.
async fn run_uplink(
    dir: &std::path::Path,
    text: &str,
    device: &str,
    done: impl AsyncFn() -> bool,
) -> Publication {
    let loaded = load_config(dir, text);
    let status: streetsight::uplink::StatusSource = Arc::new(|s: &str| json!({ "state": s }));
    let (uplink, writer) =
        Uplink::new(&streetsight::plan::uplink_settings(&loaded), status).unwrap();
    let shutdown = streetsight::base::Shutdown::new();
    let task = tokio::spawn(uplink.run(shutdown.clone(), Duration::from_secs(5)));
    let p = publication(device);
    writer.append(&p).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.trigger();
    task.await.unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_messages_carry_content_types_and_only_telemetry_expires() {
    streetsight::ops::init_logging("info");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let broker = Mosquitto::start(0).unwrap();
    let url = url::Url::parse(&broker.url()).unwrap();

    // A dispatch client speaking MQTT 5, so it sees the properties.
    let opts = MqttOptions::new("dispatch-v5", "127.0.0.1", url.port().unwrap());
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let seen: Arc<tokio::sync::Mutex<HashMap<String, Option<PublishProperties>>>> = Arc::default();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let sink = seen.clone();
    let reader = tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client
                        .subscribe(
                            "streetsight/v1/v5-pole/#",
                            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                        )
                        .await
                        .unwrap();
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic).into_owned();
                    let suffix = topic.splitn(4, '/').nth(3).unwrap_or_default();
                    let key = if suffix.starts_with("evidence/") {
                        "evidence"
                    } else {
                        suffix
                    };
                    sink.lock().await.insert(key.to_string(), p.properties);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .unwrap()
        .unwrap();

    let work = tempfile::tempdir().unwrap();
    let text = config("v5-pole", &broker.url(), work.path(), "");
    run_uplink(work.path(), &text, "v5-pole", async || {
        let s = seen.lock().await;
        ["events", "evidence", "telemetry", "status"]
            .iter()
            .all(|k| s.contains_key(*k))
    })
    .await;
    reader.abort();
    let s = seen.lock().await;
    let props = |k: &str| {
        s.get(k)
            .unwrap_or_else(|| panic!("no {k} message; got {:?}", s.keys()))
            .clone()
            .unwrap_or_else(|| panic!("{k} has no MQTT 5 properties"))
    };
    let event = props("events");
    assert_eq!(event.content_type.as_deref(), Some("application/json"));
    assert_eq!(event.payload_format_indicator, Some(1));
    assert_eq!(event.message_expiry_interval, None, "events never expire");
    let evidence = props("evidence");
    assert_eq!(evidence.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(evidence.message_expiry_interval, None);
    let telemetry = props("telemetry");
    assert_eq!(telemetry.content_type.as_deref(), Some("application/json"));
    let left = telemetry
        .message_expiry_interval
        .expect("telemetry expires");
    assert!(
        (1..=3).contains(&left),
        "3 telemetry periods of 1 s, less time in transit: {left}"
    );
    assert_eq!(
        props("status").content_type.as_deref(),
        Some("application/json")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_1_still_delivers_events_and_evidence() {
    streetsight::ops::init_logging("info");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let broker = Mosquitto::start(0).unwrap();
    let sub = Subscriber::connect(&broker.url(), "streetsight/v1/v311-pole/#")
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let text = config(
        "v311-pole",
        &broker.url(),
        work.path(),
        "protocol = \"3.1.1\"",
    );
    let seen = Arc::new(tokio::sync::Mutex::new(Seen::default()));
    let schema = event_schema();
    let p = run_uplink(work.path(), &text, "v311-pole", async || {
        let mut s = seen.lock().await;
        collect_until(&sub, &mut s, &schema, Duration::from_millis(200), |s| {
            !s.events.is_empty()
        })
        .await
    })
    .await;
    let s = seen.lock().await;
    assert_eq!(s.events.len(), 1);
    assert_eq!(s.events[0].event_id, p.event.event_id);
    assert_eq!(s.evidence.len(), 1, "evidence arrived too");
}
