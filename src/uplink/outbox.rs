//! The outbox's bookkeeping: which records wait, which were handed to the MQTT client, and which packet id
//! belongs to which record. Pure state over record ids; the payloads live in the store (`store.rs`) and the
//! MQTT task drives this.
//!
//! rumqttc's `publish()` returns before the packet id is known, so records are paired with the ids of
//! `Outgoing::Publish(pkid)` notifications in FIFO order, and a record is removed only on the broker's
//! PUBACK for that id. On every new connection all unacknowledged records are sent again, in order (rumqttc
//! drops its own in-flight state when the broker has no session for us).

use std::collections::{HashMap, VecDeque};

#[derive(Debug, Default)]
pub struct Outbox {
    /// Unacknowledged record ids in append order.
    queue: VecDeque<u64>,
    /// How many ids at the head of `queue` were handed to the client on this connection.
    sent: usize,
    /// Ids handed to the client whose packet id is not known yet, in order.
    awaiting_pkid: VecDeque<u64>,
    /// Packet id → record id, for records on the wire.
    on_wire: HashMap<u16, u64>,
    delivered: u64,
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a record id (ids are appended in increasing order).
    pub fn append(&mut self, id: u64) {
        self.queue.push_back(id);
    }

    /// A new connection: everything unacknowledged will be sent again from the start.
    pub fn on_connected(&mut self) {
        self.sent = 0;
        self.awaiting_pkid.clear();
        self.on_wire.clear();
    }

    /// The next record to hand to the client, keeping at most `window` unacknowledged on the wire.
    pub fn next_to_send(&mut self, window: usize) -> Option<u64> {
        if self.sent >= self.queue.len() || self.sent >= window {
            return None;
        }
        let id = self.queue[self.sent];
        self.sent += 1;
        self.awaiting_pkid.push_back(id);
        Some(id)
    }

    /// The last record handed out was not accepted by the client (its queue was full, or the record is
    /// gone): it will be handed out again later.
    pub fn unsend_last(&mut self) {
        if self.awaiting_pkid.pop_back().is_some() {
            self.sent -= 1;
        }
    }

    /// The client wrote a PUBLISH with `pkid`. Returns false when no record was waiting for an id.
    pub fn on_outgoing_publish(&mut self, pkid: u16) -> bool {
        match self.awaiting_pkid.pop_front() {
            Some(id) => {
                self.on_wire.insert(pkid, id);
                true
            }
            None => false,
        }
    }

    /// The broker acknowledged `pkid`: returns the delivered record id, now removed.
    pub fn on_puback(&mut self, pkid: u16) -> Option<u64> {
        let id = self.on_wire.remove(&pkid)?;
        self.remove_at(self.queue.iter().position(|&r| r == id)?);
        self.delivered += 1;
        Some(id)
    }

    /// Is the record handed to the client on this connection (and so not evictable)?
    pub fn is_in_flight(&self, id: u64) -> bool {
        self.queue.iter().take(self.sent).any(|&r| r == id)
    }

    /// Evict a record that is not in flight. Returns whether it was queued.
    pub fn evict(&mut self, id: u64) -> bool {
        match self.queue.iter().position(|&r| r == id) {
            Some(pos) if pos >= self.sent => {
                self.remove_at(pos);
                true
            }
            _ => false,
        }
    }

    fn remove_at(&mut self, pos: usize) {
        self.queue.remove(pos);
        if pos < self.sent {
            self.sent -= 1;
        }
    }

    /// Unacknowledged records.
    pub fn depth(&self) -> usize {
        self.queue.len()
    }

