//! A storm of reload commands against the real parts (the clip over RTSP, NanoDet, mosquitto): reloads run
//! one at a time — each one is applied or answered `busy`, models are never loaded many times over in
//! parallel, memory stays bounded, and the daemon keeps answering.

mod support;

use serde_json::json;
use std::time::Duration;
use streetsight::cli::demo::{Clip, ClipServer, Mosquitto, demo_config};
use support::dispatch::*;
use support::*;

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
    let text = demo_config(&camera.url("/walkway"), &broker.url(), &model_dir(), &state);
    let loaded = load_config(work.path(), &text);
    let daemon = RunningDaemon::start(loaded, &broker.url(), &format!("{BASE}/#")).await;
    let mut d = Dispatcher::connect(&broker.url()).await;
    let mut inbox = Inbox::default();
    let sub = &daemon.sub;
    assert!(
        wait_for(sub, &mut inbox, Duration::from_secs(30), |i| {
            i.seen.status.iter().any(|s| s["state"] == "online")
        })
        .await
    );
    let (id, _) = d.send("snapshot", json!({ "camera": "walkway" })).await;
    assert_eq!(
        reply(sub, &mut inbox, &id, Duration::from_secs(30)).await["ok"],
        true
    );
    let before = rss_mb();

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
    daemon.stop().await;
}
