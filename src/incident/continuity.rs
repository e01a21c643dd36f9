//! One case per violation across restarts and reloads. Every event that changes a case's state carries a
//! [`CaseChange`]; the daemon commits it with the event (the outbox's SQLite), so what is on disk is exactly
//! what the city was told. A new analyser — after a restart, or a reload that changed its camera —
//! [`resume`](Analyser::resume)s the cases of its camera whose zone and category it still has: the same
//! incident id goes on, and one that no longer holds resolves after its clear time like any other. A case
//! nothing takes over resolves from its record ([`CaseRecord::resolution`]) with a reason: no orphan.

use super::event::{IncidentEvent, Phase};
use super::lifecycle::{CaseRef, ResolveReason, Transition};
use super::{Analyser, Draft, Publication};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What is kept of a case while it is open or cooling down, keyed by camera, zone and category.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CaseRecord {
    pub camera: String,
    pub zone: String,
    pub category: String,
    pub incident_id: String,
    pub first_seen_ms: i64,
    /// When it resolved (cleared), while it cools down: a return before `cooldown_s` re-opens it.
    #[serde(default)]
    pub resolved_ms: Option<i64>,
    pub severity: u32,
    pub cooldown_s: u64,
    /// The case's last event, with its evidence references: what a resolution without a rule says.
    pub last: IncidentEvent,
}

/// How an event changes the kept cases.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseChange {
    /// Keep (or replace) the record of its camera, zone and category.
    Keep(Box<CaseRecord>),
    /// The case ended for good (not cooling down): drop the record.
    Forget {
        camera: String,
        zone: String,
        category: String,
    },
}

impl CaseChange {
    /// The (camera, zone, category) the change is about.
    pub fn key(&self) -> [&str; 3] {
        match self {
            CaseChange::Keep(r) => [&r.camera, &r.zone, &r.category],
            CaseChange::Forget {
                camera,
                zone,
                category,
            } => [camera, zone, category],
        }
    }
}

pub(super) fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// The change `event` (made from `draft` at `now`) makes to the kept cases; none for a verify's answer.
pub(super) fn change(draft: &Draft, event: &IncidentEvent, now: SystemTime) -> Option<CaseChange> {
    let record = |resolved_ms| {
        CaseChange::Keep(Box::new(CaseRecord {
            camera: event.camera.id.clone(),
            zone: draft.zone.id.clone(),
            category: draft.category.clone(),
            incident_id: draft.case.id.clone(),
            first_seen_ms: ms(draft.case.first_seen),
            resolved_ms,
            severity: draft.severity,
            cooldown_s: draft.cooldown.as_secs(),
            last: event.clone(),
        }))
    };
    match draft.transition {
        Transition::Opened { .. } | Transition::Updated => Some(record(None)),
        Transition::Resolved(ResolveReason::Cleared | ResolveReason::VerifiedCleared) => {
            Some(record(Some(ms(now))))
        }
        Transition::Resolved(_) => Some(CaseChange::Forget {
            camera: event.camera.id.clone(),
            zone: draft.zone.id.clone(),
            category: draft.category.clone(),
        }),
        Transition::Verified { .. } => None,
    }
}

impl CaseRecord {
    pub fn is_open(&self) -> bool {
        self.resolved_ms.is_none()
    }

    /// Is its cooldown over at `wall` (a return now would be a new case)?
    pub fn cooled(&self, wall: SystemTime) -> bool {
        self.resolved_ms.is_some_and(|r| {
            ms(wall).saturating_sub(r) >= (self.cooldown_s as i64).saturating_mul(1000)
        })
    }

    /// The `resolved` event of an open case that no rule takes over, made from its last event (no evidence:
    /// no frame is at hand), worded as the pole words its events now; it forgets the record.
    pub fn resolution(
        &self,
        reason: ResolveReason,
        now: SystemTime,
        wording: &super::Wording,
    ) -> Publication {
        let mut event = self.last.clone();
        event.event_id = uuid::Uuid::now_v7().to_string();
        event.phase = Phase::Resolved;
        event.reopened = false;
        event.reason = Some(reason);
        event.verification = None;
        event.request_id = None;
        event.time = chrono::DateTime::<chrono::Utc>::from(now)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        event.evidence = Vec::new();
        wording.describe(&mut event, now);
        Publication {
            event,
            evidence: Vec::new(),
            case: Some(CaseChange::Forget {
                camera: self.camera.clone(),
                zone: self.zone.clone(),
                category: self.category.clone(),
            }),
        }
    }
}

