//! The outbox's bound, end to end: while the broker is away, more is produced than the outbox may hold.
//! When the broker returns, what arrives is exactly what the eviction policy promises — evidence dropped
//! before events, oldest first; events dropped only when events alone exceed the bound, oldest first —
//! and every drop is counted in telemetry. The real uplink task and a real mosquitto.

mod support;

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use streetsight::cli::demo::{Mosquitto, Subscriber, free_port};
use streetsight::incident::{Evidence, IncidentEvent, Publication};
use streetsight::uplink::Uplink;
use support::*;

const DEVICE: &str = "full-pole";

/// An incident event as the analyser makes it, with `evidence` images of `bytes` each.
fn publication(n: usize, evidence: usize, bytes: usize) -> Publication {
    let event_id = uuid::Uuid::now_v7().to_string();
    let images: Vec<Evidence> = (0..evidence)
        .map(|k| {
            let jpeg: Vec<u8> = (0..bytes).map(|i| (i * 31 + n * 7 + k) as u8).collect();
            Evidence {
                sha256: streetsight::base::sha256_hex(&jpeg),
                jpeg,
                width: 768,
                height: 576,
            }
        })
        .collect();
    let refs: Vec<_> = images
        .iter()
        .zip(["annotated", "clean"])
        .map(|(e, kind)| {
            json!({
                "kind": kind,
                "topic": if kind == "annotated" { format!("evidence/{event_id}") } else { format!("evidence/{event_id}/clean") },
                "content_type": "image/jpeg", "bytes": e.jpeg.len(), "sha256": e.sha256,
                "width": 768, "height": 576,
            })
        })
        .collect();
    // A stall with its goods: ten objects, about 1.5 kB of event.
    let objects: Vec<_> = (0..10)
        .map(|k| json!({ "label": "umbrella", "score": 0.8, "box": [0.1, 0.1, 0.2 + k as f32 * 0.01, 0.3], "track_id": k }))
        .collect();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let event: IncidentEvent = serde_json::from_value(json!({
        "schema": "streetsight.event/1", "event_id": event_id, "incident_id": event_id,
        "phase": "opened", "time": now, "category": "street_vending",
        "codes": { "gbt47678": "09006" }, "device": { "id": DEVICE },
        "camera": { "id": "cam" }, "zone": { "id": format!("z{n}") },
        "first_seen": now, "last_seen": now, "dwell_s": 300.0, "confidence": 0.8,
        "objects": objects, "evidence": refs,
        "model": { "name": "m", "version": "1", "sha256": "0".repeat(64) },
        "agent": { "name": "streetsight", "version": "0" },
    }))
    .unwrap();
    Publication {
        event,
        evidence: images,
        case: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_drops_evidence_first_then_the_oldest_events_and_counts_each_drop() {
    streetsight::ops::init_logging("info");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = free_port().unwrap();
    let work = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[device]
id = "{DEVICE}"
[uplink]
broker = "mqtt://127.0.0.1:{port}"
telemetry_s = 1
commands = false
[storage]
state_dir = "{state}"
outbox_max_mb = 1
[models.m]
path = "{model}"
"#,
        state = work.path().display(),
        model = model_dir().display(),
    );
    let loaded = load_config(work.path(), &text);
    let status: streetsight::uplink::StatusSource = Arc::new(|s: &str| json!({ "state": s }));
    let (uplink, writer) =
        Uplink::new(&streetsight::plan::uplink_settings(&loaded), status).unwrap();
    let stats = uplink.stats.clone();
    let shutdown = streetsight::base::Shutdown::new();
    let task = tokio::spawn(uplink.run(shutdown.clone(), Duration::from_secs(10)));

    // Broker down. Phase 1: 20 events with two 100 kB images each — 4 MB of evidence for a 1 MiB outbox.
    let mut produced = Vec::new();
    for n in 0..20 {
        let p = publication(n, 2, 100_000);
        writer.append(&p).unwrap();
        produced.push(p);
    }
    // Phase 2: 1,000 events without evidence (about 1.5 MB on their own): the oldest events must go too.
    for n in 20..1020 {
        let p = publication(n, 0, 0);
        writer.append(&p).unwrap();
        produced.push(p);
    }
    // The uplink applies the bound as appends arrive, and publishes its counters at the end of each turn:
    // wait (with a deadline) until they account for every record — each event either kept or dropped, and
    // no image left to drop.
    let total = produced.len() as u64;
    let settled = || {
        stats.appended_events.load(Ordering::Relaxed) == total
            && stats.depth.load(Ordering::Relaxed) + stats.dropped_events.load(Ordering::Relaxed)
                == total
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !settled() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dropped_evidence = stats.dropped_evidence.load(Ordering::Relaxed);
    let dropped_events = stats.dropped_events.load(Ordering::Relaxed);
    assert!(
        settled(),
        "the outbox's counters never accounted for all {total} events: appended {}, kept {}, dropped {dropped_events}",
        stats.appended_events.load(Ordering::Relaxed),
        stats.depth.load(Ordering::Relaxed)
    );
    assert_eq!(dropped_evidence, 40, "every image went before any event");
    assert!(dropped_events > 0, "events alone exceed the bound");

    let _broker = Mosquitto::start(port).unwrap();
    let sub = Subscriber::connect(
        &format!("mqtt://127.0.0.1:{port}"),
        &format!("streetsight/v1/{DEVICE}/#"),
    )
    .await
    .unwrap();
    let schema = event_schema();
    let mut seen = Seen::default();
    let expected = produced.len() - dropped_events as usize;
    let complete = collect_until(&sub, &mut seen, &schema, Duration::from_secs(60), |s| {
        s.events.len() >= expected && !s.telemetry.is_empty()
    })
    .await;
    shutdown.trigger();
    task.await.unwrap();
    assert!(
        complete,
        "{} of {expected} events arrived",
        seen.events.len()
    );

    // Exactly the newest events, in the order produced, none twice; no evidence at all.
    let ids: Vec<&str> = seen.events.iter().map(|e| e.event_id.as_str()).collect();
    let newest: Vec<&str> = produced[dropped_events as usize..]
        .iter()
        .map(|p| p.event.event_id.as_str())
        .collect();
    assert_eq!(ids, newest);
    assert!(
        seen.evidence.is_empty(),
        "{} images arrived",
        seen.evidence.len()
    );
    // What remains fits the bound.
    let bytes: usize = seen
        .events
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap().len())
        .sum();
    assert!(
        bytes <= 1024 * 1024,
        "{bytes} bytes delivered from a 1 MiB outbox"
    );

    // Telemetry counts the drops.
    let t = seen.telemetry.last().unwrap();
    assert_eq!(t["outbox"]["dropped_evidence"], 40);
    assert_eq!(t["outbox"]["dropped_events"], dropped_events);
    eprintln!(
        "outbox full: dropped {dropped_evidence} images and {dropped_events} events, delivered {} events",
        ids.len()
    );
}
