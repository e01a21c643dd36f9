//! The producer side of the outbox — publications are appended (committed before `append` returns) — and
//! what the agent keeps beside it, in the same SQLite file: the cases open or cooling down (each
//! committed in the transaction of the event that changed it, so a `kill -9` can never leave a case the
//! city was not told about, or tell the city about a case it forgot), the dispatcher's suppressions, and
//! when the agent was last alive (a restart after a long downtime does not pretend it watched meanwhile).

use super::Topics;
use super::store::{CaseRow, Kind, Meta, Store, StoreError};
use crate::incident::Publication;
use crate::incident::{CaseChange, CaseRecord, Suppression};
use rusqlite::{OptionalExtension, params};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

impl Store {
    /// Every kept case's record (JSON), by camera, zone and category.
    pub fn cases(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT record FROM cases ORDER BY camera, zone, category")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Apply one case change on its own.
    pub fn write_case(&mut self, row: CaseRow<'_>) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(|e| StoreError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        row.write(&tx).map_err(|e| StoreError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        tx.commit().map_err(|e| self.err(e))
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}

/// The producer side of the outbox: model workers append publications here; `append` returns once the
/// records are committed to disk.
#[derive(Clone)]
pub struct OutboxWriter {
    pub(super) store: Arc<Mutex<Store>>,
    pub(super) topics: Topics,
    pub(super) notify: mpsc::UnboundedSender<Vec<Meta>>,
}

impl OutboxWriter {
    /// Durably enqueue an event with its evidence (evidence first, so it reaches the broker before its event).
    pub fn append(&self, p: &Publication) -> Result<(), StoreError> {
        let json = serde_json::to_vec(&p.event).expect("events serialise");
        let evidence_topics: Vec<String> = p
            .event
            .evidence
            .iter()
            .map(|e| self.topics.under(&e.topic))
            .collect();
        let mut records: Vec<(Kind, &str, &[u8])> = evidence_topics
            .iter()
            .zip(&p.evidence)
            .map(|(t, e)| (Kind::Evidence, t.as_str(), e.jpeg.as_slice()))
            .collect();
        let events = self.topics.events();
        records.push((Kind::Event, events.as_str(), json.as_slice()));
        let case_json = p.case.as_ref().map(|c| (c.key(), case_json(c)));
        let case = case_json.as_ref().map(|(key, json)| CaseRow {
            key: *key,
            record: json.as_deref(),
        });
        let mut store = self.store.lock().expect("outbox lock");
        let mut metas = store.append_with(&records, case)?;
        // Latency is measured from the frame the event reports (`last_seen`); a resolution reports the
        // absence of something, so it counts from when the event was made.
        let seen = match p.event.phase {
            crate::incident::Phase::Resolved => &p.event.time,
            _ => &p.event.last_seen,
        };
        if let (Some(event), Ok(seen)) =
            (metas.last_mut(), chrono::DateTime::parse_from_rfc3339(seen))
        {
            event.seen_ms = Some(seen.timestamp_millis());
        }
        // Told while the store is still locked: whoever locks it next (the bounds check) finds the
        // notice already queued, so its view of the queue matches the store's bytes.
        let _ = self.notify.send(metas);
        Ok(())
    }
}

impl OutboxWriter {
    /// Durably enqueue a message that is not an incident event (a model's rollback) on `relative` under
    /// the device's topic base; it goes out in order with the events.
    pub fn append_notice(&self, relative: &str, payload: &[u8]) -> Result<(), StoreError> {
        let topic = self.topics.under(relative);
        let mut store = self.store.lock().expect("outbox lock");
        let metas = store.append_with(&[(Kind::Event, topic.as_str(), payload)], None)?;
        let _ = self.notify.send(metas);
        Ok(())
    }
}

/// The JSON of a case change, and the row it writes.
fn case_json(change: &CaseChange) -> Option<String> {
    match change {
        CaseChange::Keep(r) => Some(serde_json::to_string(r).expect("case records serialise")),
        CaseChange::Forget { .. } => None,
    }
}

const SUPPRESSIONS: &str = "suppressions";
const ALIVE: &str = "alive_ms";

impl OutboxWriter {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().expect("outbox lock")
    }

    /// The kept cases (open or cooling down); a record that cannot be read is logged and left out.
    pub fn cases(&self) -> Vec<CaseRecord> {
        let rows = match self.store().cases() {
            Ok(rows) => rows,
            Err(error) => {
                tracing::error!(%error, "Kept incidents could not be read; they are not continued.");
                return Vec::new();
            }
        };
        rows.iter()
            .filter_map(|json| match serde_json::from_str(json) {
                Ok(r) => Some(r),
                Err(error) => {
                    tracing::warn!(%error, "A kept incident record is unreadable; it is not continued.");
                    None
                }
            })
            .collect()
    }

    /// Drop a kept case without an event (its cooldown is over).
    pub fn forget(&self, r: &CaseRecord) {
        let row = CaseRow {
            key: [&r.camera, &r.zone, &r.category],
            record: None,
        };
        if let Err(error) = self.store().write_case(row) {
            tracing::warn!(%error, incident = %r.incident_id, "A finished incident's record could not be removed.");
        }
    }

    /// The suppressions kept on disk.
    pub fn suppressions(&self) -> Vec<Suppression> {
        match self.store().meta(SUPPRESSIONS) {
            Ok(Some(json)) => serde_json::from_str(&json).unwrap_or_else(|error| {
                tracing::error!(%error, "Kept suppressions are unreadable; none is in force.");
                Vec::new()
            }),
            Ok(None) => Vec::new(),
            Err(error) => {
                tracing::error!(%error, "Kept suppressions could not be read; none is in force.");
                Vec::new()
            }
        }
    }

    /// Keep `list` as the suppressions in force (committed before this returns).
    pub fn save_suppressions(&self, list: &[Suppression]) -> Result<(), StoreError> {
        let json = serde_json::to_string(list).expect("suppressions serialise");
        self.store().set_meta(SUPPRESSIONS, &json)
    }

    /// Note that the agent is alive now (every few seconds while it runs, and at a clean stop).
    pub fn mark_alive(&self) {
        let now = super::store::now_ms().to_string();
        if let Err(error) = self.store().set_meta(ALIVE, &now) {
            tracing::warn!(%error, "Could not note that the agent is alive.");
        }
    }

    /// When the agent last noted it was alive (before this start).
    pub fn last_alive(&self) -> Option<SystemTime> {
        let ms: u64 = self.store().meta(ALIVE).ok()??.parse().ok()?;
        Some(UNIX_EPOCH + Duration::from_millis(ms))
    }
}
