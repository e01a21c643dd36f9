//! The camera's view in `streetsight check`: a probed frame judged against the camera's reference view with
//! the same health checks the daemon runs, and `--confirm-view`, which makes the probed frame the reference
//! (after the installer re-aimed the camera on purpose).

use crate::base::Frame;
use crate::config::Config;
use crate::health::{HealthParams, Monitor, Picture, Reference};
use std::time::{Duration, Instant};

/// One camera's view as `check` reports it.
#[derive(Debug, Clone)]
pub struct ViewVerdict {
    pub camera: String,
    pub ok: bool,
    pub detail: String,
    pub fix: Option<String>,
}

/// Judge each probed camera's frame against its reference view; make it the reference for the cameras in
/// `confirm`. Cameras without a frame (their own row already failed) or with every health check off are
/// left out; a camera in `confirm` that is not configured, or gave no frame, fails.
pub fn judge_views<'a>(
    config: &Config,
    frames: impl Fn(&str) -> Option<&'a Frame>,
    confirm: &[String],
) -> Vec<ViewVerdict> {
    let state_dir = config.storage.state_dir.get_ref();
    let mut out = Vec::new();
    for wanted in confirm {
        if !config.cameras.iter().any(|c| &c.get_ref().id == wanted) {
            out.push(failed(
                wanted,
                "is not a camera of this configuration",
                "use a camera id from the [[camera]] sections",
            ));
        } else if frames(wanted).is_none() {
            out.push(failed(
                wanted,
                "gave no frame, so there is no view to confirm",
                "fix the camera's connection first (its row above)",
            ));
        }
    }
    for cam in config.cameras.iter().map(|c| c.get_ref()) {
        let (Some(params), Some(frame)) = (crate::plan::camera_health_params(cam), frames(&cam.id))
        else {
            continue;
        };
        let file = crate::plan::view_reference_file(state_dir, &cam.id);
        let picture = Picture::read(frame.picture());
        if confirm.contains(&cam.id) {
            out.push(confirm_view(&cam.id, &picture, state_dir));
            continue;
        }
        out.push(match std::fs::read(&file) {
            Err(_) => ViewVerdict {
                camera: cam.id.clone(),
                ok: true,
                detail: "no reference view yet: the first usable frame after the daemon starts becomes it".into(),
                fix: None,
            },
            Ok(bytes) => judge(&cam.id, params, &bytes, &picture),
        });
    }
    out
}

fn failed(camera: &str, detail: &str, fix: &str) -> ViewVerdict {
    ViewVerdict {
        camera: camera.into(),
        ok: false,
        detail: format!("camera `{camera}` {detail}"),
        fix: Some(fix.into()),
    }
}

/// The probed picture against the stored reference, with the daemon's checks raised at once (a single
/// frame cannot tell frozen).
fn judge(camera: &str, params: HealthParams, reference: &[u8], picture: &Picture) -> ViewVerdict {
    let mut monitor = Monitor::new(HealthParams {
        raise_after: Duration::ZERO,
        frozen: false,
        ..params
    });
    if let Err(error) = monitor.load_reference(reference) {
        return failed(
            camera,
            &error.to_string(),
            &format!(
                "make the view as it is now the reference: streetsight check --confirm-view {camera}"
            ),
        );
    }
    let report = monitor.observe(picture, Instant::now()).report;
    let measured = match report.shift {
        Some(s) => format!(
            "shift {:+.1} %, {:+.1} %, {:+.1}°, zoom ×{:.2}; sharpness ×{:.2}; covered {:.0} %",
            s.x * 100.0,
            s.y * 100.0,
            s.degrees,
            s.scale,
            report.sharpness,
            report.covered * 100.0
        ),
        None => "another picture size than the reference's".into(),
    };
    if report.conditions.is_empty() {
        return ViewVerdict {
            camera: camera.into(),
            ok: true,
            detail: format!("matches its reference view ({measured})"),
            fix: None,
        };
    }
    let names: Vec<String> = report
        .conditions
        .iter()
        .map(|c| format!("{} ({})", c.as_str(), c.chinese()))
        .collect();
    let detail = format!(
        "{} against its reference view: {measured}",
        names.join(", ")
    );
    if report.pauses_rules() {
        ViewVerdict {
            camera: camera.into(),
            ok: false,
            detail,
            fix: Some(format!(
                "turn the camera back (or uncover it); if it was re-aimed on purpose, check the zones on `streetsight snapshot {camera}` and confirm the view: streetsight check --confirm-view {camera} (or the confirm_view command)"
            )),
        }
    } else {
        ViewVerdict {
            camera: camera.into(),
            ok: true,
            detail: format!("warning: {detail}"),
            fix: None,
        }
    }
}

/// Keep the probed picture as the camera's reference view. Its JPEG is dropped: the daemon keeps the next
/// frame's picture (faces obscured) in its place.
fn confirm_view(camera: &str, picture: &Picture, state_dir: &std::path::Path) -> ViewVerdict {
    let file = crate::plan::view_reference_file(state_dir, camera);
    let result = file
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| crate::base::write_atomic(&file, &Reference::of(picture).to_bytes()));
    match result {
        Ok(()) => {
            let _ = std::fs::remove_file(crate::plan::view_picture_file(state_dir, camera));
            ViewVerdict {
                camera: camera.into(),
                ok: true,
                detail: format!(
                    "view confirmed: this frame is the reference view ({}); a running daemon takes it at its next start — send it the confirm_view command to take it now",
                    file.display()
                ),
                fix: None,
            }
        }
        Err(e) => failed(
            camera,
            &format!(
                "could not keep its reference view in {}: {e}",
                file.display()
            ),
            "check that the state directory is writable by this user",
        ),
    }
}
