//! Rolling a model out and back over MQTT, on the real parts: the daemon runs a signed copy of the shipped
//! NanoDet on the clip served over RTSP; a real HTTP server serves a signed bundle archive of a new
//! version. Broken archives (bad signature, wrong hash, cut download, oversize) are refused with the reason
//! and the running model stays; the cut one resumes. Activated while a crowd incident is open, the new
//! version continues it under the same id with its own version in the next event; `model_rollback` goes
//! back; a version over its latency budget, or one that fails on the camera's frames, is sent back by the
//! pole itself, with an event and status; so is an installed version that no longer loads at start.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use streetsight::cli::demo::{Clip, ClipServer, Mosquitto};
use streetsight::incident::Phase;
use support::dispatch::*;
use support::http::{Delivery, FileServer};
use support::onnx::{
    Dim, FLOAT, Graph, YOLOV8_MANIFEST, YOLOV8_VALUES, node, tensor_f32, value_info,
};
use support::*;

/// A tiny YOLOv8-layout bundle (persons at fixed places) that infers on a grey picture but fails on any
/// frame with a pixel brighter than 170: it gathers plane `floor(1.5 × max pixel)` of a batch of one, so
/// ONNX Runtime refuses the index at run time. It passes install and activation (their check infers on
/// grey) and faults on the camera's frames.
fn fails_on_bright_frames(dir: &Path, key: &Path) -> PathBuf {
    const INT64: i64 = 7;
    let model = Graph {
        nodes: vec![
            node("ReduceMax", &["images"], &["max"], &[("keepdims", 0)]),
            node("Mul", &["max", "k"], &["scaled"], &[]),
            node("Floor", &["scaled"], &["floored"], &[]),
            node("Cast", &["floored"], &["index"], &[("to", INT64)]),
            node("Gather", &["images", "index"], &["plane"], &[("axis", 0)]),
            node("ReduceSum", &["plane"], &["sum"], &[("keepdims", 0)]),
            node("Mul", &["sum", "zero"], &["nothing"], &[]),
            node("Add", &["values", "nothing"], &["output0"], &[]),
        ],
        initializers: vec![
            tensor_f32("values", &[1, 7, 5], &YOLOV8_VALUES),
            tensor_f32("zero", &[], &[0.0]),
            tensor_f32("k", &[], &[1.5]),
        ],
        inputs: vec![value_info(
            "images",
            FLOAT,
            &[Dim::Fixed(1), Dim::Fixed(3), Dim::Fixed(64), Dim::Fixed(64)],
        )],
        outputs: vec![value_info(
            "output0",
            FLOAT,
            &[Dim::Fixed(1), Dim::Fixed(7), Dim::Named("candidates")],
        )],
    }
    .model();
    let manifest = YOLOV8_MANIFEST.replace("version = \"0.1.0\"", "version = \"0.9-flaky\"");
    support::onnx::write_bundle(dir, &manifest, &model);
    streetsight::cli::signing::sign(dir, key).unwrap();
    dir.to_path_buf()
}

/// A copy of the shipped bundle at `version`, signed with `key`.
fn bundle(dir: &Path, version: &str, key: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["model.onnx", "PROVENANCE.md"] {
        if model_dir().join(f).exists() {
            std::fs::copy(model_dir().join(f), dir.join(f)).unwrap();
        }
    }
    let manifest = std::fs::read_to_string(model_dir().join("manifest.toml")).unwrap();
    let line = manifest
        .lines()
        .find(|l| l.starts_with("version = "))
        .unwrap();
    let manifest = manifest.replace(line, &format!("version = \"{version}\""));
    std::fs::write(dir.join("manifest.toml"), manifest).unwrap();
    streetsight::cli::signing::sign(dir, key).unwrap();
    dir.to_path_buf()
}

