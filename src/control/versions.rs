//! What runs and what the pole did by itself: the models as the status message shows them, what the
//! workers say about versions on probation (a version every worker ran through becomes the last good one;
//! one that faulted is reverted in the model's other workers too), and the record of an automatic
//! rollback — on disk, in the audit log and as a durable `model_events` message.

use super::worker::{ModelNews, WorkerCmd};
use super::{Control, send, write_audit};
use crate::config::LoadedConfig;
use crate::detect::{Detector, Manifest};
use crate::plan::ModelStore;
use crate::plan::installed::{RolledBack, Versions};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// A model in the status message.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelStatus {
    pub name: String,
    /// `active`, `probation` (activated lately, watched) or `rejected`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Which of its versions: `configured` or an installed version's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probation_until: Option<String>,
    /// The last time the pole went back to an earlier version by itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<RolledBack>,
}

impl ModelStatus {
    pub fn active(name: &str, d: &Detector, v: &Versions, installed: &str) -> Self {
        ModelStatus {
            name: name.into(),
            state: "active",
            version: Some(d.manifest.version.clone()),
            sha256: Some(d.sha256.clone()),
            installed: Some(installed.into()),
            error: None,
            probation_until: None,
            rolled_back: v.rolled_back.clone(),
        }
    }

    /// It runs `installed` now, whose manifest version and hash are `shown` (when known).
    pub fn runs(&mut self, installed: &str, shown: Option<(String, String)>) {
        if let Some((version, sha256)) = shown {
            (self.version, self.sha256) = (Some(version), Some(sha256));
        }
        self.installed = Some(installed.to_string());
    }

    pub fn rejected(name: &str, error: String) -> Self {
        ModelStatus {
            name: name.into(),
            state: "rejected",
            version: None,
            sha256: None,
            installed: None,
            error: Some(error),
            probation_until: None,
            rolled_back: None,
        }
    }
}

/// The models as the status message shows them.
pub type ModelBoard = Arc<Mutex<Vec<ModelStatus>>>;

/// Record that model `model` went back from `from` to `to` by itself: its versions on disk, the audit log
/// and a durable `model_events` message. Used by the workers' news and by a start whose active version
/// does not load.
pub fn record_rollback(
    loaded: &LoadedConfig,
    model: &str,
    (from, to): (&str, &str),
    reason: &str,
    audit: &super::SharedAudit,
    ledger: &crate::uplink::OutboxWriter,
) -> Versions {
    let store = ModelStore::of(loaded);
    let mut v = store.versions(model);
    if v.active == from {
        v.active = to.to_string();
        if v.history.last().map(String::as_str) == Some(to) {
            v.history.pop();
        }
    }
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    v.rolled_back = Some(RolledBack {
        from: from.into(),
        to: to.into(),
        reason: reason.into(),
        at: at.clone(),
    });
    if let Err(error) = store.save(model, &v) {
        tracing::error!(model, %error, "Model versions not saved after a rollback.");
    }
    let detail = serde_json::json!({ "model": model, "from": from, "to": to, "reason": reason, "automatic": true });
    let _ = write_audit(audit, "agent", "model_rollback", None, None, "done", detail);
    let event = serde_json::json!({
        "schema": "streetsight.model-event/1",
        "event_id": uuid::Uuid::now_v7().to_string(),
        "time": at,
        "device": loaded.config.device.id.get_ref(),
        "kind": "rolled_back",
        "automatic": true,
        "model": model,
        "from": from,
        "to": to,
        "reason": reason,
    });
    let bytes = serde_json::to_vec(&event).expect("model events serialise");
    if let Err(error) = ledger.append_notice("model_events", &bytes) {
        tracing::error!(model, %error, "Model rollback event not stored.");
    }
    v
}

impl Control {
    /// The configuration the pipelines run now.
    pub(super) fn running_config(&self) -> Arc<LoadedConfig> {
        self.running.lock().expect("running config lock").clone()
    }

    /// When model `model`'s probation ends, if it is on one.
    pub(super) fn on_probation(&self, model: &str) -> Option<String> {
        let board = self.models.lock().expect("status lock");
        board
            .iter()
            .find(|s| s.name == model && s.state == "probation")
            .and_then(|s| s.probation_until.clone())
    }

    /// Change model `model`'s entry in the status message and publish it.
    pub(super) fn show_model(&self, model: &str, change: impl FnOnce(&mut ModelStatus)) {
        let mut board = self.models.lock().expect("status lock");
        if let Some(s) = board.iter_mut().find(|s| s.name == model) {
            change(s);
        }
        drop(board);
        self.status_changed.notify_one();
    }

    /// What the workers say about versions on probation, until they are all gone: a version every worker
    /// ran through its probation becomes the last good one; one that faulted in a worker is reverted in
    /// the model's other workers too, and recorded.
    pub(super) fn watch_probations(&self) {
        let mut passed: HashMap<(String, String), HashSet<usize>> = HashMap::new();
        for news in self.news.iter() {
            let loaded = self.running_config();
            match news {
                ModelNews::Passed {
                    model,
                    worker,
                    version,
                } => {
                    let workers = self.workers_of(&model).map(|l| l.len()).unwrap_or(1);
                    let seen = passed.entry((model.clone(), version.clone())).or_default();
                    seen.insert(worker);
                    if seen.len() < workers {
                        continue;
                    }
                    passed.remove(&(model.clone(), version.clone()));
                    let store = ModelStore::of(&loaded);
                    let mut v = store.versions(&model);
                    if v.active == version {
                        v.last_good = version.clone();
                        if let Err(error) = store.save(&model, &v) {
                            tracing::error!(model, %error, "Model versions not saved.");
                        }
                    }
                    let detail = serde_json::json!({ "model": model, "version": version });
                    let _ = write_audit(
                        &self.audit,
                        "agent",
                        "model_probation",
                        None,
                        None,
                        "passed",
                        detail,
                    );
                    self.show_model(&model, |s| (s.state, s.probation_until) = ("active", None));
                }
                ModelNews::RolledBack {
                    model,
                    worker,
                    from,
                    to,
                    reason,
                } => {
                    for link in self.workers_of(&model).unwrap_or_default() {
                        if link.index != worker {
                            let _ = send(
                                &link,
                                WorkerCmd::Revert {
                                    reason: reason.clone(),
                                },
                            );
                        }
                    }
                    let v = record_rollback(
                        &loaded,
                        &model,
                        (&from, &to),
                        &reason,
                        &self.audit,
                        &self.ledger,
                    );
                    let shown = ModelStore::of(&loaded)
                        .path_of(&loaded, &model, &to)
                        .and_then(|d| Manifest::load(&d).ok());
                    self.show_model(&model, |s| {
                        s.runs(&to, shown.map(|m| (m.version, m.sha256)));
                        (s.state, s.probation_until) = ("active", None);
                        s.rolled_back = v.rolled_back.clone();
                    });
                }
            }
        }
    }
}
