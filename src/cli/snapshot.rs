//! `streetsight snapshot CAMERA`: one fresh frame from a configured camera, analysed by the camera's model,
//! drawn by [`crate::incident::render_snapshot`] (detections, zones, masks, labelled coordinate grid, heads
//! obscured) — for aiming the camera and reading zone coordinates off the picture; its summary says whether
//! each scene-change zone has its reference.

use crate::config::{CameraConfig, LoadedConfig};
use crate::incident::{Evidence, PrivacyParams, SnapshotInput, render_snapshot};
use crate::ingest::Probe;
use crate::rules::{Mask, Polygon};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("no camera `{0}` in the configuration; configured cameras: {1}")]
    UnknownCamera(String, String),
    #[error("camera `{0}`: {1}")]
    Camera(String, String),
    #[error("model `{0}`: {1}; `streetsight check` says more")]
    Model(String, String),
    #[error("cannot encode the snapshot: {0}")]
    Encode(#[from] image::ImageError),
}

/// A rendered snapshot and a one-line summary of what is on it.
pub struct Snapshot {
    pub image: Evidence,
    pub summary: String,
}

/// Camera `camera` of the configuration and one fresh frame from it (waiting at most `timeout`).
pub(super) fn grab<'a>(
    loaded: &'a LoadedConfig,
    camera: &str,
    timeout: Duration,
) -> Result<(&'a CameraConfig, Probe), SnapshotError> {
    let config = &loaded.config;
    let cam = config
        .cameras
        .iter()
        .map(|c| c.get_ref())
        .find(|c| c.id == camera)
        .ok_or_else(|| {
            let ids: Vec<&str> = config
                .cameras
                .iter()
                .map(|c| c.get_ref().id.as_str())
                .collect();
            SnapshotError::UnknownCamera(camera.to_string(), ids.join(", "))
        })?;
    let cam_err = |e: String| SnapshotError::Camera(cam.id.clone(), e);
    crate::daemon::init_process().map_err(|e| cam_err(e.to_string()))?;
    let source = crate::plan::camera_source(cam, &loaded.base_dir).map_err(cam_err)?;
    let url = crate::base::redact_url(&source.url);
    let probe = crate::ingest::probe(&source, timeout, Duration::ZERO).map_err(|e| {
        cam_err(format!(
            "{url}: {}",
            e.to_string().replace(&source.url, &url)
        ))
    })?;
    Ok((cam, probe))
}

/// Grab one frame from `camera` (waiting at most `timeout` for it), detect, draw.
pub fn take(
    loaded: &LoadedConfig,
    camera: &str,
    timeout: Duration,
) -> Result<Snapshot, SnapshotError> {
    let config = &loaded.config;
    let (cam, probe) = grab(loaded, camera, timeout)?;
    let model_name = cam.model.get_ref();
    let model_err = |e: String| SnapshotError::Model(model_name.clone(), e);
    let mut detector = crate::plan::load_model(loaded, model_name).map_err(model_err)?;
    let detections = detector
        .detect(probe.frame.picture())
        .map_err(|e| model_err(e.to_string()))?;

    let labels = &detector.manifest.labels;
    let zones: Vec<(String, Polygon)> = cam
        .zones
        .iter()
        .map(|z| {
            (
                z.get_ref().id.clone(),
                Polygon::new(z.get_ref().points.get_ref()),
            )
        })
        .collect();
    let masks: Vec<Mask> = cam
        .masks
        .iter()
        .map(|m| Mask {
            polygon: Polygon::new(m.get_ref().points.get_ref()),
            classes: m
                .get_ref()
                .labels
                .iter()
                .filter_map(|l| labels.iter().position(|x| x == l))
                .collect(),
        })
        .collect();
    let privacy = PrivacyParams {
        blur_faces: config.evidence.blur_faces,
        head_fraction: *config.evidence.head_fraction.get_ref(),
        ..PrivacyParams::default()
    };
    let tz: chrono_tz::Tz = config
        .device
        .timezone
        .get_ref()
        .parse()
        .unwrap_or(chrono_tz::Asia::Shanghai);
    let at = chrono::DateTime::<chrono::Utc>::from(probe.frame.captured_at).with_timezone(&tz);
    let caption = format!(
        "camera {}  {}x{}  {}  grid: x right, y down, 0.1 steps",
        cam.id,
        probe.width,
        probe.height,
        at.format("%Y-%m-%d %H:%M:%S %z")
    );
    let input = SnapshotInput {
        detections: &detections,
        labels,
        zones: &zones,
        masks: &masks,
        caption: &caption,
        privacy: &privacy,
    };
    let image = render_snapshot(probe.frame.to_rgb_image(), &input, 90)?;
    let mut summary = format!(
        "camera {}: {}x{}, {} object(s), {} zone(s), {} mask(s), first frame after {} ms",
        cam.id,
        probe.width,
        probe.height,
        detections.len(),
        zones.len(),
        masks.len(),
        probe.first_frame_after.as_millis()
    );
    for (zone, state) in crate::plan::scene_reference_states(config, cam) {
        summary.push_str(&format!("\n  scene zone {zone}: {state}"));
    }
    Ok(Snapshot { image, summary })
}
