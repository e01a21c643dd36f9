//! `streetsight examples CAMERA ZONE`: a zone's labelled examples on this pole — import a directory of
//! labelled pictures of the camera's view (`DIR/<state>/*.jpg|png`, each cropped to the zone the way the
//! rule crops it; pictures with people or vehicles over the zone are skipped, as the rule skips such
//! samples), list them, and measure them: each example judged by all the others (leave-one-out), per state
//! precision and recall. Works whether or not the agent runs; a running agent reads imported examples at
//! its next start or reload (the `label` command teaches it live).

use crate::base::{ImageView, SharedEmbedder};
use crate::config::LoadedConfig;
use crate::incident::{Analyser, ModelInfo, StateScore, Wanted};
use anyhow::{Context, bail};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// What an import did.
#[derive(Debug, Default)]
pub struct Imported {
    pub added: usize,
    /// Pictures left out, with why.
    pub skipped: Vec<String>,
}

/// Camera `camera`'s analyser with its zone-state rules equipped, and its detector.
fn prepare(
    loaded: &LoadedConfig,
    camera: &str,
) -> anyhow::Result<(Analyser, crate::detect::Detector)> {
    let cam = loaded
        .config
        .cameras
        .iter()
        .map(|c| c.get_ref())
        .find(|c| c.id == camera)
        .with_context(|| format!("no camera `{camera}` in the configuration"))?;
    let model = cam.model.get_ref();
    let detector = crate::plan::load_model(loaded, model)
        .map_err(|e| anyhow::anyhow!("model `{model}`: {e}"))?;
    let info = ModelInfo::new(&detector.manifest, &detector.sha256);
    let mut analyser = crate::plan::analyser(&loaded.config, cam, info);
    for name in analyser.wanted_embedders() {
        let embedder = crate::plan::load_model(loaded, &name)
            .map_err(|e| anyhow::anyhow!("embedder `{name}`: {e}"))?;
        let shared: SharedEmbedder = Arc::new(Mutex::new(embedder));
        analyser.equip(&name, &shared);
    }
    Ok((analyser, detector))
}

/// Add every picture under `dir/<state>/` as an example of that state for zone `zone`. Recorded in the
/// audit log like a command (source `cli`): accepted before anything is written, then what was added.
pub fn import(
    loaded: &LoadedConfig,
    camera: &str,
    zone: &str,
    dir: &Path,
) -> anyhow::Result<Imported> {
    let (mut analyser, mut detector) = prepare(loaded, camera)?;
    let state_dir = loaded.config.storage.state_dir.get_ref();
    let audit = crate::control::open_audit(&state_dir.join("audit.jsonl"));
    let record = |outcome: &str, detail: serde_json::Value| {
        crate::control::write_audit(
            &audit,
            "cli",
            "examples_import",
            None,
            None,
            outcome,
            detail,
        )
        .map_err(|e| anyhow::anyhow!("{}", e.message))
    };
    let at =
        serde_json::json!({ "camera": camera, "zone": zone, "dir": dir.display().to_string() });
    record("accepted", at)?;
    let mut done = Imported::default();
    let mut added = Vec::new();
    let mut states: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .collect();
    states.sort_by_key(|e| e.file_name());
    if states.is_empty() {
        bail!(
            "{} holds no state directories; put each state's pictures in DIR/<state>/",
            dir.display()
        );
    }
    for state_dir in states {
        let state = state_dir.file_name().to_string_lossy().to_string();
        let mut files: Vec<_> = std::fs::read_dir(state_dir.path())?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| matches!(x.to_str(), Some("jpg" | "jpeg" | "png")))
            })
            .collect();
        files.sort();
        for file in files {
            let shown = file.display().to_string();
            let img = match image::open(&file) {
                Ok(i) => i.to_rgb8(),
                Err(e) => {
                    done.skipped
                        .push(format!("{shown}: not a readable picture ({e})"));
                    continue;
                }
            };
            let view =
                ImageView::packed(img.width() as usize, img.height() as usize, img.as_raw())?;
            let detections = detector.detect(view).map_err(|e| anyhow::anyhow!("{e}"))?;
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            let source = format!("import:{state}/{name}");
            match analyser.add_example(
                zone,
                Wanted::Named(state.clone()),
                &source,
                &view,
                (&detections, true),
            ) {
                Ok(e) => {
                    done.added += 1;
                    added.push(e.id);
                }
                Err(e @ crate::incident::ExampleError::Occluded(_)) => {
                    done.skipped.push(format!("{shown}: {e}"))
                }
                Err(e) => bail!("{shown}: {e}"),
            }
        }
    }
    record(
        "done",
        serde_json::json!({ "camera": camera, "zone": zone, "added": added, "skipped": done.skipped }),
    )?;
    Ok(done)
}

/// Zone `zone`'s examples as a table: id, state, source, created.
pub fn list(loaded: &LoadedConfig, camera: &str, zone: &str) -> anyhow::Result<String> {
    let (analyser, _) = prepare(loaded, camera)?;
    let list = analyser.list_examples(zone)?;
    let mut out = format!("{} examples of {camera}/{zone}\n", list.len());
    for e in list {
        out += &format!(
            "{:<40} {:<12} {:<40} {}\n",
            e.id, e.state, e.source, e.created
        );
    }
    Ok(out)
}

/// Leave-one-out over zone `zone`'s examples.
pub fn evaluate(
    loaded: &LoadedConfig,
    camera: &str,
    zone: &str,
) -> anyhow::Result<Vec<StateScore>> {
    let (analyser, _) = prepare(loaded, camera)?;
    Ok(analyser.leave_one_out(zone)?)
}

/// The leave-one-out figures as a table.
pub fn render_scores(scores: &[StateScore]) -> String {
    let pct = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{:.0} %", v * 100.0));
    let mut out = format!(
        "{:<16} {:>8} {:>10} {:>8}\n",
        "state", "examples", "precision", "recall"
    );
    for s in scores {
        out += &format!(
            "{:<16} {:>8} {:>10} {:>8}\n",
            s.state,
            s.examples,
            pct(s.precision),
            pct(s.recall)
        );
    }
    out
}
