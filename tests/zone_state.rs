//! Zone state from a few labelled examples, on the real daemon: the street clip with a real object laid on
//! the pavement for part of each loop (the yellow cloth of the clip itself, cut out and scaled: a dumped
//! tarp), served over the real RTSP server, NanoDet and the EfficientNet-Lite0 embedder on ONNX Runtime,
//! a real mosquitto. Pedestrians walk through the zone all along.
//!
//! - `walk`: five labelled pictures per state imported (those with people over the zone skipped) → the
//!   rule opens while the tarp is there, never in the clean part; a `label` adds an example live; a `verify`
//!   after the tarp is gone answers `cleared` and adds a normal example;
//! - `fp` (the clip from 34 s on: other passers-by than in the examples): a blue tarp elsewhere in the
//!   zone that the examples call debris (a false positive) → the
//!   dispatcher's `false_positive` makes its evidence, the samples that raised it and the live zone normal
//!   examples, and the same scene opens nothing more;
//! - every example survives a restart, and the audit log holds each command.

mod support;

use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use streetsight::cli::demo::{Clip, ClipServer, Mosquitto};
use streetsight::incident::{IncidentEvent, Phase, ResolveReason};
use support::clips::{Alteration, altered_clip, altered_clip_from, frames_at};
use support::dispatch::*;
use support::*;

/// Seconds of the clean lead-in and of the tarp in each loop of the served clip.
const CLEAN_S: f64 = 20.0;
const TARP_S: f64 = 25.0;

fn config(urls: &BTreeMap<&str, String>, broker: &str, state: &std::path::Path) -> String {
    let mut text = format!(
        r#"[device]
id = "demo-pole"
[uplink]
broker = "{broker}"
[storage]
state_dir = "{state}"
[models.nanodet]
path = "{model}"
[models.lite0]
path = "{embedder}"
"#,
        state = state.display(),
        model = model_dir().display(),
        embedder = repo("models/efficientnet-lite0").display(),
    );
    for (id, url) in urls {
        text += &format!(
            r#"[[camera]]
id = "{id}"
url = "{url}"
model = "nanodet"
[[camera.zone]]
id = "walkway"
points = [[0.57, 0.42], [0.91, 0.42], [0.91, 0.61], [0.57, 0.61]]
[[camera.zone_state]]
zone = "walkway"
category = "piled_debris"
embedder = "lite0"
states = ["clear", "debris"]
alarm = ["debris"]
sample_every_s = 1
max_examples = 5
[camera.zone_state.incident]
clear_s = 10
"#
        );
    }
    text
}