    /// Unacknowledged record ids, oldest first.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.queue.iter().copied()
    }

    pub fn delivered(&self) -> u64 {
        self.delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn outbox_with(n: u64) -> Outbox {
        let mut o = Outbox::new();
        (0..n).for_each(|i| o.append(i));
        o
    }

    #[test]
    fn records_are_removed_only_on_their_puback() {
        let mut o = outbox_with(3);
        o.on_connected();
        let sent: Vec<u64> = std::iter::from_fn(|| o.next_to_send(10)).collect();
        assert_eq!(sent, vec![0, 1, 2]);
        for pkid in [7, 8, 9] {
            assert!(o.on_outgoing_publish(pkid));
        }
        assert_eq!(o.on_puback(8), Some(1));
        assert_eq!(o.depth(), 2);
        assert_eq!(o.on_puback(8), None, "a repeated ack removes nothing");
    }

    #[test]
    fn a_reconnect_resends_every_unacknowledged_record_in_order() {
        let mut o = outbox_with(3);
        o.on_connected();
        while o.next_to_send(10).is_some() {}
        o.on_outgoing_publish(1);
        o.on_outgoing_publish(2);
        o.on_puback(1);
        o.on_connected(); // connection lost before the other acks
        let resent: Vec<u64> = std::iter::from_fn(|| o.next_to_send(10)).collect();
        assert_eq!(resent, vec![1, 2]);
    }

    #[test]
    fn the_window_bounds_records_on_the_wire() {
        let mut o = outbox_with(5);
        o.on_connected();
        assert_eq!(std::iter::from_fn(|| o.next_to_send(2)).count(), 2);
        o.on_outgoing_publish(1);
        o.on_puback(1);
        assert_eq!(o.next_to_send(2), Some(2));
    }

    #[test]
    fn records_in_flight_cannot_be_evicted() {
        let mut o = outbox_with(3);
        o.on_connected();
        o.next_to_send(10);
        assert!(!o.evict(0));
        assert!(o.evict(2));
        assert_eq!(o.ids().collect::<Vec<_>>(), vec![0, 1]);
    }

    /// What the broker and the network may do between two of our steps.
    #[derive(Debug, Clone)]
    enum Step {
        Append,
        Pump(usize),
        /// The client writes the next awaiting publish; the broker receives it.
        Write,
        /// The broker acknowledges the n-th packet on the wire (acks may be lost or reordered).
        Ack(usize),
        /// The connection drops and comes back (unacked publishes may or may not have reached the broker).
        Reconnect,
        /// Acknowledged records are deleted from disk (the uplink batches these deletes).
        Flush,
        /// The process dies (kill -9, power cut) and restarts: memory is gone, the store is what is left.
        Crash,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![3 => Just(Step::Append), 3 => (1usize..8).prop_map(Step::Pump), 4 => Just(Step::Write), 3 => (0usize..8).prop_map(Step::Ack), 1 => Just(Step::Reconnect), 2 => Just(Step::Flush), 1 => Just(Step::Crash)]
    }

    /// A model of the client's write queue, the wire and the broker.
    #[derive(Default)]
    struct Sim {
        o: Outbox,
        next_id: u64,
        next_pkid: u16,
        written: VecDeque<u64>,
        wire: Vec<(u16, u64)>,
        received: Vec<u64>,
        /// What is on disk: appended and not yet deleted.
        stored: std::collections::BTreeSet<u64>,
        /// Acknowledged, deletion not yet committed.
        acked: Vec<u64>,
    }

    impl Sim {
        fn run(&mut self, s: &Step) -> Result<(), TestCaseError> {
            match s {
                Step::Append => {
                    self.o.append(self.next_id);
                    self.stored.insert(self.next_id);
                    self.next_id += 1;
                }
                Step::Pump(n) => {
                    for _ in 0..*n {
                        match self.o.next_to_send(4) {
                            Some(id) => self.written.push_back(id),
                            None => break,
                        }
                    }
                }
                Step::Write => {
                    if let Some(id) = self.written.pop_front() {
                        self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
                        prop_assert!(self.o.on_outgoing_publish(self.next_pkid));
                        self.wire.push((self.next_pkid, id));
                        self.received.push(id);
                    }
                }
                Step::Ack(k) => {
                    if !self.wire.is_empty() {
                        let (pkid, id) = self.wire.remove(k % self.wire.len());
                        prop_assert_eq!(self.o.on_puback(pkid), Some(id));
                        self.acked.push(id);
                    }
                }
                Step::Reconnect => {
                    self.written.clear();
                    self.wire.clear();
                    self.o.on_connected();
                }
                Step::Flush => {
                    for id in self.acked.drain(..) {
                        self.stored.remove(&id);
                    }
                }
                Step::Crash => {
                    // A restart reads the backlog from disk, oldest first, as `Uplink::from_config` does.
                    self.o = Outbox::new();
                    for &id in &self.stored {
                        self.o.append(id);
                    }
                    self.written.clear();
                    self.wire.clear();
                    self.acked.clear();
                    self.o.on_connected();
                }
            }
            Ok(())
        }
    }

    proptest! {
        /// Against a model of a broker and of the disk: whatever the interleaving of appends, publishes, acks
        /// (lost or reordered), batched deletes, reconnects and crashes, what the broker received is —
        /// after dropping redeliveries by id — exactly the appended records, in order, and nothing is left
        /// on disk once the link settles.
        #[test]
        fn delivered_sequence_is_the_appended_sequence_in_order(steps in proptest::collection::vec(step(), 0..300)) {
            let mut sim = Sim::default();
            sim.o.on_connected();
            for s in &steps {
                sim.run(s)?;
            }
            for _ in 0..10_000 {
                if sim.o.depth() == 0 {
                    break;
                }
                sim.run(&Step::Pump(4))?;
                while !sim.written.is_empty() {
                    sim.run(&Step::Write)?;
                }
                while !sim.wire.is_empty() {
                    sim.run(&Step::Ack(0))?;
                }
            }
            prop_assert_eq!(sim.o.depth(), 0);
            sim.run(&Step::Flush)?;
            prop_assert!(sim.stored.is_empty(), "left on disk: {:?}", sim.stored);
            let mut seen = std::collections::HashSet::new();
            let deduped: Vec<u64> = sim.received.iter().copied().filter(|id| seen.insert(*id)).collect();
            prop_assert_eq!(deduped, (0..sim.next_id).collect::<Vec<_>>());
        }
    }
}
