//! Incidents: one case per violation, in two halves. The analysis ([`Analyser::step`], pure given the
//! frame's times) drops masked detections, tracks the rest, runs every rule whose schedule is active, and
//! turns each rule's verdict into `opened → updated → resolved` transitions ([`lifecycle`]) as [`Draft`]s;
//! overlapping zones of one category report one incident; a dispatcher's suppression mutes a category in a
//! zone until it expires. The publish half ([`publish`]: `Publisher`, `EvidenceJob`) makes each draft an
//! event with evidence images whose faces are obscured ([`privacy`]), on the daemon's evidence thread.

mod archive;
mod caption;
mod continuity;
mod describe;
mod event;
mod evidence;
mod examples;
mod font;
mod health;
mod lifecycle;
mod live;
mod model;
mod operate;
mod privacy;
mod publish;
mod shadow;
mod snapshot;
mod suppress;

pub use archive::EvidenceArchive;
pub use caption::{CaptionFont, FontError};
pub use continuity::{CaseChange, CaseRecord};
pub use describe::Wording;
pub use event::{
    AgentRef, CameraRef, CrowdInfo, DeviceRef, EvidenceRef, IncidentEvent, ModelRef, ObjectRef,
    Phase, SCHEMA, Verification, ZoneRef, ZoneStateInfo,
};
pub use evidence::{Annotation, Evidence, encode as encode_evidence, render};
pub use examples::{
    ExampleError, ExampleInfo, ExampleSpec, StateScore, StoredExample, Wanted, load_examples,
    remove_example, store_example,
};
pub use font::draw_text;
pub use health::{CAMERA_HEALTH, HealthSpec, VIEW_ZONE};
pub use lifecycle::{CaseRef, Lifecycle, LifecycleParams, ResolveReason, StepInput, Transition};
pub use live::{LiveBoard, LiveBox, LiveView};
pub use model::ModelInfo;
pub use operate::{OperateError, VERIFY_SAMPLES, still_present};
pub use privacy::{PrivacyParams, blur_heads};
pub use publish::{Draft, EvidenceJob, EvidenceSettings, Extensions, Publisher, ReferenceImage};
pub use shadow::{
    IncidentKey, SHADOW_EVERY, Shadow, ShadowBoard, ShadowReport, ShadowSetup,
    board_key as shadow_board_key,
};
pub use snapshot::{SnapshotInput, draw_snapshot, render_snapshot};
pub use suppress::{Suppression, Suppressions};

use crate::base::{CategoryCodes, Detection, Frame};
use crate::rules::{Hit, Mask, Rule, Sample, Schedule, TrackView, Verdict, apply_masks};
use crate::track::{Tracker, TrackerParams};
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// An event ready to publish, with its evidence images (in the order of `event.evidence`).
#[derive(Debug, Clone)]
pub struct Publication {
    pub event: IncidentEvent,
    pub evidence: Vec<Evidence>,
    /// How the event changes the kept cases (committed with it).
    pub case: Option<CaseChange>,
}

impl Publication {
    /// The same event without its evidence images (and without references to them): what is stored when
    /// the disk has no room for the images.
    pub fn without_evidence(&self) -> Publication {
        let mut event = self.event.clone();
        event.evidence.clear();
        let case = self.case.clone().map(|c| match c {
            CaseChange::Keep(mut r) => {
                r.last.evidence.clear();
                CaseChange::Keep(r)
            }
            forget => forget,
        });
        Publication {
            event,
            evidence: Vec::new(),
            case,
        }
    }
}

/// Whether a scene-change zone has its clean reference yet (without one it cannot see a change).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SceneZoneState {
    pub zone: String,
    pub reference: bool,
}

/// Each camera's scene-change zones and their reference state, as the workers last saw them; read by the
/// status and `/healthz`.
pub type SceneBoard =
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, Vec<SceneZoneState>>>>;

/// Each camera's health as its worker last judged it; read by the status, telemetry, `/healthz` and
/// `/metrics`.
pub type HealthBoard = std::sync::Arc<
    std::sync::Mutex<std::collections::BTreeMap<String, crate::health::HealthReport>>,
>;

/// One configured rule as the plan builds it: the rule's initial state, when it runs, how its incidents
/// live, and what they carry.
#[derive(Debug)]
pub struct SlotSpec {
    pub rule: Rule,
    pub schedule: Schedule,
    pub lifecycle: LifecycleParams,
    pub zone: ZoneRef,
    pub category: String,
    pub codes: CategoryCodes,
    /// Where a model-free rule keeps its reference image.
    pub reference_file: Option<PathBuf>,
    /// A zone-state rule's examples and embedder.
    pub examples: Option<ExampleSpec>,
    /// The zone's city-specific fields (over the camera's and the device's).
    pub extensions: Option<Extensions>,
}

