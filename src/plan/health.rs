//! A camera's `[camera.health]` checked (every value in a finite range, at its line) and built into the
//! health monitor's parameters, with where the camera's reference view lives.

use super::check::Check;
use crate::config::{CameraConfig, Config, HealthConfig};
use crate::health::HealthParams;
use crate::incident::{CAMERA_HEALTH, HealthSpec};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Where camera `camera` keeps its reference view (the monitor's bytes) under `state_dir`.
pub fn view_reference_file(state_dir: &Path, camera: &str) -> PathBuf {
    state_dir.join("health").join(format!("{camera}.view"))
}

/// Where camera `camera` keeps its reference view's picture (JPEG) under `state_dir`.
pub fn view_picture_file(state_dir: &Path, camera: &str) -> PathBuf {
    state_dir.join("health").join(format!("{camera}.jpg"))
}

/// `value` must lie in `lo`..=`hi` (and above `lo` when `open_low`); pushes the error at its line.
fn within(c: &mut Check, at: &Spanned<f32>, what: &str, lo: f32, hi: f32, open_low: bool) -> f32 {
    let v = *at.get_ref();
    let ok = v.is_finite() && v <= hi && if open_low { v > lo } else { v >= lo };
    if !ok {
        let low = if open_low { "above" } else { "at least" };
        c.push(
            at,
            format!("{what} = {v} must be {low} {lo} and at most {hi}"),
        );
    }
    v
}

/// Camera `cam`'s health checks; `None` when every check is off.
pub(super) fn health_params(c: &mut Check, cam: &CameraConfig) -> Option<HealthParams> {
    let h: &HealthConfig = &cam.health;
    let what = |key: &str| format!("camera `{}`: health.{key}", cam.id);
    let secs = |c: &mut Check, at: &Spanned<f64>, key: &str, min: f64| {
        let v = *at.get_ref();
        if c.seconds(at, &what(key), v, min) {
            Duration::from_secs_f64(v)
        } else {
            Duration::ZERO
        }
    };
    let params = HealthParams {
        moved: h.moved,
        covered: h.covered,
        blurred: h.blurred,
        frozen: h.frozen,
        brightness: h.brightness,
        colour: h.colour,
        shift_tolerance: within(
            c,
            &h.shift_tolerance,
            &what("shift_tolerance"),
            0.0,
            0.5,
            true,
        ),
        rotation_tolerance: within(
            c,
            &h.rotation_tolerance_deg,
            &what("rotation_tolerance_deg"),
            0.0,
            45.0,
            true,
        ),
        zoom_tolerance: within(
            c,
            &h.zoom_tolerance,
            &what("zoom_tolerance"),
            0.0,
            0.5,
            true,
        ),
        covered_fraction: within(
            c,
            &h.covered_fraction,
            &what("covered_fraction"),
            0.0,
            1.0,
            true,
        ),
        blur_ratio: within(c, &h.blur_ratio, &what("blur_ratio"), 0.0, 0.95, true),
        frozen_after: secs(c, &h.frozen_after_s, "frozen_after_s", 1.0),
        raise_after: secs(c, &h.raise_after_s, "raise_after_s", 0.0),
        clear_after: secs(c, &h.clear_after_s, "clear_after_s", 0.0),
    };
    let any = [
        h.moved,
        h.covered,
        h.blurred,
        h.frozen,
        h.brightness,
        h.colour,
    ]
    .contains(&true);
    any.then_some(params)
}

/// Camera `cam`'s health parameters from a configuration `plan::load` accepted (none when every check is
/// off): what `check` judges a probed frame with.
pub fn camera_health_params(cam: &CameraConfig) -> Option<HealthParams> {
    let lines = crate::config::Lines::new(Path::new("(configuration)"), "");
    let mut check = Check::new(&lines, Path::new(""));
    health_params(&mut check, cam)
}

/// Camera `cam`'s health spec for its analyser.
pub(super) fn health_spec(
    c: &mut Check,
    config: &Config,
    cam: &CameraConfig,
) -> Option<HealthSpec> {
    let params = health_params(c, cam)?;
    let state_dir = config.storage.state_dir.get_ref();
    Some(HealthSpec {
        params,
        reference_file: view_reference_file(state_dir, &cam.id),
        view_file: view_picture_file(state_dir, &cam.id),
        codes: super::rules::category_codes(config, CAMERA_HEALTH),
    })
}
