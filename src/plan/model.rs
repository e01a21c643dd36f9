//! A configured model: its manifest, then the ONNX graph checked against it, in a session with the
//! configured threads — after its signature is checked against the keys the pole trusts. The bundle is the
//! model's active version: an installed one (`installed.rs`) or the configured path.

use super::installed::ModelStore;
use crate::config::LoadedConfig;
use crate::detect::{Detector, Manifest};
use std::path::Path;

/// Load the configured model `name` at its active version.
pub fn load_model(loaded: &LoadedConfig, name: &str) -> Result<Detector, String> {
    let (_, dir) = ModelStore::of(loaded)
        .active_path(loaded, name)
        .ok_or_else(|| format!("no model `{name}` in the configuration"))?;
    load_bundle(loaded, name, &dir)
}

/// Load the bundle at `dir` as model `name` (its threads from the configuration), signature first.
pub fn load_bundle(loaded: &LoadedConfig, name: &str, dir: &Path) -> Result<Detector, String> {
    let m = loaded
        .config
        .models
        .get(name)
        .ok_or_else(|| format!("no model `{name}` in the configuration"))?
        .get_ref();
    let signed = super::trust::check_bundle_trust(loaded, dir)?;
    let manifest = Manifest::load(dir).map_err(|e| e.to_string())?;
    let detector = Detector::load(manifest, m.threads).map_err(|e| e.to_string())?;
    if signed != crate::detect::Signed::Unsigned {
        tracing::info!(model = name, signature = %signed.describe(), "Model bundle signature checked.");
    }
    Ok(detector)
}
