//! Remote commands against the real parts: the clip served over RTSP, the daemon with NanoDet, a real
//! mosquitto, and a dispatcher-side client that publishes `cmd/{name}` and reads `cmd_result/{id}`.
//! Every happy path, and every kind of bad command, which must get an error reply and change nothing.

mod support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use streetsight::cli::demo::{Clip, ClipServer, Mosquitto, demo_config};
use streetsight::incident::{Phase, ResolveReason, Verification};
use support::dispatch::*;
use support::*;

fn config(camera: &str, broker: &str, state: &std::path::Path, attention: f64) -> String {
    // Under emulation a frame takes many seconds to analyse: commands wait correspondingly longer.
    let wait = format!(
        "[uplink]\ncommand_wait_s = {}\n",
        scaled(Duration::from_secs(20)).as_secs()
    );
    demo_config(camera, broker, &model_dir(), state)
        .replace("min_density = 0.5", &format!("min_density = {attention}"))
        .replace("[uplink]\n", &wait)
        + r#"
[[camera.zone]]
id = "kerb"
points = [[0.0, 0.0], [0.3, 0.0], [0.3, 0.2], [0.0, 0.2]]

[[camera.scene_change]]
zone = "kerb"
category = "exposed_garbage"
persist_s = 3600
"#
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_do_what_they_say_and_bad_ones_change_nothing() {
    streetsight::ops::init_logging("info");
    streetsight::daemon::init_process().unwrap();
    let camera = ClipServer::start(Clip::load(&clip_path()).unwrap(), 0, "/walkway", None).unwrap();
    let broker = Mosquitto::start(0).unwrap();
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let cam_url = camera.url("/walkway");
    let loaded = load_config(work.path(), &config(&cam_url, &broker.url(), &state, 0.5));
    // The daemon subscribes to commands once connected: its `online` status says it is.
    let (daemon, mut d, mut inbox) = commanded_daemon(loaded, &broker.url()).await;
    let sub = &daemon.sub;
    let short = Duration::from_secs(15);

    // --- Bad commands: each gets an error reply.
    d.raw("reload", "{not json", false).await;
    let r = reply(sub, &mut inbox, "unknown", short).await;
    assert_eq!(error_code(&r), "malformed");
    inbox.replies.remove("unknown");

    let (id, _) = d.send("reboot", json!({})).await;
    assert_eq!(
        error_code(&reply(sub, &mut inbox, &id, short).await),
        "unknown_command"
    );

    let (id, _) = d.send("verify", json!({})).await;
    let r = reply(sub, &mut inbox, &id, short).await;
    assert_eq!(error_code(&r), "missing_field");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("incident_id")
    );

    let stale = json!({
        "request_id": "req-stale", "nonce": "nonce-stale-0001", "camera": "walkway",
        "timestamp": (chrono::Utc::now() - chrono::Duration::minutes(10)).to_rfc3339(),
    });
    d.raw("snapshot", stale.to_string(), false).await;
    assert_eq!(
        error_code(&reply(sub, &mut inbox, "req-stale", short).await),
        "stale"
    );

    let (id, _) = d
        .send("verify", json!({ "incident_id": "no-such-incident" }))
        .await;
    assert_eq!(
        error_code(&reply(sub, &mut inbox, &id, short).await),
        "not_found"
    );

    let (id, _) = d
        .send(
            "suppress",
            json!({ "category": "crowd_density", "zone": "nowhere", "duration_s": 60 }),
        )
        .await;
    assert_eq!(
        error_code(&reply(sub, &mut inbox, &id, short).await),
        "not_found"
    );

    let (warmup, warmup_failed) = first_frame(&mut d, sub, &mut inbox, "walkway").await;
    let (id, _) = d
        .send(
            "scene_reference",
            json!({ "camera": "walkway", "zone": "walkway" }),
        )
        .await;
    let r = reply(sub, &mut inbox, &id, Duration::from_secs(30)).await;
    assert_eq!(error_code(&r), "failed");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no scene-change zone"),
        "{r}"
    );

    // --- Snapshot: a fresh annotated frame, hash in the reply; then the same command replayed.
    let (id, sent) = d.send("snapshot", json!({ "camera": "walkway" })).await;
    let r = reply(sub, &mut inbox, &id, Duration::from_secs(30)).await;
    assert_eq!(r["ok"], true, "{r}");
    let topic = r["result"]["topic"].as_str().unwrap().to_string();
    assert_eq!(topic, format!("snapshot/{id}"));
    assert!(wait_for(sub, &mut inbox, short, |i| i.snapshots.contains_key(&id)).await);
    let jpeg = &inbox.snapshots[&id];
    assert_eq!(streetsight::base::sha256_hex(jpeg), r["result"]["sha256"]);
    let img = image::load_from_memory(jpeg).unwrap();
    assert_eq!((img.width(), img.height()), (768, 576));
    inbox.replies.remove(&id);
    d.raw("snapshot", sent.to_string(), false).await;
    assert_eq!(
        error_code(&reply(sub, &mut inbox, &id, short).await),
        "replayed"
    );
    // Published retained, it reaches the agent now as a live (replayed) message; were it delivered again at a
    // later subscription it would carry the retain flag and be refused for that.
    inbox.replies.remove(&id);
    d.raw("snapshot", sent.to_string(), true).await;
    assert_eq!(
        error_code(&reply(sub, &mut inbox, &id, short).await),
        "replayed"
    );
    d.raw("snapshot", Vec::new(), true).await; // clears the retained message

    // --- Scene reference: taken from the next frame and kept on disk.
    let (id, _) = d
        .send(
            "scene_reference",
            json!({ "camera": "walkway", "zone": "kerb" }),
        )
        .await;
    let r = reply(sub, &mut inbox, &id, Duration::from_secs(30)).await;
    assert_eq!(r["ok"], true, "{r}");
    assert!(state.join("scene/walkway--kerb.ref").exists());
    // The retained status shows the zone's reference (published when it changed, not at the next refresh).
    assert!(
        wait_for(sub, &mut inbox, Duration::from_secs(30), |i| {
            i.seen.status.iter().any(|s| {
                s["cameras"].as_array().is_some_and(|cams| {
                    cams.iter().any(|c| {
                        c["id"] == "walkway"
                            && c["scene_zones"].as_array().is_some_and(|z| {
                                z.contains(&json!({ "zone": "kerb", "reference": true }))
                            })
                    })
                })
            })
        })
        .await,
        "no status with kerb's reference"
    );

    // --- Verify the crowd incident the walkers raise.
    let incident = opened_incident(sub, &mut inbox, Duration::from_secs(90)).await;
    let (id, _) = d.send("verify", json!({ "incident_id": incident })).await;
    let r = reply(sub, &mut inbox, &id, Duration::from_secs(60)).await;
    if r["ok"] == false {
        // The only acceptable failure: the incident cleared on its own while being verified.
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("resolved on its own"),
            "{r}"
        );
    } else {
        let result = r["result"]["result"].as_str().unwrap();
        assert_eq!(r["result"]["samples"], 3);
        let ids: Vec<String> = serde_json::from_value(r["result"]["event_ids"].clone()).unwrap();
        assert!(
            wait_for(sub, &mut inbox, short, |i| {
                ids.iter()
                    .all(|x| i.seen.events.iter().any(|e| &e.event_id == x))
            })
            .await
        );
        let verified = inbox
            .seen
            .events
            .iter()
            .find(|e| e.event_id == ids[0])
            .unwrap();
        assert_eq!(verified.phase, Phase::Verified);
        assert_eq!(verified.incident_id, incident);
        assert_eq!(verified.request_id.as_deref(), Some(id.as_str()));
        let r0 = &verified.evidence[0];
        let jpeg = &inbox.seen.evidence[r0.topic.strip_prefix("evidence/").unwrap()];
        assert_eq!(
            streetsight::base::sha256_hex(jpeg),
            r0.sha256,
            "fresh evidence with its hash"
        );
        match result {
            "still_present" => {
                assert_eq!(verified.verification, Some(Verification::StillPresent));
                assert_eq!(ids.len(), 1);
            }
            "cleared" => {
                assert_eq!(verified.verification, Some(Verification::Cleared));
                let resolved = inbox
                    .seen
                    .events
                    .iter()
                    .find(|e| e.event_id == ids[1])
                    .unwrap();
                assert_eq!(resolved.reason, Some(ResolveReason::VerifiedCleared));
            }
            other => panic!("unexpected verify result {other}"),
        }
    }

    // --- Suppress: the open crowd incident resolves as a false alarm and no new one opens.
    let (id, _) = d
        .send(
            "suppress",
            json!({ "category": "crowd_density", "zone": "walkway", "duration_s": 600 }),
        )
        .await;
    let r = reply(sub, &mut inbox, &id, short).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["cameras"], json!(["walkway"]));
    let suppressed_at = inbox.seen.events.len();
    tokio::time::sleep(Duration::from_secs(12)).await;
    wait_for(sub, &mut inbox, Duration::from_millis(500), |_| false).await;
    let after: Vec<_> = inbox.seen.events[suppressed_at..].iter().collect();
    assert!(
        after.iter().all(|e| e.phase == Phase::Resolved),
        "only a resolution after the suppression: {:?}",
        after
            .iter()
            .map(|e| (e.phase, e.reason))
            .collect::<Vec<_>>()
    );

    // --- Reload: a broken file is refused with its line, and the running configuration stays.
    let path = work.path().join("streetsight.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        good.replace(
            "[[0.0, 0.0], [0.3, 0.0], [0.3, 0.2], [0.0, 0.2]]",
            "[[0.0, 0.0], [0.3, 0.0]]",
        ),
    )
    .unwrap();
    let (id, _) = d.send("reload", json!({})).await;
    let r = reply(sub, &mut inbox, &id, Duration::from_secs(30)).await;
    assert_eq!(error_code(&r), "invalid_config");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("streetsight.toml:"),
        "{r}"
    );
    let (id, _) = d.send("snapshot", json!({ "camera": "walkway" })).await;
    assert_eq!(
        reply(sub, &mut inbox, &id, Duration::from_secs(30)).await["ok"],
        true,
        "still running"
    );

    // A valid change is applied: the camera restarts with the new rule; an uplink change needs a restart.
    std::fs::write(
        &path,
        config(&cam_url, &broker.url(), &state, 0.34)
            .replace("telemetry_s = 10", "telemetry_s = 20"),
    )
    .unwrap();
    let (id, _) = d.send("reload", json!({})).await;
    let r = reply(sub, &mut inbox, &id, Duration::from_secs(60)).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["cameras_restarted"], json!(["walkway"]));
    assert_eq!(r["result"]["restart_required"], json!(["uplink"]));
    let (id, _) = d.send("snapshot", json!({ "camera": "walkway" })).await;
    assert_eq!(
        reply(sub, &mut inbox, &id, Duration::from_secs(30)).await["ok"],
        true,
        "cameras back after reload"
    );
    // The suppression outlasts the reload; lifted, the new rule opens an incident again.
    let (id, _) = d.send("suppressions", json!({})).await;
    let r = reply(sub, &mut inbox, &id, short).await;
    assert_eq!(r["result"]["suppressions"][0]["zone"], "walkway", "{r}");
    let before = inbox.seen.events.len();
    let (id, _) = d
        .send(
            "unsuppress",
            json!({ "category": "crowd_density", "zone": "walkway" }),
        )
        .await;
    assert_eq!(reply(sub, &mut inbox, &id, short).await["ok"], true);
    assert!(
        wait_for(sub, &mut inbox, Duration::from_secs(60), |i| {
            i.seen.events[before..]
                .iter()
                .any(|e| e.phase == Phase::Opened)
        })
        .await,
        "the reloaded rule works"
    );

    // SIGHUP (systemctl reload) does the same, and is audited as coming from a signal.
    std::fs::write(&path, config(&cam_url, &broker.url(), &state, 0.5)).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let audit_path = state.join("audit.jsonl");
    let deadline = Instant::now() + scaled(Duration::from_secs(60));
    while !std::fs::read_to_string(&audit_path)
        .unwrap()
        .contains(r#""source":"signal","command":"reload""#)
        || !std::fs::read_to_string(&audit_path)
            .unwrap()
            .lines()
            .any(|l| l.contains(r#""source":"signal""#) && l.contains(r#""outcome":"done""#))
    {
        assert!(Instant::now() < deadline, "SIGHUP reload not audited");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (id, _) = d.send("snapshot", json!({ "camera": "walkway" })).await;
    assert_eq!(
        reply(sub, &mut inbox, &id, Duration::from_secs(30)).await["ok"],
        true,
        "running after a SIGHUP reload"
    );

    daemon.stop().await;

    // --- The audit log has every command, accepted or refused, and what became of it.
    let audit = std::fs::read_to_string(state.join("audit.jsonl")).unwrap();
    let entries: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |cmd: &str, outcome: &str| {
        entries
            .iter()
            .filter(|e| e["command"] == cmd && e["outcome"] == outcome)
            .count()
    };
    assert_eq!(count("snapshot", "accepted"), 4 + warmup);
    assert_eq!(count("snapshot", "done"), 4 + warmup - warmup_failed);
    assert!(
        count("snapshot", "refused") >= 3,
        "stale, replayed, retained"
    );
    assert_eq!(count("reload", "accepted"), 3, "two commands and a signal");
    assert_eq!(count("reload", "failed"), 1);
    assert_eq!(count("reload", "done"), 2);
    assert_eq!(count("suppress", "done"), 1);
    assert_eq!(count("unsuppress", "done"), 1);
    assert_eq!(count("reboot", "refused"), 1);
    assert!(
        state.join("evidence").read_dir().unwrap().count() > 0,
        "evidence kept on the gateway"
    );
}
