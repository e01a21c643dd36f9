//! One case per violation across restarts, reloads and model swaps, and suppressions that outlast them —
//! against the real parts: the clip served over RTSP, the `streetsight` binary (killed with SIGKILL,
//! stopped with SIGTERM, reloaded), a real mosquitto and a dispatcher that sends commands.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use streetsight::cli::demo::{Mosquitto, free_port};
use streetsight::incident::{Phase, ResolveReason};
use support::dispatch::*;
use support::*;

/// One camera whose crowd zone holds while two or more people walk in it (the clip always shows 5–8):
/// a crowd that goes on for as long as the clip plays, and ends when the street is empty.
fn config(camera: &str, broker: &str, state: &Path, bundle: &Path, min_density: f64) -> String {
    format!(
        r#"[device]
id = "demo-pole"
[uplink]
broker = "{broker}"
command_wait_s = {wait}
[storage]
state_dir = "{state}"
[models.nanodet]
path = "{bundle}"
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
levels = [{{ name = "busy", min_density = {min_density} }}]
sustain_s = 2
clear_s = 8
incident = {{ update_interval_s = 4, cooldown_s = 600 }}
"#,
        state = state.display(),
        bundle = bundle.display(),
        wait = scaled(Duration::from_secs(20)).as_secs(),
    )
}

