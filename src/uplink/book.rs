//! The uplink task's bookkeeping: which records are queued, in flight and delivered, and the transient
//! messages (status, telemetry, replies) that travel in order with them but are never stored.

use super::session::Properties;
use super::{Meta, Outbox};
use std::collections::{BTreeMap, HashMap};

/// Records handed to the client and not yet acknowledged, at most.
pub(super) const WINDOW: usize = 64;
/// Transient messages (status, telemetry) are not stored; their ids live above any SQLite rowid.
pub(super) const TRANSIENT_IDS: u64 = 1 << 62;

/// A message not stored on disk.
pub(super) struct Transient {
    pub(super) topic: String,
    pub(super) payload: Vec<u8>,
    pub(super) retain: bool,
    pub(super) props: Properties,
}

/// In-task state: bookkeeping, the records' metas, and the in-memory status messages.
pub(super) struct Book {
    pub(super) outbox: Outbox,
    pub(super) metas: BTreeMap<u64, Meta>,
    /// Messages not stored on disk (status, telemetry), by id: topic, payload, retain.
    pub(super) transient: HashMap<u64, Transient>,
    pub(super) next_transient: u64,
    /// Delivered records not yet deleted from disk. Deleting in batches keeps a replay from paying one
    /// flash sync per PUBACK; a crash before the batch commits only means those records are sent again,
    /// which consumers absorb by deduplicating on `event_id`.
    pub(super) acked: Vec<u64>,
    pub(super) last_flush: std::time::Instant,
    pub(super) connected: bool,
    /// The state directory's disk was under its reserve at the last bounds check.
    pub(super) disk_short: bool,
}

impl Book {
    pub(super) fn add(&mut self, m: Meta) {
        self.outbox.append(m.id);
        self.metas.insert(m.id, m);
    }

    /// A message that is not stored on disk (status, telemetry): it is sent once connected, in order with
    /// the rest, and forgotten on PUBACK.
    pub(super) fn add_transient(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
        props: Properties,
    ) {
        let id = self.next_transient;
        self.next_transient += 1;
        self.transient.insert(
            id,
            Transient {
                topic,
                payload,
                retain,
                props,
            },
        );
        self.outbox.append(id);
    }
}