/// Everything a camera's analyser is built from, with labels already resolved to the model's classes.
#[derive(Debug)]
pub struct AnalyserSpec {
    pub device: DeviceRef,
    pub camera: CameraRef,
    pub wording: Wording,
    /// The camera's city-specific fields (over the device's), for events that belong to no zone.
    pub extensions: Option<Extensions>,
    pub evidence: EvidenceSettings,
    pub person_classes: Vec<usize>,
    pub masks: Vec<Mask>,
    pub tracker: TrackerParams,
    pub slots: Vec<SlotSpec>,
    /// The camera-health checks (none when every check is off).
    pub health: Option<HealthSpec>,
}

/// One configured rule with its schedule and its incidents.
struct Slot {
    rule: Rule,
    schedule: Schedule,
    active: bool,
    lifecycle: Lifecycle,
    zone: ZoneRef,
    category: String,
    codes: CategoryCodes,
    /// The last verdict (for dedupe across zones and for updates).
    last: Verdict,
    /// Whether the rule's objects were in the latest sample (for verify).
    present: bool,
    /// Where a model-free rule keeps its reference image.
    reference_file: Option<PathBuf>,
    /// A zone-state rule's examples and embedder.
    examples: Option<ExampleSpec>,
    extensions: Option<Extensions>,
    /// What the log last said of why the rule judges nothing.
    problem: Option<String>,
    /// The zone-state rule's sample count the debug log last showed.
    judged: u64,
    /// Its incident was taken over from before a restart or reload and the rule has not confirmed it
    /// since: what the rule looks for being there keeps it open meanwhile.
    resumed: bool,
}

/// Rules and open incidents of one camera.
pub struct Analyser {
    /// Who the camera is and how its evidence is made (shared with the evidence thread).
    publisher: Arc<Publisher>,
    masks: Vec<Mask>,
    tracker: Tracker,
    slots: Vec<Slot>,
    suppressions: Suppressions,
    health: Option<health::HealthSlot>,
}

/// What the analysis of one frame produced: the transitions in order, and scene references it took.
#[derive(Debug, Default)]
pub struct Step {
    pub drafts: Vec<Draft>,
    pub references: Vec<ReferenceImage>,
    /// The camera's view reference was taken on this frame: keep the picture here as a JPEG.
    pub view_picture: Option<PathBuf>,
}

/// Do two verdicts see the same thing (a shared track, or boxes that mostly coincide)?
fn same_objects(a: &[Hit], b: &[Hit]) -> bool {
    a.iter().any(|x| {
        b.iter().any(|y| match (x.track_id, y.track_id) {
            (Some(i), Some(j)) => i == j,
            _ => x.bbox.iou(&y.bbox) > 0.5,
        })
    })
}

impl Analyser {
    /// Build a camera's analyser. A scene-change rule's reference image is read from its file when one was
    /// kept; an unreadable one is ignored (a new one is taken from the first quiet frame).
    pub fn new(spec: AnalyserSpec, model: ModelInfo) -> Self {
        let slots = spec
            .slots
            .into_iter()
            .map(|s| {
                let mut rule = s.rule;
                if let (Rule::Scene(scene), Some(file)) = (&mut rule, &s.reference_file)
                    && let Ok(bytes) = std::fs::read(file)
                {
                    match scene.change.load_reference(&bytes) {
                        Ok(()) => {
                            tracing::info!(camera = %spec.camera.id, zone = %s.zone.id, "Scene-change reference loaded.")
                        }
                        Err(error) => {
                            tracing::warn!(camera = %spec.camera.id, zone = %s.zone.id, %error, "Scene-change reference ignored; a new one is taken from the first quiet frame.")
                        }
                    }
                }
                Slot {
                    rule,
                    schedule: s.schedule,
                    active: false,
                    lifecycle: Lifecycle::new(s.lifecycle),
                    zone: s.zone,
                    category: s.category,
                    extensions: s.extensions,
                    codes: s.codes,
                    last: Verdict::none(),
                    present: false,
                    reference_file: s.reference_file,
                    examples: s.examples,
                    problem: None,
                    judged: 0,
                    resumed: false,
                }
            })
            .collect();
        let health = spec
            .health
            .map(|h| health::HealthSlot::new(h, &spec.camera.id));
        Analyser {
            health,
            publisher: Arc::new(Publisher {
                device: spec.device,
                camera: spec.camera,
                model,
                wording: spec.wording,
                extensions: spec.extensions,
                evidence: spec.evidence,
                person_classes: spec.person_classes,
            }),
            masks: spec.masks,
            tracker: Tracker::new(spec.tracker),
            slots,
            suppressions: Suppressions::default(),
        }
    }

