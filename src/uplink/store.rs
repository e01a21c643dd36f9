//! The durable outbox: SQLite in WAL mode on the gateway's flash. A producer's `append` returns only after
//! the record is committed, so an event that was handed over survives `kill -9` and power cuts; records are
//! deleted only after the broker's PUBACK.
//!
//! Bounds: at most `max_bytes` of payload and records no older than `max_age`. When over a bound, evidence
//! is dropped before events, oldest first; every drop is counted and logged.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a record carries; eviction drops evidence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Event = 0,
    Evidence = 1,
}

impl Kind {
    fn from_i64(v: i64) -> Kind {
        if v == 1 { Kind::Evidence } else { Kind::Event }
    }
}

/// A stored record's bookkeeping (payload stays on disk until it is sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub id: u64,
    pub kind: Kind,
    pub bytes: u64,
    pub created_ms: i64,
    /// When what the record reports was seen (an event's frame time), for the event-latency measurement;
    /// not stored, so records read back after a restart have none (their latency includes the downtime).
    pub seen_ms: Option<i64>,
}

/// A stored record in full.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub id: u64,
    pub kind: Kind,
    pub topic: String,
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("outbox {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("outbox {path}: cannot create its directory: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Limits of the outbox.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_bytes: u64,
    pub max_age: Duration,
}

/// Counters of what the bounds dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub events: u64,
    pub evidence: u64,
}

pub struct Store {
    pub(super) path: PathBuf,
    pub(super) conn: Connection,
    bounds: Bounds,
    bytes: u64,
    pub dropped: Dropped,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// Open (or create) the outbox database at `path`.
    pub fn open(path: &Path, bounds: Bounds) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let err = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        // WAL: readers never block the writer and a crash mid-write leaves the last commit intact.
        // synchronous=FULL: a commit is on flash before append returns (power cuts are routine on poles).
        // auto_vacuum=INCREMENTAL (set before the first table exists): a drained outbox can give its pages
        // back to the disk (`compact`). The write-ahead log is checkpointed every 1 MiB and cut back to
        // 1 MiB after: on a small disk it must not quietly take the space kept for events.
        conn.execute_batch(
            "PRAGMA auto_vacuum=INCREMENTAL;
             PRAGMA journal_mode=WAL;
             PRAGMA wal_autocheckpoint=256;
             PRAGMA journal_size_limit=1048576;
             PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS outbox (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 kind INTEGER NOT NULL,
                 topic TEXT NOT NULL,
                 payload BLOB NOT NULL,
                 created_ms INTEGER NOT NULL
             );",
        )
        .map_err(err)?;
        create_tables(&conn).map_err(err)?;
        let bytes: i64 = conn
            .query_row(
                "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        let mode: i64 = conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .map_err(err)?;
        if mode != 2 && bytes == 0 {
            // A database from before: switch it over while it is empty (VACUUM rewrites the file).
            if let Err(error) = conn.execute_batch("PRAGMA auto_vacuum=INCREMENTAL; VACUUM;") {
                tracing::warn!(%error, "Outbox database could not be switched to incremental vacuum.");
            }
        }
        Ok(Store {
            path: path.to_path_buf(),
            conn,
            bounds,
            bytes: bytes as u64,
            dropped: Dropped::default(),
        })
    }

