//! A candidate model in shadow: it runs beside the active model on every `every`-th frame its worker
//! analyses, through analysers of its own whose drafts are counted and dropped — it raises no incident,
//! writes no reference and touches no case. What it reports: how far it agrees with the active model
//! (per class counts and matched boxes) and which incidents it would have opened that the active model did
//! not, or missed that it opened (by camera, category and zone, over the shadow's lifetime).

use super::{Analyser, Draft, Transition};
use crate::base::{Detection, Frame, Recent};
use crate::detect::{Agreement, ClassAgreement, Detector};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

/// The most frames between two shadow runs, and the fewest.
pub const SHADOW_EVERY: std::ops::RangeInclusive<u32> = 1..=100;

/// What a worker needs to run a candidate in shadow.
pub struct ShadowSetup {
    /// The configured model the candidate shadows, and which of its workers runs this shadow.
    pub model: String,
    pub worker: usize,
    pub bundle: PathBuf,
    pub every: u32,
    pub detector: Detector,
    /// One per camera of the worker, built with the candidate's labels.
    pub analysers: HashMap<String, Analyser>,
}

/// Which incident: camera, category, zone.
type Key = (String, String, String);

pub struct Shadow {
    setup: ShadowSetup,
    seen: u64,
    agreement: Agreement,
    active_opened: BTreeMap<Key, u64>,
    shadow_opened: BTreeMap<Key, u64>,
    errors: u64,
    last_error: Option<String>,
    ms: Recent,
    started: SystemTime,
}

/// What the shadow found so far (telemetry, `/metrics`, the `shadow_report` reply).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShadowReport {
    pub model: String,
    /// The model's worker, and its cameras (each worker of a model runs its own shadow).
    pub worker: usize,
    pub cameras: Vec<String>,
    pub candidate: String,
    pub candidate_version: String,
    pub candidate_sha256: String,
    pub bundle: String,
    pub every: u32,
    pub started_at: String,
    /// Frames the candidate analysed, and frames it failed on.
    pub frames: u64,
    pub errors: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub classes: Vec<ClassAgreement>,
    /// Mean IoU of the boxes both models found.
    pub mean_iou: f64,
    /// Incidents the active model opened, and the candidate (on its frames).
    pub active_opened: u64,
    pub shadow_opened: u64,
    pub would_open: Vec<IncidentKey>,
    pub would_miss: Vec<IncidentKey>,
    /// The candidate's inference, wall milliseconds (median, 95th percentile of the last frames).
    pub ms_p50: f32,
    pub ms_p95: f32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentKey {
    pub camera: String,
    pub category: String,
    pub zone: String,
    /// How many times it opened.
    pub opened: u64,
}

/// The board's key of a model's worker.
pub fn board_key(model: &str, worker: usize) -> String {
    format!("{model}/{worker}")
}

/// The shadows running, by `model/worker`.
pub type ShadowBoard = std::sync::Arc<std::sync::Mutex<BTreeMap<String, ShadowReport>>>;

fn opened(camera: &str, drafts: &[Draft], into: &mut BTreeMap<Key, u64>) {
    for d in drafts {
        if matches!(d.transition, Transition::Opened { .. }) && d.health.is_none() {
            *into
                .entry((camera.to_string(), d.category.clone(), d.zone.id.clone()))
                .or_default() += 1;
        }
    }
}

impl Shadow {
    pub fn new(setup: ShadowSetup) -> Shadow {
        Shadow {
            setup,
            seen: 0,
            agreement: Agreement::default(),
            active_opened: BTreeMap::new(),
            shadow_opened: BTreeMap::new(),
            errors: 0,
            last_error: None,
            ms: Recent::default(),
            started: SystemTime::now(),
        }
    }

    /// Where its report is shown: `model/worker`.
    pub fn board_key(&self) -> String {
        board_key(&self.setup.model, self.setup.worker)
    }

    /// The drafts the active model's analysis of a frame of `camera` produced (every frame).
    pub fn count_active(&mut self, camera: &str, drafts: &[Draft]) {
        opened(camera, drafts, &mut self.active_opened);
    }

    /// Every frame the worker analysed, after the active model's events went on: its detections. Returns
    /// whether the candidate ran on this frame.
    pub fn observe(
        &mut self,
        frame: &Frame,
        active: &[Detection],
        active_labels: &[String],
    ) -> bool {
        self.seen += 1;
        if !self.seen.is_multiple_of(u64::from(self.setup.every)) {
            return false;
        }
        let started = Instant::now();
        let output = match self.setup.detector.run(frame.picture()) {
            Ok(o) => o,
            Err(e) => {
                self.errors += 1;
                self.last_error = Some(e.to_string());
                return true;
            }
        };
        self.ms.record(started.elapsed().as_secs_f32() * 1000.0);
        self.agreement.observe(
            active,
            active_labels,
            &output.detections,
            &self.setup.detector.manifest.labels,
        );
        if let Some(analyser) = self.setup.analysers.get_mut(&*frame.camera) {
            let step = analyser.step(frame, &output.detections, output.density.as_ref());
            opened(&frame.camera, &step.drafts, &mut self.shadow_opened);
        }
        true
    }

    pub fn report(&self) -> ShadowReport {
        let m = &self.setup.detector.manifest;
        let only = |a: &BTreeMap<Key, u64>, b: &BTreeMap<Key, u64>| {
            a.iter()
                .filter(|(k, _)| !b.contains_key(*k))
                .map(|((camera, category, zone), n)| IncidentKey {
                    camera: camera.clone(),
                    category: category.clone(),
                    zone: zone.clone(),
                    opened: *n,
                })
                .collect()
        };
        let [p50, p95] = self.ms.quantiles([0.5, 0.95]).unwrap_or_default();
        let mut cameras: Vec<String> = self.setup.analysers.keys().cloned().collect();
        cameras.sort();
        ShadowReport {
            model: self.setup.model.clone(),
            worker: self.setup.worker,
            cameras,
            candidate: m.name.clone(),
            candidate_version: m.version.clone(),
            candidate_sha256: self.setup.detector.sha256.clone(),
            bundle: self.setup.bundle.display().to_string(),
            every: self.setup.every,
            started_at: chrono::DateTime::<chrono::Utc>::from(self.started)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            frames: self.agreement.frames(),
            errors: self.errors,
            last_error: self.last_error.clone(),
            classes: self.agreement.classes(),
            mean_iou: self.agreement.mean_iou(),
            active_opened: self.active_opened.values().sum(),
            shadow_opened: self.shadow_opened.values().sum(),
            would_open: only(&self.shadow_opened, &self.active_opened),
            would_miss: only(&self.active_opened, &self.shadow_opened),
            ms_p50: p50,
            ms_p95: p95,
        }
    }
}
