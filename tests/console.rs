//! The installer's console with real parts: the committed street clip served over RTSP (with a login), a
//! real mosquitto, NanoDet on ONNX Runtime, the daemon with its console, and Debian's headless Chromium
//! driven over WebDriver. First the doors: no session, another site, wrong passwords, secrets. Then an
//! installer's round: log in, see the live picture, calibrate the ground, draw a zone with the mouse,
//! attach a crowd rule, be told about a wrong value (nothing saved), save, and see the incident open in the
//! new zone from the real pedestrians. The screenshots it takes are the ones docs/console.md shows.

mod support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use streetsight::cli::demo::{Clip, ClipServer, Mosquitto, Subscriber, free_port};
use streetsight::incident::Phase;
use support::browser::{Browser, is_non_blank};
use support::*;

const PASSWORD: &str = "pole-7-installer";
const CAMERA_PASSWORD: &str = "Cam3ra-S3cret-77";

/// The pole's file as an installer finds it: one camera, one zone drawn before, a comment to keep.
fn config(camera_url: &str, broker: &str, state: &std::path::Path, port: u16) -> String {
    format!(
        r#"[device]
id = "console-pole"

[uplink]
broker = "{broker}"

[storage]
state_dir = "{state}"

[models.nanodet]
path = "{model}"

[console]
listen = "127.0.0.1:{port}"
password_hash = "{hash}"

[[camera]]
id = "walkway"
name = "Walkway camera"
url = "{camera_url}"
username = "admin"
password_file = "camera.pass"
model = "nanodet"

# The kerb: drawn on site in 2025, keep it.
[[camera.zone]]
id = "kerb"
points = [[0.0, 0.9], [1.0, 0.9], [1.0, 1.0], [0.0, 1.0]]   # bottom strip
area_m2 = 2.0

[[camera.scene_change]]
zone = "kerb"
category = "exposed_garbage"
persist_s = 600
"#,
        state = state.display(),
        model = model_dir().display(),
        hash = streetsight::console::auth::hash(PASSWORD).unwrap(),
    )
}

/// A blocking HTTP client that keeps status, headers and body whatever the status.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

