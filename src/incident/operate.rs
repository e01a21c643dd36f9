//! What a dispatcher or installer may ask of a camera's analyser from afar: verify an open incident
//! (the 核查 step), retake a scene-change reference, a snapshot. The analyser answers from the frames it is
//! given, like the rules.

use super::{
    Analyser, Evidence, EvidenceJob, Publication, ReferenceImage, ResolveReason, SnapshotInput,
    Step, Transition, render_snapshot,
};
use crate::base::{Detection, Frame};
use crate::rules::{Polygon, Rule};

/// Frames a verify looks at before it answers; the majority decides.
pub const VERIFY_SAMPLES: usize = 3;

/// The verify policy: still present when the incident's objects were in more than half of the frames looked
/// at (one missed detection does not close a case, one stray box does not keep it open).
pub fn still_present(samples: usize, present_in: usize) -> bool {
    2 * present_in > samples
}

/// Why an operation could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperateError {
    #[error(
        "camera `{camera}` has no scene-change zone `{zone}`; scene_reference needs the id of a zone with a scene_change rule"
    )]
    NoSceneZone { camera: String, zone: String },
    #[error("snapshot of camera `{camera}` could not be encoded: {reason}")]
    Encode { camera: String, reason: String },
}

impl Analyser {
    pub fn camera_id(&self) -> &str {
        &self.publisher.camera.id
    }

    /// The model this analyser's class numbers refer to.
    pub fn model_sha256(&self) -> &str {
        &self.publisher.model.sha256
    }

    /// Each scene-change zone of this camera and whether it has its reference.
    pub fn scene_states(&self) -> Vec<super::SceneZoneState> {
        self.slots
            .iter()
            .filter_map(|s| match &s.rule {
                Rule::Scene(scene) => Some(super::SceneZoneState {
                    zone: s.zone.id.clone(),
                    reference: scene.change.has_reference(),
                }),
                _ => None,
            })
            .collect()
    }

    /// The camera's health after its last frame (none when every health check is off).
    pub fn health(&self) -> Option<&crate::health::HealthReport> {
        self.health.as_ref().map(|h| h.report())
    }

    /// The installer confirmed the camera's view as it is now: the next usable frame becomes the reference
    /// view, raised health conditions clear and paused rules resume. False when health checks are off.
    pub fn confirm_view(&mut self) -> bool {
        self.health.as_mut().map(|h| h.retake()).is_some()
    }

    /// Does this camera have a rule of `category` in `zone`?
    pub fn has_rule(&self, category: &str, zone: &str) -> bool {
        self.slots
            .iter()
            .any(|s| s.category == category && s.zone.id == zone)
    }

