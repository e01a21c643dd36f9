//! `streetsight snapshot CAMERA` through the real binary against GStreamer's RTSP server serving the street
//! clip, with NanoDet on ONNX Runtime: the output is a JPEG of the camera's resolution with the zone, the mask
//! and the grid drawn; an unknown camera id is an error that lists the configured ones. `scene-reference`
//! takes a scene-change zone's reference from the camera, and the snapshot's summary says whether it has one.

mod support;

use streetsight::cli::demo::{Clip, ClipServer};
use support::*;

#[test]
fn snapshot_writes_an_annotated_jpeg_of_the_cameras_resolution() {
    streetsight::daemon::init_process().unwrap();
    let server = ClipServer::start(Clip::load(&clip_path()).unwrap(), 0, "/gate", None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("streetsight.toml");
    std::fs::write(
        &config,
        format!(
            r#"[device]
id = "snap-pole"
[uplink]
broker = "mqtt://127.0.0.1:1"
[models.nanodet]
path = "{model}"
[[camera]]
id = "gate"
url = "{url}"
model = "nanodet"
[[camera.zone]]
id = "walkway"
points = [[0.1, 0.4], [0.9, 0.4], [0.9, 0.95], [0.1, 0.95]]
[[camera.mask]]
points = [[0.0, 0.0], [0.3, 0.0], [0.3, 0.2], [0.0, 0.2]]
[[camera.zone]]
id = "kerb"
points = [[0.0, 0.8], [0.3, 0.8], [0.3, 1.0], [0.0, 1.0]]
[[camera.scene_change]]
zone = "kerb"
category = "exposed_garbage"
[storage]
state_dir = "{state}"
"#,
            model = model_dir().display(),
            state = dir.path().join("state").display(),
            url = server.url("/gate")
        ),
    )
    .unwrap();
    let out = dir.path().join("gate.jpg");
    let run = streetsight_bin()
        .args(["snapshot", "gate", "-c"])
        .arg(&config)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("camera gate: 768x576") && stdout.contains("2 zone(s), 1 mask(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("scene zone kerb: no reference yet")
            && stdout.contains("streetsight scene-reference gate kerb"),
        "the summary says the scene zone cannot see yet and how to fix it: {stdout}"
    );
    let jpeg = std::fs::read(&out).unwrap();
    assert_eq!(
        image::guess_format(&jpeg).unwrap(),
        image::ImageFormat::Jpeg
    );
    let img = image::load_from_memory(&jpeg).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (768, 576));
    // The zone's top edge runs along y = 0.4 (row 230) from x = 0.1 to 0.9 in the zone colour (yellow):
    // sample it between grid lines.
    let yellow = |x: u32, y: u32| {
        let p = img.get_pixel(x, y);
        p[0] > 200 && p[1] > 170 && p[2] < 90
    };
    assert!(
        (100..140).filter(|&x| yellow(x, 230)).count() > 30,
        "the zone's top edge is drawn"
    );

    // The installer takes the reference from the pole; snapshot and the file say so.
    let taken = streetsight_bin()
        .args(["scene-reference", "gate", "kerb", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&taken.stdout);
    assert!(
        taken.status.success() && said.contains("reference of scene zone gate/kerb taken"),
        "{said}{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    let file = dir.path().join("state/scene/gate--kerb.ref");
    assert!(std::fs::metadata(&file).unwrap().len() > 0);
    let again = streetsight_bin()
        .args(["snapshot", "gate", "-c"])
        .arg(&config)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains("scene zone kerb: reference kept ("),
        "{stdout}"
    );
    // A zone without a scene rule is refused with what to do.
    let wrong = streetsight_bin()
        .args(["scene-reference", "gate", "walkway", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("no scene-change zone `walkway`"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );

    let unknown = streetsight_bin()
        .args(["snapshot", "nowhere", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("no camera `nowhere`") && err.contains("configured cameras: gate"),
        "{err}"
    );
}
