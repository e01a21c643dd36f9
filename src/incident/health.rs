//! A camera's health as an incident (`camera_health`): the health monitor judges each analysed frame; while
//! a condition is raised one case is open, updated when the conditions change, resolved when they clear.
//! Moved or covered pause the camera's zone rules (the analyser resolves their open cases). The reference
//! view is kept on disk twice: the monitor's bytes (to compare against) and a JPEG of the picture (the
//! "before" image of the case's evidence).

use super::ZoneRef;
use super::lifecycle::{CaseRef, Lifecycle, LifecycleParams, StepInput, Transition};
use super::publish::{Draft, ReferenceImage};
use crate::base::{CategoryCodes, Frame};
use crate::health::{HealthParams, HealthReport, Monitor, Picture};
use crate::rules::Polygon;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// The category of the camera's own faults.
pub const CAMERA_HEALTH: &str = "camera_health";
/// The zone a camera-health case is filed under: the whole view.
pub const VIEW_ZONE: &str = "view";
/// A health case that cleared and comes back within this long is the same case.
const COOLDOWN: Duration = Duration::from_secs(300);
/// Changes that do not add a condition are reported at most this often.
const UPDATE_INTERVAL: Duration = Duration::from_secs(60);

/// How a camera's health is judged and where its reference view lives.
#[derive(Debug, Clone)]
pub struct HealthSpec {
    pub params: HealthParams,
    /// The monitor's reference view (bytes).
    pub reference_file: PathBuf,
    /// The reference view as a JPEG, for evidence.
    pub view_file: PathBuf,
    pub codes: CategoryCodes,
}

/// What the health slot made of one frame.
#[derive(Debug, Default)]
pub(super) struct HealthStep {
    pub(super) transitions: Vec<(Transition, CaseRef)>,
    /// The reference view was taken on this frame: its bytes to keep.
    pub(super) reference: Option<ReferenceImage>,
    /// Zone rules must not look at this frame.
    pub(super) paused: bool,
    /// Keep this frame's picture as the reference view's JPEG.
    pub(super) picture: bool,
}

pub(super) struct HealthSlot {
    monitor: Monitor,
    lifecycle: Lifecycle,
    spec: HealthSpec,
    /// The reference view came from disk without its picture (`streetsight check --confirm-view` keeps only
    /// the reference): the next frame's picture stands for it.
    needs_picture: bool,
}

impl HealthSlot {
    pub(super) fn new(spec: HealthSpec, camera: &str) -> Self {
        let mut monitor = Monitor::new(spec.params.clone());
        if let Ok(bytes) = std::fs::read(&spec.reference_file) {
            match monitor.load_reference(&bytes) {
                Ok(()) => tracing::info!(camera = %camera, "View reference loaded."),
                Err(error) => {
                    tracing::warn!(camera = %camera, %error, "View reference ignored; the next usable frame becomes the new one.")
                }
            }
        }
        let needs_picture = monitor.reference().is_some() && !spec.view_file.exists();
        HealthSlot {
            needs_picture,
            monitor,
            lifecycle: Lifecycle::new(LifecycleParams {
                // The monitor already waited `clear_after`.
                clear: Duration::ZERO,
                cooldown: COOLDOWN,
                update_interval: UPDATE_INTERVAL,
            }),
            spec,
        }
    }

    pub(super) fn report(&self) -> &HealthReport {
        self.monitor.last()
    }

    /// The installer confirmed the view: the next usable frame becomes the reference.
    pub(super) fn retake(&mut self) {
        self.monitor.retake();
    }

    pub(super) fn view_file(&self) -> &PathBuf {
        &self.spec.view_file
    }

    pub(super) fn step(&mut self, frame: &Frame, now: Instant, wall: SystemTime) -> HealthStep {
        let picture = Picture::read(&frame.view());
        let observed = self.monitor.observe(&picture, now);
        let report = &observed.report;
        let mut out = HealthStep {
            paused: report.pauses_rules(),
            picture: std::mem::take(&mut self.needs_picture),
            ..HealthStep::default()
        };
        if observed.reference_taken
            && let Some(r) = self.monitor.reference()
        {
            out.reference = Some(ReferenceImage {
                file: self.spec.reference_file.clone(),
                bytes: r.to_bytes(),
            });
            out.picture = true;
        }
        let key = report
            .conditions
            .iter()
            .fold(0u64, |k, c| k | 1 << (*c as u64));
        out.transitions.extend(self.lifecycle.step(StepInput {
            holds: !report.conditions.is_empty(),
            since: None,
            key,
            severity: report.conditions.len() as u32,
            now,
            wall,
        }));
        out
    }

    /// The event draft of a health transition, with the report it was made from.
    pub(super) fn draft(
        &self,
        transition: Transition,
        case: CaseRef,
        seen_at: SystemTime,
    ) -> Draft {
        Draft {
            transition,
            case,
            category: CAMERA_HEALTH.into(),
            codes: self.spec.codes.clone(),
            zone: ZoneRef {
                id: VIEW_ZONE.into(),
                name: None,
                grid_code: None,
                lat: None,
                lon: None,
                area_m2: None,
            },
            polygon: Polygon::new(&[]),
            hits: Vec::new(),
            crowd: None,
            seen_at: Some(seen_at),
            request_id: None,
            severity: self.monitor.last().conditions.len() as u32,
            cooldown: COOLDOWN,
            health: Some(self.monitor.last().clone()),
            reference_view: Some(self.spec.view_file.clone()),
        }
    }
}