impl Analyser {
    /// Take over the kept cases of this camera: each whose zone and category this analyser has goes on
    /// (open, or cooling down until its cooldown ends) as of `now`/`wall`; so does the camera's health case
    /// when its health checks run. Returns the records it did not
    /// take (their rule is gone, or their cooldown is over).
    pub fn resume(
        &mut self,
        records: Vec<CaseRecord>,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<CaseRecord> {
        let mut left = Vec::new();
        for r in records {
            let case = CaseRef {
                id: r.incident_id.clone(),
                first_seen: time(r.first_seen_ms),
            };
            let ago = |t_ms: i64| {
                now.checked_sub(Duration::from_millis(
                    ms(wall).saturating_sub(t_ms).max(0) as u64
                ))
                .unwrap_or(now)
            };
            let last_event = chrono::DateTime::parse_from_rfc3339(&r.last.time)
                .map_or(now, |t| ago(t.timestamp_millis()));
            let ours = r.camera == self.publisher.camera.id;
            if r.category == super::CAMERA_HEALTH && r.zone == super::VIEW_ZONE {
                let Some(health) = self.health.as_mut().filter(|h| ours && h.is_idle()) else {
                    left.push(r);
                    continue;
                };
                match r.resolved_ms {
                    None => {
                        let paused = r.last.health.as_ref().is_some_and(|h| {
                            h.conditions.iter().any(|c| c == "moved" || c == "covered")
                        });
                        health.resume_open(case, r.severity, last_event, paused, now);
                    }
                    Some(resolved) if !r.cooled(wall) => health.resume_cooling(case, ago(resolved)),
                    Some(_) => left.push(r),
                }
                continue;
            }
            let slot = self
                .slots
                .iter_mut()
                .find(|s| s.zone.id == r.zone && s.category == r.category && s.lifecycle.is_idle());
            let Some(slot) = slot.filter(|_| ours) else {
                left.push(r);
                continue;
            };
            match r.resolved_ms {
                None => {
                    slot.lifecycle.resume_open(case, r.severity, last_event);
                    // Until the new rule confirms it again, what it looks for being there keeps the case
                    // open; and the schedule's end resolves it as if the rule had been running.
                    slot.resumed = true;
                    slot.active = true;
                }
                Some(resolved) if !r.cooled(wall) => {
                    slot.lifecycle.resume_cooling(case, ago(resolved));
                }
                Some(_) => left.push(r),
            }
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(resolved_ms: Option<i64>) -> CaseRecord {
        let last: IncidentEvent = serde_json::from_value(serde_json::json!({
            "schema": super::super::SCHEMA, "event_id": "e1", "incident_id": "i1", "phase": "opened",
            "time": "2026-12-05T08:00:00.000Z", "category": "crowd_density",
            "codes": {},
            "device": { "id": "pole" }, "camera": { "id": "cam" }, "zone": { "id": "all" },
            "first_seen": "2026-12-05T07:59:50.000Z", "last_seen": "2026-12-05T08:00:00.000Z",
            "dwell_s": 10.0, "confidence": 0.8, "objects": [],
            "evidence": [{ "kind": "annotated", "topic": "evidence/e1", "content_type": "image/jpeg",
                "bytes": 10, "sha256": "00", "width": 1, "height": 1 }],
            "model": { "name": "m", "version": "1", "sha256": "00" },
            "agent": { "name": "streetsight", "version": "0" },
        }))
        .unwrap();
        CaseRecord {
            camera: "cam".into(),
            zone: "all".into(),
            category: "crowd_density".into(),
            incident_id: "i1".into(),
            first_seen_ms: 0,
            resolved_ms,
            severity: 1,
            cooldown_s: 300,
            last,
        }
    }

    #[test]
    fn a_cooling_case_is_over_after_its_cooldown() {
        let t = time(1_000_000);
        let r = record(Some(ms(t)));
        assert!(!r.is_open());
        assert!(!r.cooled(t + Duration::from_secs(299)));
        assert!(r.cooled(t + Duration::from_secs(300)));
        assert!(!record(None).cooled(t + Duration::from_secs(10_000)));
    }

    #[test]
    fn a_resolution_from_the_record_is_the_same_case_without_evidence_and_forgets_it() {
        let r = record(None);
        let p = r.resolution(
            ResolveReason::ConfigChanged,
            time(2_000_000),
            &crate::incident::Wording::default(),
        );
        let e = &p.event;
        assert_eq!(
            (e.phase, e.reason),
            (Phase::Resolved, Some(ResolveReason::ConfigChanged))
        );
        assert_eq!(e.incident_id, "i1");
        assert_ne!(e.event_id, "e1");
        assert_eq!(e.first_seen, r.last.first_seen);
        assert!(e.evidence.is_empty() && p.evidence.is_empty());
        assert_eq!(p.case.unwrap().key(), ["cam", "all", "crowd_density"]);
    }
}
