//! Camera health on the real daemon: the committed street clip, altered with ffmpeg (moved 8 % and turned
//! 3°, 70 % covered, defocused, frozen, dusk then the IR switch), each served over the real RTSP server to
//! its own camera of one daemon, with NanoDet on ONNX Runtime and a real mosquitto. Every fault opens a
//! `camera_health` case and resolves when the view comes back; a moved camera's crowd case resolves
//! (`camera_health`) and its rule resumes; a confirmed view becomes the reference; dusk, the IR switch and
//! the unmodified clip (pedestrians, its whole length) raise nothing.

mod support;

use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use streetsight::cli::demo::{Clip, ClipServer, Mosquitto, free_port};
use streetsight::incident::{IncidentEvent, Phase, ResolveReason};
use support::clips::{Alteration, altered_clip};
use support::dispatch::*;
use support::*;

/// One camera of the test: its clip and the seconds of clean lead-in before the alteration.
struct Cam {
    id: &'static str,
    alteration: Option<Alteration>,
    clean_s: f64,
    altered_s: f64,
}

fn cameras() -> Vec<Cam> {
    let cam = |id, alteration, clean_s, altered_s| Cam {
        id,
        alteration,
        clean_s,
        altered_s,
    };
    let moved = || Alteration::ShiftRotate {
        dx: 0.08,
        dy: 0.0,
        degrees: 3.0,
    };
    vec![
        cam("clean", None, 0.0, 0.0),
        cam("moved", Some(moved()), 15.0, 25.0),
        cam("confirmed", Some(moved()), 15.0, 25.0),
        cam(
            "covered",
            Some(Alteration::Cover { fraction: 0.7 }),
            15.0,
            20.0,
        ),
        cam("blurred", Some(Alteration::Blur), 15.0, 20.0),
        cam("frozen", Some(Alteration::Freeze), 10.0, 25.0),
        cam("dusk", Some(Alteration::Dusk), 15.0, 30.0),
    ]
}

/// The daemon's configuration: every camera with its health checks at their defaults (the frozen one
/// with a 15-s limit so the test stays short); the moved one also watches a crowd in the whole view.
fn config(
    urls: &BTreeMap<&str, String>,
    broker: &str,
    state: &std::path::Path,
    http: u16,
) -> String {
    let mut text = format!(
        r#"[device]
id = "demo-pole"
[uplink]
broker = "{broker}"
[storage]
state_dir = "{state}"
[ops]
http = "127.0.0.1:{http}"
[models.nanodet]
path = "{model}"
"#,
        state = state.display(),
        model = model_dir().display(),
    );
    for (id, url) in urls {
        text += &format!("[[camera]]\nid = \"{id}\"\nurl = \"{url}\"\nmodel = \"nanodet\"\n");
        if *id == "frozen" {
            text += "[camera.health]\nfrozen_after_s = 15\n";
        }
        if *id == "moved" {
            text += r#"[[camera.zone]]
id = "all"
points = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
area_m2 = 1.0
[[camera.crowd_density]]
zone = "all"
min_score = 0.4
levels = [{ name = "busy", min_density = 2.0 }]
sustain_s = 2
clear_s = 8
"#;
        }
    }
    text
}

fn health_events<'a>(events: &'a [IncidentEvent], camera: &str) -> Vec<&'a IncidentEvent> {
    events
        .iter()
        .filter(|e| e.camera.id == camera && e.category == "camera_health")
        .collect()
}

