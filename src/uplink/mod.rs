//! Uplink: incidents and their evidence to the city's MQTT broker with QoS 1, a retained `status` with an
//! `offline` last will, TLS with client certificates. A message counts as delivered only on PUBACK.

mod outbox;

pub use outbox::{Outbox, Record};

use crate::config::{Config, UplinkConfig};
use crate::incident::Publication;
use crate::ops::Shutdown;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS,
    TlsConfiguration, Transport,
};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
}

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
    /// `relative` is an event's evidence reference, e.g. `evidence/{event_id}`.
    pub fn under(&self, relative: &str) -> String {
        format!("{}/{relative}", self.base)
    }
}

/// Produces the current `status` payload (cameras, models) when it is published.
pub type StatusSource = Arc<dyn Fn(&str) -> serde_json::Value + Send + Sync>;

/// Delivery counters readable while the uplink runs.
#[derive(Debug, Default)]
pub struct UplinkStats {
    pub delivered: AtomicU64,
    pub depth: AtomicU64,
    pub connects: AtomicU64,
}

/// MQTT connection options from the configuration (TLS files are read here).
pub fn mqtt_options(
    cfg: &UplinkConfig,
    device_id: &str,
    base_dir: &Path,
    topics: &Topics,
) -> Result<MqttOptions, UplinkError> {
    let raw = cfg.broker.get_ref();
    let url = url::Url::parse(raw).map_err(|e| UplinkError::Url(raw.clone(), e.to_string()))?;
    let host = url
        .host_str()
        .ok_or_else(|| UplinkError::Url(raw.clone(), "no host".into()))?
        .trim_matches(['[', ']'])
        .to_string();
    let tls = url.scheme() == "mqtts";
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    let client_id = cfg
        .client_id
        .clone()
        .unwrap_or_else(|| format!("streetsight-{device_id}"));
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_keep_alive(Duration::from_secs(cfg.keep_alive_s.max(5)));
    opts.set_clean_session(true);
    opts.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
    opts.set_last_will(LastWill::new(
        topics.status(),
        offline_payload(device_id),
        QoS::AtLeastOnce,
        true,
    ));
    let read = |p: &Path| {
        let path = if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        };
        std::fs::read(&path).map_err(|source| UplinkError::Read { path, source })
    };
    if let Some(user) = &cfg.username {
        let password = match &cfg.password_file {
            Some(p) => String::from_utf8_lossy(&read(p)?).trim_end().to_string(),
            None => String::new(),
        };
        opts.set_credentials(user.clone(), password);
    }
    if tls {
        let t = cfg
            .tls
            .as_ref()
            .ok_or_else(|| UplinkError::Url(raw.clone(), "mqtts:// needs [uplink.tls]".into()))?
            .get_ref();
        let client_auth = match (&t.cert, &t.key) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            _ => None,
        };
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca: read(&t.ca)?,
            alpn: None,
            client_auth,
        }));
    }
    Ok(opts)
}

fn offline_payload(device_id: &str) -> Vec<u8> {
    serde_json::json!({ "state": "offline", "device": device_id })
        .to_string()
        .into_bytes()
}

/// The uplink task's inputs.
pub struct Uplink {
    pub options: MqttOptions,
    pub topics: Topics,
    pub device_id: String,
    pub status: StatusSource,
    pub stats: Arc<UplinkStats>,
}

/// Status id in the outbox pairing: status messages are not incidents and never queue behind them.
const WINDOW: usize = 64;

impl Uplink {
    pub fn from_config(
        config: &Config,
        base_dir: &Path,
        status: StatusSource,
    ) -> Result<Self, UplinkError> {
        let device_id = config.device.id.get_ref().clone();
        let topics = Topics::new(&config.uplink.topic_prefix, &device_id);
        let options = mqtt_options(&config.uplink, &device_id, base_dir, &topics)?;
        Ok(Uplink {
            options,
            topics,
            device_id,
            status,
            stats: Arc::default(),
        })
    }

