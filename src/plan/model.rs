//! A configured model: its manifest, then the ONNX graph checked against it, in a session with the
//! configured threads.

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
    let manifest = Manifest::load(&loaded.resolve(&m.path)).map_err(|e| e.to_string())?;
    Detector::load(manifest, m.threads).map_err(|e| e.to_string())
}
