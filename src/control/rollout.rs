//! A model's versions over MQTT: `model_install` (download, check, keep — never half-installed),
//! `model_activate` (loaded and warmed, then swapped in by each worker between two frames, open cases
//! continued; on probation), `model_rollback` (back to the version before) and `models`. A version on
//! probation that faults is swapped back by its own worker; what the workers say is handled in
//! `versions.rs`.

use super::command::CommandError;
use super::download::{Fetch, unpack};
use super::model_args::ModelRequest;
use super::worker::{Swap, Swapped, WorkerCmd, WorkerLink};
use super::{Control, send, wait};
use crate::config::LoadedConfig;
use crate::detect::{Detector, Manifest};
use crate::incident::ModelInfo;
use crate::plan::ModelStore;
use crate::plan::installed::{ARCHIVE_SHA, CONFIGURED, version_dir_name};
use std::time::{Duration, Instant};

/// How long a download may take in all.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long a worker may take to swap (it stores the events in hand first: at most a few JPEGs).
const SWAP_ANSWER: Duration = Duration::from_secs(30);
/// A version's manifest version and ONNX hash, as status and replies show them.
type Shown = (String, String);

/// Earlier versions remembered for `model_rollback`.
const HISTORY: usize = 10;

/// Run one inference on a mid-grey picture of the model's input size: the session's first run (memory
/// plans, kernels) happens before the swap, not on a camera's frame — and a version that cannot infer is
/// refused here.
fn warm(d: &mut Detector) -> Result<(), String> {
    let (w, h) = (d.manifest.input.width, d.manifest.input.height);
    let grey = vec![128u8; w * h * 3];
    let view = crate::base::ImageView::new(w, h, w * 3, &grey).map_err(|e| e.to_string())?;
    d.run(view)
        .map(|_| ())
        .map_err(|e| format!("it fails at inference: {e}"))
}

impl Control {
    pub(super) fn model_command(
        &self,
        req: &ModelRequest,
    ) -> Result<serde_json::Value, CommandError> {
        match req {
            ModelRequest::Install {
                model,
                url,
                sha256,
                signature,
            } => self.install(model, url, sha256, signature.as_deref()),
            ModelRequest::Activate {
                model,
                version,
                latency_budget_ms,
                probation_s,
            } => self.activate(model, version, *latency_budget_ms, *probation_s),
            ModelRequest::Rollback { model } => self.rollback(model),
            ModelRequest::List { model } => self.list(model.as_deref()),
        }
    }

