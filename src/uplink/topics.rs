//! Topic names under the device's base, and what passes between the uplink task and the rest of the
//! daemon besides records: incoming commands, and transient outgoing messages.

use tokio::sync::mpsc;

/// Topic names for one device.
#[derive(Debug, Clone)]
pub struct Topics {
    base: String,
}

impl Topics {
    pub fn new(prefix: &str, device_id: &str) -> Self {
        Topics {
            base: format!("{}/{}", prefix.trim_end_matches('/'), device_id),
        }
    }
    pub fn events(&self) -> String {
        format!("{}/events", self.base)
    }
    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }
    pub fn telemetry(&self) -> String {
        format!("{}/telemetry", self.base)
    }
    /// Where commands arrive: `cmd/{name}`.
    pub fn commands(&self) -> String {
        format!("{}/cmd/+", self.base)
    }
    /// The command name if `topic` is one of this device's command topics.
    pub fn command_name<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic
            .strip_prefix(self.base.as_str())?
            .strip_prefix("/cmd/")
            .filter(|n| !n.is_empty() && !n.contains('/'))
    }
    /// `relative` is an event's evidence reference, e.g. `evidence/{event_id}`.
    pub fn under(&self, relative: &str) -> String {
        format!("{}/{relative}", self.base)
    }
}

/// A command as it arrived on `cmd/{name}`.
#[derive(Debug, Clone)]
pub struct IncomingCommand {
    pub name: String,
    pub payload: Vec<u8>,
    /// Retained commands are refused: they would run again at every connect.
    pub retained: bool,
}

/// Makes the reply to a command refused because the inbox is full.
pub type BusyReply = std::sync::Arc<dyn Fn(&str, &[u8]) -> (String, Vec<u8>) + Send + Sync>;

/// Where the uplink hands incoming commands: a bounded queue, and what to answer when it is full (the
/// reply's shape is control's; the uplink only carries it).
#[derive(Clone)]
pub struct CommandInbox {
    pub tx: crossbeam_channel::Sender<IncomingCommand>,
    /// For a command named `name` with `payload` that cannot be queued: the request id to reply to and the
    /// reply's bytes (the command side also records the refusal).
    pub busy_reply: BusyReply,
}

/// Sends messages that need no durability (command replies, snapshots) through the uplink, in order with
/// the rest; they are lost if the process stops before the broker acknowledges them.
#[derive(Clone)]
pub struct Messenger {
    pub(super) tx: mpsc::Sender<(String, Vec<u8>)>,
}

/// Transient messages waiting for the uplink task (it takes them every turn; commands, which cause them,
/// arrive only while connected). Over this, a reply is dropped with a warning rather than queued without
/// bound.
pub(super) const MESSAGES_QUEUED: usize = 64;

impl Messenger {
    /// `relative` is under the device's topic base, e.g. `cmd_result/{request_id}`.
    pub fn send(&self, relative: &str, payload: Vec<u8>) {
        if let Err(mpsc::error::TrySendError::Full(_)) =
            self.tx.try_send((relative.to_string(), payload))
        {
            tracing::warn!(
                topic = relative,
                "Too many replies waiting for the uplink; this one is dropped."
            );
        }
    }
}
