//! Uplink: incidents and their evidence to the city's MQTT broker with QoS 1, a retained `status` with an
//! `offline` last will, TLS with client certificates. A message counts as delivered only on PUBACK.

mod book;
mod options;
mod outbox;
mod session;
mod store;
mod telemetry;
mod topics;
mod writer;

pub use options::{Endpoint, TlsFiles, UplinkSettings, endpoint, mqtt_options, session_options};
pub use outbox::Outbox;
pub use session::{Client, Properties, Protocol, SessionEvent, SessionOptions};
pub use store::CaseRow;
pub use store::{Bounds, Dropped, Kind, Meta, Store, StoreError, Stored};
pub use telemetry::{
    CameraTelemetry, DiskTelemetry, LinkTelemetry, OutboxTelemetry, ProcessTelemetry, Telemetry,
    TelemetrySource,
};
pub use topics::{BusyReply, CommandInbox, IncomingCommand, Messenger, Topics};
pub use writer::OutboxWriter;

use crate::base::Shutdown;
use book::{Book, TRANSIENT_IDS, WINDOW};

/// A drained outbox whose files take more than this is shrunk (an ordinary empty one is left alone, so the
/// common case costs nothing).
const COMPACT_OVER: u64 = 4 * 1024 * 1024;
use options::offline_payload;
use session::EventLoop;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("uplink: broker URL `{0}`: {1}")]
    Url(String, String),
    #[error("uplink: cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Produces the current `status` payload (cameras, models) when it is published.
pub type StatusSource = Arc<dyn Fn(&str) -> serde_json::Value + Send + Sync>;

/// Delivery counters readable while the uplink runs.
#[derive(Debug, Default)]
pub struct UplinkStats {
    /// Records acknowledged by the broker (PUBACK).
    pub delivered: AtomicU64,
    /// Records waiting in the outbox.
    pub depth: AtomicU64,
    pub connects: AtomicU64,
    /// Whether the broker connection is up now.
    pub connected: std::sync::atomic::AtomicBool,
    /// Incident events committed to the outbox by this process.
    pub appended_events: AtomicU64,
    /// Records the outbox's bounds dropped.
    pub dropped_events: AtomicU64,
    pub dropped_evidence: AtomicU64,
    /// Milliseconds from an event's frame leaving the decoder to the broker's PUBACK, recent events.
    pub event_latency_ms: crate::base::Recent,
    /// Every latency measured since start: how many, and their sum in milliseconds (a summary's `_count`
    /// and `_sum`).
    pub event_latency_count: AtomicU64,
    pub event_latency_ms_total: AtomicU64,
    /// Creation time (ms since the epoch) of the oldest record waiting in the outbox; 0 when it is empty.
    pub oldest_created_ms: std::sync::atomic::AtomicI64,
    /// Events acknowledged by the broker (PUBACK).
    pub delivered_events: AtomicU64,
}

/// The uplink task's inputs.
pub struct Uplink {
    /// One per configured broker, in order: the nodes of one cluster, failed over between.
    pub options: Vec<SessionOptions>,
    /// `host:port` of the broker connected to (or being tried).
    at: String,
    pub topics: Topics,
    pub device_id: String,
    pub status: StatusSource,
    pub stats: Arc<UplinkStats>,
    /// What the `telemetry` message reports (shared with `/metrics`).
    telemetry: Arc<TelemetrySource>,
    /// Poked when cameras or models change: the retained status is published at once, not at the next
    /// 30 s refresh.
    pub status_changed: Arc<tokio::sync::Notify>,
    /// The state directory's disk: under its reserve, queued evidence is dropped before any event.
    pub disk: Option<Arc<crate::base::DiskGuard>>,
    telemetry_every: Duration,
    store: Arc<Mutex<Store>>,
    /// Records found on disk at start (a backlog from before a restart), oldest first.
    backlog: Vec<Meta>,
    appended: mpsc::UnboundedReceiver<Vec<Meta>>,
    /// Where incoming commands go; none: the agent does not subscribe to commands.
    pub commands: Option<CommandInbox>,
    messages: mpsc::Receiver<(String, Vec<u8>)>,
    messenger: Messenger,
}