    fn model_config<'a>(
        loaded: &'a LoadedConfig,
        model: &str,
    ) -> Result<&'a crate::config::ModelConfig, CommandError> {
        loaded
            .config
            .models
            .get(model)
            .map(|m| m.get_ref())
            .ok_or_else(|| {
                let known: Vec<&str> = loaded.config.models.keys().map(String::as_str).collect();
                CommandError::new(
                    "not_found",
                    format!(
                        "no model `{model}`; configured models: {}",
                        known.join(", ")
                    ),
                )
            })
    }

    fn install(
        &self,
        model: &str,
        url: &str,
        sha256: &str,
        signature: Option<&str>,
    ) -> Result<serde_json::Value, CommandError> {
        let loaded = self.running_config();
        let m = Self::model_config(&loaded, model)?;
        let store = ModelStore::of(&loaded);
        if let Some(i) = store
            .installed(model)
            .into_iter()
            .find(|i| i.archive_sha256.as_deref() == Some(sha256))
        {
            return Ok(
                serde_json::json!({ "model": model, "installed": i, "already_installed": true }),
            );
        }
        let started = Instant::now();
        let staging = store.staging();
        let cap = m.max_download_mb * 1024 * 1024;
        let fetch = Fetch {
            url,
            sha256,
            cap,
            staging: &staging,
            timeout: DOWNLOAD_TIMEOUT,
        };
        let archive = fetch.archive()?;
        let bytes = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
        let unpacked = staging.join(format!("{sha256}.d"));
        // A compressed archive unpacks to more than it weighs; four times the cap is room for any bundle.
        let result =
            self.install_unpacked(&loaded, model, &archive, &unpacked, (4 * cap, signature));
        // What was checked (or refused) is not needed again: a bad archive will not get better.
        let _ = std::fs::remove_dir_all(&unpacked);
        let _ = std::fs::remove_file(&archive);
        let (name, signed, detector) = result?;
        std::fs::write(store.dir(model).join(&name).join(ARCHIVE_SHA), sha256)
            .map_err(|e| CommandError::new("failed", format!("installed, but {e}")))?;
        store.prune(model, m.keep_versions);
        tracing::info!(model, version = %name, bytes, "Model version installed.");
        Ok(serde_json::json!({
            "model": model,
            "installed": name,
            "version": detector.manifest.version,
            "bundle": detector.manifest.name,
            "sha256": detector.sha256,
            "archive_bytes": bytes,
            "signature": signed,
            "seconds": started.elapsed().as_secs_f64(),
            "active": store.versions(model).active,
        }))
    }

    /// Unpack, check (signature, manifest, graph, the cameras' rules) and move into the store.
    fn install_unpacked(
        &self,
        loaded: &LoadedConfig,
        model: &str,
        archive: &std::path::Path,
        unpacked: &std::path::Path,
        (cap, signature): (u64, Option<&str>),
    ) -> Result<(String, String, Detector), CommandError> {
        let root = unpack(archive, unpacked, cap)?;
        let refuse = |e: String| {
            CommandError::new(
                "invalid_model",
                format!("bundle refused, nothing was installed: {e}"),
            )
        };
        if let Some(sig) = signature {
            std::fs::write(root.join(crate::detect::SIGNATURE_FILE), sig)
                .map_err(|e| refuse(e.to_string()))?;
        }
        let signed = crate::plan::check_bundle_trust(loaded, &root).map_err(refuse)?;
        let manifest = Manifest::load(&root).map_err(|e| refuse(e.to_string()))?;
        let mut detector = Detector::load(manifest, 1).map_err(|e| refuse(e.to_string()))?;
        warm(&mut detector).map_err(refuse)?;
        self.fits_cameras(loaded, model, &detector)
            .map_err(refuse)?;
        let name = version_dir_name(&detector.manifest.version, &detector.sha256);
        let store = ModelStore::of(loaded);
        let target = store.dir(model).join(&name);
        if target.exists() {
            return Err(CommandError::new(
                "failed",
                format!("version `{name}` is installed already (from another archive)"),
            ));
        }
        std::fs::create_dir_all(store.dir(model))
            .and_then(|()| std::fs::rename(&root, &target))
            .map_err(|e| CommandError::new("failed", format!("could not install: {e}")))?;
        Ok((name, signed.describe(), detector))
    }

    /// Every camera of model `model` can run its rules on `d`'s labels.
    fn fits_cameras(&self, loaded: &LoadedConfig, model: &str, d: &Detector) -> Result<(), String> {
        let info = ModelInfo::new(&d.manifest, &d.sha256);
        let problems: Vec<String> = loaded
            .config
            .cameras
            .iter()
            .map(|c| c.get_ref())
            .filter(|c| c.model.get_ref() == model)
            .flat_map(|cam| {
                crate::plan::rule_problems(&loaded.config, cam, &info)
                    .into_iter()
                    .map(|p| format!("camera `{}`: {p}", cam.id))
                    .collect::<Vec<_>>()
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the cameras' rules do not fit its labels: {}",
                problems.join("; ")
            ))
        }
    }

    /// Version `version` of `model`, loaded and warmed for each of its workers with their analysers.
    fn prepare_swaps(
        &self,
        loaded: &LoadedConfig,
        (model, version): (&str, &str),
        links: &[WorkerLink],
        probation: Option<(Duration, u64)>,
    ) -> Result<Vec<Swap>, CommandError> {
        let refuse = |e: String| {
            CommandError::new(
                "invalid_model",
                format!(
                    "version `{version}` of model `{model}` refused, the running one stays: {e}"
                ),
            )
        };
        let dir = ModelStore::of(loaded)
            .path_of(loaded, model, version)
            .ok_or_else(|| refuse("its bundle is not on disk".into()))?;
        let mut swaps = Vec::with_capacity(links.len());
        for link in links {
            let mut detector = crate::plan::load_bundle(loaded, model, &dir).map_err(refuse)?;
            warm(&mut detector).map_err(refuse)?;
            self.fits_cameras(loaded, model, &detector)
                .map_err(refuse)?;
            let info = ModelInfo::new(&detector.manifest, &detector.sha256);
            swaps.push(Swap {
                detector,
                version: version.to_string(),
                analysers: self.analysers_for(loaded, link, &info),
                probation,
            });
        }
        Ok(swaps)
    }

    fn apply_swaps(
        &self,
        links: &[WorkerLink],
        swaps: Vec<Swap>,
    ) -> Result<(Option<Shown>, Vec<Swapped>), CommandError> {
        // The version and hash the workers now run, as status and the reply show them.
        let shown = swaps.first().map(|s| {
            (
                s.detector.manifest.version.clone(),
                s.detector.sha256.clone(),
            )
        });
        let mut done = Vec::with_capacity(links.len());
        for (link, swap) in links.iter().zip(swaps) {
            let (reply, answer) = crossbeam_channel::bounded(1);
            let swap = Box::new(swap);
            send(link, WorkerCmd::Swap { swap, reply })?;
            done.push(wait(&answer, SWAP_ANSWER)?);
        }
        Ok((shown, done))
    }

    /// One change of version at a time, and none while a reload is prepared or applied.
    fn version_gate(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, CommandError> {
        self.reloading.try_lock().map_err(|_| {
            CommandError::new(
                "busy",
                "a reload or another change of model version is under way; retry when it is done",
            )
        })
    }

    fn activate(
        &self,
        model: &str,
        version: &str,
        budget_ms: Option<u64>,
        probation_s: Option<u64>,
    ) -> Result<serde_json::Value, CommandError> {
        let _gate = self.version_gate()?;
        let loaded = self.running_config();
        let m = Self::model_config(&loaded, model)?;
        let links = self.workers_of(model)?;
        let store = ModelStore::of(&loaded);
        let name = store.find(model, version).ok_or_else(|| {
            let installed: Vec<String> =
                store.installed(model).into_iter().map(|i| i.name).collect();
            CommandError::new(
                "not_found",
                format!(
                    "model `{model}` has no version `{version}`; installed: {}, or `{CONFIGURED}`",
                    if installed.is_empty() {
                        "none".into()
                    } else {
                        installed.join(", ")
                    }
                ),
            )
        })?;
        let mut v = store.versions(model);
        if name == v.active {
            return Err(CommandError::new(
                "failed",
                format!("version `{name}` of model `{model}` is already active"),
            ));
        }
        if let Some(until) = self.on_probation(model) {
            return Err(CommandError::new(
                "busy",
                format!(
                    "version `{}` of model `{model}` is on probation until {until}; model_rollback it or wait",
                    v.active
                ),
            ));
        }
        let budget_ms = budget_ms.unwrap_or(m.latency_budget_ms);
        let length = Duration::from_secs(probation_s.unwrap_or(m.probation_s));
        let started = Instant::now();
        let swaps =
            self.prepare_swaps(&loaded, (model, &name), &links, Some((length, budget_ms)))?;
        let load_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (shown, done) = self.apply_swaps(&links, swaps)?;
        let from = std::mem::replace(&mut v.active, name.clone());
        v.history.push(from.clone());
        let excess = v.history.len().saturating_sub(HISTORY);
        v.history.drain(..excess);
        v.rolled_back = None;
        store.save(model, &v).map_err(|e| {
            CommandError::new(
                "failed",
                format!("swapped, but the versions were not saved: {e}"),
            )
        })?;
        let until = chrono::Utc::now() + chrono::Duration::from_std(length).unwrap_or_default();
        let until = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.show_model(model, |s| {
            s.runs(&name, shown.clone());
            (s.state, s.probation_until, s.rolled_back) = ("probation", Some(until.clone()), None);
        });
        store.prune(model, m.keep_versions);
        tracing::info!(model, from = %from, to = %name, load_ms, "Model version activated.");
        Ok(serde_json::json!({
            "model": model, "from": from, "to": name,
            "version": shown.as_ref().map(|s| &s.0), "sha256": shown.as_ref().map(|s| &s.1),
            "load_ms": load_ms, "workers": done,
            "probation": { "until": until, "seconds": length.as_secs(), "latency_budget_ms": budget_ms },
        }))
    }

    fn rollback(&self, model: &str) -> Result<serde_json::Value, CommandError> {
        let _gate = self.version_gate()?;
        let loaded = self.running_config();
        Self::model_config(&loaded, model)?;
        let links = self.workers_of(model)?;
        let store = ModelStore::of(&loaded);
        let mut v = store.versions(model);
        let Some(to) = v.history.last().cloned() else {
            return Err(CommandError::new(
                "failed",
                format!(
                    "model `{model}` has no earlier version to go back to (it runs `{}`)",
                    v.active
                ),
            ));
        };
        let swaps = self.prepare_swaps(&loaded, (model, &to), &links, None)?;
        let (shown, done) = self.apply_swaps(&links, swaps)?;
        v.history.pop();
        let from = std::mem::replace(&mut v.active, to.clone());
        store.save(model, &v).map_err(|e| {
            CommandError::new(
                "failed",
                format!("rolled back, but the versions were not saved: {e}"),
            )
        })?;
        self.show_model(model, |s| {
            s.runs(&to, shown);
            (s.state, s.probation_until) = ("active", None);
        });
        tracing::info!(model, %from, %to, "Model version rolled back by command.");
        Ok(serde_json::json!({ "model": model, "from": from, "to": to, "workers": done }))
    }

    fn list(&self, only: Option<&str>) -> Result<serde_json::Value, CommandError> {
        let loaded = self.running_config();
        if let Some(m) = only {
            Self::model_config(&loaded, m)?;
        }
        let store = ModelStore::of(&loaded);
        let status = self.models.lock().expect("status lock").clone();
        let shadows = self.shadows.lock().expect("shadow board lock").clone();
        let models: Vec<serde_json::Value> = loaded
            .config
            .models
            .iter()
            .filter(|(name, _)| only.is_none_or(|m| m == *name))
            .map(|(name, m)| {
                let configured = Manifest::load(&loaded.resolve(&m.get_ref().path)).ok();
                serde_json::json!({
                    "name": name,
                    "versions": store.versions(name),
                    "status": status.iter().find(|s| &s.name == name),
                    "configured": configured.map(|c| serde_json::json!({ "version": c.version, "bundle": c.name, "sha256": c.sha256 })),
                    "installed": store.installed(name),
                    "shadow": shadows.values().filter(|r| &r.model == name).map(|r| &r.candidate).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(serde_json::json!({ "models": models }))
    }
}
