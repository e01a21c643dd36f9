//! What the daemon's parts share across reloads, and what it hands the installer's console.

use crate::control::{ModelNews, WorkerRegistry};
use crate::ingest::{CameraList, CameraStats};
use crate::uplink::UplinkStats;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the installer's console reads and does on the running daemon.
#[derive(Clone)]
pub struct Handles {
    pub cameras: CameraList,
    pub scenes: crate::incident::SceneBoard,
    pub health: crate::incident::HealthBoard,
    /// Each camera's latest frame and the latest events.
    pub live: crate::incident::LiveBoard,
    pub telemetry: Arc<crate::uplink::TelemetrySource>,
    pub uplink: Arc<UplinkStats>,
    pub workers: WorkerRegistry,
    /// Where a reload is applied, and the gate that keeps reloads one at a time.
    pub reload: tokio::sync::mpsc::Sender<crate::control::ReloadRequest>,
    pub reloading: crate::control::ReloadGate,
    /// The configuration the pipelines run now.
    pub running: crate::control::RunningConfig,
    pub audit: crate::control::SharedAudit,
    /// The local evidence archive (`state_dir/evidence`).
    pub evidence_dir: std::path::PathBuf,
}

/// What the daemon's parts share across reloads.
pub(super) struct Shared {
    /// The configured cameras and their counters, in order, as status, telemetry and `/healthz` list them.
    pub(super) camera_stats: CameraList,
    /// Every camera's counters by id, kept across reloads so a restarted camera's counters keep growing.
    pub(super) counters: Arc<Mutex<HashMap<String, Arc<CameraStats>>>>,
    /// Tells the uplink to publish the retained status now (cameras or models changed).
    pub(super) status_changed: Arc<tokio::sync::Notify>,
    /// Scene-change zones and whether each has its reference.
    pub(super) scenes: crate::incident::SceneBoard,
    /// Each camera's health as its worker last judged it.
    pub(super) health: crate::incident::HealthBoard,
    pub(super) models: crate::control::ModelBoard,
    pub(super) workers: WorkerRegistry,
    /// A dispatcher's suppressions, read by every analyser (kept on disk by the control side).
    pub(super) suppressions: crate::incident::Suppressions,
    /// Candidate models in shadow and how far they agree (telemetry, `/metrics`, `shadow_report`).
    pub(super) shadows: crate::incident::ShadowBoard,
    /// The configuration the pipelines run (for commands that build from it: a shadow's rules).
    pub(super) running: crate::control::RunningConfig,
    /// Where model workers tell the control side about versions on probation.
    pub(super) news: crossbeam_channel::Sender<ModelNews>,
    pub(super) audit: crate::control::SharedAudit,
}

impl Shared {
    /// The counters of camera `id`, the same ones across reloads.
    pub(super) fn counters_of(&self, id: &str) -> Arc<CameraStats> {
        self.counters
            .lock()
            .expect("counters lock")
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    /// List camera `id` as off, with why: status, `/healthz` and `/metrics` show it, unhealthy.
    pub(super) fn list_off(&self, id: &str, reason: String) {
        let stats = self.counters_of(id);
        stats.set_off(reason);
        self.camera_stats
            .lock()
            .expect("status lock")
            .push((id.into(), stats));
    }
}