    /// Follow `board` (the daemon's suppressions, shared by every camera) instead of this analyser's own.
    /// How this camera's events are worded (time zone, language).
    pub fn wording(&self) -> Wording {
        self.publisher.wording
    }

    pub fn share_suppressions(&mut self, board: Suppressions) {
        self.suppressions = board;
    }

    /// Suppress a category in a zone until `until`; an incident open there resolves (`suppressed`) on the
    /// next frame.
    pub fn suppress(&mut self, s: Suppression) {
        self.suppressions.add(s, SystemTime::now());
    }

    /// Run every rule on one analysed frame; returns the events to publish.
    pub fn analyse(&mut self, frame: &Frame, detections: &[Detection]) -> Vec<Publication> {
        self.analyse_with(frame, detections, None)
    }

    /// [`Analyser::analyse`] with the density map of a density model (crowd zones sum it): the analysis
    /// and the events made from it at once, on the caller's thread.
    pub fn analyse_with(
        &mut self,
        frame: &Frame,
        detections: &[Detection],
        density: Option<&crate::detect::DensityMap>,
    ) -> Vec<Publication> {
        self.defer(frame, detections, density)
            .map(EvidenceJob::run)
            .unwrap_or_default()
    }

    /// Analyse one frame and leave the evidence and events to an [`EvidenceJob`] (none when nothing
    /// happened). The frame's picture is copied only when there is something to publish.
    pub fn defer(
        &mut self,
        frame: &Frame,
        detections: &[Detection],
        density: Option<&crate::detect::DensityMap>,
    ) -> Option<EvidenceJob> {
        let step = self.step(frame, detections, density);
        self.job(step, Some(frame), detections)
    }

    /// The job that publishes `step`, with `frame`'s picture when a draft will carry evidence.
    fn job(
        &self,
        step: Step,
        frame: Option<&Frame>,
        detections: &[Detection],
    ) -> Option<EvidenceJob> {
        if step.drafts.is_empty() && step.references.is_empty() && step.view_picture.is_none() {
            return None;
        }
        let picture = frame
            .filter(|_| {
                step.view_picture.is_some() || step.drafts.iter().any(|d| d.seen_at.is_some())
            })
            .map(Frame::detached);
        Some(EvidenceJob {
            publisher: self.publisher.clone(),
            drafts: step.drafts,
            picture,
            detections: detections.to_vec(),
            references: step.references,
            view_picture: step.view_picture,
        })
    }

