//! The commands about cases and mutes: `suppress`, `unsuppress`, `suppressions` and `incidents`.
//! Suppressions live on a board every analyser reads (a suppressed category resolves on its camera's next
//! frame) and are kept on disk before the reply goes out, so they outlast reloads and restarts. Open
//! incidents are listed from the kept cases — the same records a restart continues from.

use super::{Control, wait};
use crate::control::command::CommandError;
use crate::control::worker::WorkerCmd;
use crate::incident::Suppression;
use std::time::{Duration, SystemTime};

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn describe(s: &Suppression, now: SystemTime) -> serde_json::Value {
    serde_json::json!({
        "camera": s.camera,
        "category": s.category,
        "zone": s.zone,
        "until": rfc3339(s.until),
        "remaining_s": s.until.duration_since(now).unwrap_or_default().as_secs(),
    })
}

impl Control {
    /// Keep `list` on disk; if that fails, put the board back to `before` and refuse.
    fn keep_suppressions(&self, before: Vec<Suppression>) -> Result<(), CommandError> {
        let now = SystemTime::now();
        self.ledger
            .save_suppressions(&self.suppressions.active(now))
            .map_err(|e| {
                self.suppressions.replace(before);
                CommandError::new(
                    "failed",
                    format!("the suppressions could not be kept on disk, nothing changed: {e}"),
                )
            })
    }

    pub(super) fn suppress(
        &self,
        camera: Option<String>,
        category: &str,
        zone: &str,
        duration_s: u64,
    ) -> Result<serde_json::Value, CommandError> {
        let answers = self.ask_every_worker(|reply| WorkerCmd::HasRule {
            camera: camera.clone(),
            category: category.into(),
            zone: zone.into(),
            reply,
        })?;
        let mut cameras = Vec::new();
        for answer in answers {
            cameras.extend(wait(&answer, Duration::from_secs(5))?);
        }
        if cameras.is_empty() {
            return Err(CommandError::new(
                "not_found",
                format!(
                    "no {}camera has a `{category}` rule in zone `{zone}`; check the category and zone ids",
                    camera.map(|c| format!("`{c}` ")).unwrap_or_default()
                ),
            ));
        }
        let now = SystemTime::now();
        let requested = now + Duration::from_secs(duration_s);
        let (before, until) = self.suppressions.add(
            Suppression {
                camera,
                category: category.into(),
                zone: zone.into(),
                until: requested,
            },
            now,
        );
        self.keep_suppressions(before)?;
        let mut result = serde_json::json!({
            "cameras": cameras, "category": category, "zone": zone, "until": rfc3339(until),
        });
        if until > requested {
            result["note"] = format!(
                "a longer suppression of the same scope was already in force; it stays until {}",
                rfc3339(until)
            )
            .into();
        }
        Ok(result)
    }

    pub(super) fn unsuppress(
        &self,
        camera: Option<&str>,
        category: &str,
        zone: &str,
    ) -> Result<serde_json::Value, CommandError> {
        let now = SystemTime::now();
        let (before, lifted) = self.suppressions.lift(camera, category, zone, now);
        if lifted.is_empty() {
            return Err(CommandError::new(
                "not_found",
                format!(
                    "no suppression of `{category}` in zone `{zone}`{} is in force; the `suppressions` command lists them",
                    camera
                        .map(|c| format!(" for camera `{c}`"))
                        .unwrap_or_default()
                ),
            ));
        }
        self.keep_suppressions(before)?;
        // A mute for every camera still covers the named one: say so rather than pretend it is lifted.
        let still: Vec<_> = self
            .suppressions
            .active(now)
            .iter()
            .filter(|s| s.category == category && s.zone == zone)
            .map(|s| describe(s, now))
            .collect();
        Ok(serde_json::json!({
            "lifted": lifted.iter().map(|s| describe(s, now)).collect::<Vec<_>>(),
            "still_in_force": still,
        }))
    }

    pub(super) fn list_suppressions(&self) -> serde_json::Value {
        let now = SystemTime::now();
        let list: Vec<_> = self
            .suppressions
            .active(now)
            .iter()
            .map(|s| describe(s, now))
            .collect();
        serde_json::json!({ "suppressions": list })
    }

    pub(super) fn incidents(&self, camera: Option<&str>) -> serde_json::Value {
        let list: Vec<_> = self
            .ledger
            .cases()
            .into_iter()
            .filter(|r| r.is_open() && camera.is_none_or(|c| c == r.camera))
            .map(|r| {
                serde_json::json!({
                    "incident_id": r.incident_id,
                    "camera": r.camera,
                    "zone": r.zone,
                    "category": r.category,
                    "first_seen": r.last.first_seen,
                    "last_event": { "phase": r.last.phase, "time": r.last.time, "event_id": r.last.event_id },
                    "crowd": r.last.crowd,
                    "evidence": r.last.evidence,
                    "model": r.last.model,
                })
            })
            .collect();
        serde_json::json!({ "incidents": list })
    }
}
