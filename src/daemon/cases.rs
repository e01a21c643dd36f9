//! Cases and suppressions across restarts and reloads: what was kept on disk is read back, each new
//! analyser takes over the cases of its camera, and whatever nobody takes over ends with a reason — a
//! restart or reload never leaves an orphan.

use super::sink::Sink;
use crate::base::Shutdown;
use crate::config::Config;
use crate::incident::{Analyser, CaseRecord, ResolveReason, Suppression, Suppressions};
use crate::uplink::OutboxWriter;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

/// How often the agent notes on disk that it is alive; a restart measures its downtime from the last note.
const ALIVE_EVERY: Duration = Duration::from_secs(10);

/// At start: an open case whose cooldown is shorter than the time the agent was down cannot be told from
/// a new one — it resolves `not_observed` (no case goes on as if it had been watched).
pub(super) fn after_downtime(sink: &Sink, config: &Config) {
    let writer = &sink.outbox;
    let Some(last) = writer.last_alive() else {
        return;
    };
    let now = SystemTime::now();
    let down = now.duration_since(last).unwrap_or_default();
    for r in writer.cases().into_iter().filter(CaseRecord::is_open) {
        if down > Duration::from_secs(r.cooldown_s) {
            tracing::info!(incident = %r.incident_id, camera = %r.camera, down_s = down.as_secs(), cooldown_s = r.cooldown_s, "Open incident not continued: the agent was down for longer than its cooldown.");
            let wording = crate::plan::wording(config);
            sink.store(&r.resolution(ResolveReason::NotObserved, now, &wording));
        }
    }
}

/// The suppressions kept on disk that are still in force.
pub(super) fn kept_suppressions(writer: &OutboxWriter) -> Vec<Suppression> {
    let list =
        Suppressions::new(writer.suppressions(), SystemTime::now()).active(SystemTime::now());
    if !list.is_empty() {
        tracing::info!(count = list.len(), "Suppressions from before are in force.");
    }
    list
}

/// Note every few seconds that the agent is alive, until shutdown; lay the disk's ballast again once
/// there is room.
pub(super) fn keep_alive(
    writer: OutboxWriter,
    disk: std::sync::Arc<crate::base::DiskGuard>,
    shutdown: Shutdown,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("alive".into())
        .spawn(move || {
            loop {
                writer.mark_alive();
                disk.restore_ballast();
                if shutdown.sleep_or_stop(ALIVE_EVERY) {
                    break;
                }
            }
        })
        .expect("spawn alive thread")
}

/// What carries over into pipelines being started: the analysers of unchanged cameras (a reload keeps
/// them as they are) and the kept cases of every camera — taken over by new analysers, left alone for kept
/// ones, and ended for the rest.
pub(super) struct Carryover {
    kept: HashMap<String, Analyser>,
    by_camera: HashMap<String, Vec<CaseRecord>>,
    /// Records a new analyser of their camera did not take (no such zone or rule any more).
    left: Vec<CaseRecord>,
}

impl Carryover {
    pub(super) fn read(writer: &OutboxWriter, kept: HashMap<String, Analyser>) -> Self {
        let mut by_camera: HashMap<String, Vec<CaseRecord>> = HashMap::new();
        for r in writer.cases() {
            by_camera.entry(r.camera.clone()).or_default().push(r);
        }
        Carryover {
            kept,
            by_camera,
            left: Vec::new(),
        }
    }

    /// Camera `id`'s analyser for a model with `sha256`: its kept one when the model is the same (it goes
    /// on with its own cases, whose records stay as they are), else `build()`, which takes over the
    /// camera's kept cases and follows `suppressions`.
    pub(super) fn analyser(
        &mut self,
        id: &str,
        sha256: &str,
        suppressions: &Suppressions,
        build: impl FnOnce() -> Analyser,
    ) -> Analyser {
        if let Some(a) = self.kept.remove(id).filter(|a| a.model_sha256() == sha256) {
            self.by_camera.remove(id);
            return a;
        }
        let mut a = build();
        a.share_suppressions(suppressions.clone());
        let Some(records) = self.by_camera.remove(id) else {
            return a;
        };
        for r in records.iter().filter(|r| r.is_open()) {
            tracing::info!(camera = %r.camera, zone = %r.zone, category = %r.category, incident = %r.incident_id, "Open incident continued.");
        }
        self.left
            .extend(a.resume(records, Instant::now(), SystemTime::now()));
        a
    }

    /// End what nobody took over: an open case resolves — `config_changed` when its camera, zone or rule is
    /// no longer configured, `not_observed` when it is but its camera is off — and a cooling one is dropped.
    /// A kept analyser not started again (its model was rejected) leaves its cases to this too.
    pub(super) fn finish(self, config: &Config, sink: &Sink) {
        let now = SystemTime::now();
        drop(self.kept);
        let records = self
            .left
            .into_iter()
            .chain(self.by_camera.into_values().flatten());
        for r in records {
            if !r.is_open() {
                sink.outbox.forget(&r);
                continue;
            }
            let reason = if crate::plan::has_rule(config, &r.camera, &r.zone, &r.category) {
                ResolveReason::NotObserved
            } else {
                ResolveReason::ConfigChanged
            };
            tracing::info!(camera = %r.camera, zone = %r.zone, category = %r.category, incident = %r.incident_id, ?reason, "Open incident ended: nothing takes it over.");
            sink.store(&r.resolution(reason, now, &crate::plan::wording(config)));
        }
    }
}