    /// The analysis of one frame: masks → tracker → rules → lifecycle. Pure: time comes from the frame,
    /// and nothing is written or encoded.
    pub fn step(
        &mut self,
        frame: &Frame,
        detections: &[Detection],
        density: Option<&crate::detect::DensityMap>,
    ) -> Step {
        let (now, wall) = (frame.captured_mono, frame.captured_at);
        let persons = &self.publisher.person_classes;
        let mut dets = detections.to_vec();
        apply_masks(&self.masks, &mut dets, |c| persons.contains(&c));
        let assigned = self.tracker.update(&dets, now);
        let tracks: Vec<TrackView> = self
            .tracker
            .tracks()
            .map(|t| TrackView {
                id: t.id,
                class: t.class,
                score: t.score,
                bbox: t.bbox,
                seen_now: t.last_seen == now,
                stationary_since: t.stationary_since,
            })
            .collect();
        let image = || frame.view();
        let sample = Sample {
            now,
            detections: &dets,
            tracks: &tracks,
            image: &image,
            density,
        };
        let local = DateTime::<Utc>::from(wall).with_timezone(&self.publisher.wording.tz);

        let mut out = Step::default();
        let mut paused = false;
        if let Some(h) = &mut self.health {
            let step = h.step(frame, now, wall);
            paused = step.paused;
            out.references.extend(step.reference);
            if step.picture {
                out.view_picture = Some(h.view_file().clone());
            }
            for (transition, case) in step.transitions {
                out.drafts.push(h.draft(transition, case, wall));
            }
        }
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            let active = slot.schedule.is_active(&local);
            let mut transitions = Vec::new();
            if slot.active && !active {
                slot.rule.reset();
                transitions.extend(slot.lifecycle.resolve(ResolveReason::ScheduleEnded, now));
            }
            slot.active = active;
            if paused {
                // The camera looks at another street, or at nothing: its zones mean nothing now.
                slot.rule.reset();
                transitions.extend(slot.lifecycle.resolve(ResolveReason::CameraHealth, now));
            }
            let mut verdict = if active && !paused {
                slot.rule.evaluate(&sample)
            } else {
                Verdict::none()
            };
            name_tracks(&mut verdict.hits, &dets, &assigned);
            if let Rule::ZoneState(r) = &slot.rule
                && r.problem != slot.problem
            {
                let (camera, zone) = (&self.publisher.camera.id, &slot.zone.id);
                match &r.problem {
                    Some(p) => {
                        tracing::warn!(camera = %camera, zone = %zone, problem = %p, "Zone-state rule judges nothing.")
                    }
                    None => {
                        tracing::info!(camera = %camera, zone = %zone, "Zone-state rule judges its samples.")
                    }
                }
                slot.problem = r.problem.clone();
            }
            if let Rule::ZoneState(r) = &slot.rule
                && r.judged() != slot.judged
            {
                slot.judged = r.judged();
                if let Some(s) = r.reading() {
                    tracing::debug!(camera = %self.publisher.camera.id, zone = %slot.zone.id, state = %s.state,
                        confidence = s.confidence, similarity = s.similarity, nearest = %s.nearest,
                        holds = verdict.holds, "Zone-state sample.");
                }
            }
            if let (Rule::Scene(scene), Some(file)) = (&mut slot.rule, &slot.reference_file)
                && scene.reference_taken
            {
                scene.reference_taken = false;
                out.references.push(ReferenceImage {
                    file: file.clone(),
                    bytes: scene.change.reference_bytes(),
                });
            }
            let (category, zone) = (slot.category.clone(), slot.zone.id.clone());
            if self
                .suppressions
                .covers(self.camera_id(), &category, &zone, wall)
            {
                verdict.holds = false;
                transitions.extend(
                    self.slots[i]
                        .lifecycle
                        .resolve(ResolveReason::Suppressed, now),
                );
            }
            let duplicate = verdict.holds
                && self.slots[i].lifecycle.open_case().is_none()
                && self.slots.iter().enumerate().any(|(j, o)| {
                    j != i
                        && o.category == category
                        && o.lifecycle.open_case().is_some()
                        && same_objects(&o.last.hits, &verdict.hits)
                });
            let slot = &mut self.slots[i];
            // A taken-over case stays open while its objects are there, until the rule confirms it.
            slot.resumed &= !verdict.holds && slot.lifecycle.open_case().is_some();
            let holds = verdict.holds || (slot.resumed && verdict.present);
            transitions.extend(slot.lifecycle.step(StepInput {
                since: verdict.since,
                holds: holds && !duplicate,
                key: verdict.key,
                severity: verdict.severity,
                now,
                wall,
            }));
            slot.present = verdict.present;
            if !verdict.hits.is_empty() || !verdict.holds {
                slot.last = verdict;
            } else if verdict.crowd.is_some() {
                // A density model counts without boxes: its reading is news even with no hits.
                slot.last.crowd = verdict.crowd;
            }
            for (transition, case) in transitions {
                out.drafts
                    .push(self.draft(i, transition, case, Some(frame.captured_at)));
            }
        }
        out
    }

    /// Transition `transition` of slot `i`'s case, with what the slot last saw.
    fn draft(
        &self,
        i: usize,
        transition: Transition,
        case: CaseRef,
        seen_at: Option<SystemTime>,
    ) -> Draft {
        let slot = &self.slots[i];
        Draft {
            transition,
            case,
            category: slot.category.clone(),
            codes: slot.codes.clone(),
            zone: slot.zone.clone(),
            polygon: slot.rule.polygon().clone(),
            hits: slot.last.hits.clone(),
            crowd: slot.last.crowd.as_ref().map(|c| CrowdInfo {
                count: c.count,
                density: c.density,
                level: c.level.clone().unwrap_or_default(),
                previous_level: c.previous_level.clone(),
            }),
            zone_state: slot.last.state.as_ref().map(Into::into),
            seen_at,
            request_id: None,
            severity: slot.last.severity,
            cooldown: slot.lifecycle.params.cooldown,
            health: None,
            reference_view: None,
            extensions: slot.extensions.clone(),
        }
    }
}

/// Give detection hits (crowd counts, K-of-N rules) the track id their detection was assigned.
fn name_tracks(hits: &mut [Hit], dets: &[Detection], assigned: &[Option<u64>]) {
    for h in hits.iter_mut().filter(|h| h.track_id.is_none()) {
        h.track_id = dets
            .iter()
            .position(|d| d.bbox == h.bbox && Some(d.class) == h.class)
            .and_then(|k| assigned.get(k).copied().flatten());
    }
}
