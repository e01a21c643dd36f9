//! The spine end to end with real parts: the committed street clip served by GStreamer's RTSP server →
//! the daemon (GStreamer ingest, NanoDet on ONNX Runtime, crowd rule, incidents) → a real mosquitto → a
//! subscriber that checks every event against the JSON Schema and every evidence image against its hash.

mod support;

use std::time::Duration;
use streetsight::demo::{Clip, ClipServer, Mosquitto, demo_config};
use streetsight::incident::Phase;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn street_clip_raises_a_crowd_incident_with_verified_evidence() {
    streetsight::ops::init_logging("info");
    streetsight::daemon::init_process().unwrap();
    let camera = ClipServer::start(Clip::load(&clip_path()).unwrap(), 0, "/walkway", None).unwrap();
    let broker = Mosquitto::start(0).unwrap();
    let work = tempfile::tempdir().unwrap();
    let loaded = load_config(
        work.path(),
        &demo_config(
            &camera.url("/walkway"),
            &broker.url(),
            &model_dir(),
            work.path(),
        ),
    );
    let daemon = RunningDaemon::start(loaded, &broker.url(), "streetsight/v1/demo-pole/#").await;

    let schema = event_schema();
    let mut seen = Seen::default();
    let got = collect_until(
        &daemon.sub,
        &mut seen,
        &schema,
        Duration::from_secs(120),
        |s| {
            s.events.iter().any(|e| e.phase == Phase::Opened)
                && s.events.iter().any(|e| e.phase != Phase::Opened)
        },
    )
    .await;
    daemon.stop().await;
    assert!(
        got,
        "expected an opened and a later event; got {:?}",
        seen.events.iter().map(|e| e.phase).collect::<Vec<_>>()
    );

    let opened = seen
        .events
        .iter()
        .find(|e| e.phase == Phase::Opened)
        .unwrap();
    assert_eq!(opened.category, "crowd_density");
    assert_eq!(opened.codes.local.as_deref(), Some("99-01"));
    assert_eq!(opened.zone.grid_code.as_deref(), Some("330106001002003"));
    assert_eq!(
        opened.device.gb28181_id.as_deref(),
        Some("34020000085050000001")
    );
    for e in &seen.events {
        let crowd = e.crowd.as_ref().unwrap();
        // Every walker of this clip has their feet in the zone (the lower three quarters of the frame); there
        // are 3 to 8 of them at any time, and NanoDet at score ≥ 0.5 finds them with at most one miss.
        assert!(
            (2..=9).contains(&crowd.count),
            "count {} outside the clip's true range",
            crowd.count
        );
        assert!((crowd.density - crowd.count as f64 / 6.0).abs() < 1e-9);
        assert_eq!(e.objects.len(), crowd.count);
        assert!(
            e.objects
                .iter()
                .all(|o| o.label == "person" && o.score >= 0.5)
        );
        assert_eq!(
            e.incident_id, opened.incident_id,
            "one incident while the crowd lasts"
        );
        // Evidence: published before its event, decodes, and matches the hash the event carries.
        let r = &e.evidence[0];
        let id = r.topic.strip_prefix("evidence/").unwrap();
        let jpeg = seen
            .evidence
            .get(id)
            .expect("evidence arrived before its event");
        assert_eq!(streetsight::ops::sha256_hex(jpeg), r.sha256);
        assert_eq!(jpeg.len(), r.bytes);
        let img = image::load_from_memory(jpeg).expect("evidence decodes as JPEG");
        assert_eq!((img.width(), img.height()), (768, 576));
    }
    assert!(
        seen.status.iter().any(|s| s["state"] == "online"),
        "retained status online was published"
    );
}
