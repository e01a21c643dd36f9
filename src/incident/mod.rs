//! Incidents: one case per violation. Per camera, the [`Analyser`] drops masked detections, tracks the rest,
//! runs every rule whose schedule is active, and turns each rule's verdict into `opened → updated →
//! resolved` events ([`lifecycle`]) with evidence images whose faces are obscured ([`privacy`]).
//! Overlapping zones of one category report one incident; a dispatcher's suppression mutes a category in a
//! zone until it expires.

mod archive;
mod event;
mod evidence;
mod font;
mod lifecycle;
mod model;
mod operate;
mod privacy;
mod snapshot;

pub use archive::EvidenceArchive;
pub use event::{
    AgentRef, CameraRef, CrowdInfo, DeviceRef, EvidenceRef, IncidentEvent, ModelRef, ObjectRef,
    Phase, SCHEMA, Verification, ZoneRef,
};
pub use evidence::{Annotation, Evidence, encode as encode_evidence, render};
pub use font::draw_text;
pub use lifecycle::{CaseRef, Lifecycle, LifecycleParams, ResolveReason, StepInput, Transition};
pub use model::ModelInfo;
pub use operate::OperateError;
pub use privacy::{PrivacyParams, blur_heads};
pub use snapshot::{SnapshotInput, draw_snapshot, render_snapshot};

use crate::base::CategoryCodes;
use crate::base::Frame;
use crate::base::{BBox, Detection};
use crate::rules::{Hit, Mask, Rule, Sample, Schedule, TrackView, Verdict, apply_masks};
use crate::track::{Tracker, TrackerParams};
use chrono::{DateTime, SecondsFormat, Utc};
use std::path::PathBuf;
use std::time::SystemTime;

/// An event ready to publish, with its evidence images (in the order of `event.evidence`).
#[derive(Debug, Clone)]
pub struct Publication {
    pub event: IncidentEvent,
    pub evidence: Vec<Evidence>,
}

/// A dispatcher's "false alarm": no incident of `category` in `zone` until `until`.
#[derive(Debug, Clone, PartialEq)]
pub struct Suppression {
    pub category: String,
    pub zone: String,
    pub until: SystemTime,
}

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
}

/// Everything a camera's analyser is built from, with labels already resolved to the model's classes.
#[derive(Debug)]
pub struct AnalyserSpec {
    pub device: DeviceRef,
    pub camera: CameraRef,
    pub tz: chrono_tz::Tz,
    pub evidence: EvidenceSettings,
    pub person_classes: Vec<usize>,
    pub masks: Vec<Mask>,
    pub tracker: TrackerParams,
    pub slots: Vec<SlotSpec>,
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
}

/// How evidence is made.
#[derive(Debug, Clone)]
pub struct EvidenceSettings {
    /// JPEG quality, 1–100.
    pub quality: u8,
    /// Send the frame without drawings beside the annotated one.
    pub clean_frame: bool,
    pub privacy: PrivacyParams,
}

/// Rules and open incidents of one camera.
pub struct Analyser {
    device: DeviceRef,
    camera: CameraRef,
    model: ModelInfo,
    tz: chrono_tz::Tz,
    evidence: EvidenceSettings,
    person_classes: Vec<usize>,
    masks: Vec<Mask>,
    tracker: Tracker,
    slots: Vec<Slot>,
    suppressions: Vec<Suppression>,
}

fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
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
                    codes: s.codes,
                    last: Verdict::none(),
                    present: false,
                    reference_file: s.reference_file,
                }
            })
            .collect();
        Analyser {
            device: spec.device,
            camera: spec.camera,
            model,
            tz: spec.tz,
            evidence: spec.evidence,
            person_classes: spec.person_classes,
            masks: spec.masks,
            tracker: Tracker::new(spec.tracker),
            slots,
            suppressions: Vec::new(),
        }
    }

    /// Suppress a category in a zone until `until`; an incident open there resolves (`suppressed`) on the
    /// next frame.
    pub fn suppress(&mut self, s: Suppression) {
        self.suppressions
            .retain(|x| !(x.category == s.category && x.zone == s.zone));
        self.suppressions.push(s);
    }

    fn suppressed(&self, category: &str, zone: &str, wall: SystemTime) -> bool {
        self.suppressions
            .iter()
            .any(|s| s.category == category && s.zone == zone && wall < s.until)
    }

    /// Run every rule on one analysed frame; returns the events to publish.
    pub fn analyse(&mut self, frame: &Frame, detections: &[Detection]) -> Vec<Publication> {
        self.analyse_with(frame, detections, None)
    }

    /// [`Analyser::analyse`] with the density map of a density model (crowd zones sum it).
    pub fn analyse_with(
        &mut self,
        frame: &Frame,
        detections: &[Detection],
        density: Option<&crate::detect::DensityMap>,
    ) -> Vec<Publication> {
        let (now, wall) = (frame.captured_mono, frame.captured_at);
        let persons = &self.person_classes;
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
        let sample = Sample {
            now,
            detections: &dets,
            tracks: &tracks,
            image: frame.view(),
            density,
        };
        self.suppressions.retain(|s| wall < s.until);
        let local = DateTime::<Utc>::from(wall).with_timezone(&self.tz);

        let mut out = Vec::new();
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            let active = slot.schedule.is_active(&local);
            let mut transitions = Vec::new();
            if slot.active && !active {
                slot.rule.reset();
                transitions.extend(slot.lifecycle.resolve(ResolveReason::ScheduleEnded, now));
            }
            slot.active = active;
            let mut verdict = if active {
                slot.rule.evaluate(&sample)
            } else {
                Verdict::none()
            };
            name_tracks(&mut verdict.hits, &dets, &assigned);
            if let (Rule::Scene(scene), Some(file)) = (&mut slot.rule, &slot.reference_file)
                && scene.reference_taken
            {
                scene.reference_taken = false;
                save_reference(file, &scene.change.reference_bytes(), &self.camera.id);
            }
            let (category, zone) = (slot.category.clone(), slot.zone.id.clone());
            if self.suppressed(&category, &zone, wall) {
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
            transitions.extend(slot.lifecycle.step(StepInput {
                holds: verdict.holds && !duplicate,
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
                out.push(self.publication(i, transition, &case, Some(frame), detections));
            }
        }
        out
    }

    fn publication(
        &self,
        i: usize,
        transition: Transition,
        case: &CaseRef,
        frame: Option<&Frame>,
        detections: &[Detection],
    ) -> Publication {
        let slot = &self.slots[i];
        let hits = &slot.last.hits;
        let (phase, reopened, reason, verification) = match transition {
            Transition::Opened { reopened } => (Phase::Opened, reopened, None, None),
            Transition::Updated => (Phase::Updated, false, None, None),
            Transition::Resolved(r) => (Phase::Resolved, false, Some(r), None),
            Transition::Verified { still_present } => (
                Phase::Verified,
                false,
                None,
                Some(if still_present {
                    Verification::StillPresent
                } else {
                    Verification::Cleared
                }),
            ),
        };
        let seen_at = frame.map_or_else(SystemTime::now, |f| f.captured_at);
        let event_id = uuid::Uuid::now_v7().to_string();
        let caption = format!(
            "{}  {}  zone={}  cam={}  {}",
            slot.category,
            match phase {
                Phase::Opened => "opened",
                Phase::Updated => "updated",
                Phase::Resolved => "resolved",
                Phase::Verified => match verification {
                    Some(Verification::StillPresent) => "verified: still present",
                    _ => "verified: cleared",
                },
            },
            slot.zone.id,
            self.camera.id,
            DateTime::<Utc>::from(seen_at)
                .with_timezone(&self.tz)
                .format("%Y-%m-%d %H:%M:%S%:z"),
        );
        let evidence = frame.map_or_else(Vec::new, |frame| {
            self.render_evidence(slot, hits, frame, detections, &caption)
        });
        let refs = evidence
            .iter()
            .zip(["annotated", "clean"])
            .map(|(e, kind)| EvidenceRef {
                kind: kind.into(),
                topic: match kind {
                    "annotated" => format!("evidence/{event_id}"),
                    _ => format!("evidence/{event_id}/{kind}"),
                },
                content_type: "image/jpeg".into(),
                bytes: e.jpeg.len(),
                sha256: e.sha256.clone(),
                width: e.width,
                height: e.height,
            })
            .collect();
        let confidence = if hits.is_empty() {
            0.0
        } else {
            hits.iter().map(|h| h.score).sum::<f32>() / hits.len() as f32
        };
        let crowd = slot.last.crowd.as_ref().map(|c| CrowdInfo {
            count: c.count,
            density: c.density,
            level: c.level.clone().unwrap_or_default(),
            previous_level: c.previous_level.clone(),
        });
        let event = IncidentEvent {
            schema: SCHEMA.into(),
            event_id,
            incident_id: case.id.clone(),
            phase,
            reopened,
            reason,
            verification,
            request_id: None,
            time: rfc3339(SystemTime::now()),
            category: slot.category.clone(),
            codes: slot.codes.clone(),
            device: self.device.clone(),
            camera: self.camera.clone(),
            zone: slot.zone.clone(),
            first_seen: rfc3339(case.first_seen),
            last_seen: rfc3339(seen_at),
            dwell_s: seen_at
                .duration_since(case.first_seen)
                .unwrap_or_default()
                .as_secs_f64(),
            confidence,
            crowd,
            objects: hits
                .iter()
                .map(|h| ObjectRef {
                    label: h.class.map_or_else(
                        || "scene_change".into(),
                        |c| self.model.labels.get(c).cloned().unwrap_or_default(),
                    ),
                    score: h.score,
                    bbox: [h.bbox.x1, h.bbox.y1, h.bbox.x2, h.bbox.y2],
                    track_id: h.track_id,
                })
                .collect(),
            evidence: refs,
            model: ModelRef {
                name: self.model.name.clone(),
                version: self.model.version.clone(),
                sha256: self.model.sha256.clone(),
            },
            agent: AgentRef::this(),
        };
        Publication { event, evidence }
    }

    /// The annotated image and, if configured, the clean one; heads obscured in both before encoding.
    fn render_evidence(
        &self,
        slot: &Slot,
        hits: &[Hit],
        frame: &Frame,
        detections: &[Detection],
        caption: &str,
    ) -> Vec<Evidence> {
        let mut img = frame.to_rgb_image();
        let people: Vec<BBox> = detections
            .iter()
            .filter(|d| self.person_classes.contains(&d.class))
            .map(|d| d.bbox)
            .collect();
        blur_heads(&mut img, &people, &self.evidence.privacy);
        let clean = self.evidence.clean_frame.then(|| img.clone());
        let counted: Vec<BBox> = hits.iter().map(|h| h.bbox).collect();
        let ann = Annotation {
            zone: &slot.rule.polygon().points,
            others: detections
                .iter()
                .map(|d| d.bbox)
                .filter(|b| !counted.contains(b))
                .collect(),
            counted,
            caption,
        };
        let q = self.evidence.quality;
        let mut out = Vec::new();
        for result in [render(img, &ann, q)]
            .into_iter()
            .chain(clean.map(|c| evidence::encode(&c, q)))
        {
            match result {
                Ok(e) => out.push(e),
                Err(error) => {
                    tracing::error!(camera = %self.camera.id, %error, "Evidence image could not be encoded; event sent without it.");
                    break;
                }
            }
        }
        out
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

/// Keep a model-free rule's reference across restarts; a failure only costs a new reference next start.
fn save_reference(file: &std::path::Path, bytes: &[u8], camera: &str) {
    let result = file
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(file, bytes));
    match result {
        Ok(()) => {
            tracing::info!(camera = %camera, file = %file.display(), "Reference image taken for a scene-change zone.")
        }
        Err(error) => {
            tracing::warn!(camera = %camera, file = %file.display(), %error, "Reference image could not be saved; a new one is taken after a restart.")
        }
    }
}
