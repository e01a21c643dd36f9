//! The outbox's bookkeeping: what is waiting, what was handed to the MQTT client, and which packet id
//! belongs to which record. Pure state; the MQTT task drives it.
//!
//! rumqttc's `publish()` returns before the packet id is known, so records are paired with the ids of
//! `Outgoing::Publish(pkid)` notifications in FIFO order, and a record is removed only on the broker's
//! PUBACK for that id. On every new connection all unacknowledged records are sent again, in order (rumqttc
//! drops its own in-flight state when the broker has no session for us).

use std::collections::{HashMap, VecDeque};

/// One message to deliver with QoS 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: u64,
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

#[derive(Debug, Default)]
pub struct Outbox {
    next_id: u64,
    /// Unacknowledged records in append order.
    queue: VecDeque<Record>,
    /// How many records at the head of `queue` were handed to the client on this connection.
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

    /// Add a message; returns its record id.
    pub fn append(&mut self, topic: String, payload: Vec<u8>, retain: bool) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.queue.push_back(Record {
            id,
            topic,
            payload,
            retain,
        });
        id
    }

    /// A new connection: everything unacknowledged will be sent again from the start.
    pub fn on_connected(&mut self) {
        self.sent = 0;
        self.awaiting_pkid.clear();
        self.on_wire.clear();
    }

    /// The next records to hand to the client, keeping at most `window` unacknowledged on the wire.
    pub fn next_to_send(&mut self, window: usize) -> Option<&Record> {
        if self.sent >= self.queue.len() || self.sent >= window {
            return None;
        }
        let r = &self.queue[self.sent];
        self.sent += 1;
        self.awaiting_pkid.push_back(r.id);
        Some(r)
    }

    /// A message handed to the client was not accepted (its request queue was full): send it again later.
    pub fn unsend_last(&mut self) {
        if self.awaiting_pkid.pop_back().is_some() {
            self.sent -= 1;
        }
    }

    /// The client wrote a PUBLISH with `pkid`. Returns false when there was no record waiting for an id
    /// (a publish made outside the outbox).
    pub fn on_outgoing_publish(&mut self, pkid: u16) -> bool {
        match self.awaiting_pkid.pop_front() {
            Some(id) => {
                self.on_wire.insert(pkid, id);
                true
            }
            None => false,
        }
    }

    /// The broker acknowledged `pkid`: the record is delivered and removed. Returns it.
    pub fn on_puback(&mut self, pkid: u16) -> Option<Record> {
        let id = self.on_wire.remove(&pkid)?;
        let pos = self.queue.iter().position(|r| r.id == id)?;
        let record = self.queue.remove(pos)?;
        if pos < self.sent {
            self.sent -= 1;
        }
        self.delivered += 1;
        Some(record)
    }

    /// Unacknowledged records.
    pub fn depth(&self) -> usize {
        self.queue.len()
    }

    pub fn delivered(&self) -> u64 {
        self.delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox_with(n: usize) -> Outbox {
        let mut o = Outbox::new();
        for i in 0..n {
            o.append(format!("t/{i}"), vec![i as u8], false);
        }
        o
    }

    #[test]
    fn records_are_removed_only_on_their_puback() {
        let mut o = outbox_with(3);
        o.on_connected();
        let sent: Vec<u64> = std::iter::from_fn(|| o.next_to_send(10).map(|r| r.id)).collect();
        assert_eq!(sent, vec![0, 1, 2]);
        for pkid in [7, 8, 9] {
            assert!(o.on_outgoing_publish(pkid));
        }
        assert_eq!(o.on_puback(8).map(|r| r.id), Some(1));
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
        // connection lost before the other acks
        o.on_connected();
        let resent: Vec<u64> = std::iter::from_fn(|| o.next_to_send(10).map(|r| r.id)).collect();
        assert_eq!(resent, vec![1, 2]);
    }

    #[test]
    fn the_window_bounds_records_on_the_wire() {
        let mut o = outbox_with(5);
        o.on_connected();
        assert_eq!(
            std::iter::from_fn(|| o.next_to_send(2).map(|r| r.id)).count(),
            2
        );
        o.on_outgoing_publish(1);
        o.on_puback(1);
        assert_eq!(o.next_to_send(2).map(|r| r.id), Some(2));
    }
}
