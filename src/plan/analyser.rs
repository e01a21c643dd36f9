//! A camera's analyser from the checked configuration: its rules (built by `rules.rs`, the same code that
//! checked them), masks with labels resolved to the model's classes, the device and camera it reports as,
//! its time zone and how its evidence is made.

use super::check::Check;
use super::device::timezone;
use super::rules::CameraRules;
use crate::config::{CameraConfig, Config, Lines};
use crate::incident::{
    Analyser, AnalyserSpec, CameraRef, DeviceRef, EvidenceSettings, ModelInfo, PrivacyParams,
};
use crate::rules::{Mask, Polygon};
use crate::track::TrackerParams;
use std::collections::BTreeMap;
use std::path::Path;

/// Build camera `cam`'s analyser from a configuration that `plan::load` accepted, with labels resolved
/// against `model`. A problem found here would mean the file changed meaning between check and build: each
/// is logged as an error (and the rule it concerns left out), never passed over in silence.
pub fn analyser(config: &Config, cam: &CameraConfig, model: ModelInfo) -> Analyser {
    let lines = Lines::new(Path::new("(configuration)"), "");
    let mut check = Check::new(&lines, Path::new(""));
    let slots = slots(config, cam, Some(&model), &mut check);
    let health = super::health::health_spec(&mut check, config, cam);
    timezone(&mut check, config);
    for error in check.into_errors() {
        tracing::error!(camera = %cam.id, error = %error.message, "Configuration problem found while building the camera's rules.");
    }
    let masks = cam
        .masks
        .iter()
        .map(|m| Mask {
            polygon: Polygon::new(m.get_ref().points.get_ref()),
            classes: model.classes(&m.get_ref().labels),
        })
        .collect();
    let spec = AnalyserSpec {
        device: DeviceRef {
            id: config.device.id.get_ref().clone(),
            name: config.device.name.clone(),
            gb28181_id: config
                .device
                .gb28181_id
                .as_ref()
                .map(|g| g.get_ref().clone()),
            address: config.device.address.as_ref().map(|a| a.get_ref().clone()),
        },
        camera: CameraRef {
            id: cam.id.clone(),
            name: cam.name.clone(),
            gb28181_id: cam.gb28181_id.as_ref().map(|g| g.get_ref().clone()),
            address: cam.address.as_ref().map(|a| a.get_ref().clone()),
        },
        wording: super::place::wording(config),
        extensions: super::place::merged_extensions(config, cam, None),
        evidence: EvidenceSettings {
            quality: *config.storage.jpeg_quality.get_ref(),
            clean_frame: config.evidence.clean_frame,
            privacy: PrivacyParams {
                blur_faces: config.evidence.blur_faces,
                head_fraction: *config.evidence.head_fraction.get_ref(),
                ..PrivacyParams::default()
            },
            caption_font: super::device::caption_font(config),
        },
        person_classes: model.classes(&["person".to_string()]),
        masks,
        tracker: TrackerParams::default(),
        slots,
        health,
    };
    Analyser::new(spec, model)
}

/// The analysers of the cameras `wanted` names, built from `config` for a model described by `model`,
/// following the dispatchers' `suppressions`: what a worker takes when its model's version changes.
pub fn analysers(
    config: &Config,
    wanted: impl Fn(&str) -> bool,
    model: &ModelInfo,
    suppressions: &crate::incident::Suppressions,
) -> std::collections::HashMap<String, Analyser> {
    config
        .cameras
        .iter()
        .map(|c| c.get_ref())
        .filter(|c| wanted(&c.id))
        .map(|cam| {
            let mut a = analyser(config, cam, model.clone());
            a.share_suppressions(suppressions.clone());
            (cam.id.clone(), a)
        })
        .collect()
}

/// What would go wrong building camera `cam`'s rules against `model` (a label a rule needs that the model
/// lacks): empty when the model fits the camera's configuration.
pub fn rule_problems(config: &Config, cam: &CameraConfig, model: &ModelInfo) -> Vec<String> {
    let lines = Lines::new(Path::new("(configuration)"), "");
    let mut check = Check::new(&lines, Path::new(""));
    slots(config, cam, Some(model), &mut check);
    check.into_errors().into_iter().map(|e| e.message).collect()
}

/// Camera `cam`'s rules as built slots (labels checked against `model` when there is one).
fn slots(
    config: &Config,
    cam: &CameraConfig,
    model: Option<&ModelInfo>,
    check: &mut Check,
) -> Vec<crate::incident::SlotSpec> {
    let zones: BTreeMap<&str, _> = cam
        .zones
        .iter()
        .map(|z| (z.get_ref().id.as_str(), z.get_ref()))
        .collect();
    CameraRules {
        config,
        cam,
        zones: &zones,
        model,
        state_dir: config.storage.state_dir.get_ref(),
    }
    .slots(check)
}

/// Does camera `camera` have a rule of `category` in zone `zone` in `config` (whatever its model)?
pub fn has_rule(config: &Config, camera: &str, zone: &str, category: &str) -> bool {
    let Some(cam) = config
        .cameras
        .iter()
        .map(|c| c.get_ref())
        .find(|c| c.id == camera)
    else {
        return false;
    };
    let lines = Lines::new(Path::new("(configuration)"), "");
    let mut check = Check::new(&lines, Path::new(""));
    slots(config, cam, None, &mut check)
        .iter()
        .any(|s| s.zone.id == zone && s.category == category)
}
