//! A camera's geometry: where its scene references live (and whether each is there yet), its zones' real
//! areas (configured or through the ground homography), and the checks of masks, ground calibration and
//! zone membership parameters.

use super::check::{Check, self_intersects};
use crate::config::{CameraConfig, Config, ZoneConfig};
use crate::incident::ModelInfo;
use crate::rules::{Homography, Polygon};
use std::path::{Path, PathBuf};

/// Where camera `camera`'s scene-change zone `zone` keeps its reference image under `state_dir`.
pub fn scene_reference_file(state_dir: &Path, camera: &str, zone: &str) -> PathBuf {
    state_dir
        .join("scene")
        .join(format!("{camera}--{zone}.ref"))
}

/// Each scene-change zone of `cam` and what its reference is: kept (size, when taken) or still to take.
pub fn scene_reference_states(config: &Config, cam: &CameraConfig) -> Vec<(String, String)> {
    cam.scene_change
        .iter()
        .map(|r| {
            let zone = r.get_ref().zone.get_ref();
            let file = scene_reference_file(
                config.storage.state_dir.get_ref(),
                &cam.id,
                zone,
            );
            let state = match std::fs::metadata(&file) {
                Ok(m) => format!(
                    "reference kept ({} bytes, taken {})",
                    m.len(),
                    m.modified()
                        .map(|t| chrono::DateTime::<chrono::Utc>::from(t)
                            .format("%Y-%m-%d %H:%M UTC")
                            .to_string())
                        .unwrap_or_else(|_| "at an unknown time".into())
                ),
                Err(_) => format!(
                    "no reference yet: the first frame without movement in the zone becomes it; or run `streetsight scene-reference {} {zone}` (or send the scene_reference command) while the zone is clean",
                    cam.id
                ),
            };
            (zone.clone(), state)
        })
        .collect()
}

/// A zone's area: configured, or projected through the camera's ground homography.
pub fn zone_area(cam: &CameraConfig, z: &ZoneConfig) -> Option<f64> {
    if let Some(a) = &z.area_m2 {
        return Some(*a.get_ref());
    }
    let g = cam.ground.as_ref()?.get_ref();
    let h = Homography::fit(&g.image, &g.ground).ok()?;
    h.area_m2(&Polygon::new(z.points.get_ref()).points)
}

/// Masks, ground calibration and zone membership parameters of one camera.
pub(crate) fn verify_camera_geometry(c: &mut Check, cam: &CameraConfig, model: Option<&ModelInfo>) {
    for m in &cam.masks {
        let points = m.get_ref().points.get_ref();
        if points.len() < 3
            || points.len() > 256
            || points.iter().flatten().any(|v| !(0.0..=1.0).contains(v))
            || self_intersects(points)
        {
            c.push(
                &m.get_ref().points,
                format!(
                    "camera `{}`: a mask needs 3–256 points, each within 0..1, in order around the area (its edges may not cross)",
                    cam.id
                ),
            );
        }
        if let Some(model) = model {
            for l in m
                .get_ref()
                .labels
                .iter()
                .filter(|l| !model.labels.contains(l))
            {
                c.push(
                    m,
                    format!(
                        "camera `{}`: mask label `{l}` is not a class of model `{}`",
                        cam.id,
                        cam.model.get_ref()
                    ),
                );
            }
        }
    }
    if let Some(g) = &cam.ground {
        let v = g.get_ref();
        if v.image.len() != v.ground.len() {
            c.push(g, format!("camera `{}`: ground has {} image points and {} ground points; list them in pairs", cam.id, v.image.len(), v.ground.len()));
        } else if v.image.len() > 64
            || v.image.iter().flatten().any(|x| !(0.0..=1.0).contains(x))
            || v.ground
                .iter()
                .flatten()
                .any(|m| !(m.is_finite() && m.abs() <= 100_000.0))
        {
            c.push(g, format!("camera `{}`: ground needs at most 64 pairs, image points within 0..1 and ground points within ±100000 m", cam.id));
        } else {
            match Homography::fit(&v.image, &v.ground) {
                Err(e) => c.push(g, format!("camera `{}`: ground calibration: {e}", cam.id)),
                Ok(h) => {
                    let r = h.max_residual_m(&v.image, &v.ground);
                    if r > 1.0 {
                        c.push(g, format!("camera `{}`: ground calibration is inconsistent: a point lands {r:.2} m from where it was measured; re-measure the pairs (they must lie on one flat ground plane)", cam.id));
                    }
                }
            }
        }
    }
    for z in &cam.zones {
        let z = z.get_ref();
        let o = *z.min_overlap.get_ref();
        if !(o > 0.0 && o <= 1.0) {
            c.push(
                &z.min_overlap,
                format!(
                    "camera `{}`: zone `{}`: min_overlap = {o} must be in (0, 1]",
                    cam.id, z.id
                ),
            );
        }
    }
}