fn conditions(e: &IncidentEvent) -> Vec<String> {
    e.health
        .as_ref()
        .map(|h| h.conditions.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_covered_blurred_and_frozen_cameras_open_and_resolve_and_dusk_and_the_clean_clip_raise_nothing()
 {
    streetsight::daemon::init_process().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut servers = Vec::new();
    let mut urls = BTreeMap::new();
    for cam in cameras() {
        let path = match &cam.alteration {
            Some(a) => altered_clip(work.path(), cam.id, a, cam.clean_s, cam.altered_s).unwrap(),
            None => clip_path(),
        };
        let server = ClipServer::start(Clip::load(&path).unwrap(), 0, "/cam", None).unwrap();
        urls.insert(cam.id, server.url("/cam"));
        servers.push(server);
    }
    let broker = Mosquitto::start(0).unwrap();
    let http = free_port().unwrap();
    let state = work.path().join("state");
    let loaded = load_config(work.path(), &config(&urls, &broker.url(), &state, http));
    let started = Instant::now();
    let (daemon, mut dispatcher, mut inbox) = commanded_daemon(loaded, &broker.url()).await;

    // Until the moved camera's case is open: then the metrics and the status must say so.
    let opened = |i: &Inbox, cam: &str| {
        health_events(&i.seen.events, cam)
            .iter()
            .any(|e| e.phase == Phase::Opened)
    };
    // Events are collected a second at a time, each noted with when it arrived (for the detection times).
    let mut arrived = Vec::new();
    let both = |i: &Inbox| opened(i, "moved") && opened(i, "confirmed");
    while !both(&inbox) && started.elapsed() < Duration::from_secs(60) {
        wait_for(&daemon.sub, &mut inbox, Duration::from_secs(1), both).await;
        arrived.resize(inbox.seen.events.len(), started.elapsed());
    }
    assert!(
        both(&inbox),
        "no moved case within 60 s: {:?}",
        event_list(&inbox.seen.events)
    );
    let moved_at = started.elapsed();
    let (_, metrics) = http_get(http, "/metrics");
    assert!(
        metrics.contains(r#"streetsight_camera_health{camera="moved",condition="moved"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"streetsight_camera_health{camera="clean",condition="moved"} 0"#),
        "{metrics}"
    );
    let (_, healthz) = http_get(http, "/healthz");
    let healthz: serde_json::Value = serde_json::from_str(&healthz).unwrap();
    let moved_health = healthz["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "moved")
        .unwrap()["health"]
        .clone();
    assert_eq!(moved_health["conditions"], json!(["moved"]), "{healthz:#}");

    // The installer confirms the second moved camera's new view.
    let (confirm, _) = dispatcher
        .send("confirm_view", json!({ "camera": "confirmed" }))
        .await;
    let reply = reply(&daemon.sub, &mut inbox, &confirm, Duration::from_secs(20)).await;
    assert_eq!(reply["ok"], true, "{reply}");

    // The rest of the unmodified clip's length (79.5 s) and the loops back to the clean views.
    arrived.resize(inbox.seen.events.len(), started.elapsed());
    while started.elapsed() < Duration::from_secs(95) {
        wait_for(&daemon.sub, &mut inbox, Duration::from_secs(1), |_| false).await;
        arrived.resize(inbox.seen.events.len(), started.elapsed());
    }
    let status_seen = inbox.seen.status.iter().any(|s| {
        s["cameras"].as_array().is_some_and(|cams| {
            cams.iter()
                .any(|c| c["id"] == "covered" && c["health"]["conditions"] == json!(["covered"]))
        })
    });
    daemon.stop().await;
    drop(servers);
    let events = &inbox.seen.events;
    let log: Vec<String> = events
        .iter()
        .zip(&arrived)
        .map(|(e, at)| {
            format!(
                "{:5.1}s {} {} {:?} {:?} {:?}",
                at.as_secs_f64(),
                e.camera.id,
                e.category,
                e.phase,
                e.reason,
                e.health.as_ref().map(|h| (&h.conditions, h.shift))
            )
        })
        .collect();
    eprintln!("moved cases open after {moved_at:?}\n{}", log.join("\n"));

    // Dusk, the IR switch and the clean clip: nothing at all.
    for cam in ["clean", "dusk"] {
        assert!(health_events(events, cam).is_empty(), "{cam}: {log:#?}");
    }
    // Each fault: opened with its condition, then resolved when the clip loops back to the clean view.
    for (cam, condition) in [
        ("moved", "moved"),
        ("covered", "covered"),
        ("blurred", "blurred"),
        ("frozen", "frozen"),
    ] {
        let h = health_events(events, cam);
        let open = h.iter().find(|e| e.phase == Phase::Opened);
        let open = open.unwrap_or_else(|| panic!("{cam}: no case opened: {log:#?}"));
        assert_eq!(
            conditions(open),
            vec![condition.to_string()],
            "{cam}: {log:#?}"
        );
        assert!(
            h.iter().any(|e| e.phase == Phase::Resolved
                && e.incident_id == open.incident_id
                && e.reason == Some(ResolveReason::Cleared)),
            "{cam}: not resolved when the view came back: {log:#?}"
        );
        // Before and after: the reference view and the current picture, both delivered.
        let kinds: Vec<&str> = open.evidence.iter().map(|e| e.kind.as_str()).collect();
        assert!(
            kinds.first() == Some(&"annotated") && kinds.last() == Some(&"reference"),
            "{cam}: {kinds:?}"
        );
        for e in &open.evidence {
            let id = e.topic.strip_prefix("evidence/").unwrap();
            let bytes = inbox
                .seen
                .evidence
                .get(id)
                .unwrap_or_else(|| panic!("{cam}: {id} missing"));
            assert_eq!(streetsight::base::sha256_hex(bytes), e.sha256);
        }
    }
    // The shift is measured within 1 % of the truth (62 px of 768 right; ffmpeg's 3° clockwise).
    let open = health_events(events, "moved")
        .into_iter()
        .find(|e| e.phase == Phase::Opened)
        .unwrap();
    let shift = open.health.as_ref().unwrap().shift.unwrap();
    assert!(
        (shift.x - 62.0 / 768.0).abs() < 0.01 && shift.y.abs() < 0.01,
        "{shift:?}"
    );
    assert!((shift.degrees + 3.0).abs() < 1.0, "{shift:?}");

    // The moved camera's crowd case was resolved by the move, and its rule came back with the view.
    let crowd: Vec<&IncidentEvent> = events
        .iter()
        .filter(|e| e.camera.id == "moved" && e.category == "crowd_density")
        .collect();
    let paused = crowd
        .iter()
        .position(|e| e.reason == Some(ResolveReason::CameraHealth))
        .unwrap_or_else(|| panic!("the crowd case did not pause: {log:#?}"));
    assert!(
        crowd[paused + 1..].iter().any(|e| e.phase == Phase::Opened),
        "the crowd rule did not resume: {log:#?}"
    );

    // The confirmed camera: its case resolved on the confirmation; the original view, when the clip came
    // back to it, was then the moved one (shifted the other way).
    let confirmed = health_events(events, "confirmed");
    let opens: Vec<&&IncidentEvent> = confirmed
        .iter()
        .filter(|e| e.phase == Phase::Opened)
        .collect();
    assert!(opens.len() >= 2, "{log:#?}");
    let back = opens[1].health.as_ref().unwrap().shift.unwrap();
    assert!((back.x + 62.0 / 768.0).abs() < 0.015, "{back:?}");
    assert!(
        status_seen,
        "the retained status never showed the covered camera"
    );
}
