//! `streetsight check` through the real binary against real parts: GStreamer's RTSP server serving the street
//! clip, mosquitto requiring mutual TLS, NanoDet on ONNX Runtime. A working pole passes every row and exits 0;
//! a dead camera, a CA that did not sign the broker and a model whose file does not match its manifest each
//! fail their own row (with a fix) while the working parts still pass, and the exit code is 1.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};
use streetsight::cli::demo::{Clip, ClipServer, free_port};
use support::*;

fn config(dir: &Path, broker_port: u16, ca: &str, extra: &str) -> String {
    format!(
        r#"[device]
id = "tls-pole"
[uplink]
broker = "mqtts://127.0.0.1:{broker_port}"
[uplink.tls]
ca = "{d}/{ca}.pem"
cert = "{d}/pole.pem"
key = "{d}/pole.key"
[storage]
state_dir = "{d}"
[models.nanodet]
path = "{model}"
{extra}"#,
        d = dir.display(),
        model = model_dir().display()
    )
}

fn camera(id: &str, url: &str, model: &str) -> String {
    format!("[[camera]]\nid = \"{id}\"\nurl = \"{url}\"\nmodel = \"{model}\"\n")
}

/// Run `streetsight check -c FILE`: (exit code, stdout, seconds taken).
fn check(dir: &Path, text: &str) -> (i32, String, f64) {
    check_with(dir, text, &[])
}

/// [`check`] with more arguments.
fn check_with(dir: &Path, text: &str, args: &[&str]) -> (i32, String, f64) {
    let path = dir.join("streetsight.toml");
    std::fs::write(&path, text).unwrap();
    let started = Instant::now();
    let out = streetsight_bin()
        .args([
            "check",
            "--timeout",
            &scaled(Duration::from_secs(10)).as_secs().to_string(),
        ])
        .arg("--config")
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (
        out.status.code().unwrap_or(-1),
        stdout,
        started.elapsed().as_secs_f64(),
    )
}

/// The table row of `item`: (result, detail), plus its fix line when there is one.
fn row<'a>(table: &'a str, item: &str) -> (&'a str, &'a str, Option<&'a str>) {
    let mut lines = table.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix(item) else {
            continue;
        };
        let rest = rest.trim_start();
        let (result, detail) = rest.split_once(' ').unwrap_or((rest, ""));
        if !(result == "PASS" || result == "FAIL") {
            continue;
        }
        let fix = lines
            .next()
            .and_then(|l| l.trim_start().strip_prefix("fix: "));
        return (result, detail.trim(), fix);
    }
    panic!("no row {item:?} in:\n{table}");
}

/// The frame rate a camera row reports (`… at 10.0 fps …`).
fn fps_of(detail: &str) -> f64 {
    detail
        .split(" at ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no frame rate in {detail}"))
}

