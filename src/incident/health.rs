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
    /// A case taken over from before a restart or reload stays open (and, if the view was moved or covered,
    /// the zone rules stay paused) until this time unless the monitor raises a condition again first: the
    /// monitor needs `raise_after` to say so.
    resumed: Option<(Instant, bool)>,
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
            resumed: None,
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

    pub(super) fn is_idle(&self) -> bool {
        self.lifecycle.is_idle()
    }

    /// Take over an open health case: it goes on while the monitor re-judges the view (`paused`: it was
    /// moved or covered, so the zone rules wait too).
    pub(super) fn resume_open(
        &mut self,
        case: CaseRef,
        severity: u32,
        last_event: Instant,
        paused: bool,
        now: Instant,
    ) {
        self.lifecycle.resume_open(case, severity, last_event);
        let p = self.monitor.params();
        self.resumed = Some((now + p.raise_after + p.clear_after, paused));
    }

    /// Take over a health case that cleared and is cooling down.
    pub(super) fn resume_cooling(&mut self, case: CaseRef, resolved_at: Instant) {
        self.lifecycle.resume_cooling(case, resolved_at);
    }

    pub(super) fn view_file(&self) -> &PathBuf {
        &self.spec.view_file
    }

    pub(super) fn step(&mut self, frame: &Frame, now: Instant, wall: SystemTime) -> HealthStep {
        let picture = Picture::read(frame.picture());
        let observed = self.monitor.observe(&picture, now);
        let report = &observed.report;
        // A taken-over case holds until the monitor has judged for itself (or a condition is raised).
        self.resumed = self
            .resumed
            .filter(|(until, _)| report.conditions.is_empty() && now < *until);
        let (resumed, resumed_pause) = self.resumed.map_or((false, false), |(_, p)| (true, p));
        let mut out = HealthStep {
            paused: report.pauses_rules() || resumed_pause,
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
            holds: !report.conditions.is_empty() || resumed,
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
                address: None,
            },
            polygon: Polygon::new(&[]),
            hits: Vec::new(),
            crowd: None,
            zone_state: None,
            seen_at: Some(seen_at),
            request_id: None,
            severity: self.monitor.last().conditions.len() as u32,
            cooldown: COOLDOWN,
            health: Some(self.monitor.last().clone()),
            reference_view: Some(self.spec.view_file.clone()),
            extensions: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::{FrameMeta, Pixels};

    /// A textured 320 × 240 picture (blocks of different grey), shifted right by `dx` pixels.
    fn frame(dx: usize, t0: Instant, s: u64) -> Frame {
        let (w, h) = (320usize, 240usize);
        let mut rgb = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let sx = x.wrapping_sub(dx);
                let v = if sx < w {
                    (((sx / 23) * 37 + (y / 17) * 53 + s as usize % 2) % 200 + 30) as u8
                } else {
                    0
                };
                rgb[(y * w + x) * 3..][..3].copy_from_slice(&[v, v, v]);
            }
        }
        let meta = FrameMeta {
            camera: "cam".into(),
            seq: s,
            captured_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000 + s),
            captured_mono: t0 + Duration::from_secs(s),
        };
        Frame::new(meta, w, h, w * 3, Pixels::Owned(rgb)).unwrap()
    }

    fn slot(dir: &std::path::Path) -> HealthSlot {
        HealthSlot::new(
            HealthSpec {
                params: HealthParams::default(),
                reference_file: dir.join("cam.view"),
                view_file: dir.join("cam.jpg"),
                codes: CategoryCodes::default(),
            },
            "cam",
        )
    }

    fn step(h: &mut HealthSlot, f: &Frame) -> HealthStep {
        h.step(f, f.captured_mono, f.captured_at)
    }

    /// After a restart: the reference view was kept, and case `case-1` was open for a moved view.
    fn taken_over() -> (tempfile::TempDir, HealthSlot, Instant) {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let taken = step(&mut slot(dir.path()), &frame(0, t0, 0));
        std::fs::write(dir.path().join("cam.view"), &taken.reference.unwrap().bytes).unwrap();
        let mut h = slot(dir.path());
        let case = CaseRef {
            id: "case-1".into(),
            first_seen: SystemTime::UNIX_EPOCH,
        };
        h.resume_open(case, 1, t0, true, t0);
        (dir, h, t0)
    }

    #[test]
    fn a_taken_over_case_goes_on_while_the_view_is_still_moved_and_pauses_the_rules_meanwhile() {
        let (_dir, mut h, t0) = taken_over();
        for s in 1..40 {
            let out = step(&mut h, &frame(40, t0, s));
            assert!(out.paused, "rules paused at {s} s");
            // The same case goes on (the first event after a take-over is an update saying what holds).
            assert!(
                out.transitions
                    .iter()
                    .all(|(t, c)| *t == Transition::Updated && c.id == "case-1"),
                "{:?}",
                out.transitions
            );
        }
    }

    #[test]
    fn a_taken_over_case_resolves_once_the_monitor_finds_the_view_back() {
        let (_dir, mut h, t0) = taken_over();
        let mut resolved_at = None;
        for s in 1..40 {
            let out = step(&mut h, &frame(0, t0, s));
            if let Some((t, c)) = out.transitions.first() {
                assert_eq!(
                    (*t, c.id.as_str()),
                    (
                        Transition::Resolved(super::super::ResolveReason::Cleared),
                        "case-1"
                    )
                );
                resolved_at.get_or_insert(s);
            }
            // The rules wait only while the monitor has not judged yet.
            assert_eq!(out.paused, resolved_at.is_none(), "at {s} s");
        }
        // raise_after + clear_after (20 s) after the take-over.
        assert_eq!(resolved_at, Some(20));
    }
}