fn call(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Reply {
    let a = agent();
    let mut response = match (method, body) {
        ("GET", _) => {
            let mut r = a.get(url);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.call().unwrap()
        }
        (_, body) => {
            let mut r = a.post(url).header("content-type", "application/json");
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.send(serde_json::to_vec(body.unwrap_or(&json!({}))).unwrap())
                .unwrap()
        }
    };
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The security half, over plain HTTP. Returns every body it saw (to grep for secrets).
fn doors(base: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    let origin = [("origin", base)];
    // No session: every route of the API is refused, reads and writes alike.
    for (method, path) in [
        ("GET", "/api/session"),
        ("GET", "/api/cameras"),
        ("GET", "/api/cameras/walkway/live.jpg"),
        ("GET", "/api/cameras/walkway/live"),
        ("GET", "/api/cameras/walkway/config"),
        ("POST", "/api/cameras/walkway/config"),
        ("POST", "/api/cameras/walkway/zones/kerb/reference"),
        ("POST", "/api/areas"),
        ("GET", "/api/incidents"),
        ("GET", "/api/evidence/x.jpg"),
        ("POST", "/api/check"),
        ("POST", "/api/logout"),
    ] {
        let r = call(method, &format!("{base}{path}"), &origin, None);
        assert_eq!(
            r.status, 401,
            "{method} {path} without a session: {}",
            r.body
        );
    }
    // A login posted from another site is refused before the password is looked at.
    let r = call(
        "POST",
        &format!("{base}/api/login"),
        &[("origin", "http://evil.example")],
        Some(&json!({ "password": PASSWORD })),
    );
    assert_eq!(r.status, 403, "cross-site login: {}", r.body);
    let r = call(
        "POST",
        &format!("{base}/api/login"),
        &[("sec-fetch-site", "cross-site")],
        Some(&json!({ "password": PASSWORD })),
    );
    assert_eq!(r.status, 403, "cross-site login: {}", r.body);
    // The right password: a session cookie a script cannot read and another site does not send.
    let r = call(
        "POST",
        &format!("{base}/api/login"),
        &origin,
        Some(&json!({ "password": PASSWORD })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let set_cookie = header(&r, "set-cookie").unwrap().to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let csrf = serde_json::from_str::<Value>(&r.body).unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    let session = [("cookie", cookie.as_str())];
    for path in [
        "/api/cameras",
        "/api/cameras/walkway/config",
        "/api/incidents",
    ] {
        let r = call("GET", &format!("{base}{path}"), &session, None);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        bodies.push(r.body);
    }
    let edit: Value = serde_json::from_str(&bodies[1]).unwrap();
    // A page whose own name was pointed at the pole (DNS rebinding) names itself as the host: refused,
    // even with a session.
    let host = base.replace("http://127.0.0.1", "evil.example");
    let r = call(
        "GET",
        &format!("{base}/api/cameras"),
        &[("cookie", &cookie), ("host", &host)],
        None,
    );
    assert_eq!(r.status, 403, "a rebound host name: {}", r.body);
    let edit = &edit["edit"];
    // A cross-site POST with the session's cookie: without the token, or from another origin, refused.
    let save = format!("{base}/api/cameras/walkway/config");
    let r = call(
        "POST",
        &save,
        &[("cookie", &cookie), ("origin", base)],
        Some(edit),
    );
    assert_eq!(r.status, 403, "no CSRF token: {}", r.body);
    let r = call(
        "POST",
        &save,
        &[
            ("cookie", &cookie),
            ("x-csrf-token", &csrf),
            ("origin", "http://evil.example"),
        ],
        Some(edit),
    );
    assert_eq!(r.status, 403, "another origin: {}", r.body);
    let r = call(
        "POST",
        &save,
        &[
            ("cookie", &cookie),
            ("x-csrf-token", &csrf),
            ("sec-fetch-site", "cross-site"),
        ],
        Some(edit),
    );
    assert_eq!(r.status, 403, "another site: {}", r.body);
    // With both, the same unchanged edit is accepted (and changes nothing).
    let r = call(
        "POST",
        &save,
        &[
            ("cookie", &cookie),
            ("x-csrf-token", &csrf),
            ("origin", base),
        ],
        Some(edit),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    bodies.push(r.body);
    // The check table, which probes the camera with its password.
    let r = call(
        "POST",
        &format!("{base}/api/check"),
        &[
            ("cookie", &cookie),
            ("x-csrf-token", &csrf),
            ("origin", base),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("walkway"), "{}", r.body);
    bodies.push(r.body);
    // Five wrong passwords, then even the right one waits.
    for i in 0..5 {
        let r = call(
            "POST",
            &format!("{base}/api/login"),
            &origin,
            Some(&json!({ "password": format!("guess-{i}") })),
        );
        assert_eq!(r.status, 401, "wrong password {i}: {}", r.body);
    }
    let r = call(
        "POST",
        &format!("{base}/api/login"),
        &origin,
        Some(&json!({ "password": PASSWORD })),
    );
    assert_eq!(r.status, 429, "throttled after five: {}", r.body);
    assert!(header(&r, "retry-after").is_some());
    bodies
}

/// The browser clicks at `(nx, ny)` of the overlay; what the file holds is within one displayed pixel.
fn near(a: [f64; 2], b: [f64; 2], w: f64, h: f64) -> bool {
    ((a[0] - b[0]) * w).abs() <= 1.0 && ((a[1] - b[1]) * h).abs() <= 1.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installer_sets_up_a_zone_and_its_rule_in_the_browser_and_sees_it_work() {
    streetsight::ops::init_logging("info");
    streetsight::daemon::init_process().unwrap();
    let camera = ClipServer::start(
        Clip::load(&clip_path()).unwrap(),
        0,
        "/walkway",
        Some(("admin", CAMERA_PASSWORD)),
    )
    .unwrap();
    let broker = Mosquitto::start(0).unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("camera.pass"), CAMERA_PASSWORD).unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let state = work.path().join("state");
    let text = config(&camera.url("/walkway"), &broker.url(), &state, port);
    let loaded = load_config(work.path(), &text);
    let path = loaded.path.clone();
    let sub = Subscriber::connect(&broker.url(), "streetsight/v1/console-pole/#")
        .await
        .unwrap();
    let shutdown = streetsight::base::Shutdown::new();
    let daemon = tokio::spawn(streetsight::console::run_daemon(
        loaded,
        shutdown.clone(),
        Duration::from_secs(5),
    ));
    // The console answers once the daemon has started.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !agent()
        .get(&format!("{base}/"))
        .call()
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "the console never answered");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The installer's round, in Chromium.
    let mut bodies = Vec::new();
    let shots = support::repo("docs/img");
    std::fs::create_dir_all(&shots).unwrap();
    let (drawn, canvas) = tokio::task::block_in_place(|| {
        let b = Browser::start();
        b.goto(&format!("{base}/"));
        b.wait_for("#password", Duration::from_secs(20))
            .type_text(PASSWORD);
        b.find("#login-btn").click();
        // The live picture arrives and the boxes are drawn over it.
        b.wait_until(
            "document.querySelector('#live').naturalWidth > 0",
            Duration::from_secs(60),
        );
        let cookie = b.cookie("ss_console").expect("session cookie");
        assert_eq!(cookie["httpOnly"], json!(true), "{cookie}");
        let live = b.screenshot();
        assert!(is_non_blank(&live), "the live view is blank");
        b.save_screenshot(&shots.join("console-live.png"));

        // The scene-change zone says whether it has its reference, and takes one on request.
        let reference = ".reference[data-zone=\"kerb\"]";
        b.wait_for(reference, Duration::from_secs(10));
        b.find(&format!("{reference} .take-reference")).click();
        b.wait_until(
            "document.querySelector('#save-status').textContent === '参考图已拍摄'",
            Duration::from_secs(30),
        );
        b.wait_until(
            &format!("document.querySelector('{reference}').textContent.includes('已有')"),
            Duration::from_secs(10),
        );
        let round = Instant::now();
        let overlay = b.find("#overlay");
        let rect = b.execute(
            "const r = document.querySelector('#overlay').getBoundingClientRect(); return [r.width, r.height];",
            &[],
        );
        let canvas = (rect[0].as_f64().unwrap(), rect[1].as_f64().unwrap());
        // Ground calibration: four points of the walkway and where they lie, in metres (3 × 2 m).
        b.find("#mode-ground").click();
        for (p, m) in [
            ((0.0, 0.25), (0.0, 0.0)),
            ((1.0, 0.25), (3.0, 0.0)),
            ((1.0, 1.0), (3.0, 2.0)),
            ((0.0, 1.0), (0.0, 2.0)),
        ] {
            b.find("#ground-x").type_text(&m.0.to_string());
            b.find("#ground-y").type_text(&m.1.to_string());
            // Clicks stay a pixel inside the picture.
            let at = (f64::clamp(p.0, 0.005, 0.995), f64::clamp(p.1, 0.005, 0.995));
            b.click_at(&overlay, at.0, at.1);
        }
        // A new zone over the walkway, drawn with the mouse.
        b.find("#mode-zone").click();
        let id = b.find("#new-zone-id");
        id.clear();
        id.type_text("square");
        let drawn = [[0.05, 0.3], [0.95, 0.3], [0.95, 0.97], [0.05, 0.97]];
        for p in drawn {
            b.click_at(&overlay, p[0], p[1]);
        }
        b.find("#finish-shape").click();
        b.wait_for(".zone[data-id=\"square\"]", Duration::from_secs(5));
        // A corner dragged to where it belongs.
        b.drag(&overlay, (0.95, 0.97), (0.9, 0.95));
        let drawn = [[0.05, 0.3], [0.95, 0.3], [0.9, 0.95], [0.05, 0.97]];
        b.wait_until(
            "/m²/.test(document.querySelector('.zone[data-id=\"square\"] .zone-area').textContent)",
            Duration::from_secs(10),
        );
        // A crowd rule on it, with a wrong value first.
        b.find(".add-rule[data-zone=\"square\"]").click();
        b.find(".add-rule[data-zone=\"square\"] option[value=\"crowd_density\"]")
            .click();
        let form = ".rule-form[data-type=\"crowd_density\"]";
        b.wait_for(form, Duration::from_secs(5));
        b.find(&format!("{form} input[data-key=\"min_score\"]"))
            .type_text("3");
        b.find(&format!("{form} input[data-key=\"levels\"]"))
            .type_text("gathering:0.4, crowd:3");
        b.find(&format!("{form} input[data-key=\"sustain_s\"]"))
            .type_text("0");
        let before = std::fs::read_to_string(&path).unwrap();
        b.find("#save").click();
        let error = format!("{form} .field-error[data-key=\"min_score\"]");
        b.wait_until(
            &format!(
                "document.querySelector('{}').textContent.length > 0",
                error.replace('\'', "\\'")
            ),
            Duration::from_secs(20),
        );
        let message = b.find(&error).text();
        assert!(message.contains("min_score"), "{message}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            before,
            "a wrong value saves nothing"
        );
        b.save_screenshot(&shots.join("console-error.png"));
        // Fixed, saved, reloaded.
        let min_score = b.find(&format!("{form} input[data-key=\"min_score\"]"));
        min_score.clear();
        min_score.type_text("0.5");
        b.find("#save").click();
        let deadline = Instant::now() + Duration::from_secs(60);
        while b.find("#save-status").property("className") != json!("ok") {
            assert!(
                Instant::now() < deadline,
                "not saved: {} {}",
                b.find("#save-status").text(),
                b.execute(
                    "return [...document.querySelectorAll('.field-error, #save-errors')].map(e => e.textContent).join(' | ')",
                    &[]
                )
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        b.wait_for(".zone[data-id=\"square\"]", Duration::from_secs(5));
        let shot = b.screenshot();
        assert!(is_non_blank(&shot));
        b.save_screenshot(&shots.join("console-zones.png"));
        eprintln!(
            "console round (calibrate, draw, rule, a wrong value, save, reload): {:.1} s",
            round.elapsed().as_secs_f64()
        );
        (drawn, canvas)
    });

    // The file: the drawn zone within a displayed pixel, the rule, the old zone and its comments kept.
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(
        saved.contains("# The kerb: drawn on site in 2025, keep it.")
            && saved.contains("# bottom strip"),
        "comments kept:\n{saved}"
    );
    let doc: toml::Table = toml::from_str(&saved).unwrap();
    let cam = &doc["camera"].as_array().unwrap()[0];
    let zones = cam["zone"].as_array().unwrap();
    let square = zones
        .iter()
        .find(|z| z["id"].as_str() == Some("square"))
        .unwrap_or_else(|| panic!("the new zone is in the file:\n{saved}"));
    let points: Vec<[f64; 2]> = square["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let p = p.as_array().unwrap();
            [p[0].as_float().unwrap(), p[1].as_float().unwrap()]
        })
        .collect();
    assert_eq!(points.len(), 4, "{saved}");
    for (got, want) in points.iter().zip(drawn) {
        assert!(
            near(*got, want, canvas.0, canvas.1),
            "drawn at {want:?}, saved {got:?} (canvas {canvas:?})"
        );
    }
    let rule = &cam["crowd_density"].as_array().unwrap()[0];
    assert_eq!(rule["zone"].as_str(), Some("square"));
    assert_eq!(rule["min_score"].as_float(), Some(0.5));
    assert!(cam.get("ground").is_some(), "{saved}");
    let backups = std::fs::read_dir(work.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".bak")
        })
        .count();
    assert!(backups >= 1, "a backup of the old file");

    // The daemon reloaded it: the real pedestrians open a crowd incident in the new zone.
    let schema = event_schema();
    let mut seen = Seen::default();
    let opened = collect_until(&sub, &mut seen, &schema, Duration::from_secs(120), |s| {
        s.events
            .iter()
            .any(|e| e.zone.id == "square" && e.phase == Phase::Opened)
    })
    .await;
    assert!(
        opened,
        "no incident in the new zone: {:?}",
        event_list(&seen.events)
    );

    // The incident and its evidence in the console.
    tokio::task::block_in_place(|| {
        let b = Browser::start();
        b.goto(&format!("{base}/"));
        b.wait_for("#password", Duration::from_secs(20))
            .type_text(PASSWORD);
        b.find("#login-btn").click();
        b.wait_for(
            "#tabs button[data-tab=\"incidents\"]",
            Duration::from_secs(10),
        )
        .click();
        b.wait_until(
            "[...document.querySelectorAll('.incident img')].some(i => i.naturalWidth > 0)",
            Duration::from_secs(30),
        );
        b.save_screenshot(&shots.join("console-incidents.png"));
        // English is a switch away.
        b.find("#lang-toggle").click();
        b.wait_until(
            "document.querySelector('#tabs button[data-tab=\"incidents\"]').textContent === 'Recent incidents'",
            Duration::from_secs(5),
        );
        let cameras = b.execute("return fetch('/api/cameras').then(r => r.text())", &[]);
        bodies.push(cameras.as_str().unwrap_or_default().to_string());
        let incidents = b.execute("return fetch('/api/incidents').then(r => r.text())", &[]);
        bodies.push(incidents.as_str().unwrap_or_default().to_string());
    });
    // The doors, last: five wrong passwords lock this address out for a while.
    bodies.extend(tokio::task::block_in_place(|| doors(&base)));
    shutdown.trigger();
    daemon.await.unwrap().unwrap();

    // Nothing the console sent carries the camera's password.
    for body in &bodies {
        assert!(
            !body.contains(CAMERA_PASSWORD),
            "a response carries the camera password: {body}"
        );
    }
}