#[test]
fn check_passes_a_working_pole_and_names_each_broken_part() {
    streetsight::daemon::init_process().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_broker, broker_port) = mtls_broker(d);
    let server = ClipServer::start(Clip::load(&clip_path()).unwrap(), 0, "/gate", None).unwrap();
    warm_up(&server.url("/gate"));
    let good_camera = camera("gate", &server.url("/gate"), "nanodet");

    // A working pole: every row passes.
    let (code, table, _) = check(d, &config(d, broker_port, "city-ca", &good_camera));
    assert_eq!(code, 0, "{table}");
    let (result, detail, _) = row(&table, "camera gate");
    assert_eq!(result, "PASS", "{table}");
    assert!(
        detail.contains("h264 768x576 at ") && detail.contains("first frame after"),
        "{detail}"
    );
    let fps = fps_of(detail);
    // The clip plays at 10 fps; a loaded machine may decode a little late, an emulated one much later.
    let slowest = 5.0 / scaled(Duration::from_secs(1)).as_secs_f64();
    assert!((slowest..=13.0).contains(&fps), "fps {fps} in {detail}");
    let (result, detail, _) = row(&table, "broker");
    assert_eq!(result, "PASS");
    assert!(
        detail.contains("TLS with client certificate") && detail.contains("PUBACK"),
        "{detail}"
    );
    let (result, detail, _) = row(&table, "model nanodet");
    assert_eq!(result, "PASS");
    assert!(
        detail.contains("ran once on camera gate's frame") && detail.contains("object(s)"),
        "{detail}"
    );
    for item in ["config", "onnx runtime", "storage"] {
        assert_eq!(row(&table, item).0, "PASS", "{item}: {table}");
    }
    let (result, detail, _) = row(&table, "view gate");
    assert_eq!(result, "PASS", "{table}");
    assert!(detail.contains("no reference view yet"), "{detail}");
    // The font Chinese evidence captions are drawn with (scripts/setup.sh installs fonts-wqy-microhei).
    let (result, detail, _) = row(&table, "caption font");
    assert_eq!(result, "PASS", "{table}");
    assert!(
        detail.ends_with("wqy-microhei.ttc: zh-CN captions"),
        "{detail}"
    );
    assert!(table.contains("PASS: all 8 checks passed"), "{table}");

    // A broken pole: a camera nobody answers for, a camera configured for H.265 that sends H.264, a CA that
    // did not sign the broker, a model whose file does not match its manifest.
    let bad_model = d.join("bad-model");
    std::fs::create_dir(&bad_model).unwrap();
    let manifest = std::fs::read_to_string(model_dir().join("manifest.toml")).unwrap();
    let sha = manifest
        .lines()
        .find_map(|l| l.strip_prefix("sha256 = \""))
        .unwrap()
        .trim_end_matches('"');
    std::fs::write(
        bad_model.join("manifest.toml"),
        manifest.replace(sha, &"0".repeat(64)),
    )
    .unwrap();
    std::os::unix::fs::symlink(model_dir().join("model.onnx"), bad_model.join("model.onnx"))
        .unwrap();
    let dead_url = format!("rtsp://127.0.0.1:{}/cam", free_port().unwrap());
    let extra = format!(
        "[models.broken]\npath = \"{}\"\n{good_camera}{}{}codec = \"h265\"\n",
        bad_model.display(),
        camera("dead", &dead_url, "broken"),
        camera("wrongcodec", &server.url("/gate"), "nanodet"),
    );
    let (code, table, secs) = check(d, &config(d, broker_port, "rogue-ca", &extra));
    assert_eq!(code, 1, "{table}");
    let (result, detail, fix) = row(&table, "camera dead");
    assert_eq!(result, "FAIL", "{table}");
    assert!(detail.starts_with(&dead_url), "{detail}");
    assert!(fix.unwrap().contains("power and network"), "{table}");
    let (result, detail, fix) = row(&table, "camera wrongcodec");
    assert_eq!(result, "FAIL", "{table}");
    assert!(
        detail.contains("the camera sends H264 video but codec = \"h265\" is configured"),
        "{detail}"
    );
    assert!(fix.unwrap().contains("set codec = \"h264\""), "{table}");
    let (result, detail, fix) = row(&table, "broker");
    assert_eq!(result, "FAIL", "{table}");
    assert!(detail.contains("UnknownIssuer"), "{detail}");
    assert!(fix.unwrap().contains("[uplink.tls] ca"), "{table}");
    let (result, detail, fix) = row(&table, "model broken");
    assert_eq!(result, "FAIL", "{table}");
    assert!(detail.contains("sha256"), "{detail}");
    assert!(fix.is_some());
    // The working parts still pass beside the broken ones.
    assert_eq!(row(&table, "camera gate").0, "PASS", "{table}");
    assert_eq!(row(&table, "model nanodet").0, "PASS", "{table}");
    assert!(
        table.contains(
            "FAIL: 4 of 11 checks failed: model broken, camera dead, camera wrongcodec, broker"
        ),
        "{table}"
    );
    // A dead camera costs the timeout at most, not the daemon's reconnect patience.
    assert!(
        secs < scaled(Duration::from_secs(30)).as_secs_f64(),
        "took {secs} s"
    );
}

