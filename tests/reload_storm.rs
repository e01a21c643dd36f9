//! Storms and oversized input against the real parts (the clip over RTSP, NanoDet, mosquitto): reloads run
//! one at a time — each one is applied or answered `busy`, models are never loaded many times over in
//! parallel, memory stays bounded; once-fatal configuration values are refused on reload; a command with a
//! 5 MB field is refused unread and cannot wash the audit log's history away.

mod support;

use serde_json::json;
use std::time::Duration;
use streetsight::cli::demo::{Clip, ClipServer, Mosquitto, demo_config};
use support::dispatch::*;
use support::*;

fn frames_total(http: u16) -> u64 {
    let (_, text) = http_get(http, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("streetsight_camera_frames_total{camera=\"walkway\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no frames_total in:\n{text}")) as u64
}

fn rss_mb() -> u64 {
    streetsight::base::process_rss_bytes().unwrap_or(0) / (1024 * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_reloads_is_applied_one_at_a_time_and_the_rest_answered_busy() {
    streetsight::ops::init_logging("info");
    streetsight::daemon::init_process().unwrap();
    let camera = ClipServer::start(Clip::load(&clip_path()).unwrap(), 0, "/walkway", None).unwrap();
    let broker = Mosquitto::start(0).unwrap();
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let http = streetsight::cli::demo::free_port().unwrap();
    let text = demo_config(&camera.url("/walkway"), &broker.url(), &model_dir(), &state)
        + &format!("\n[ops]\nhttp = \"127.0.0.1:{http}\"\n");
    let loaded = load_config(work.path(), &text);
    let (daemon, mut d, mut inbox) = commanded_daemon(loaded, &broker.url()).await;
    let sub = &daemon.sub;
    let (id, _) = d.send("snapshot", json!({ "camera": "walkway" })).await;
    assert_eq!(
        reply(sub, &mut inbox, &id, Duration::from_secs(30)).await["ok"],
        true
    );
    let before = rss_mb();
    let frames_before = frames_total(http);
    let statuses_before = inbox.seen.status.len();

    // Twenty reloads at once (the command inbox holds 32).
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(d.send("reload", json!({})).await.0);
    }
    let (mut applied, mut busy) = (0, 0);
    for id in &ids {
        let r = reply(sub, &mut inbox, id, Duration::from_secs(120)).await;
        if r["ok"] == true {
            applied += 1;
        } else {
            assert_eq!(error_code(&r), "busy", "{r}");
            busy += 1;
        }
    }
    let after = rss_mb();
    // The applied reload republished the retained status at once (not at its 30 s refresh).
    assert!(
        wait_for(sub, &mut inbox, Duration::from_secs(5), |i| i
            .seen
            .status
            .len()
            > statuses_before)
        .await,
        "no status within 5 s of a reload"
    );
    println!("reload storm: {applied} applied, {busy} busy; RSS {before} → {after} MB");
    assert!(applied >= 1, "at least the first reload is applied");
    assert!(
        busy >= 1,
        "reloads that arrive while one is prepared are refused, not stacked"
    );
    // One model loaded at a time: a reload holds at most the running model and the new one.
    assert!(
        after < before + 150,
        "RSS grew from {before} to {after} MB over the storm"
    );
    let (id, _) = d.send("snapshot", json!({ "camera": "walkway" })).await;
    assert_eq!(
        reply(sub, &mut inbox, &id, Duration::from_secs(60)).await["ok"],
        true,
        "the daemon still answers after the storm"
    );
    // The restarted camera's counters went on from where they were.
    let frames_after = frames_total(http);
    assert!(
        frames_after >= frames_before && frames_before > 0,
        "frames_total went {frames_before} → {frames_after} over a reload"
    );

    // Values that once passed the checks and then killed the daemon on reload: refused, and it runs on.
    let path = work.path().join("streetsight.toml");
    for (find, replace) in [
        ("sustain_s = 3", "sustain_s = inf"),
        (
            "[uplink]\n",
            "[uplink]\ncommand_max_skew_s = 9223372036854775807\n",
        ),
        ("[uplink]\n", "[uplink]\ntopic_prefix = \"city/+/#\"\n"),
    ] {
        assert!(
            text.contains(find),
            "{find:?} not in the demo configuration"
        );
        std::fs::write(&path, text.replacen(find, replace, 1)).unwrap();
        let (id, _) = d.send("reload", json!({})).await;
        let r = reply(sub, &mut inbox, &id, Duration::from_secs(60)).await;
        assert_eq!(error_code(&r), "invalid_config", "{replace}: {r}");
        let (id, _) = d.send("snapshot", json!({ "camera": "walkway" })).await;
        assert_eq!(
            reply(sub, &mut inbox, &id, Duration::from_secs(60)).await["ok"],
            true,
            "alive after refusing {replace}"
        );
    }

    // A command with a 5 MB field: refused without being read, and the audit log keeps its history.
    let audit_path = state.join("audit.jsonl");
    let history_before = std::fs::read_to_string(&audit_path)
        .unwrap()
        .lines()
        .count();
    let huge = format!(
        r#"{{"request_id":"req-huge","timestamp":"{}","nonce":"nonce-huge-0001","camera":"{}"}}"#,
        chrono::Utc::now().to_rfc3339(),
        "x".repeat(5 * 1024 * 1024)
    );
    d.raw("snapshot", huge, false).await;
    let r = reply(sub, &mut inbox, "unknown", Duration::from_secs(60)).await;
    assert_eq!(error_code(&r), "too_large", "{r}");
    assert!(
        r.to_string().len() < 1024,
        "the reply echoes nothing of the field"
    );
    let (id, _) = d.send("snapshot", json!({ "camera": "walkway" })).await;
    assert_eq!(
        reply(sub, &mut inbox, &id, Duration::from_secs(60)).await["ok"],
        true
    );
    daemon.stop().await;
    let history = streetsight::control::audit::AuditLog::read_since(&audit_path, 0);
    assert!(
        history.len() > history_before,
        "every earlier entry is still there: {} before, {} after",
        history_before,
        history.len()
    );
    let refusal = history
        .iter()
        .find(|e| e.outcome == "refused" && e.detail.to_string().contains("too_large"))
        .expect("the refusal is audited");
    assert!(refusal.detail.to_string().len() < 1024);
    let bytes: u64 = std::fs::read_dir(&state)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("audit.jsonl"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(bytes < 1024 * 1024, "the audit log is {bytes} bytes");
}
