//! `streetsight scene-reference CAMERA ZONE`: the camera's frame now becomes a scene-change zone's clean
//! reference — for the moment the installer has cleaned the spot and is still
//! standing at the pole, whether or not the agent runs.

use super::snapshot::{SnapshotError, grab};
use crate::config::LoadedConfig;
use crate::incident::ModelInfo;
use std::time::Duration;

/// Take camera `camera`'s frame now as the clean reference of its scene-change zone `zone` and keep it
/// where the agent reads it; returns what was done.
pub fn take_reference(
    loaded: &LoadedConfig,
    camera: &str,
    zone: &str,
    timeout: Duration,
) -> Result<String, SnapshotError> {
    let (cam, probe) = grab(loaded, camera, timeout)?;
    let model_name = cam.model.get_ref();
    let detector = crate::plan::load_model(loaded, model_name)
        .map_err(|e| SnapshotError::Model(model_name.clone(), e))?;
    let info = ModelInfo::new(&detector.manifest, &detector.sha256);
    let mut analyser = crate::plan::analyser(&loaded.config, cam, info);
    let image = analyser
        .retake_reference(zone, &probe.frame)
        .map_err(|e| SnapshotError::Camera(cam.id.clone(), e.to_string()))?
        .ok_or_else(|| {
            SnapshotError::Camera(
                cam.id.clone(),
                format!("zone `{zone}` keeps no reference file"),
            )
        })?;
    image
        .file
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| crate::base::write_atomic(&image.file, &image.bytes))
        .map_err(|e| {
            SnapshotError::Camera(
                cam.id.clone(),
                format!(
                    "reference could not be written to {}: {e}",
                    image.file.display()
                ),
            )
        })?;
    Ok(format!(
        "{}: reference of scene zone {}/{zone} taken ({}x{}); a running agent uses it from its next restart — to replace the one it holds now, send the scene_reference command",
        image.file.display(),
        cam.id,
        probe.width,
        probe.height,
    ))
}
