//! Nothing before the first keyframe of a connection is analysed, probed or snapshotted. The real RTSP
//! server starts every client in the middle of a group of pictures with the parameter sets sent first (as
//! many cameras and servers do), so a decoder that starts at once conceals the missing references with
//! grey: those pictures must never leave ingest.

mod support;

use std::time::Duration;
use streetsight::cli::demo::{Clip, ClipServer};
use streetsight::ingest::Sampling;
use support::*;

/// Share of pixels that are concealment grey (all channels within 6 of 128).
fn grey_share(frame: &streetsight::base::Frame) -> f64 {
    let img = frame.to_rgb_image();
    let grey = img
        .pixels()
        .filter(|p| p.0.iter().all(|&c| c.abs_diff(128) <= 6))
        .count();
    grey as f64 / (img.width() * img.height()) as f64
}

fn source(url: &str, dir: &std::path::Path, sampling: &str) -> streetsight::ingest::CameraSource {
    let loaded = load_config(
        dir,
        &format!(
            r#"[device]
id = "kf-pole"
[uplink]
broker = "mqtt://127.0.0.1:1"
[models.nanodet]
path = "{model}"
[[camera]]
id = "cam"
url = "{url}"
model = "nanodet"
sampling = {sampling}
"#,
            model = model_dir().display()
        ),
    );
    streetsight::plan::camera_source(loaded.config.cameras[0].get_ref(), &loaded.base_dir).unwrap()
}

#[test]
fn a_client_started_mid_gop_sees_no_picture_before_the_first_keyframe() {
    streetsight::daemon::init_process().unwrap();
    let clip = Clip::load(&clip_path()).unwrap().mid_gop(3);
    let server = ClipServer::start(clip, 0, "/cam", None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for sampling in [
        r#"{ mode = "interval", interval_ms = 100 }"#,
        r#"{ mode = "keyframe" }"#,
    ] {
        let src = source(&server.url("/cam"), dir.path(), sampling);
        assert!(matches!(
            src.sampling,
            Sampling::Interval { .. } | Sampling::Keyframe
        ));
        // Five fresh connections, each starting between keyframes.
        for _ in 0..5 {
            let probe = streetsight::ingest::probe(&src, Duration::from_secs(20), Duration::ZERO)
                .expect("the camera answers");
            let grey = grey_share(&probe.frame);
            assert!(
                grey < 0.2,
                "{sampling}: the first frame is {:.0} % concealment grey",
                grey * 100.0
            );
        }
    }
}

/// A camera that serves RTP over UDP only: with `transport = "tcp"` the connection fails and the error says
/// so (check's fix: set `transport = "udp"`); with the default `auto`, check's probe and the camera's
/// supervisor fall back to UDP by themselves and frames flow; with `udp`, they flow at once.
#[test]
fn a_udp_only_camera_is_told_apart_and_auto_falls_back_to_udp() {
    streetsight::daemon::init_process().unwrap();
    let clip = Clip::load(&clip_path()).unwrap().udp_only();
    let server = ClipServer::start(clip, 0, "/cam", None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keyframe = r#"{ mode = "keyframe" }"#;
    let tcp = source(
        &server.url("/cam"),
        dir.path(),
        &format!("{keyframe}\ntransport = \"tcp\""),
    );
    let e = streetsight::ingest::probe(&tcp, Duration::from_secs(10), Duration::ZERO).unwrap_err();
    assert!(e.wrong_transport(), "{e:?}");
    for transport in ["udp", "auto"] {
        let src = source(
            &server.url("/cam"),
            dir.path(),
            &format!("{keyframe}\ntransport = \"{transport}\""),
        );
        let probe = streetsight::ingest::probe(&src, Duration::from_secs(20), Duration::ZERO)
            .expect("frames flow over UDP");
        assert_eq!((probe.width, probe.height), (768, 576));
        assert_eq!(probe.transport, streetsight::ingest::RtspTransport::Udp);
        assert!(grey_share(&probe.frame) < 0.2);
    }
    // The daemon's own camera thread, left at the default: it falls back and frames flow.
    let auto = source(&server.url("/cam"), dir.path(), keyframe);
    assert_eq!(auto.transport, streetsight::ingest::RtspTransport::Auto);
    let queue = streetsight::ingest::FrameQueue::new(2);
    let shutdown = streetsight::base::Shutdown::new();
    let camera = streetsight::ingest::spawn_camera(
        auto,
        queue.clone(),
        std::sync::Arc::new(streetsight::ingest::CameraStats::default()),
        shutdown.clone(),
    );
    let frame = queue.receiver().recv_timeout(Duration::from_secs(30));
    shutdown.trigger();
    drop(frame.expect("the supervisor fell back to UDP and frames flow"));
    camera.join();
}