/// The view row: a probed frame against the camera's reference view. `--confirm-view` makes the frame the
/// reference; the same camera moved 8 % and turned 3° then fails its row with the measured shift and the
/// way to confirm it.
#[test]
fn check_judges_the_view_against_its_reference_and_confirm_view_takes_a_new_one() {
    streetsight::daemon::init_process().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_broker, broker_port) = mtls_broker(d);
    let moved = support::clips::altered_clip(
        d,
        "moved",
        &support::clips::Alteration::ShiftRotate {
            dx: 0.08,
            dy: 0.0,
            degrees: 3.0,
        },
        0.1,
        8.0,
    )
    .unwrap();
    let server = ClipServer::start(Clip::load(&clip_path()).unwrap(), 0, "/gate", None).unwrap();
    warm_up(&server.url("/gate"));
    let text = config(
        d,
        broker_port,
        "city-ca",
        &camera("gate", &server.url("/gate"), "nanodet"),
    );

    let (code, table, _) = check_with(d, &text, &["--confirm-view", "gate"]);
    assert_eq!(code, 0, "{table}");
    let (result, detail, _) = row(&table, "view gate");
    assert_eq!(result, "PASS", "{table}");
    assert!(detail.starts_with("view confirmed"), "{detail}");
    assert!(d.join("health/gate.view").is_file());

    let (code, table, _) = check(d, &text);
    assert_eq!(code, 0, "{table}");
    let (result, detail, _) = row(&table, "view gate");
    assert_eq!(result, "PASS", "{table}");
    assert!(detail.starts_with("matches its reference view"), "{detail}");

    // Sessions start after the clip's first (clean) frame: the first keyframe a client decodes is moved.
    let turned =
        ClipServer::start(Clip::load(&moved).unwrap().mid_gop(3), 0, "/gate", None).unwrap();
    warm_up(&turned.url("/gate"));
    let text = config(
        d,
        broker_port,
        "city-ca",
        &camera("gate", &turned.url("/gate"), "nanodet"),
    );
    let (code, table, _) = check(d, &text);
    assert_eq!(code, 1, "{table}");
    let (result, detail, fix) = row(&table, "view gate");
    assert_eq!(result, "FAIL", "{table}");
    assert!(
        detail.starts_with("moved (移位)") && detail.contains("shift +"),
        "{detail}"
    );
    assert!(fix.unwrap().contains("--confirm-view gate"), "{table}");

    let (code, table, _) = check_with(d, &text, &["--confirm-view", "nosuch"]);
    assert_eq!(code, 1, "{table}");
    assert!(
        row(&table, "view nosuch").1.contains("is not a camera"),
        "{table}"
    );
}

/// An H.265 camera (the street clip re-encoded, with B-frames, as many cameras send it) is reported at its
/// real frame rate, with its codec.
#[test]
fn check_reports_an_h265_camera_at_its_frame_rate() {
    streetsight::daemon::init_process().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clip = d.join("street265.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-t", "12", "-i"])
        .arg(clip_path())
        .args([
            "-an",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args([
            "-x265-params",
            "keyint=10:min-keyint=10:scenecut=0:bframes=2:log-level=error",
        ])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg could not encode H.265");
    let (_broker, broker_port) = mtls_broker(d);
    let server = ClipServer::start(Clip::load(&clip).unwrap(), 0, "/gate", None).unwrap();
    warm_up(&server.url("/gate"));
    let text = config(
        d,
        broker_port,
        "city-ca",
        &format!(
            "{}codec = \"h265\"\n",
            camera("gate", &server.url("/gate"), "nanodet")
        ),
    );
    let (code, table, _) = check(d, &text);
    assert_eq!(code, 0, "{table}");
    let (_, detail, _) = row(&table, "camera gate");
    let fps = fps_of(detail);
    assert!(detail.contains("h265 768x576"), "{detail}");
    let slowest = 9.0 / scaled(Duration::from_secs(1)).as_secs_f64();
    assert!((slowest..=11.0).contains(&fps), "fps {fps} in {detail}");
}