/// `streetsight run` on `config`, its log in `log`.
fn start(config: &Path, log: &Path) -> KillOnDrop {
    let log = std::fs::File::create(log).unwrap();
    KillOnDrop(
        streetsight_bin()
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// Wait until the daemon's retained status says `online` after `from` status messages.
async fn online(sub: &streetsight::cli::demo::Subscriber, inbox: &mut Inbox) {
    let from = inbox.seen.status.len();
    assert!(
        wait_for(sub, inbox, Duration::from_secs(60), |i| {
            i.seen.status[from.min(i.seen.status.len())..]
                .iter()
                .any(|s| s["state"] == "online")
        })
        .await,
        "the daemon never came online"
    );
}

/// The events seen since `from`, as (phase, incident, reason); a redelivery of an earlier event (at least
/// once: one published just before a SIGKILL goes again) is not a new one.
fn since(inbox: &Inbox, from: usize) -> Vec<(Phase, String, Option<ResolveReason>)> {
    let (before, after) = inbox.seen.events.split_at(from);
    after
        .iter()
        .filter(|e| !before.iter().any(|b| b.event_id == e.event_id))
        .map(|e| (e.phase, e.incident_id.clone(), e.reason))
        .collect()
}

async fn open_incidents(
    sub: &streetsight::cli::demo::Subscriber,
    inbox: &mut Inbox,
    d: &mut Dispatcher,
) -> Vec<String> {
    let (id, _) = d.send("incidents", json!({})).await;
    let r = reply(sub, inbox, &id, Duration::from_secs(15)).await;
    assert_eq!(r["ok"], true, "{r}");
    r["result"]["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["incident_id"].as_str().unwrap().to_string())
        .collect()
}

/// After a restart or reload: the case goes on — an `updated` event of the same incident once the rule
/// confirms it again — and nothing else opens or resolves.
async fn continues(
    sub: &streetsight::cli::demo::Subscriber,
    inbox: &mut Inbox,
    d: &mut Dispatcher,
    incident: &str,
    from: usize,
    after: chrono::DateTime<chrono::Utc>,
    what: &str,
) {
    // Made by the new process (not an update from before that was still queued).
    let made_after = |e: &streetsight::incident::IncidentEvent| {
        chrono::DateTime::parse_from_rfc3339(&e.time).unwrap() > after
    };
    let updated = wait_for(sub, inbox, Duration::from_secs(60), |i| {
        i.seen.events[from..]
            .iter()
            .any(|e| e.phase == Phase::Updated && e.incident_id == incident && made_after(e))
    })
    .await;
    let events = since(inbox, from);
    assert!(updated, "{what}: no update of {incident}: {events:?}");
    assert!(
        events
            .iter()
            .all(|(p, id, _)| id == incident && *p == Phase::Updated),
        "{what}: one case goes on, nothing opens or resolves: {events:?}"
    );
    assert_eq!(
        open_incidents(sub, inbox, d).await,
        vec![incident.to_string()],
        "{what}: the incidents command lists the same case"
    );
}

/// A clip of an empty street: black frames, encoded like a camera's.
fn empty_clip(path: &Path) {
    let status = std::process::Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "pattern=black",
            "num-buffers=100",
            "!",
            "video/x-raw,width=768,height=576,framerate=10/1",
            "!",
            "x264enc",
            "key-int-max=10",
            "!",
            "h264parse",
            "!",
            "mp4mux",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", path.display()))
        .status()
        .expect("gst-launch-1.0 is installed");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_crowd_goes_on_across_kill_stop_reload_and_model_swap_and_ends_when_the_street_empties()
 {
    streetsight::daemon::init_process().unwrap();
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let port = free_port().unwrap();
    let mut camera = Some(ServedClip::start(port));
    let broker = Mosquitto::start(0).unwrap();
    let path = work.path().join("streetsight.toml");
    let bundle = model_dir();
    std::fs::write(
        &path,
        config(&ServedClip::url(port), &broker.url(), &state, &bundle, 2.0),
    )
    .unwrap();
    let sub = streetsight::cli::demo::Subscriber::connect(&broker.url(), &format!("{BASE}/#"))
        .await
        .unwrap();
    let mut d = Dispatcher::connect(&broker.url()).await;
    let mut inbox = Inbox::default();
    let log = |n: u32| work.path().join(format!("daemon-{n}.log"));

    let mut daemon = start(&path, &log(1));
    assert!(
        wait_for(&sub, &mut inbox, Duration::from_secs(90), |i| {
            i.seen.events.iter().any(|e| e.phase == Phase::Opened)
        })
        .await,
        "no crowd incident opened; see {}",
        log(1).display()
    );
    let incident = inbox.seen.events[0].incident_id.clone();
    let first_seen = inbox.seen.events[0].first_seen.clone();

    // --- SIGKILL (a power cut of the process), then SIGTERM (systemctl restart): each time the same case
    // goes on after the restart.
    for (n, how) in [(2, "SIGKILL"), (3, "SIGTERM")] {
        match how {
            "SIGKILL" => daemon.0.kill().unwrap(),
            _ => terminate(&daemon.0),
        }
        daemon.0.wait().unwrap();
        let (from, after) = (inbox.seen.events.len(), chrono::Utc::now());
        daemon = start(&path, &log(n));
        online(&sub, &mut inbox).await;
        let what = format!("after {how}");
        continues(&sub, &mut inbox, &mut d, &incident, from, after, &what).await;
    }

    // --- Reload with a changed threshold and a swapped model bundle: one case, and the next event names
    // the new model.
    let swapped = work.path().join("nanodet-1.1");
    std::fs::create_dir(&swapped).unwrap();
    std::os::unix::fs::symlink(bundle.join("model.onnx"), swapped.join("model.onnx")).unwrap();
    let manifest = std::fs::read_to_string(bundle.join("manifest.toml")).unwrap();
    std::fs::write(
        swapped.join("manifest.toml"),
        manifest.replace("version = \"1.0.0\"", "version = \"1.1.0\""),
    )
    .unwrap();
    std::fs::write(
        &path,
        config(&ServedClip::url(port), &broker.url(), &state, &swapped, 2.5),
    )
    .unwrap();
    let (from, after) = (inbox.seen.events.len(), chrono::Utc::now());
    let (id, _) = d.send("reload", json!({})).await;
    let r = reply(&sub, &mut inbox, &id, Duration::from_secs(60)).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["cameras_restarted"], json!(["cam"]));
    continues(
        &sub,
        &mut inbox,
        &mut d,
        &incident,
        from,
        after,
        "after the reload",
    )
    .await;
    let next = inbox.seen.events[from..].last().unwrap();
    assert_eq!(next.model.version, "1.1.0", "the swap is in the next event");
    assert_eq!(
        next.first_seen, first_seen,
        "still the case that began then"
    );

    // --- The street empties while the agent is stopped: after the restart the case resolves (cleared),
    // and nothing is left open.
    terminate(&daemon.0);
    daemon.0.wait().unwrap();
    drop(camera.take());
    let empty = work.path().join("empty.mp4");
    empty_clip(&empty);
    let _empty_camera = support::ServedClip(
        streetsight_bin()
            .arg("serve-clip")
            .arg(&empty)
            .args(["--port", &port.to_string(), "--mount", "/cam"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let from = inbox.seen.events.len();
    let mut daemon = start(&path, &log(4));
    assert!(
        wait_for(&sub, &mut inbox, Duration::from_secs(60), |i| {
            i.seen.events[from..]
                .iter()
                .any(|e| e.phase == Phase::Resolved)
        })
        .await,
        "the case never resolved on the empty street; see {}",
        log(4).display()
    );
    assert_eq!(
        since(&inbox, from),
        vec![(
            Phase::Resolved,
            incident.clone(),
            Some(ResolveReason::Cleared)
        )]
    );
    assert!(open_incidents(&sub, &mut inbox, &mut d).await.is_empty());
    terminate(&daemon.0);
    daemon.0.wait().unwrap();

    // Over the whole run: one case opened (its event perhaps delivered twice around the SIGKILL: at least
    // once, same event id), and it resolved once.
    let mut opened: Vec<(&String, &String)> = inbox
        .seen
        .events
        .iter()
        .filter(|e| e.phase == Phase::Opened)
        .map(|e| (&e.incident_id, &e.event_id))
        .collect();
    opened.dedup();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0].0, &incident);
}

/// The crowd incident of camera `cam` in zone `all`, for the suppress commands.
fn scope(camera: Option<&str>, duration_s: Option<u64>) -> Value {
    let mut v = json!({ "category": "crowd_density", "zone": "all" });
    if let Some(c) = camera {
        v["camera"] = json!(c);
    }
    if let Some(s) = duration_s {
        v["duration_s"] = json!(s);
    }
    v
}

async fn ok(
    sub: &streetsight::cli::demo::Subscriber,
    inbox: &mut Inbox,
    d: &mut Dispatcher,
    name: &str,
    fields: Value,
) -> Value {
    let (id, _) = d.send(name, fields).await;
    let r = reply(sub, inbox, &id, Duration::from_secs(30)).await;
    assert_eq!(r["ok"], true, "{name}: {r}");
    r["result"].clone()
}

/// Nothing opens for `quiet` (the crowd is there all along).
async fn stays_muted(
    sub: &streetsight::cli::demo::Subscriber,
    inbox: &mut Inbox,
    quiet: Duration,
    what: &str,
) {
    let from = inbox.seen.events.len();
    wait_for(sub, inbox, quiet, |_| false).await;
    let events = since(inbox, from);
    assert!(
        events.iter().all(|(p, _, _)| *p == Phase::Resolved),
        "{what}: muted, nothing opens: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressions_outlast_restart_and_reload_combine_and_are_lifted_by_command() {
    streetsight::daemon::init_process().unwrap();
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let camera = streetsight::cli::demo::ClipServer::start(
        streetsight::cli::demo::Clip::load(&clip_path()).unwrap(),
        0,
        "/cam",
        None,
    )
    .unwrap();
    let broker = Mosquitto::start(0).unwrap();
    let text = |min_density| {
        config(
            &camera.url("/cam"),
            &broker.url(),
            &state,
            &model_dir(),
            min_density,
        )
    };
    let (daemon, mut d, mut inbox) =
        commanded_daemon(load_config(work.path(), &text(2.0)), &broker.url()).await;
    let sub = &daemon.sub;
    assert!(
        wait_for(sub, &mut inbox, Duration::from_secs(90), |i| {
            i.seen.events.iter().any(|e| e.phase == Phase::Opened)
        })
        .await,
        "no crowd incident opened"
    );

    // A 15-minute mute for this camera, then a shorter one for every camera: both are in force, the
    // longer one wins for this camera. A second mute of the same scope keeps the later end.
    let r = ok(
        sub,
        &mut inbox,
        &mut d,
        "suppress",
        scope(Some("cam"), Some(900)),
    )
    .await;
    assert_eq!(r["cameras"], json!(["cam"]));
    ok(sub, &mut inbox, &mut d, "suppress", scope(None, Some(120))).await;
    let r = ok(sub, &mut inbox, &mut d, "suppress", scope(None, Some(30))).await;
    assert!(r["note"].as_str().unwrap().contains("longer"), "{r}");
    let list = ok(sub, &mut inbox, &mut d, "suppressions", json!({})).await;
    let list = list["suppressions"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list[0]["remaining_s"].as_u64().unwrap() > 800);
    assert!((100..=120).contains(&list[1]["remaining_s"].as_u64().unwrap()));
    assert!(
        wait_for(sub, &mut inbox, Duration::from_secs(30), |i| {
            i.seen
                .events
                .iter()
                .any(|e| e.reason == Some(ResolveReason::Suppressed))
        })
        .await,
        "the open case resolves as a false alarm"
    );

    // --- Restart: still muted, still listed.
    daemon.stop().await;
    drop(d);
    let (daemon, mut d, mut inbox2) =
        commanded_daemon(load_config(work.path(), &text(2.0)), &broker.url()).await;
    let sub = &daemon.sub;
    stays_muted(sub, &mut inbox2, Duration::from_secs(12), "after a restart").await;
    let list = ok(sub, &mut inbox2, &mut d, "suppressions", json!({})).await;
    assert_eq!(list["suppressions"].as_array().unwrap().len(), 2);

    // --- Reload with a changed threshold (a new rule for the camera): still muted.
    std::fs::write(work.path().join("streetsight.toml"), text(2.5)).unwrap();
    let r = ok(sub, &mut inbox2, &mut d, "reload", json!({})).await;
    assert_eq!(r["cameras_restarted"], json!(["cam"]));
    stays_muted(sub, &mut inbox2, Duration::from_secs(12), "after a reload").await;

    // --- Lifting the camera's mute leaves the one for every camera in force, and says so.
    let r = ok(
        sub,
        &mut inbox2,
        &mut d,
        "unsuppress",
        scope(Some("cam"), None),
    )
    .await;
    assert_eq!(r["lifted"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["still_in_force"].as_array().unwrap().len(), 1, "{r}");
    stays_muted(
        sub,
        &mut inbox2,
        Duration::from_secs(8),
        "under the mute for every camera",
    )
    .await;

    // --- Lifting that one too: the crowd opens a new case.
    let from = inbox2.seen.events.len();
    let r = ok(sub, &mut inbox2, &mut d, "unsuppress", scope(None, None)).await;
    assert_eq!(r["still_in_force"], json!([]));
    assert!(
        wait_for(sub, &mut inbox2, Duration::from_secs(60), |i| {
            i.seen.events[from..]
                .iter()
                .any(|e| e.phase == Phase::Opened)
        })
        .await,
        "lifted, the crowd opens a case again"
    );
    let (id, _) = d.send("unsuppress", scope(None, None)).await;
    assert_eq!(
        error_code(&reply(sub, &mut inbox2, &id, Duration::from_secs(15)).await),
        "not_found"
    );
    let list = ok(sub, &mut inbox2, &mut d, "suppressions", json!({})).await;
    assert_eq!(list["suppressions"], json!([]));
    daemon.stop().await;
    drop(inbox);
}