    /// Bytes the database and its write-ahead log take on disk.
    pub fn file_bytes(&self) -> u64 {
        [self.path.clone(), wal_path(&self.path)]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// When the outbox is empty and its files take more than `threshold` bytes (a drained backlog), give
    /// the free pages back and truncate the write-ahead log. Returns the bytes given back.
    pub fn compact(&mut self, threshold: u64) -> Result<u64, StoreError> {
        let before = self.file_bytes();
        if self.bytes > 0 || before <= threshold {
            return Ok(0);
        }
        // The log first: on a full disk, the vacuum needs the room its truncation gives. The vacuum frees
        // one page per step: it is stepped to the end.
        let run = |conn: &Connection| -> rusqlite::Result<()> {
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
            let mut stmt = conn.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
            drop(rows);
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        };
        run(&self.conn).map_err(|e| self.err(e))?;
        Ok(before.saturating_sub(self.file_bytes()))
    }

    pub(super) fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Commit records in one transaction (an event with its evidence is all or nothing). Returns their metas
    /// in order.
    pub fn append(&mut self, records: &[(Kind, &str, &[u8])]) -> Result<Vec<Meta>, StoreError> {
        self.append_with(records, None)
    }

    /// [`Store::append`], with the change the records make to a kept case in the same transaction: the
    /// case on disk is always the one the queued events describe.
    pub fn append_with(
        &mut self,
        records: &[(Kind, &str, &[u8])],
        case: Option<CaseRow<'_>>,
    ) -> Result<Vec<Meta>, StoreError> {
        let created_ms = now_ms();
        let tx = self.conn.transaction().map_err(|e| StoreError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        let mut metas = Vec::with_capacity(records.len());
        for (kind, topic, payload) in records {
            tx.execute(
                "INSERT INTO outbox (kind, topic, payload, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![*kind as i64, topic, payload, created_ms],
            )
            .map_err(|e| StoreError::Sqlite {
                path: self.path.clone(),
                source: e,
            })?;
            metas.push(Meta {
                id: tx.last_insert_rowid() as u64,
                kind: *kind,
                bytes: payload.len() as u64,
                created_ms,
                seen_ms: None,
            });
        }
        if let Some(case) = case {
            case.write(&tx).map_err(|e| StoreError::Sqlite {
                path: self.path.clone(),
                source: e,
            })?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        self.bytes += metas.iter().map(|m| m.bytes).sum::<u64>();
        Ok(metas)
    }

    /// Every record's bookkeeping, oldest first (for a restart).
    pub fn all_meta(&self) -> Result<Vec<Meta>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, kind, LENGTH(payload), created_ms FROM outbox ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Meta {
                    id: r.get::<_, i64>(0)? as u64,
                    kind: Kind::from_i64(r.get(1)?),
                    bytes: r.get::<_, i64>(2)? as u64,
                    created_ms: r.get(3)?,
                    seen_ms: None,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Load one record to send it.
    pub fn load(&self, id: u64) -> Result<Option<Stored>, StoreError> {
        self.conn
            .query_row(
                "SELECT kind, topic, payload FROM outbox WHERE id = ?1",
                [id as i64],
                |r| {
                    Ok(Stored {
                        id,
                        kind: Kind::from_i64(r.get(0)?),
                        topic: r.get(1)?,
                        payload: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Remove a delivered (or evicted) record.
    pub fn delete(&mut self, id: u64) -> Result<(), StoreError> {
        let bytes: Option<i64> = self
            .conn
            .query_row(
                "DELETE FROM outbox WHERE id = ?1 RETURNING LENGTH(payload)",
                [id as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        self.bytes = self.bytes.saturating_sub(bytes.unwrap_or(0) as u64);
        Ok(())
    }

    /// Remove delivered records in one transaction (one flash sync for a burst of PUBACKs).
    pub fn delete_many(&mut self, ids: &[u64]) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(|e| StoreError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        let mut freed = 0u64;
        {
            let mut stmt = tx
                .prepare_cached("DELETE FROM outbox WHERE id = ?1 RETURNING LENGTH(payload)")
                .map_err(|e| StoreError::Sqlite {
                    path: self.path.clone(),
                    source: e,
                })?;
            for id in ids {
                let bytes: Option<i64> = stmt
                    .query_row([*id as i64], |r| r.get(0))
                    .optional()
                    .map_err(|e| StoreError::Sqlite {
                        path: self.path.clone(),
                        source: e,
                    })?;
                freed += bytes.unwrap_or(0) as u64;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        self.bytes = self.bytes.saturating_sub(freed);
        Ok(())
    }

    /// Payload bytes stored.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// True when the stored bytes and the oldest record's age (`oldest_ms`) are both within the bounds.
    pub fn within_bounds(&self, oldest_ms: Option<i64>, now_ms: i64) -> bool {
        self.bytes <= self.bounds.max_bytes
            && oldest_ms.is_none_or(|t| now_ms - t <= self.bounds.max_age.as_millis() as i64)
    }

    /// Which records the bounds say must go, given the current queue (oldest first) and the ids that must be
    /// kept because they are on the wire. Evidence goes before events; within a kind, oldest first.
    pub fn over_bounds(
        &self,
        queue: &[Meta],
        keep: &dyn Fn(u64) -> bool,
        now_ms: i64,
    ) -> Vec<Meta> {
        let max_age_ms = self.bounds.max_age.as_millis() as i64;
        let mut doomed: Vec<Meta> = queue
            .iter()
            .filter(|m| !keep(m.id) && now_ms - m.created_ms > max_age_ms)
            .copied()
            .collect();
        let mut bytes = self
            .bytes
            .saturating_sub(doomed.iter().map(|m| m.bytes).sum::<u64>());
        for kind in [Kind::Evidence, Kind::Event] {
            for m in queue.iter().filter(|m| m.kind == kind && !keep(m.id)) {
                if bytes <= self.bounds.max_bytes {
                    break;
                }
                if !doomed.contains(m) {
                    doomed.push(*m);
                    bytes = bytes.saturating_sub(m.bytes);
                }
            }
        }
        doomed
    }

    /// Count a drop.
    pub fn count_drop(&mut self, kind: Kind) {
        match kind {
            Kind::Event => self.dropped.events += 1,
            Kind::Evidence => self.dropped.evidence += 1,
        }
    }

    /// SQLite's own consistency check (`ok` when the file is sound).
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push("-wal");
    db.with_file_name(name)
}

/// The tables beside the outbox: kept cases (see `ledger.rs`) and small settings.
fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS cases (
             camera TEXT NOT NULL,
             zone TEXT NOT NULL,
             category TEXT NOT NULL,
             record TEXT NOT NULL,
             PRIMARY KEY (camera, zone, category)
         );
         CREATE TABLE IF NOT EXISTS meta (
             key TEXT PRIMARY KEY,
             value TEXT NOT NULL
         );",
    )
}

/// A change to one kept case: `record` (JSON) replaces it, `None` removes it.
pub struct CaseRow<'a> {
    pub key: [&'a str; 3],
    pub record: Option<&'a str>,
}

impl CaseRow<'_> {
    pub(super) fn write(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let [camera, zone, category] = self.key;
        match self.record {
            Some(json) => tx.execute(
                "INSERT INTO cases (camera, zone, category, record) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (camera, zone, category) DO UPDATE SET record = excluded.record",
                params![camera, zone, category, json],
            ),
            None => tx.execute(
                "DELETE FROM cases WHERE camera = ?1 AND zone = ?2 AND category = ?3",
                params![camera, zone, category],
            ),
        }
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(max_bytes: u64) -> Bounds {
        Bounds {
            max_bytes,
            max_age: Duration::from_secs(3600),
        }
    }

    #[test]
    fn committed_records_survive_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.sqlite");
        let mut s = Store::open(&path, bounds(1 << 20)).unwrap();
        let m = s
            .append(&[
                (Kind::Evidence, "t/evidence/1", b"jpeg"),
                (Kind::Event, "t/events", b"{}"),
            ])
            .unwrap();
        s.append(&[(Kind::Event, "t/events", b"{2}")]).unwrap();
        s.delete(m[0].id).unwrap();
        drop(s);
        let s = Store::open(&path, bounds(1 << 20)).unwrap();
        let metas = s.all_meta().unwrap();
        assert_eq!(
            metas.iter().map(|m| m.kind).collect::<Vec<_>>(),
            vec![Kind::Event, Kind::Event]
        );
        assert_eq!(s.load(metas[1].id).unwrap().unwrap().payload, b"{2}");
        assert_eq!(s.bytes(), 5);
        assert_eq!(s.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn over_the_byte_bound_evidence_goes_before_events_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("o.sqlite"), bounds(25)).unwrap();
        let mut queue = Vec::new();
        for i in 0..3 {
            queue.extend(
                s.append(&[
                    (Kind::Evidence, "e", &[0u8; 10][..]),
                    (Kind::Event, "v", format!("event{i}").as_bytes()),
                ])
                .unwrap(),
            );
        }
        assert!(!s.within_bounds(Some(queue[0].created_ms), now_ms()));
        // 30 bytes of evidence + 18 of events = 48 > 25: drop evidence until ≤ 25 → all three evidence (18 left).
        let doomed = s.over_bounds(&queue, &|_| false, now_ms());
        assert_eq!(
            doomed.iter().map(|m| m.kind).collect::<Vec<_>>(),
            vec![Kind::Evidence; 3]
        );
        assert_eq!(
            doomed.iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![queue[0].id, queue[2].id, queue[4].id]
        );
        // Records in flight are never chosen.
        let in_flight = queue[0].id;
        let doomed = s.over_bounds(&queue, &|id| id == in_flight, now_ms());
        assert!(!doomed.iter().any(|m| m.id == in_flight));
        assert!(
            doomed.iter().any(|m| m.kind == Kind::Event),
            "with the oldest evidence pinned, the oldest event goes too"
        );
    }

    #[test]
    fn a_drained_outbox_gives_its_space_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.sqlite");
        let mut s = Store::open(&path, bounds(1 << 30)).unwrap();
        let big = vec![7u8; 64 * 1024];
        let mut ids = Vec::new();
        for _ in 0..100 {
            ids.extend(
                s.append(&[(Kind::Evidence, "e", &big[..])])
                    .unwrap()
                    .iter()
                    .map(|m| m.id),
            );
        }
        assert_eq!(s.compact(1 << 20).unwrap(), 0, "not drained: left alone");
        let full = s.file_bytes();
        assert!(full > 6 << 20, "{full}");
        s.delete_many(&ids).unwrap();
        let freed = s.compact(1 << 20).unwrap();
        assert!(
            s.file_bytes() < 1 << 20,
            "{} of {full} left",
            s.file_bytes()
        );
        assert!(freed > 5 << 20, "{freed}");
        assert_eq!(s.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn records_past_the_age_bound_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(
            &dir.path().join("o.sqlite"),
            Bounds {
                max_bytes: 1 << 20,
                max_age: Duration::from_secs(60),
            },
        )
        .unwrap();
        let old = Meta {
            id: 1,
            kind: Kind::Event,
            bytes: 2,
            created_ms: now_ms() - 61_000,
            seen_ms: None,
        };
        let new = Meta {
            id: 2,
            kind: Kind::Event,
            bytes: 2,
            created_ms: now_ms(),
            seen_ms: None,
        };
        assert_eq!(s.over_bounds(&[old, new], &|_| false, now_ms()), vec![old]);
    }
}
