//! Applying a reloaded configuration: which cameras keep their analyser (and open incidents), which start
//! afresh, and which sections only a restart can change.

use super::{Pipelines, Shared};
use crate::config::LoadedConfig;
use crate::control::Prepared;
use std::collections::HashMap;

/// Stop the running pipelines and start them again from `new`. Cameras whose configuration (and model)
/// did not change keep their analyser as it is; the others get a new one, which takes over their open
/// incidents whose zone and category still exist (the rest resolve with `config_changed`).
pub(super) async fn reload(
    pipelines: Pipelines,
    old: &LoadedConfig,
    new: Prepared,
    shared: &Shared,
    sink: &super::sink::Sink,
) -> anyhow::Result<(Pipelines, (LoadedConfig, serde_json::Value))> {
    let mut analysers = tokio::task::spawn_blocking(move || pipelines.stop()).await?;
    let Prepared {
        loaded: new,
        detectors,
    } = new;
    let (before, after) = (&old.table, &new.table);
    let mut kept = HashMap::new();
    let mut restarted = Vec::new();
    for (id, analyser) in analysers.drain() {
        let inputs = analyser_inputs(after, &id);
        if inputs.is_some() && analyser_inputs(before, &id) == inputs {
            kept.insert(id, analyser);
        } else {
            restarted.push(id.clone());
        }
    }
    let restart_required: Vec<&str> = ["device", "uplink", "storage", "ops"]
        .into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    let summary = serde_json::json!({
        "applied": true,
        "cameras_kept": kept.keys().collect::<Vec<_>>(),
        "cameras_restarted": restarted,
        "restart_required": restart_required,
    });
    let next = Pipelines::start(&new, kept, detectors, shared, sink)?;
    Ok((next, (new, summary)))
}

/// Everything a camera's analyser is built from, to tell whether a reload changed it.
fn analyser_inputs(t: &toml::Table, camera: &str) -> Option<toml::Value> {
    let cam = t
        .get("camera")?
        .as_array()?
        .iter()
        .find(|c| c.get("id").and_then(|v| v.as_str()) == Some(camera))?
        .clone();
    let model = cam
        .get("model")
        .and_then(|m| m.as_str())
        .and_then(|m| t.get("models")?.get(m))
        .cloned();
    let mut inputs = toml::Table::new();
    inputs.insert("camera".into(), cam);
    for k in ["device", "evidence", "categories", "storage"] {
        if let Some(v) = t.get(k) {
            inputs.insert(k.into(), v.clone());
        }
    }
    if let Some(m) = model {
        inputs.insert("model".into(), m);
    }
    Some(toml::Value::Table(inputs))
}