impl Uplink {
    /// Build the uplink and its outbox writer; the outbox's backlog is read now, before producers start.
    pub fn new(
        settings: &UplinkSettings,
        status: StatusSource,
    ) -> Result<(Self, OutboxWriter), UplinkError> {
        let device_id = settings.device_id.clone();
        let topics = Topics::new(&settings.topic_prefix, &device_id);
        let options = session_options(settings, &topics)?;
        if options.is_empty() {
            return Err(UplinkError::Url(
                String::new(),
                "no broker given; name at least one".into(),
            ));
        }
        let store = Store::open(&settings.outbox, settings.bounds)?;
        let backlog = store.all_meta()?;
        if !backlog.is_empty() {
            tracing::info!(
                records = backlog.len(),
                bytes = store.bytes(),
                "Outbox holds undelivered records from before; they go first."
            );
        }
        let store = Arc::new(Mutex::new(store));
        // Unbounded on purpose: a writer announces records while it holds the store's lock, and the uplink
        // takes that lock before it drains these notices — a bounded channel could deadlock the two. Each
        // notice is a few dozen bytes per record, and the records are bounded on disk.
        let (notify, appended) = mpsc::unbounded_channel();
        let (tx, messages) = mpsc::channel(topics::MESSAGES_QUEUED);
        let stats = Arc::<UplinkStats>::default();
        let writer = OutboxWriter {
            store: store.clone(),
            topics: topics.clone(),
            notify,
        };
        Ok((
            Uplink {
                at: options[0].address(),
                options,
                topics,
                device_id,
                status,
                telemetry: Arc::new(TelemetrySource::new(stats.clone())),
                status_changed: Arc::default(),
                disk: None,
                stats,
                telemetry_every: settings.telemetry_every.max(Duration::from_secs(1)),
                store,
                backlog,
                appended,
                commands: None,
                messages,
                messenger: Messenger { tx },
            },
            writer,
        ))
    }

    /// What the `telemetry` message reports; the daemon points it at the cameras, `/metrics` reads it.
    pub fn telemetry(&self) -> Arc<TelemetrySource> {
        self.telemetry.clone()
    }

    /// A sender for replies and other transient messages.
    pub fn messenger(&self) -> Messenger {
        self.messenger.clone()
    }

