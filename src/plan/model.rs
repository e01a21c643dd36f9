//! A configured model: its manifest, then the ONNX graph checked against it, in a session with the
//! configured threads — after its signature is checked against the keys the pole trusts.

use crate::config::LoadedConfig;
use crate::detect::{Detector, Manifest};

/// Load the configured model `name`.
pub fn load_model(loaded: &LoadedConfig, name: &str) -> Result<Detector, String> {
    let m = loaded
        .config
        .models
        .get(name)
        .ok_or_else(|| format!("no model `{name}` in the configuration"))?
        .get_ref();
    let dir = loaded.resolve(&m.path);
    let signed = super::trust::check_bundle_trust(loaded, &dir)?;
    let manifest = Manifest::load(&dir).map_err(|e| e.to_string())?;
    let detector = Detector::load(manifest, m.threads).map_err(|e| e.to_string())?;
    if signed != crate::detect::Signed::Unsigned {
        tracing::info!(model = name, signature = %signed.describe(), "Model bundle signature checked.");
    }
    Ok(detector)
}