fn opened<'a>(events: &'a [IncidentEvent], camera: &str) -> Vec<&'a IncidentEvent> {
    events
        .iter()
        .filter(|e| {
            e.camera.id == camera && e.category == "piled_debris" && e.phase == Phase::Opened
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_learns_its_states_from_examples_and_from_the_dispatchers_feedback() {
    streetsight::daemon::init_process().unwrap();
    // Each sample's reading goes to the test's output (shown when it fails).
    let _ = tracing_subscriber::fmt()
        .with_env_filter("streetsight=info,streetsight::incident=debug")
        .with_test_writer()
        .try_init();
    let work = tempfile::tempdir().unwrap();
    let tarp = |x, y, scale, hue| Alteration::Tarp { x, y, scale, hue };
    let walk_clip = altered_clip(
        work.path(),
        "walk",
        &tarp(470, 265, 2.0, 0.0),
        CLEAN_S,
        TARP_S,
    )
    .unwrap();
    let fp_clip = altered_clip_from(
        work.path(),
        "fp",
        &tarp(520, 285, 1.6, 180.0),
        34,
        CLEAN_S,
        TARP_S,
    )
    .unwrap();

    // Pictures of each state from the walk camera's clip, people walking through some of them; the zone
    // keeps five per state (`max_examples`), the most varied.
    let labelled = work.path().join("labelled");
    let every = |from: f64, n: usize| (0..n).map(|i| from + i as f64).collect::<Vec<_>>();
    frames_at(&walk_clip, &every(0.5, 19), &labelled.join("clear"), "f").unwrap();
    frames_at(&walk_clip, &every(21.0, 23), &labelled.join("debris"), "f").unwrap();

    let mut servers = Vec::new();
    let mut urls = BTreeMap::new();
    for (id, clip) in [("walk", &walk_clip), ("fp", &fp_clip)] {
        let server = ClipServer::start(Clip::load(clip).unwrap(), 0, "/cam", None).unwrap();
        urls.insert(id, server.url("/cam"));
        servers.push(server);
    }
    let broker = Mosquitto::start(0).unwrap();
    let state = work.path().join("state");
    let text = config(&urls, &broker.url(), &state);
    let loaded = load_config(work.path(), &text);

    // The installer's bulk set-up, for both cameras (the same street, the same examples).
    for camera in ["walk", "fp"] {
        let done =
            streetsight::cli::examples::import(&loaded, camera, "walkway", &labelled).unwrap();
        println!(
            "{camera}: {} imported, skipped {:?}",
            done.added, done.skipped
        );
        assert!(
            done.added >= 10,
            "{} of 42 pictures imported: {:?}",
            done.added,
            done.skipped
        );
    }
    let scores = streetsight::cli::examples::evaluate(&loaded, "walk", "walkway").unwrap();
    println!(
        "leave-one-out:\n{}",
        streetsight::cli::examples::render_scores(&scores)
    );
    for s in &scores {
        assert_eq!(s.examples, 5, "{s:?}");
        assert_eq!((s.precision, s.recall), (Some(1.0), Some(1.0)), "{s:?}");
    }

    let started = Instant::now();
    let (daemon, mut d, mut inbox) = commanded_daemon(loaded, &broker.url()).await;
    let audit = state.join("audit.jsonl");

    // A live label during the clean part: the next frame with nobody over the zone. First the camera's first
    // frame (the test server's first RTSP session now and then stalls until the daemon reconnects).
    first_frame(&mut d, &daemon.sub, &mut inbox, "walk").await;
    let (label, _) = d
        .send(
            "label",
            json!({ "camera": "walk", "zone": "walkway", "state": "clear" }),
        )
        .await;
    let r = reply(&daemon.sub, &mut inbox, &label, Duration::from_secs(40)).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["example"]["state"], "clear", "{r}");
    let (bad, _) = d
        .send(
            "label",
            json!({ "camera": "walk", "zone": "walkway", "state": "stall" }),
        )
        .await;
    let r = reply(&daemon.sub, &mut inbox, &bad, Duration::from_secs(40)).await;
    assert_eq!(error_code(&r), "invalid_argument", "{r}");

    // Both tarps open a case; nothing opened in the clean part before them.
    let open = |camera: &'static str| move |i: &Inbox| !opened(&i.seen.events, camera).is_empty();
    assert!(
        wait_for(
            &daemon.sub,
            &mut inbox,
            Duration::from_secs(70),
            open("walk")
        )
        .await,
        "no piled_debris case on walk: {:?}",
        event_list(&inbox.seen.events)
    );
    let walk_opened_at = started.elapsed();
    assert!(
        wait_for(&daemon.sub, &mut inbox, Duration::from_secs(30), open("fp")).await,
        "no piled_debris case on fp: {:?}",
        event_list(&inbox.seen.events)
    );
    println!(
        "walk open after {walk_opened_at:?}, fp after {:?}",
        started.elapsed()
    );
    assert!(
        walk_opened_at > Duration::from_secs(CLEAN_S as u64 - 2),
        "opened in the clean part"
    );
    let walk = opened(&inbox.seen.events, "walk")[0].clone();
    let reading = walk
        .zone_state
        .clone()
        .expect("the reading is in the event");
    println!(
        "walk opened: {reading:?}, first seen {}, sent {}",
        walk.first_seen, walk.time
    );
    assert_eq!(reading.state, "debris");
    assert!(
        reading.confidence > 0.5 && walk.confidence == reading.confidence,
        "{reading:?}"
    );
    assert_eq!(walk.objects[0].label, "debris");
    let fp_event = opened(&inbox.seen.events, "fp")[0].clone();

    // The dispatcher: the blue tarp is not debris.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (feedback, _) = d
        .send(
            "feedback",
            json!({ "camera": "fp", "zone": "walkway", "event_id": fp_event.event_id, "verdict": "false_positive" }),
        )
        .await;
    let r = reply(&daemon.sub, &mut inbox, &feedback, Duration::from_secs(20)).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["example"]["state"], "clear", "{r}");
    let misjudged = r["result"]["misjudged"]
        .as_array()
        .expect("misjudged samples");
    assert!(
        !misjudged.is_empty() && misjudged.iter().all(|e| e["state"] == "clear"),
        "the samples that raised the case are normal examples now: {r}"
    );
    let live = r["result"]["live"].as_array().expect("live examples");
    assert!(
        !live.is_empty() && live.iter().all(|e| e["state"] == "clear"),
        "{r}"
    );
    let feedback_at = started.elapsed();

    // Right after the tarp is gone — it was first seen at `first_seen` and lies there TARP_S — and before the
    // case's 10-s clear time ends the case: a fresh look finds the zone clear and makes it a normal example.
    let first_seen = chrono::DateTime::parse_from_rfc3339(&walk.first_seen).unwrap();
    let gone = first_seen + chrono::Duration::seconds(TARP_S as i64 + 2);
    let wait = (gone.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait).await;
    let (verify, _) = d
        .send("verify", json!({ "incident_id": walk.incident_id }))
        .await;
    let r = reply(&daemon.sub, &mut inbox, &verify, Duration::from_secs(30)).await;
    assert_eq!(r["result"]["result"], "cleared", "{r}");
    assert!(r["result"]["example"].is_string(), "{r}");

    // The next loop: the walk tarp opens again (same case re-opened within its cooldown), the blue tarp
    // no longer does.
    let fp_opens_before = opened(&inbox.seen.events, "fp").len();
    let until = started.elapsed() + Duration::from_secs(45);
    while started.elapsed() < until {
        wait_for(&daemon.sub, &mut inbox, Duration::from_secs(1), |_| false).await;
    }
    let fp_after: Vec<_> = inbox
        .seen
        .events
        .iter()
        .filter(|e| e.camera.id == "fp" && e.category == "piled_debris")
        .map(|e| (e.phase, e.zone_state.clone().map(|z| z.state)))
        .collect();
    println!("fp events: {fp_after:?} (feedback after {feedback_at:?})");
    assert_eq!(
        opened(&inbox.seen.events, "fp").len(),
        fp_opens_before,
        "the same scene opened again: {fp_after:?}"
    );
    assert_eq!(
        fp_after.last().map(|(phase, _)| *phase),
        Some(Phase::Resolved),
        "the false positive's case did not end: {fp_after:?}"
    );
    assert!(
        opened(&inbox.seen.events, "walk").len() >= 2,
        "the walk tarp did not open again"
    );
    // ... and when it is gone at the end of that loop, the rule resolves the case by itself.
    let cleared = |i: &Inbox| {
        i.seen.events.iter().any(|e| {
            e.camera.id == "walk"
                && e.phase == Phase::Resolved
                && e.reason == Some(ResolveReason::Cleared)
        })
    };
    assert!(
        wait_for(&daemon.sub, &mut inbox, Duration::from_secs(60), cleared).await,
        "the walk case did not resolve after the tarp left: {:?}",
        event_list(&inbox.seen.events)
    );
    println!("walk resolved by itself after {:?}", started.elapsed());

    let (list, _) = d
        .send("examples", json!({ "camera": "walk", "zone": "walkway" }))
        .await;
    let before = reply(&daemon.sub, &mut inbox, &list, Duration::from_secs(20)).await;
    let ids = |listed: &serde_json::Value| -> Vec<String> {
        listed["result"]["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    let before = ids(&before);
    let audited = std::fs::read_to_string(&audit).unwrap();
    for command in [
        "\"label\"",
        "\"feedback\"",
        "\"verify\"",
        "\"examples\"",
        "\"examples_import\"",
    ] {
        assert!(
            audited.contains(command),
            "{command} not in the audit log:\n{audited}"
        );
    }
    daemon.stop().await;

    // A restart keeps every example.
    let loaded = load_config(work.path(), &text);
    let (daemon, mut d, mut inbox) = commanded_daemon(loaded, &broker.url()).await;
    let (list, _) = d
        .send("examples", json!({ "camera": "walk", "zone": "walkway" }))
        .await;
    let after = reply(&daemon.sub, &mut inbox, &list, Duration::from_secs(20)).await;
    assert_eq!(ids(&after), before, "{after}");
    let sources: Vec<&str> = after["result"]["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"].as_str().unwrap())
        .collect();
    // The label may have made way for the verify's picture of the same clear pavement (the older of the
    // two most alike goes); the newest example stays.
    assert!(
        sources.iter().any(|s| s.starts_with("verify:")),
        "{sources:?}"
    );
    let fp = streetsight::plan::examples_dir(&state, "fp", "walkway");
    assert!(
        streetsight::incident::load_examples(&fp)
            .iter()
            .any(|e| e.source.starts_with("feedback:") && e.state == "clear"),
        "the false positive is a clear example of fp"
    );
    daemon.stop().await;
}
