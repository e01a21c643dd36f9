//! The city-side bridge on real parts: a real PostgreSQL cluster, a real mosquitto (MQTT 5 shared
//! subscription, the bridge's persistent session), the bridge itself, and a pole that is a real MQTT client
//! publishing events and evidence in the agent's own format. The work-order system is the reference server
//! of docs/bridge.md (tests/support/workorder.rs) — the one test double, because every city's is its own.
//!
//! - an incident's `opened`, its duplicate, `updated`, `resolved` and a reopen → exactly one case, with the
//!   mapping's fields (a Chinese description in local time, the city's type code, the grid code, the
//!   channel id) and an evidence URL that serves the picture, refuses a changed expiry and expires;
//! - the work-order system down → nothing lost: the cases are created after it returns, in order;
//! - a refused case (422) → a dead letter, counted in `/metrics`;
//! - the bridge stopped while poles go on publishing, then started again → those events become cases, a
//!   redelivered event none.

mod support;

use serde_json::json;
use std::time::Duration;
use streetsight::cli::demo::Mosquitto;
use support::bridge::*;
use support::postgres::Postgres;
use support::workorder::Workorder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_files_one_case_per_incident_and_loses_none_to_outages_or_restarts() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("streetsight=info")
        .with_test_writer()
        .try_init();
    let pg = Postgres::start();
    let broker = Mosquitto::start(0).unwrap();
    let wo = Workorder::start(WO_SECRET).await;
    wo.board().refuse.push("99-99".into());
    let dir = tempfile::tempdir().unwrap();
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = write_config(dir.path(), "a", broker.port, &pg, &wo, listen);
    let (stop, bridge) = start_bridge(&config);
    let pole = Pole::connect(broker.port, "pole-7").await;
    // The bridge subscribes once connected; its healthz answers once the database does.
    until("the bridge's healthz", Duration::from_secs(30), || {
        get(&format!("http://127.0.0.1:{listen}/healthz")).0 == 200
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A message the database can never take (a NUL character in its text) is dropped, not retried forever.
    let mut poison = event("inc-poison", 1, "opened", "crowd_density", &picture(5));
    poison["zone"]["name"] = json!("bad\u{0}name");
    pole.incident_event(&poison, None).await;

    // One incident's life: opened (delivered twice), updated, resolved, opened again within its cooldown.
    let a = picture(10);
    let opened = event("inc-a", 1, "opened", "crowd_density", &a);
    pole.incident_event(&opened, Some(&a)).await;
    pole.incident_event(&opened, Some(&a)).await;
    pole.incident_event(&event("inc-a", 2, "updated", "crowd_density", &a), None)
        .await;
    pole.incident_event(&event("inc-a", 3, "resolved", "crowd_density", &a), None)
        .await;
    let mut again = event("inc-a", 4, "opened", "crowd_density", &a);
    again["reopened"] = json!(true);
    pole.incident_event(&again, None).await;
    until("the first case", Duration::from_secs(20), || {
        !wo.board().cases.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (case_id, key, body) = wo.board().cases[0].clone();
    assert_eq!(
        wo.board().cases.len(),
        1,
        "one incident, one case: {:?}",
        wo.board().cases
    );
    assert_eq!(key, "streetsight-inc-a");
    println!("{case_id}: {body}");
    assert_eq!(body["title"], "人群聚集：人行道");
    assert_eq!(
        body["description"],
        "2026年11月23日 16:51，文三路7号杆（人行道，人行道）opened：crowd_density。",
        "the pole's description, as it came"
    );
    assert_eq!(
        body["filed_at"], "2026-11-23 16:51:35",
        "the bridge's own local time (Asia/Shanghai) of first_seen"
    );
    assert_eq!(
        body["address"], "文三路7号杆",
        "no address: the device's name"
    );
    assert_eq!(
        (body["type_code"].as_str(), body["grid_code"].as_str()),
        (Some("99-01"), Some("330106001002003"))
    );
    assert_eq!(body["channel_id"], "34020000085050000001");
    assert_eq!(body["latitude"], 30.2741);
    let photo = body["photos"][0]
        .as_str()
        .expect("an evidence URL")
        .to_string();
    assert_eq!(get(&photo), (200, a.clone()), "the URL serves the picture");
    let longer = photo.replace("exp=", "exp=9");
    assert_eq!(get(&longer).0, 403, "a changed expiry is not signed");
    assert_eq!(wo.board().forged, 0);

    // The work-order system down: three incidents wait, then go in order; a refused one is a dead letter.
    wo.board().down = true;
    for (i, name) in ["inc-b", "inc-c", "inc-d"].iter().enumerate() {
        let p = picture(40 + 20 * i as u8);
        pole.incident_event(&event(name, 1, "opened", "crowd_density", &p), Some(&p))
            .await;
    }
    until("failed attempts", Duration::from_secs(20), || {
        wo.board().calls >= 4
    })
    .await;
    assert_eq!(wo.board().cases.len(), 1);
    wo.board().down = false;
    until("the waiting cases", Duration::from_secs(30), || {
        wo.board().cases.len() == 4
    })
    .await;
    assert_eq!(
        incidents(&wo),
        ["inc-a", "inc-b", "inc-c", "inc-d"],
        "in the order they opened"
    );
    let e = picture(200);
    pole.incident_event(
        &event("inc-e", 1, "opened", "illegal_dumping", &e),
        Some(&e),
    )
    .await;
    let metrics =
        || String::from_utf8(get(&format!("http://127.0.0.1:{listen}/metrics")).1).unwrap();
    until("the dead letter", Duration::from_secs(20), || {
        metrics().contains("streetsight_bridge_dead_letters 1")
    })
    .await;

    // The bridge stopped while the pole goes on; started again, it takes what the broker kept for it.
    stop.trigger();
    bridge.await.unwrap().unwrap();
    let f = picture(90);
    pole.incident_event(&event("inc-f", 1, "opened", "crowd_density", &f), Some(&f))
        .await;
    pole.incident_event(&opened, Some(&a)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (stop, bridge) = start_bridge(&config);
    until(
        "the case of the event sent while the bridge was down",
        Duration::from_secs(30),
        || wo.board().cases.len() >= 5,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        incidents(&wo),
        ["inc-a", "inc-b", "inc-c", "inc-d", "inc-f"],
        "a redelivered event makes no case"
    );
    let photo = wo.board().cases[4].2["photos"][0]
        .as_str()
        .expect("the kept picture's URL")
        .to_string();
    assert_eq!(
        get(&photo),
        (200, f),
        "the picture sent while the bridge was down"
    );
    let shown = metrics();
    assert!(
        shown.contains("streetsight_bridge_cases_filed 5")
            && shown.contains("streetsight_bridge_cases_pending 0"),
        "{shown}"
    );

    // The case loop. The work-order system's webhook must be signed, and name a case the bridge filed.
    let bad = Workorder::dispose(&wo, listen, "WO-000001", b"not-the-shared-secret-at-all");
    assert_eq!(bad, 401, "an unsigned webhook does nothing");
    assert_eq!(wo.dispose(listen, "WO-999999", WO_SECRET), 404);
    pole.answers
        .lock()
        .unwrap()
        .extend([Some("still_present"), Some("cleared"), None]);
    // Disposed → the pole re-checks → still there: the case goes back.
    assert_eq!(wo.dispose(listen, "WO-000001", WO_SECRET), 202);
    until(
        "the first re-check's report",
        Duration::from_secs(20),
        || wo.board().reports.len() == 1,
    )
    .await;
    let report = check_report(
        &wo,
        0,
        "WO-000001",
        "still_present",
        "2026-11-23 18:00:00，杆端摄像机复核：问题仍然存在，退回处置。",
    );
    let fresh = report["evidence"][0]
        .as_str()
        .expect("the fresh picture's URL");
    assert_eq!(
        get(fresh),
        (200, picture(101)),
        "the re-check's own picture"
    );
    until("the returned case", Duration::from_secs(10), || {
        metrics().contains("streetsight_bridge_cases{state=\"returned\"} 1")
    })
    .await;
    // Disposed again → cleared: the case is closed.
    assert_eq!(wo.dispose(listen, "WO-000001", WO_SECRET), 202);
    until(
        "the second re-check's report",
        Duration::from_secs(20),
        || wo.board().reports.len() == 2,
    )
    .await;
    assert_eq!(wo.board().reports[1].2["result"], "cleared");
    until("the closed case", Duration::from_secs(10), || {
        metrics().contains("streetsight_bridge_cases{state=\"closed\"} 1")
    })
    .await;
    assert_eq!(
        wo.dispose(listen, "WO-000001", WO_SECRET),
        409,
        "a closed case is not re-checked"
    );
    // A pole that does not answer: after verify_timeout_s the case is reported for a person.
    assert_eq!(wo.dispose(listen, "WO-000002", WO_SECRET), 202);
    until(
        "the unanswered re-check's report",
        Duration::from_secs(30),
        || wo.board().reports.len() == 3,
    )
    .await;
    check_report(&wo, 2, "WO-000002", "no_answer", "请人工核查");
    until(
        "the case left for a person",
        Duration::from_secs(10),
        || metrics().contains("streetsight_bridge_cases{state=\"manual\"} 1"),
    )
    .await;
    // Someone disposes it again: a case left for a person can be re-checked too.
    assert_eq!(wo.dispose(listen, "WO-000002", WO_SECRET), 202);
    until(
        "its second re-check under way",
        Duration::from_secs(10),
        || metrics().contains("streetsight_bridge_cases{state=\"verifying\"} 1"),
    )
    .await;
    stop.trigger();
    bridge.await.unwrap().unwrap();
}

/// Two replicas in one group: the broker hands each a share, so an event and its picture often reach
/// different replicas — the shared database and evidence directory still make one case per incident, each
/// with its picture.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_work_and_an_event_finds_its_picture_whichever_took_it() {
    let pg = Postgres::start();
    let broker = Mosquitto::start(0).unwrap();
    let wo = Workorder::start(WO_SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (la, lb) = (port(), port());
    // Both files first: a replica reads the shared mapping file as it starts.
    let config_a = write_config(dir.path(), "a", broker.port, &pg, &wo, la);
    let config_b = write_config(dir.path(), "b", broker.port, &pg, &wo, lb);
    let (stop_a, a) = start_bridge(&config_a);
    let (stop_b, b) = start_bridge(&config_b);
    for l in [la, lb] {
        until("both replicas", Duration::from_secs(30), || {
            get(&format!("http://127.0.0.1:{l}/healthz")).0 == 200
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pole = Pole::connect(broker.port, "pole-7").await;
    let names: Vec<String> = (0..12).map(|i| format!("inc-{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        let p = picture(i as u8 * 15);
        let e = event(name, 1, "opened", "crowd_density", &p);
        pole.incident_event(&e, Some(&p)).await;
        pole.incident_event(&e, None).await; // and a duplicate
    }
    until("a case per incident", Duration::from_secs(40), || {
        wo.board().cases.len() >= names.len()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(incidents(&wo), names, "one case each, in order");
    for (_, _, body) in wo.board().cases.iter() {
        let url = body["photos"][0]
            .as_str()
            .unwrap_or_else(|| panic!("no picture: {body}"));
        assert_eq!(get(url).0, 200, "{url}");
    }
    for l in [la, lb] {
        let shown = String::from_utf8(get(&format!("http://127.0.0.1:{l}/metrics")).1).unwrap();
        let taken = |kind: &str| -> u64 {
            let line = format!("streetsight_bridge_taken_total{{kind=\"{kind}\"}} ");
            shown
                .lines()
                .find_map(|l| l.strip_prefix(line.as_str()))
                .unwrap()
                .parse()
                .unwrap()
        };
        println!(
            "replica on {l}: {} events, {} pictures",
            taken("event"),
            taken("evidence")
        );
        assert!(
            taken("event") > 0 && taken("evidence") > 0,
            "each replica took a share: {shown}"
        );
    }
    stop_a.trigger();
    stop_b.trigger();
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
}

/// The whole loop on the real pole: the daemon on the street clip over RTSP (NanoDet on ONNX Runtime), its
/// crowd incident filed as a case; the work-order system says it was disposed; the real agent re-checks
/// the zone and the bridge reports what it found, with the agent's fresh picture. Walkers come and go, so
/// the result is whatever the street shows: `cleared` closes the case, `still_present` returns it, and if
/// the incident had already resolved on its own the pole refuses the re-check and the case is left for a
/// person — each checked against the bridge's own state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_case_loop_closes_a_real_poles_case_by_itself() {
    use streetsight::cli::demo::{Clip, ClipServer, demo_config};
    streetsight::daemon::init_process().unwrap();
    let pg = Postgres::start();
    let broker = Mosquitto::start(0).unwrap();
    let wo = Workorder::start(WO_SECRET).await;
    let camera = ClipServer::start(
        Clip::load(&support::clip_path()).unwrap(),
        0,
        "/walkway",
        None,
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let text = demo_config(
        &camera.url("/walkway"),
        &broker.url(),
        &support::model_dir(),
        &work.path().join("state"),
    );
    let loaded = support::load_config(work.path(), &text);
    let (daemon, _d, _inbox) = support::dispatch::commanded_daemon(loaded, &broker.url()).await;
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (stop, bridge) = start_bridge(&write_config(
        work.path(),
        "a",
        broker.port,
        &pg,
        &wo,
        listen,
    ));

    until(
        "a case for the pole's crowd",
        Duration::from_secs(120),
        || !wo.board().cases.is_empty(),
    )
    .await;
    let (case_id, _, body) = wo.board().cases[0].clone();
    println!("{case_id}: {body}");
    assert_eq!(
        body["channel_id"], "34020000081327000001",
        "the camera's GB/T 28181 channel id"
    );
    assert_eq!(
        body["address"], "文三路7号杆东侧人行道",
        "the zone's address"
    );
    assert_eq!(body["street_office"], "330106001", "the device's extension");
    let description = body["description"].as_str().unwrap();
    assert!(
        description
            .contains("文三路7号杆东侧人行道（Walkway camera，Pedestrian walkway）发现人群聚集"),
        "the pole's own description: {body}"
    );
    let photo = body["photos"][0].as_str().expect("the evidence URL");
    let (status, jpeg) = get(photo);
    assert_eq!(status, 200);
    assert!(jpeg.starts_with(&[0xff, 0xd8]), "a JPEG");

    assert_eq!(wo.dispose(listen, &case_id, WO_SECRET), 202);
    until("the re-check's report", Duration::from_secs(90), || {
        !wo.board().reports.is_empty()
    })
    .await;
    let (_, _, report) = wo.board().reports[0].clone();
    println!("report: {report}");
    let metrics =
        || String::from_utf8(get(&format!("http://127.0.0.1:{listen}/metrics")).1).unwrap();
    let state = match report["result"].as_str().unwrap() {
        "cleared" => "closed",
        "still_present" => "returned",
        "no_answer" => {
            let why = report["description"].as_str().unwrap();
            assert!(
                why.contains("resolved on its own"),
                "only a case that ended before its re-check: {why}"
            );
            "manual"
        }
        other => panic!("unexpected result {other}"),
    };
    if state != "manual" {
        let fresh = report["evidence"][0]
            .as_str()
            .expect("the re-check's picture");
        let (status, picture) = get(fresh);
        assert_eq!(status, 200);
        assert!(
            picture.starts_with(&[0xff, 0xd8]) && picture != jpeg,
            "a fresh picture"
        );
    }
    let line = format!("streetsight_bridge_cases{{state=\"{state}\"}} 1");
    until(&line, Duration::from_secs(10), || metrics().contains(&line)).await;
    stop.trigger();
    bridge.await.unwrap().unwrap();
    daemon.stop().await;
}

/// An incident that ends on its own before anyone was sent follows the city's policy per category: a
/// stall that packed up is withdrawn (never filed if it was not yet), laundry taken in is closed (filed, then
/// reported cleared with the pole's last picture), a crowd is kept for the case loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_that_end_before_dispatch_follow_the_citys_policy() {
    let pg = Postgres::start();
    let broker = Mosquitto::start(0).unwrap();
    let wo = Workorder::start(WO_SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (stop, bridge) = start_bridge(&write_config(
        dir.path(),
        "a",
        broker.port,
        &pg,
        &wo,
        listen,
    ));
    until("the bridge", Duration::from_secs(30), || {
        get(&format!("http://127.0.0.1:{listen}/healthz")).0 == 200
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pole = Pole::connect(broker.port, "pole-7").await;
    let metrics =
        || String::from_utf8(get(&format!("http://127.0.0.1:{listen}/metrics")).1).unwrap();
    let life = |name: &str, category: &str, shade: u8| {
        let p = picture(shade);
        let opened = event(name, 1, "opened", category, &p);
        let gone = picture(shade + 1);
        let mut resolved = event(name, 2, "resolved", category, &gone);
        resolved["reason"] = json!("cleared");
        resolved["time"] = json!("2026-11-23T08:52:36.000Z");
        (p, opened, gone, resolved)
    };

    // While the system is down, a stall and laundry come and go.
    wo.board().down = true;
    let (p, opened, g, resolved) = life("stall-1", "street_vending", 10);
    pole.incident_event(&opened, Some(&p)).await;
    pole.incident_event(&resolved, Some(&g)).await;
    let (p, opened, g, resolved) = life("laundry-1", "hanging_laundry", 30);
    pole.incident_event(&opened, Some(&p)).await;
    pole.incident_event(&resolved, Some(&g)).await;
    until("the stall withdrawn", Duration::from_secs(10), || {
        metrics().contains("streetsight_bridge_cases{state=\"cancelled\"} 1")
    })
    .await;
    wo.board().down = false;
    until("the laundry closed", Duration::from_secs(30), || {
        metrics().contains("streetsight_bridge_cases{state=\"closed\"} 1")
    })
    .await;
    assert_eq!(
        incidents(&wo),
        ["laundry-1"],
        "the withdrawn stall was never filed"
    );
    let report = check_report(
        &wo,
        0,
        "WO-000001",
        "cleared",
        "事件已自行消失（目标已离开）",
    );
    assert_eq!(
        get(report["evidence"][0].as_str().unwrap()),
        (200, g),
        "the pole's last picture"
    );

    // Filed first, then gone: the stall's case is withdrawn, the crowd's kept.
    let (p, opened, g, resolved) = life("stall-2", "street_vending", 50);
    pole.incident_event(&opened, Some(&p)).await;
    let (cp, copened, cg, cresolved) = life("crowd-1", "crowd_density", 70);
    pole.incident_event(&copened, Some(&cp)).await;
    until("both filed", Duration::from_secs(20), || {
        wo.board().cases.len() == 3
    })
    .await;
    pole.incident_event(&resolved, Some(&g)).await;
    pole.incident_event(&cresolved, Some(&cg)).await;
    until("the filed stall withdrawn", Duration::from_secs(20), || {
        wo.board().reports.len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    check_report(&wo, 1, "WO-000002", "cancelled", "撤销工单");
    assert_eq!(
        wo.board().reports.len(),
        2,
        "the crowd's case is kept for the case loop"
    );
    // Two replicas may keep a pole's `resolved` before its `opened`: the case starts withdrawn all the same.
    let (p, opened, g, resolved) = life("stall-3", "street_vending", 90);
    pole.incident_event(&resolved, Some(&g)).await;
    pole.incident_event(&opened, Some(&p)).await;
    until(
        "the late-opened stall withdrawn",
        Duration::from_secs(10),
        || metrics().contains("streetsight_bridge_cases{state=\"cancelled\"} 3"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(wo.board().cases.len(), 3, "never filed");
    let shown = metrics();
    assert!(
        shown.contains("streetsight_bridge_cases{state=\"cancelled\"} 3")
            && shown.contains("streetsight_bridge_cases_filed 1"),
        "{shown}"
    );
    // The first stall back within its cooldown (the same incident): its withdrawn case is filed after all.
    let back = picture(120);
    let mut again = event("stall-1", 3, "opened", "street_vending", &back);
    again["reopened"] = json!(true);
    again["time"] = json!("2026-11-23T08:53:36.000Z");
    pole.incident_event(&again, Some(&back)).await;
    until(
        "the stall's case filed after all",
        Duration::from_secs(20),
        || wo.board().cases.len() == 4,
    )
    .await;
    assert_eq!(incidents(&wo)[3], "stall-1");
    stop.trigger();
    bridge.await.unwrap().unwrap();
}
