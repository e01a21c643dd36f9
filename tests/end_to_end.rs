//! The spine end to end with real parts: the committed street clip served by GStreamer's RTSP server →
//! the daemon (GStreamer ingest, NanoDet on ONNX Runtime, crowd rule, incidents) → a real mosquitto → a
//! subscriber that checks every event against the JSON Schema and every evidence image against its hash.

mod support;

use std::time::Duration;
use streetsight::cli::demo::{Clip, ClipServer, Mosquitto, demo_config};
use streetsight::incident::Phase;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn street_clip_raises_a_crowd_incident_with_verified_evidence() {
    streetsight::ops::init_logging("info");
    streetsight::daemon::init_process().unwrap();
    let camera = ClipServer::start(Clip::load(&clip_path()).unwrap(), 0, "/walkway", None).unwrap();
    let broker = Mosquitto::start(0).unwrap();
    let work = tempfile::tempdir().unwrap();
    let http_port = streetsight::cli::demo::free_port().unwrap();
    let text = demo_config(
        &camera.url("/walkway"),
        &broker.url(),
        &model_dir(),
        work.path(),
    ) + &format!("\n[ops]\nhttp = \"127.0.0.1:{http_port}\"\n");
    let loaded = load_config(work.path(), &text);
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
    let (health_status, health) = http_get(http_port, "/healthz");
    let (metrics_status, metrics) = http_get(http_port, "/metrics");
    daemon.stop().await;
    assert_eq!(
        health_status, 200,
        "camera streaming and broker connected: {health}"
    );
    assert_eq!(metrics_status, 200);
    check_prometheus_text(&metrics);
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
        // Evidence, annotated and clean: published before its event, decodes, and matches the hash the
        // event carries.
        let kinds: Vec<&str> = e.evidence.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["annotated", "clean"]);
        for r in &e.evidence {
            let id = r.topic.strip_prefix("evidence/").unwrap();
            let jpeg = seen
                .evidence
                .get(id)
                .expect("evidence arrived before its event");
            assert_eq!(streetsight::base::sha256_hex(jpeg), r.sha256);
            assert_eq!(jpeg.len(), r.bytes);
            let img = image::load_from_memory(jpeg).expect("evidence decodes as JPEG");
            assert_eq!((img.width(), img.height()), (768, 576));
        }
    }
    assert!(
        seen.status.iter().any(|s| s["state"] == "online"),
        "retained status online was published"
    );
}

/// Every sample line is `name{labels} value` with a declared TYPE, names `streetsight_*`, labels only
/// `camera`, `quantile` and `kind` (low cardinality), and the documented series are present.
fn check_prometheus_text(text: &str) {
    let mut typed = std::collections::HashSet::new();
    let mut summaries = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let name = words.next().unwrap().to_string();
            if words.next() == Some("summary") {
                summaries.insert(name.clone());
            }
            typed.insert(name);
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("value is not a number: {line}"));
        let name = series.split('{').next().unwrap();
        // A summary's `_sum` and `_count` series belong to its family.
        let family = ["_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| summaries.contains(*f)))
            .unwrap_or(name);
        assert!(
            name.starts_with("streetsight_") && typed.contains(family),
            "undeclared or foreign series: {line}"
        );
        if let Some(labels) = series
            .strip_prefix(name)
            .and_then(|l| l.strip_prefix('{'))
            .and_then(|l| l.strip_suffix('}'))
        {
            for pair in labels.split(',') {
                let key = pair.split('=').next().unwrap();
                assert!(
                    ["camera", "quantile", "kind", "condition"].contains(&key),
                    "high-cardinality or unknown label: {line}"
                );
            }
        }
    }
    for series in [
        "streetsight_camera_up{camera=\"walkway\"} 1",
        "streetsight_uplink_connected 1",
        "streetsight_outbox_records ",
        "streetsight_camera_frames_analysed_total{camera=\"walkway\"} ",
        "streetsight_analysis_seconds{camera=\"walkway\",quantile=\"0.95\"} ",
        "streetsight_camera_frames_skipped_total{camera=\"walkway\"} ",
        "streetsight_events_delivered_total ",
    ] {
        assert!(text.contains(series), "missing {series:?} in:\n{text}");
    }
    // Every series docs/configuration.md lists under `GET /metrics` is declared, and nothing undocumented is.
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let section = doc
        .split("- `GET /metrics`")
        .nth(1)
        .and_then(|s| s.split("\n- ").next())
        .expect("docs/configuration.md lists the /metrics series");
    let documented: std::collections::HashSet<String> = section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| w.starts_with("streetsight_"))
        // Shadow series exist only while a candidate runs in shadow (tests/shadow.rs checks them).
        .filter(|w| !w.starts_with("streetsight_shadow_"))
        .map(str::to_string)
        .collect();
    assert!(documented.len() >= 10, "documented series: {documented:?}");
    assert_eq!(
        typed, documented,
        "/metrics (left) and docs/configuration.md (right) name the same series"
    );
}