    /// The slot with `incident_id` open now.
    fn open_slot(&self, incident_id: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.lifecycle.open_case().is_some_and(|c| c.id == incident_id))
    }

    pub fn has_open_incident(&self, incident_id: &str) -> bool {
        self.open_slot(incident_id).is_some()
    }

    /// After [`Analyser::analyse`] on a fresh frame: is what the incident's rule looks for in that frame?
    /// `None` when the incident is no longer open.
    pub fn presence_of(&self, incident_id: &str) -> Option<bool> {
        self.open_slot(incident_id).map(|i| self.slots[i].present)
    }

    /// Answer a verify with fresh evidence from `frame`. A `cleared` answer also resolves the incident
    /// (`verified_cleared`; a return within the cooldown re-opens the same case) and restarts the rule,
    /// so dwell and K-of-N count afresh.
    pub fn conclude_verify(
        &mut self,
        incident_id: &str,
        still_present: bool,
        request_id: &str,
        frame: &Frame,
        detections: &[Detection],
    ) -> Vec<Publication> {
        self.defer_verify(incident_id, still_present, request_id, frame, detections)
            .map(EvidenceJob::run)
            .unwrap_or_default()
    }

    /// [`Analyser::conclude_verify`] with the evidence and events left to an [`EvidenceJob`].
    pub fn defer_verify(
        &mut self,
        incident_id: &str,
        still_present: bool,
        request_id: &str,
        frame: &Frame,
        detections: &[Detection],
    ) -> Option<EvidenceJob> {
        let i = self.open_slot(incident_id)?;
        let case = self.slots[i]
            .lifecycle
            .open_case()
            .cloned()
            .expect("open slot has a case");
        let mut verified = self.draft(
            i,
            Transition::Verified { still_present },
            case,
            Some(frame.captured_at),
        );
        verified.request_id = Some(request_id.to_string());
        let mut step = Step {
            drafts: vec![verified],
            ..Step::default()
        };
        if !still_present {
            let slot = &mut self.slots[i];
            slot.rule.reset();
            if let Some((t, case)) = slot
                .lifecycle
                .resolve(ResolveReason::VerifiedCleared, frame.captured_mono)
            {
                let mut resolved = self.draft(i, t, case, None);
                resolved.request_id = Some(request_id.to_string());
                step.drafts.push(resolved);
            }
        }
        self.job(step, Some(frame), detections)
    }

    /// Make `frame` the clean reference of the scene-change zone `zone`; returns the image to keep across
    /// restarts (when the zone has a reference file).
    pub fn retake_reference(
        &mut self,
        zone: &str,
        frame: &Frame,
    ) -> Result<Option<ReferenceImage>, OperateError> {
        let camera = self.publisher.camera.id.clone();
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.zone.id == zone && matches!(s.rule, Rule::Scene(_)))
            .ok_or_else(|| OperateError::NoSceneZone {
                camera: camera.clone(),
                zone: zone.into(),
            })?;
        let Rule::Scene(scene) = &mut slot.rule else {
            unreachable!("the slot was chosen for its scene rule");
        };
        scene.change.set_reference(frame.view());
        Ok(slot.reference_file.as_ref().map(|file| ReferenceImage {
            file: file.clone(),
            bytes: scene.change.reference_bytes(),
        }))
    }

    /// The job that keeps a retaken reference (queued behind any reference the rule took itself).
    pub fn reference_job(&self, image: ReferenceImage) -> EvidenceJob {
        EvidenceJob {
            publisher: self.publisher.clone(),
            drafts: Vec::new(),
            picture: None,
            detections: Vec::new(),
            references: vec![image],
            view_picture: None,
        }
    }

    /// The installer's picture of this camera on its next frame: detections with labels, every zone with
    /// its id, the masks and the coordinate grid, heads obscured (the same drawing as `streetsight snapshot`).
    pub fn snapshot(
        &self,
        frame: &Frame,
        detections: &[Detection],
    ) -> Result<Evidence, OperateError> {
        let caption = format!(
            "camera {}  {}x{}  {}  grid: x right, y down, 0.1 steps",
            self.publisher.camera.id,
            frame.width(),
            frame.height(),
            chrono::DateTime::<chrono::Utc>::from(frame.captured_at)
                .with_timezone(&self.publisher.wording.tz)
                .format("%Y-%m-%d %H:%M:%S %z"),
        );
        let mut zones: Vec<(String, Polygon)> = Vec::new();
        for s in &self.slots {
            if !zones.iter().any(|(id, _)| *id == s.zone.id) {
                zones.push((s.zone.id.clone(), s.rule.polygon().clone()));
            }
        }
        let input = SnapshotInput {
            detections,
            labels: &self.publisher.model.labels,
            zones: &zones,
            masks: &self.masks,
            caption: &caption,
            privacy: &self.publisher.evidence.privacy,
        };
        render_snapshot(
            frame.to_rgb_image(),
            &input,
            self.publisher.evidence.quality,
        )
        .map_err(|e| OperateError::Encode {
            camera: self.publisher.camera.id.clone(),
            reason: e.to_string(),
        })
    }
}
