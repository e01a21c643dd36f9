//! Shadow mode on the real parts: the daemon runs NanoDet on the clip served over RTSP, a candidate bundle
//! (the same network, stricter: score ≥ 0.8) is started beside it by command, reports how far it agrees in
//! telemetry, `/metrics` and `shadow_report`, raises no incident of its own, and is stopped and started
//! again without a restart. Bad shadow commands are refused with the reason and change nothing.

mod support;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use streetsight::cli::demo::{Clip, ClipServer, Mosquitto, demo_config, free_port};
use streetsight::incident::Phase;
use support::dispatch::*;
use support::*;

/// A copy of the shipped bundle named `name`, with `edit` applied to its manifest.
fn candidate(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(model_dir().join("model.onnx"), out.join("model.onnx")).unwrap();
    let manifest = std::fs::read_to_string(model_dir().join("manifest.toml"))
        .unwrap()
        .replace("name = \"nanodet-g-416\"", &format!("name = \"{name}\""));
    std::fs::write(out.join("manifest.toml"), edit(manifest)).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_in_shadow_reports_agreement_and_raises_nothing() {
    streetsight::ops::init_logging("info");
    streetsight::daemon::init_process().unwrap();
    let camera = ClipServer::start(Clip::load(&clip_path()).unwrap(), 0, "/walkway", None).unwrap();
    let broker = Mosquitto::start(0).unwrap();
    let work = tempfile::tempdir().unwrap();
    let http = free_port().unwrap();
    let text = demo_config(
        &camera.url("/walkway"),
        &broker.url(),
        &model_dir(),
        &work.path().join("state"),
    ) + &format!("\n[ops]\nhttp = \"127.0.0.1:{http}\"\n");
    let loaded = load_config(work.path(), &text);
    let (daemon, mut d, mut inbox) = commanded_daemon(loaded, &broker.url()).await;
    let sub = &daemon.sub;
    let short = Duration::from_secs(30);
    let strict = candidate(work.path(), "candidate", |m| {
        m.replace("score_threshold = 0.35", "score_threshold = 0.8")
    });
    let broken = candidate(work.path(), "broken", |m| {
        m.replace("sha256 = \"2c51", "sha256 = \"0c51")
    });

    // --- Refused, each with its reason; nothing starts.
    let bad = [
        (
            json!({ "model": "nanodet", "path": strict.display().to_string(), "every": 0 }),
            "malformed",
            "every is 0",
        ),
        (
            json!({ "model": "nanodet", "path": "relative/dir" }),
            "malformed",
            "absolute path",
        ),
        (
            json!({ "model": "yolo", "path": strict.display().to_string() }),
            "failed",
            "no model `yolo`",
        ),
        (
            json!({ "model": "nanodet", "path": "/nonexistent/bundle" }),
            "invalid_model",
            "nothing changed",
        ),
        (
            json!({ "model": "nanodet", "path": broken.display().to_string() }),
            "invalid_model",
            "sha256",
        ),
    ];
    for (fields, code, says) in bad {
        let (id, _) = d.send("shadow_start", fields).await;
        let r = reply(sub, &mut inbox, &id, short).await;
        assert_eq!(error_code(&r), code, "{r}");
        assert!(
            r["error"]["message"].as_str().unwrap().contains(says),
            "{r}"
        );
    }
    let (id, _) = d.send("shadow_stop", json!({ "model": "nanodet" })).await;
    assert_eq!(
        error_code(&reply(sub, &mut inbox, &id, short).await),
        "failed"
    );

    // --- Started by command, on every analysed frame.
    let (id, _) = d
        .send(
            "shadow_start",
            json!({ "model": "nanodet", "path": strict.display().to_string(), "every": 1 }),
        )
        .await;
    let r = reply(sub, &mut inbox, &id, short).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["candidate"]["name"], "candidate");
    assert_eq!(r["result"]["cameras"], json!(["walkway"]));

    // The telemetry carries its agreement once it has seen frames.
    assert!(
        wait_for(sub, &mut inbox, Duration::from_secs(60), |i| {
            i.seen
                .telemetry
                .iter()
                .any(|t| t["shadows"][0]["frames"].as_u64().unwrap_or(0) >= 5)
        })
        .await,
        "no telemetry with the shadow's agreement"
    );
    let (_, metrics) = http_get(http, "/metrics");
    assert!(
        metrics.contains("streetsight_shadow_frames_total{model=\"nanodet\",worker=\"0\",candidate=\"candidate\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("streetsight_shadow_count_agreement_ratio{model=\"nanodet\",worker=\"0\",candidate=\"candidate\",class=\"person\"}"));
    // Every shadow family served is documented, and every documented one is served.
    let doc = std::fs::read_to_string(repo("docs/configuration.md")).unwrap();
    let documented: std::collections::BTreeSet<&str> = doc
        .split('`')
        .filter(|w| w.starts_with("streetsight_shadow_"))
        .collect();
    let served: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .filter(|n| n.starts_with("streetsight_shadow_"))
        .collect();
    assert_eq!(served, documented);

    // The active model keeps raising its incidents; the candidate raises none.
    assert!(
        wait_for(sub, &mut inbox, Duration::from_secs(90), |i| {
            i.seen.events.iter().any(|e| e.phase == Phase::Opened)
        })
        .await,
        "the active model opened no crowd incident"
    );
    let (id, _) = d.send("shadow_report", json!({ "model": "nanodet" })).await;
    let r = reply(sub, &mut inbox, &id, short).await;
    assert_eq!(r["ok"], true, "{r}");
    let report = &r["result"]["reports"][0];
    eprintln!("shadow report: {report}");
    assert_eq!(report["candidate"], "candidate");
    assert!(report["frames"].as_u64().unwrap() >= 5, "{report}");
    assert_eq!(report["errors"], 0);
    let person = report["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == "person")
        .expect("both saw people");
    // Stricter: it keeps a subset of the active model's people, and those boxes are the same ones.
    assert!(
        person["shadow_boxes"].as_u64() < person["active_boxes"].as_u64(),
        "{person}"
    );
    assert!(person["matched"].as_u64().unwrap() > 0);
    assert!(report["mean_iou"].as_f64().unwrap() > 0.9, "{report}");
    assert!(report["active_opened"].as_u64().unwrap() >= 1, "{report}");
    // Seeing about one person a frame, it never reaches the crowd level the active model raised.
    assert_eq!(report["shadow_opened"], 0, "{report}");
    assert!(
        report["would_miss"].as_array().unwrap().iter().any(|k| {
            k["camera"] == "walkway" && k["category"] == "crowd_density" && k["zone"] == "walkway"
        }),
        "{report}"
    );

    // --- Stopped by command: the final report in the reply, then nothing is shown.
    let (id, _) = d.send("shadow_stop", json!({ "model": "nanodet" })).await;
    let r = reply(sub, &mut inbox, &id, short).await;
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        r["result"]["reports"][0]["frames"].as_u64().unwrap() >= report["frames"].as_u64().unwrap()
    );
    let (id, _) = d.send("shadow_report", json!({})).await;
    assert_eq!(
        reply(sub, &mut inbox, &id, short).await["result"]["reports"],
        json!([])
    );
    assert!(!http_get(http, "/metrics").1.contains("streetsight_shadow_"));

    // --- And again, with no restart, on every third frame.
    let (id, _) = d
        .send(
            "shadow_start",
            json!({ "model": "nanodet", "path": strict.display().to_string(), "every": 3 }),
        )
        .await;
    assert_eq!(reply(sub, &mut inbox, &id, short).await["ok"], true);
    let (id, _) = d.send("shadow_stop", json!({ "model": "nanodet" })).await;
    assert_eq!(
        reply(sub, &mut inbox, &id, short).await["result"]["reports"][0]["every"],
        3
    );

    // Every event came from the active model.
    assert!(!inbox.seen.events.is_empty());
    for e in &inbox.seen.events {
        assert_eq!(
            e.model.name, "nanodet-g-416",
            "an event from the shadow: {e:?}"
        );
    }
    // Every step is in the audit log.
    let audit = std::fs::read_to_string(work.path().join("state/audit.jsonl")).unwrap();
    assert!(audit.matches("\"shadow_start\"").count() >= 7, "{audit}");
    assert!(audit.contains("\"shadow_stop\""));
    daemon.stop().await;
}