/// `dir`'s files as a gzip-compressed tar under `bundle/`, with `extra` (name, bytes) files.
fn archive(dir: &Path, extra: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all("bundle", dir).unwrap();
    for (name, bytes) in extra {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        tar.append_data(&mut h, format!("bundle/{name}"), bytes.as_slice())
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn sha(bytes: &[u8]) -> String {
    streetsight::base::sha256_hex(bytes)
}

fn config(
    camera: &str,
    broker: &str,
    state: &Path,
    bundle: &Path,
    key: &Path,
    cap_mb: u64,
) -> String {
    format!(
        r#"[device]
id = "demo-pole"
[uplink]
broker = "{broker}"
telemetry_s = 5
[storage]
state_dir = "{state}"
[model_trust]
keys = ["{key}"]
require_signature = true
[models.nanodet]
path = "{bundle}"
threads = 2
max_download_mb = {cap_mb}
[[camera]]
id = "cam"
url = "{camera}"
model = "nanodet"
[[camera.zone]]
id = "all"
points = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
area_m2 = 1.0
[[camera.crowd_density]]
zone = "all"
min_score = 0.4
levels = [{{ name = "busy", min_density = 2.0 }}]
sustain_s = 2
clear_s = 30
incident = {{ update_interval_s = 3, cooldown_s = 600 }}
"#,
        state = state.display(),
        bundle = bundle.display(),
        key = key.display(),
    )
}

/// The latest status's entry for model `nanodet`.
fn model_status(i: &Inbox) -> Option<&Value> {
    i.seen.status.last()?["models"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == "nanodet")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_version_is_installed_activated_mid_incident_rolled_back_and_sent_back_when_it_faults()
 {
    streetsight::ops::init_logging("info");
    streetsight::daemon::init_process().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (city_key, city_pub) = streetsight::cli::signing::keygen(&w.join("city"), false).unwrap();
    let (other_key, _) = streetsight::cli::signing::keygen(&w.join("other"), false).unwrap();
    let v1 = bundle(&w.join("v1"), "1.0-pole", &city_key);
    let v2 = bundle(&w.join("v2"), "2.0-candidate", &city_key);
    let good = archive(&v2, &[]);
    let forged = archive(&bundle(&w.join("forged"), "2.0-candidate", &other_key), &[]);
    // Incompressible padding: the archive grows past the cap.
    let cap_mb = good.len() as u64 / (1024 * 1024) + 2;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..4 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let oversize = archive(&v2, &[("padding.bin", noise)]);
    assert!(oversize.len() as u64 > cap_mb * 1024 * 1024);

    let files = FileServer::start();
    files.put(
        "v2.tar.gz",
        good.clone(),
        Delivery::CutAfter(good.len() as u64 / 2),
    );
    files.put("forged.tar.gz", forged.clone(), Delivery::Whole);
    files.put("big.tar.gz", oversize.clone(), Delivery::Whole);

    let camera = ClipServer::start(Clip::load(&clip_path()).unwrap(), 0, "/cam", None).unwrap();
    let broker = Mosquitto::start(0).unwrap();
    let state = w.join("state");
    let text = config(
        &camera.url("/cam"),
        &broker.url(),
        &state,
        &v1,
        &city_pub,
        cap_mb,
    );
    let loaded = load_config(w, &text);
    let (daemon, mut d, mut inbox) = commanded_daemon(loaded, &broker.url()).await;
    let sub = &daemon.sub;
    let short = Duration::from_secs(60);
    let install =
        |url: String, sha: String| json!({ "model": "nanodet", "url": url, "sha256": sha });

    // --- Refused, each with its reason in the reply; nothing is installed and v1 runs on.
    let refused = [
        (
            install(files.url("forged.tar.gz"), sha(&forged)),
            "invalid_model",
            "which this pole does not trust",
        ),
        (
            install(files.url("forged.tar.gz"), "ab".repeat(32)),
            "hash_mismatch",
            "not the expected",
        ),
        (
            install(files.url("big.tar.gz"), sha(&oversize)),
            "oversize",
            "max_download_mb",
        ),
        (
            install(files.url("v2.tar.gz"), sha(&good)),
            "truncated",
            "resumes",
        ),
    ];
    for (fields, code, says) in refused {
        let (id, _) = d.send("model_install", fields.clone()).await;
        let r = reply(sub, &mut inbox, &id, short).await;
        eprintln!("{fields} → {r}");
        assert_eq!(error_code(&r), code, "{r}");
        assert!(
            r["error"]["message"].as_str().unwrap().contains(says),
            "{r}"
        );
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nothing was installed"),
            "{r}"
        );
    }
    let (id, _) = d.send("models", json!({})).await;
    let r = reply(sub, &mut inbox, &id, short).await;
    assert_eq!(r["result"]["models"][0]["installed"], json!([]), "{r}");
    assert_eq!(r["result"]["models"][0]["versions"]["active"], "configured");
    assert_eq!(model_status(&inbox).unwrap()["version"], "1.0-pole");

    // --- The cut download resumes where it stopped, and the version is installed (not active).
    files.set_delivery("v2.tar.gz", Delivery::Whole);
    let (id, _) = d
        .send("model_install", install(files.url("v2.tar.gz"), sha(&good)))
        .await;
    let r = reply(sub, &mut inbox, &id, short).await;
    assert_eq!(r["ok"], true, "{r}");
    let installed = r["result"]["installed"].as_str().unwrap().to_string();
    assert!(installed.starts_with("2.0-candidate-"), "{r}");
    assert_eq!(r["result"]["active"], "configured");
    let ranges = files.requests("v2.tar.gz");
    assert!(
        ranges
            .last()
            .unwrap()
            .as_deref()
            .is_some_and(|r| r.starts_with("bytes=") && r != "bytes=0-"),
        "the second download asked for the rest: {ranges:?}"
    );
    assert!(
        !state
            .join("models/.staging")
            .read_dir()
            .unwrap()
            .any(|_| true),
        "staging left clean"
    );

    // --- Activated while a crowd incident is open: the same incident goes on under v2.
    let incident = opened_incident(sub, &mut inbox, Duration::from_secs(90)).await;
    let dropped_before = frames_dropped(&inbox);
    let (id, _) = d
        .send(
            "model_activate",
            json!({ "model": "nanodet", "version": "2.0-candidate" }),
        )
        .await;
    let r = reply(sub, &mut inbox, &id, short).await;
    eprintln!("activate → {r}");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        (r["result"]["from"].as_str(), r["result"]["to"].as_str()),
        (Some("configured"), Some(installed.as_str()))
    );
    assert_eq!(
        r["result"]["workers"][0]["continued"],
        json!([incident]),
        "{r}"
    );
    let gap_ms = r["result"]["workers"][0]["gap_ms"].as_f64().unwrap();
    let events_before = inbox.seen.events.len();
    assert!(
        wait_for(sub, &mut inbox, Duration::from_secs(30), |i| {
            i.seen.events[events_before..]
                .iter()
                .any(|e| e.incident_id == incident && e.model.version == "2.0-candidate")
        })
        .await,
        "the open incident did not go on under the new version"
    );
    assert!(
        inbox
            .seen
            .events
            .iter()
            .all(|e| e.phase != Phase::Opened || e.incident_id == incident),
        "the swap split the case"
    );
    assert!(
        wait_for(sub, &mut inbox, short, |i| model_status(i).is_some_and(
            |m| m["state"] == "probation" && m["version"] == "2.0-candidate"
        ))
        .await
    );
    eprintln!(
        "swap gap {gap_ms:.1} ms; frames dropped across it: {}",
        frames_dropped(&inbox) - dropped_before
    );

    // --- Listed, then rolled back by command: v1 goes on with the same incident.
    let (id, _) = d.send("models", json!({ "model": "nanodet" })).await;
    let r = reply(sub, &mut inbox, &id, short).await;
    let m = &r["result"]["models"][0];
    assert_eq!(m["versions"]["active"], installed.as_str(), "{r}");
    assert_eq!(m["versions"]["history"], json!(["configured"]));
    assert_eq!(m["installed"][0]["version"], "2.0-candidate");
    assert_eq!(m["configured"]["version"], "1.0-pole");
    let (id, _) = d
        .send("model_rollback", json!({ "model": "nanodet" }))
        .await;
    let r = reply(sub, &mut inbox, &id, short).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["to"], "configured");
    let events_before = inbox.seen.events.len();
    assert!(
        wait_for(sub, &mut inbox, Duration::from_secs(30), |i| {
            i.seen.events[events_before..]
                .iter()
                .any(|e| e.incident_id == incident && e.model.version == "1.0-pole")
        })
        .await,
        "the incident did not go on under the version rolled back to"
    );
    let (id, _) = d
        .send("model_rollback", json!({ "model": "nanodet" }))
        .await;
    assert_eq!(
        error_code(&reply(sub, &mut inbox, &id, short).await),
        "failed"
    );

    // --- A version slower than its budget: the pole goes back by itself, says so in an event and status.
    let (id, _) = d
        .send("model_activate", json!({ "model": "nanodet", "version": installed, "latency_budget_ms": 1, "probation_s": 120 }))
        .await;
    let r = reply(sub, &mut inbox, &id, short).await;
    assert_eq!(r["ok"], true, "{r}");
    let activated = Instant::now();
    assert!(
        wait_for(sub, &mut inbox, Duration::from_secs(60), |i| !i
            .seen
            .model_events
            .is_empty())
        .await,
        "no rollback event"
    );
    let rollback_s = activated.elapsed().as_secs_f64();
    let event = inbox.seen.model_events[0].clone();
    eprintln!("rolled back by itself after {rollback_s:.1} s: {event}");
    assert_eq!(event["kind"], "rolled_back");
    assert_eq!(
        (event["from"].as_str(), event["to"].as_str()),
        (Some(installed.as_str()), Some("configured"))
    );
    assert!(
        event["reason"]
            .as_str()
            .unwrap()
            .contains("latency budget of 1 ms"),
        "{event}"
    );
    assert!(
        wait_for(sub, &mut inbox, short, |i| model_status(i).is_some_and(
            |m| {
                m["state"] == "active"
                    && m["version"] == "1.0-pole"
                    && m["rolled_back"]["from"] == installed.as_str()
            }
        ))
        .await,
        "status does not show the rollback: {:?}",
        model_status(&inbox)
    );
    let (id, _) = d.send("models", json!({})).await;
    let r = reply(sub, &mut inbox, &id, short).await;
    assert_eq!(
        r["result"]["models"][0]["versions"]["active"], "configured",
        "{r}"
    );
    assert!(
        inbox
            .seen
            .events
            .iter()
            .all(|e| e.phase != Phase::Opened || e.incident_id == incident)
    );

    // --- Every step is in the audit log.
    let audit = std::fs::read_to_string(state.join("audit.jsonl")).unwrap();
    for (command, outcome) in [
        ("model_install", "failed"),
        ("model_install", "done"),
        ("model_activate", "done"),
        ("model_rollback", "done"),
    ] {
        assert!(
            audit
                .lines()
                .any(|l| l.contains(&format!("\"command\":\"{command}\""))
                    && l.contains(&format!("\"outcome\":\"{outcome}\""))),
            "no {command} {outcome} in the audit log"
        );
    }
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"source\":\"agent\"") && l.contains("latency budget"))
    );

    // --- A version that infers on the check's grey picture but fails on the camera's frames: after three
    // failed frames in a row its worker swaps the previous version back and analyses the frame with it.
    let flaky = archive(&fails_on_bright_frames(&w.join("flaky"), &city_key), &[]);
    files.put("flaky.tar.gz", flaky.clone(), Delivery::Whole);
    let (id, _) = d
        .send(
            "model_install",
            install(files.url("flaky.tar.gz"), sha(&flaky)),
        )
        .await;
    assert_eq!(reply(sub, &mut inbox, &id, short).await["ok"], true);
    let (id, _) = d
        .send(
            "model_activate",
            json!({ "model": "nanodet", "version": "0.9-flaky" }),
        )
        .await;
    let r = reply(sub, &mut inbox, &id, short).await;
    assert_eq!(r["ok"], true, "{r}");
    let activated = Instant::now();
    assert!(
        wait_for(sub, &mut inbox, Duration::from_secs(60), |i| i
            .seen
            .model_events
            .len()
            >= 2)
        .await,
        "no rollback of the version failing at inference"
    );
    let event = inbox.seen.model_events[1].clone();
    eprintln!(
        "rolled back by itself after {:.1} s: {event}",
        activated.elapsed().as_secs_f64()
    );
    assert_eq!(event["to"], "configured", "{event}");
    assert!(
        event["reason"]
            .as_str()
            .unwrap()
            .contains("inference failed on 3 frames in a row"),
        "{event}"
    );
    let before = inbox.seen.events.len();
    assert!(
        wait_for(sub, &mut inbox, Duration::from_secs(30), |i| {
            i.seen.events[before..]
                .iter()
                .any(|e| e.model.version == "1.0-pole")
        })
        .await,
        "events did not go on under the previous version"
    );

    // --- Activated again, then its file is damaged while the pole is down: the next start goes back to
    // the last good version by itself and says why.
    let (id, _) = d
        .send(
            "model_activate",
            json!({ "model": "nanodet", "version": installed }),
        )
        .await;
    assert_eq!(reply(sub, &mut inbox, &id, short).await["ok"], true);
    daemon.stop().await;
    let onnx = state
        .join("models/nanodet")
        .join(&installed)
        .join("model.onnx");
    std::fs::write(&onnx, b"not a graph").unwrap();
    let loaded = load_config(w, &text);
    let (daemon, _d, mut inbox) = commanded_daemon(loaded, &broker.url()).await;
    assert!(
        wait_for(&daemon.sub, &mut inbox, short, |i| {
            model_status(i).is_some_and(|m| {
                m["state"] == "active"
                    && m["version"] == "1.0-pole"
                    && m["rolled_back"]["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("does not load"))
            }) && !i.seen.model_events.is_empty()
        })
        .await,
        "a version that does not load was not left: {:?}",
        model_status(&inbox)
    );
    let versions: Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("models/nanodet/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(versions["active"], "configured", "{versions}");
    daemon.stop().await;
}

/// Frames the camera dropped so far, by the latest telemetry.
fn frames_dropped(i: &Inbox) -> u64 {
    i.seen
        .telemetry
        .last()
        .and_then(|t| t["cameras"][0]["frames_dropped"].as_u64())
        .unwrap_or(0)
}
