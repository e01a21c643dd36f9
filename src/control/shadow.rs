//! `shadow_start`, `shadow_stop`, `shadow_report`: a candidate bundle beside a configured model, with no
//! restart. The candidate is checked (signature, manifest, graph) and loaded for every worker of the model,
//! with analysers built from the running configuration, before any worker takes it: a bundle that fails
//! is refused with the reason and nothing changes.

use super::command::CommandError;
use super::worker::{WorkerCmd, WorkerLink};
use super::{Control, send, wait};
use crate::detect::{Detector, Manifest};
use crate::incident::{ModelInfo, ShadowReport, ShadowSetup};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// How long a worker may take to answer (it answers between two frames).
const WORKER_ANSWER: Duration = Duration::from_secs(10);

impl Control {
    pub(super) fn workers_of(&self, model: &str) -> Result<Vec<WorkerLink>, CommandError> {
        let links: Vec<WorkerLink> = self
            .workers
            .lock()
            .expect("registry lock")
            .iter()
            .filter(|w| w.model == model)
            .cloned()
            .collect();
        if links.is_empty() {
            let running = self.running.lock().expect("running config lock").clone();
            let known: Vec<&str> = running.config.models.keys().map(String::as_str).collect();
            return Err(CommandError::new(
                "failed",
                if known.contains(&model) {
                    format!(
                        "model `{model}` runs on no camera of this pole; a shadow needs its frames"
                    )
                } else {
                    format!(
                        "no model `{model}`; configured models: {}",
                        known.join(", ")
                    )
                },
            ));
        }
        Ok(links)
    }

    pub(super) fn shadow_start(
        &self,
        model: &str,
        path: &str,
        every: u32,
    ) -> Result<serde_json::Value, CommandError> {
        let links = self.workers_of(model)?;
        let loaded = self.running.lock().expect("running config lock").clone();
        let dir = Path::new(path);
        let refuse = |e: String| {
            CommandError::new(
                "invalid_model",
                format!("candidate refused, nothing changed: {e}"),
            )
        };
        let signed = crate::plan::check_bundle_trust(&loaded, dir).map_err(refuse)?;
        // Everything is loaded before any worker takes it.
        let mut setups = Vec::with_capacity(links.len());
        for link in &links {
            let manifest = Manifest::load(dir).map_err(|e| refuse(e.to_string()))?;
            let detector = Detector::load(manifest, 1).map_err(|e| refuse(e.to_string()))?;
            let info = ModelInfo::new(&detector.manifest, &detector.sha256);
            let analysers = self.analysers_for(&loaded, link, &info);
            setups.push(ShadowSetup {
                model: model.to_string(),
                worker: link.index,
                bundle: dir.to_path_buf(),
                every,
                detector,
                analysers,
            });
        }
        let candidate = setups.first().map(|s| {
            serde_json::json!({
                "name": s.detector.manifest.name,
                "version": s.detector.manifest.version,
                "sha256": s.detector.sha256,
                "signature": signed.describe(),
            })
        });
        let mut replaced = Vec::new();
        for (link, setup) in links.iter().zip(setups) {
            let (reply, answer) = crossbeam_channel::bounded(1);
            send(
                link,
                WorkerCmd::Shadow {
                    setup: Some(Box::new(setup)),
                    reply,
                },
            )?;
            if let Some(old) = wait(&answer, WORKER_ANSWER)? {
                replaced.push(old);
            }
        }
        tracing::info!(model, bundle = %dir.display(), every, "Shadow started.");
        Ok(serde_json::json!({
            "model": model,
            "candidate": candidate,
            "every": every,
            "cameras": links.iter().flat_map(|l| l.cameras.clone()).collect::<Vec<_>>(),
            "replaced": replaced,
        }))
    }

    /// Analysers for `link`'s cameras built from `loaded` for a model described by `info`, following the
    /// dispatchers' suppressions.
    pub(super) fn analysers_for(
        &self,
        loaded: &crate::config::LoadedConfig,
        link: &WorkerLink,
        info: &ModelInfo,
    ) -> HashMap<String, crate::incident::Analyser> {
        let mine = |id: &str| link.cameras.iter().any(|c| c == id);
        crate::plan::analysers(&loaded.config, mine, info, &self.suppressions)
    }

    pub(super) fn shadow_stop(&self, model: &str) -> Result<serde_json::Value, CommandError> {
        let mut reports: Vec<ShadowReport> = Vec::new();
        for link in self.workers_of(model)? {
            let (reply, answer) = crossbeam_channel::bounded(1);
            send(&link, WorkerCmd::Shadow { setup: None, reply })?;
            reports.extend(wait(&answer, WORKER_ANSWER)?);
        }
        if reports.is_empty() {
            return Err(CommandError::new(
                "failed",
                format!("model `{model}` has no shadow running"),
            ));
        }
        tracing::info!(model, "Shadow stopped.");
        Ok(serde_json::json!({ "model": model, "reports": reports }))
    }

    pub(super) fn shadow_report(&self, model: Option<&str>) -> serde_json::Value {
        let reports: Vec<ShadowReport> = self
            .shadows
            .lock()
            .expect("shadow board lock")
            .values()
            .filter(|r| model.is_none_or(|m| r.model == m))
            .cloned()
            .collect();
        serde_json::json!({ "reports": reports })
    }
}