    /// Deliver until shutdown, then keep delivering for at most `drain` and say `offline`. Whatever is
    /// still undelivered stays in the outbox for the next start.
    pub async fn run(mut self, shutdown: Shutdown, drain: Duration) {
        let mut broker = 0;
        let (client, mut eventloop) = self.options[broker].connect(WINDOW * 2 + 8);
        tracing::info!(protocol = ?self.options[broker].protocol(), brokers = self.options.len(), "MQTT uplink starting.");
        let mut book = Book {
            outbox: Outbox::new(),
            metas: BTreeMap::new(),
            transient: HashMap::new(),
            next_transient: TRANSIENT_IDS,
            acked: Vec::new(),
            last_flush: std::time::Instant::now(),
            connected: false,
            disk_short: false,
        };
        for m in std::mem::take(&mut self.backlog) {
            book.add(m);
        }
        let mut connected = false;
        let mut backoff =
            crate::base::Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        let status_every = Duration::from_secs(30);
        let mut status_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + status_every, status_every);
        let mut telemetry_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + self.telemetry_every,
            self.telemetry_every,
        );
        let mut age_tick = tokio::time::interval(Duration::from_secs(60));
        let mut flush_tick = tokio::time::interval(Duration::from_millis(250));
        let stopping = shutdown.wait();
        tokio::pin!(stopping);
        let mut retry_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = &mut stopping => break,
                Some(metas) = self.appended.recv() => {
                    self.absorb(&mut book, metas);
                    self.enforce_bounds(&mut book);
                }
                _ = age_tick.tick() => self.enforce_bounds(&mut book),
                Some((relative, payload)) = self.messages.recv() => {
                    // Replies and snapshots are worth nothing after a few minutes.
                    let kind = if relative.starts_with("snapshot/") { Properties::JPEG } else { Properties::JSON };
                    book.add_transient(self.topics.under(&relative), payload, false, kind.expiring(Duration::from_secs(300)));
                }
                // Wakes the loop so a last, small batch of deliveries is deleted from disk too.
                _ = flush_tick.tick(), if !book.acked.is_empty() => {}
                _ = self.status_changed.notified(), if connected => {
                    book.add_transient(self.topics.status(), (self.status)("online").to_string().into_bytes(), true, Properties::JSON);
                }
                _ = status_tick.tick(), if connected => {
                    book.add_transient(self.topics.status(), (self.status)("online").to_string().into_bytes(), true, Properties::JSON);
                }
                _ = telemetry_tick.tick(), if connected => {
                    let payload = self.telemetry.message();
                    let stale_after = self.telemetry_every * 3;
                    book.add_transient(self.topics.telemetry(), payload, false, Properties::JSON.expiring(stale_after));
                }
                // Waiting out the backoff inside this select keeps bounds, counters and replies going
                // while the broker is away.
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)), if retry_at.is_some() => {
                    retry_at = None;
                }
                ev = eventloop.poll(), if retry_at.is_none() => match ev {
                    Ok(ev) => {
                        let was = connected;
                        connected = self.on_event(ev, &mut book, &mut backoff, connected);
                        if connected && !was && self.commands.is_some() {
                            // Clean sessions forget subscriptions: subscribe at every connect.
                            if client.try_subscribe(self.topics.commands()).is_err() {
                                tracing::error!("Could not subscribe to commands: the client's queue is full.");
                            }
                        }
                    }
                    Err(error) => {
                        connected = false;
                        let delay = backoff.next_delay(&mut rand::rng());
                        let failed = self.options[broker].address();
                        // The nodes of one cluster: the next one is tried after the backoff.
                        broker = (broker + 1) % self.options.len();
                        eventloop.switch_to(&self.options[broker]);
                        self.at = self.options[broker].address();
                        log_connection_error(&error, &failed, &self.options[broker].address(), delay);
                        retry_at = Some(tokio::time::Instant::now() + delay);
                    }
                },
            }
            if connected {
                self.pump(&client, &mut book);
            }
            book.connected = connected;
            self.flush_acked(&mut book, false);
            self.update_stats(&book);
        }
        self.drain(client, eventloop, book, connected, drain).await;
    }

    /// Delete delivered records from disk: in batches, or everything when `force`.
    fn flush_acked(&self, book: &mut Book, force: bool) {
        if book.acked.is_empty()
            || !(force
                || book.acked.len() >= 256
                || book.last_flush.elapsed() >= Duration::from_millis(200))
        {
            return;
        }
        if let Err(error) = self
            .store
            .lock()
            .expect("outbox lock")
            .delete_many(&book.acked)
        {
            tracing::error!(%error, records = book.acked.len(), "Delivered records could not be deleted; they may be sent again.");
        }
        book.acked.clear();
        book.last_flush = std::time::Instant::now();
        if book.metas.is_empty() {
            // A drained backlog gives its space back to the disk.
            match self
                .store
                .lock()
                .expect("outbox lock")
                .compact(COMPACT_OVER)
            {
                Ok(0) => {}
                Ok(freed) => tracing::info!(freed, "Outbox drained; its database was shrunk."),
                Err(error) => tracing::warn!(%error, "Drained outbox could not be shrunk."),
            }
        }
    }

    fn update_stats(&self, book: &Book) {
        self.stats
            .connected
            .store(book.connected, Ordering::Relaxed);
        self.stats
            .depth
            .store(book.metas.len() as u64, Ordering::Relaxed);
        let oldest = book.metas.values().next().map_or(0, |m| m.created_ms);
        self.stats
            .oldest_created_ms
            .store(oldest, Ordering::Relaxed);
        self.stats
            .delivered
            .store(book.outbox.delivered(), Ordering::Relaxed);
        let dropped = self.store.lock().expect("outbox lock").dropped;
        self.stats
            .dropped_events
            .store(dropped.events, Ordering::Relaxed);
        self.stats
            .dropped_evidence
            .store(dropped.evidence, Ordering::Relaxed);
    }

    /// Take newly committed records into the book.
    fn absorb(&self, book: &mut Book, metas: Vec<Meta>) {
        let events = metas.iter().filter(|m| m.kind == Kind::Event).count() as u64;
        self.stats
            .appended_events
            .fetch_add(events, Ordering::Relaxed);
        metas.into_iter().for_each(|m| book.add(m));
    }

    /// Apply the outbox's size and age bounds: evidence before events, oldest first, never what is in flight.
    fn enforce_bounds(&mut self, book: &mut Book) {
        let store = self.store.clone();
        let mut store = store.lock().expect("outbox lock");
        // Records committed before this lock was taken are all announced by now: take them in, so the
        // choice below sees every record the store's byte count includes (else newer evidence it has not
        // heard of yet would let an event be dropped before it).
        while let Ok(metas) = self.appended.try_recv() {
            self.absorb(book, metas);
        }
        let oldest = book.metas.values().next().map(|m| m.created_ms);
        // Under the disk's reserve for events, queued evidence goes too (events come first).
        let short = self
            .disk
            .as_ref()
            .is_some_and(|d| d.refresh().is_some_and(|free| free < d.reserve()));
        if short != book.disk_short {
            // The retained status says whether the disk is short: publish it now.
            book.disk_short = short;
            self.status_changed.notify_one();
            if short {
                tracing::warn!("Disk short: queued evidence is dropped so events can be stored.");
            } else {
                tracing::info!("Disk has its reserve for events again.");
            }
        }
        if !short && store.within_bounds(oldest, crate::uplink::store::now_ms()) {
            return; // the common case: no need to look at the whole backlog on every append
        }
        let queue: Vec<Meta> = book.metas.values().copied().collect();
        let outbox = &book.outbox;
        let keep = |id| outbox.is_in_flight(id);
        let mut doomed = store.over_bounds(&queue, &keep, crate::uplink::store::now_ms());
        if short {
            for m in queue
                .iter()
                .filter(|m| m.kind == Kind::Evidence && !keep(m.id))
            {
                if !doomed.contains(m) {
                    doomed.push(*m);
                }
            }
        }
        let (mut events, mut evidence, mut bytes, mut oldest_ms) = (0u64, 0u64, 0u64, i64::MAX);
        for m in doomed {
            if !book.outbox.evict(m.id) {
                continue;
            }
            book.metas.remove(&m.id);
            if let Err(error) = store.delete(m.id) {
                tracing::error!(%error, "Outbox record could not be deleted.");
            }
            store.count_drop(m.kind);
            match m.kind {
                Kind::Event => events += 1,
                Kind::Evidence => evidence += 1,
            }
            bytes += m.bytes;
            oldest_ms = oldest_ms.min(m.created_ms);
        }
        if events + evidence > 0 {
            let age_s = (crate::uplink::store::now_ms() - oldest_ms) / 1000;
            tracing::warn!(
                events,
                evidence,
                bytes,
                oldest_age_s = age_s,
                "Outbox over its bounds; dropped the oldest records (evidence before events)."
            );
        }
    }

    fn on_event(
        &self,
        ev: SessionEvent,
        book: &mut Book,
        backoff: &mut crate::base::Backoff,
        connected: bool,
    ) -> bool {
        match ev {
            SessionEvent::Connected => {
                backoff.reset();
                self.stats.connects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(broker = %self.at, backlog = book.metas.len(), "Connected to the broker.");
                book.outbox.on_connected();
                book.add_transient(
                    self.topics.status(),
                    (self.status)("online").to_string().into_bytes(),
                    true,
                    Properties::JSON,
                );
                true
            }
            SessionEvent::PubAck(pkid) => {
                if let Some(id) = book.outbox.on_puback(pkid)
                    && book.transient.remove(&id).is_none()
                {
                    if let Some(m) = book.metas.remove(&id)
                        && m.kind == Kind::Event
                    {
                        self.stats.delivered_events.fetch_add(1, Ordering::Relaxed);
                        // A wall-clock step (NTP after a boot without RTC) can make it negative: not a sample.
                        let ms = m.seen_ms.map(|seen| crate::uplink::store::now_ms() - seen);
                        if let Some(ms) = ms.filter(|ms| *ms >= 0) {
                            self.stats.event_latency_ms.record(ms as f32);
                            self.stats
                                .event_latency_count
                                .fetch_add(1, Ordering::Relaxed);
                            self.stats
                                .event_latency_ms_total
                                .fetch_add(ms as u64, Ordering::Relaxed);
                        }
                    }
                    book.acked.push(id);
                }
                connected
            }
            SessionEvent::OutgoingPublish(pkid) => {
                book.outbox.on_outgoing_publish(pkid);
                connected
            }
            SessionEvent::Publish {
                topic,
                payload,
                retain,
            } => {
                // An empty payload is how a retained message is cleared, not a command.
                if let (Some(inbox), Some(name), false) = (
                    &self.commands,
                    self.topics.command_name(&topic),
                    payload.is_empty(),
                ) {
                    let cmd = IncomingCommand {
                        name: name.to_string(),
                        payload,
                        retained: retain,
                    };
                    if let Err(refused) = inbox.tx.try_send(cmd) {
                        let payload = refused.into_inner().payload;
                        tracing::warn!(
                            command = %name.chars().take(64).collect::<String>(),
                            "Command queue full; command refused as busy."
                        );
                        let (request_id, reply) = (inbox.busy_reply)(name, &payload);
                        let topic = self.topics.under(&format!("cmd_result/{request_id}"));
                        book.add_transient(
                            topic,
                            reply,
                            false,
                            Properties::JSON.expiring(Duration::from_secs(300)),
                        );
                    }
                }
                connected
            }
            _ => connected,
        }
    }

    /// Hand waiting records to the client, keeping the window.
    fn pump(&self, client: &Client, book: &mut Book) {
        while let Some(id) = book.outbox.next_to_send(WINDOW) {
            let (topic, payload, retain, props) = match book.transient.get(&id) {
                Some(t) => (t.topic.clone(), t.payload.clone(), t.retain, t.props),
                None => match self.store.lock().expect("outbox lock").load(id) {
                    Ok(Some(r)) => {
                        let props = match book.metas.get(&id).map(|m| m.kind) {
                            Some(Kind::Evidence) => Properties::JPEG,
                            _ => Properties::JSON,
                        };
                        (r.topic, r.payload, false, props)
                    }
                    other => {
                        if let Err(error) = other {
                            tracing::error!(%error, "Outbox record could not be read.");
                        }
                        book.outbox.unsend_last();
                        book.outbox.evict(id);
                        book.metas.remove(&id);
                        continue;
                    }
                },
            };
            if client.try_publish(topic, payload, retain, props).is_err() {
                book.outbox.unsend_last();
                break;
            }
        }
    }

    async fn drain(
        self,
        client: Client,
        mut eventloop: EventLoop,
        mut book: Book,
        mut connected: bool,
        deadline: Duration,
    ) {
        book.add_transient(
            self.topics.status(),
            offline_payload(&self.device_id),
            true,
            Properties::JSON,
        );
        let mut backoff =
            crate::base::Backoff::new(Duration::from_millis(200), Duration::from_secs(1));
        let flushed = tokio::time::timeout(deadline, async {
            while book.outbox.depth() > 0 {
                if connected {
                    self.pump(&client, &mut book);
                }
                match eventloop.poll().await {
                    Ok(ev) => connected = self.on_event(ev, &mut book, &mut backoff, connected),
                    Err(_) => {
                        connected = false;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        })
        .await;
        if flushed.is_err() {
            tracing::warn!(
                undelivered = book.outbox.depth(),
                "Shutdown deadline reached; undelivered records stay in the outbox for the next start."
            );
        }
        self.flush_acked(&mut book, true);
        book.connected = false;
        self.update_stats(&book);
        client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
    }
}

fn log_connection_error(error: &str, failed: &str, next: &str, delay: Duration) {
    tracing::warn!(%error, broker = %failed, next = %next, retry_in_ms = delay.as_millis() as u64, "Broker connection failed; retrying.");
}