    /// Deliver publications until shutdown, then flush for at most `drain` and say `offline`.
    pub async fn run(
        self,
        mut rx: mpsc::Receiver<Publication>,
        shutdown: Shutdown,
        drain: Duration,
    ) {
        let (client, mut eventloop) = AsyncClient::new(self.options.clone(), WINDOW * 2 + 8);
        let mut outbox = Outbox::new();
        let mut connected = false;
        let mut backoff =
            crate::ingest::Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        let status_every = Duration::from_secs(30);
        let mut status_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + status_every, status_every);
        let mut input_open = true;
        let stop = shutdown.clone();
        let stopping = stop.wait();
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                _ = &mut stopping => break,
                msg = rx.recv(), if input_open => match msg {
                    Some(p) => self.enqueue(&mut outbox, p),
                    None => input_open = false,
                },
                _ = status_tick.tick(), if connected => {
                    outbox.append(self.topics.status(), (self.status)("online").to_string().into_bytes(), true);
                }
                ev = eventloop.poll() => match ev {
                    Ok(ev) => connected = self.on_event(ev, &mut outbox, &mut backoff, connected),
                    Err(error) => {
                        connected = false;
                        let delay = backoff.next_delay(&mut rand::rng());
                        log_connection_error(&error, delay);
                        tokio::select! { _ = tokio::time::sleep(delay) => {}, _ = &mut stopping => break }
                    }
                },
            }
            if connected {
                pump(&client, &mut outbox);
            }
            self.stats
                .depth
                .store(outbox.depth() as u64, Ordering::Relaxed);
            self.stats
                .delivered
                .store(outbox.delivered(), Ordering::Relaxed);
        }
        self.drain(client, eventloop, rx, outbox, connected, drain)
            .await;
    }

    fn enqueue(&self, outbox: &mut Outbox, p: Publication) {
        for e in &p.event.evidence {
            outbox.append(self.topics.under(&e.topic), p.evidence.jpeg.clone(), false);
        }
        match serde_json::to_vec(&p.event) {
            Ok(json) => {
                outbox.append(self.topics.events(), json, false);
            }
            Err(error) => tracing::error!(%error, "Event could not be serialised."),
        }
    }

    fn on_event(
        &self,
        ev: Event,
        outbox: &mut Outbox,
        backoff: &mut crate::ingest::Backoff,
        connected: bool,
    ) -> bool {
        match ev {
            Event::Incoming(Packet::ConnAck(_)) => {
                backoff.reset();
                self.stats.connects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(backlog = outbox.depth(), "Connected to the broker.");
                outbox.on_connected();
                // Status goes first on a new connection; it is an ordinary outbox record at the tail otherwise.
                let status = (self.status)("online").to_string().into_bytes();
                outbox.append(self.topics.status(), status, true);
                true
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(r) = outbox.on_puback(ack.pkid) {
                    tracing::debug!(topic = %r.topic, "Delivered.");
                }
                connected
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                outbox.on_outgoing_publish(pkid);
                connected
            }
            _ => connected,
        }
    }

    async fn drain(
        self,
        client: AsyncClient,
        mut eventloop: EventLoop,
        mut rx: mpsc::Receiver<Publication>,
        mut outbox: Outbox,
        mut connected: bool,
        deadline: Duration,
    ) {
        while let Ok(p) = rx.try_recv() {
            self.enqueue(&mut outbox, p);
        }
        let offline = offline_payload(&self.device_id);
        outbox.append(self.topics.status(), offline, true);
        let mut backoff =
            crate::ingest::Backoff::new(Duration::from_millis(200), Duration::from_secs(1));
        let flushed = tokio::time::timeout(deadline, async {
            while outbox.depth() > 0 {
                if connected {
                    pump(&client, &mut outbox);
                }
                match eventloop.poll().await {
                    Ok(ev) => connected = self.on_event(ev, &mut outbox, &mut backoff, connected),
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
                undelivered = outbox.depth(),
                "Shutdown deadline reached with messages undelivered."
            );
        }
        self.stats
            .delivered
            .store(outbox.delivered(), Ordering::Relaxed);
        let _ = client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
    }
}

/// Hand waiting records to the client, keeping the window.
fn pump(client: &AsyncClient, outbox: &mut Outbox) {
    while let Some(r) = outbox.next_to_send(WINDOW) {
        if client
            .try_publish(
                r.topic.clone(),
                QoS::AtLeastOnce,
                r.retain,
                r.payload.clone(),
            )
            .is_err()
        {
            outbox.unsend_last();
            break;
        }
    }
}

fn log_connection_error(error: &ConnectionError, delay: Duration) {
    tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "Broker connection failed; retrying.");
}
