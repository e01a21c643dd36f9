//! Model bundles dropped in by configuration alone, in the running daemon with real parts (the street clip
//! over GStreamer's RTSP server, ONNX Runtime, mosquitto): a YOLOv8-layout model and a density-map model
//! (graphs built by the tests, tests/support/onnx.rs) each drive a camera's crowd rule next to the real
//! NanoDet, while a fourth bundle that lies about its input layout is rejected — reported in the retained
//! status — without stopping the cameras of the other models.

mod support;

use std::time::Duration;
use streetsight::cli::demo::{Clip, ClipServer, Mosquitto};
use streetsight::incident::Phase;
use support::onnx::*;
use support::*;

fn camera(id: &str, model: &str, url: &str, rules: bool) -> String {
    let mut s = format!(
        "[[camera]]\nid = \"{id}\"\nurl = \"{url}\"\nmodel = \"{model}\"\nsampling = {{ mode = \"keyframe\" }}\n"
    );
    if rules {
        s += &format!(
            r#"[[camera.zone]]
id = "{id}-all"
points = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
area_m2 = 2.0
[[camera.crowd_density]]
zone = "{id}-all"
levels = [{{ name = "attention", min_density = 0.25 }}]
hysteresis = 0.0
sustain_s = 0
clear_s = 600
"#
        );
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yolov8_and_density_bundles_run_from_config_and_a_rejected_one_stops_only_its_camera() {
    streetsight::ops::init_logging("info");
    streetsight::daemon::init_process().unwrap();
    let server = ClipServer::start(Clip::load(&clip_path()).unwrap(), 0, "/cam", None).unwrap();
    let url = server.url("/cam");
    let broker = Mosquitto::start(0).unwrap();
    let work = tempfile::tempdir().unwrap();
    let (v8, density, broken) = (
        work.path().join("v8"),
        work.path().join("density"),
        work.path().join("broken"),
    );
    write_bundle(&v8, YOLOV8_MANIFEST, &yolov8_model());
    write_bundle(&density, DENSITY_MANIFEST, &density_model());
    write_bundle(
        &broken,
        &YOLOV8_MANIFEST
            .replace("tiny-yolov8", "broken-yolov8")
            .replace("layout = \"nchw\"", "layout = \"nhwc\""),
        &yolov8_model(),
    );
    let text = format!(
        r#"[device]
id = "bundles"
[uplink]
broker = "{broker}"
telemetry_s = 2
[storage]
state_dir = "{state}"
[models.nanodet]
path = "{nanodet}"
[models.v8]
path = "{v8}"
[models.density]
path = "{density}"
[models.broken]
path = "{broken}"
{cams}"#,
        broker = broker.url(),
        state = work.path().join("state").display(),
        nanodet = model_dir().display(),
        v8 = v8.display(),
        density = density.display(),
        broken = broken.display(),
        cams = [
            camera("street", "nanodet", &url, false),
            camera("v8cam", "v8", &url, true),
            camera("dense", "density", &url, true),
            camera("off", "broken", &url, true),
        ]
        .join("")
    );
    let loaded = load_config(work.path(), &text);
    let daemon = RunningDaemon::start(loaded, &broker.url(), "streetsight/v1/bundles/#").await;
    let schema = event_schema();
    let mut seen = Seen::default();
    let opened = |s: &Seen, cam: &str| {
        s.events
            .iter()
            .find(|e| e.camera.id == cam && e.phase == Phase::Opened)
            .cloned()
    };
    let analysed = |s: &Seen, cam: &str| {
        s.telemetry.iter().any(|t| {
            t["cameras"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["id"] == cam && c["frames_analysed"].as_u64().unwrap_or(0) > 0)
        })
    };
    let got = collect_until(
        &daemon.sub,
        &mut seen,
        &schema,
        Duration::from_secs(120),
        |s| {
            opened(s, "v8cam").is_some()
                && opened(s, "dense").is_some()
                && analysed(s, "street")
                && !s.status.is_empty()
        },
    )
    .await;
    daemon.stop().await;
    assert!(
        got,
        "events {:?}, telemetry {:?}",
        seen.events
            .iter()
            .map(|e| (&e.camera.id, e.phase))
            .collect::<Vec<_>>(),
        seen.telemetry.last()
    );

    // The YOLOv8 bundle's person (score 0.9, feet inside the zone) is counted: 1 person on 2 m².
    let e = opened(&seen, "v8cam").unwrap();
    assert_eq!(e.model.name, "tiny-yolov8");
    assert_eq!(
        e.model.sha256,
        streetsight::base::sha256_hex(&yolov8_model())
    );
    let crowd = e.crowd.as_ref().unwrap();
    assert_eq!((crowd.count, crowd.density), (1, 0.5));
    assert_eq!(e.objects.len(), 1);
    assert_eq!(e.objects[0].label, "person");
    // The density bundle's map sums to 6.4 over the zone: 6 people, 3.2 per m², no boxes.
    let e = opened(&seen, "dense").unwrap();
    assert_eq!(e.model.name, "tiny-density");
    let crowd = e.crowd.as_ref().unwrap();
    assert_eq!(crowd.count, 6);
    assert!((crowd.density - 3.2).abs() < 1e-5, "{}", crowd.density);
    assert!(e.objects.is_empty());

    // The status names the rejected model with the reason; the others are active.
    let status = seen
        .status
        .iter()
        .rev()
        .find(|s| s["state"] == "online")
        .unwrap();
    let models = status["models"].as_array().unwrap();
    let model = |name: &str| {
        models
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    for name in ["nanodet", "v8", "density"] {
        assert_eq!(model(name)["state"], "active", "{status}");
    }
    let broken = model("broken");
    assert_eq!(broken["state"], "rejected");
    let error = broken["error"].as_str().unwrap();
    assert!(
        error.contains("input.layout: expected `nchw` (the graph's input `images` is [1, 3, 64, 64]), found `nhwc`"),
        "{error}"
    );
    // The rejected model's camera never started — listed as off, with the reason, so nobody mistakes the
    // pole for healthy; NanoDet's camera analysed frames.
    let last = seen.telemetry.last().unwrap();
    let cams = last["cameras"].as_array().unwrap();
    let cam = |id: &str| cams.iter().find(|c| c["id"] == id);
    assert!(cam("street").is_some(), "{cams:?}");
    let off = cam("off").unwrap_or_else(|| panic!("the off camera is listed: {cams:?}"));
    assert_eq!(off["state"], "off", "{off}");
    assert_eq!(off["frames_in"], 0, "{off}");
    assert!(
        off["last_error"]
            .as_str()
            .unwrap()
            .contains("model `broken` was rejected"),
        "{off}"
    );
    let listed = status["cameras"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|c| c["id"] == "off" && c["state"] == "off"),
        "{status}"
    );
}
