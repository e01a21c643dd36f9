//! The city side: `streetsight bridge` takes the poles' events and evidence from the broker and files one
//! case per incident in the city's work-order system (数字城管), by the city's own mapping file.
//!
//! Several replicas may run against one PostgreSQL database and one evidence directory: the broker shares
//! the messages out among them (an MQTT 5 shared subscription), the database makes every event count once
//! and every incident one case, and one replica at a time (holding a gate row) makes the calls to the
//! work-order system, oldest incident first.
//!
//! ```text
//! broker ─$share─▶ intake ─▶ PostgreSQL (events by id · evidence arrived · cases · dead letters)
//!                     └─▶ evidence store (by SHA-256) ◀─ signed, expiring URLs ◀─ work-order system
//! filing: oldest due case ─▶ mapping (fields, Chinese description) ─▶ POST, idempotency key, HMAC
//! ```

pub mod config;
pub mod evidence;
mod http;
mod intake;
mod jetstream;
pub mod mapping;
mod store;
mod workorder;

pub use config::{BridgeSettings, load as load_settings};
pub use store::{Counts, Db};

use crate::base::{Backoff, Shutdown};
use evidence::EvidenceStore;
use mapping::Mapping;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use workorder::Workorder;

type DbFuture<'a, T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + Send + 'a>>;

/// One bridge replica.
pub struct Bridge {
    settings: BridgeSettings,
    mapping: Mapping,
    evidence: EvidenceStore,
    workorder: Workorder,
    db_password: Option<String>,
    shutdown: Shutdown,
    /// The intake's connection (the filing holds its own while a call is under way).
    intake_db: Mutex<Option<Db>>,
    filing_db: Mutex<Option<Db>>,
    http_db: Mutex<Option<Db>>,
    /// Messages this replica took from the broker: events, evidence pictures.
    taken: [std::sync::atomic::AtomicU64; 2],
    /// The broker connection, once the intake made it (re-checks are published with it).
    link: std::sync::OnceLock<Link>,
    /// The intake is connected: re-checks are only queued then (the client's queue is polled by the intake
    /// alone, and a queue filled during an outage would stall its own subscribe).
    connected: std::sync::atomic::AtomicBool,
    verify_db: Mutex<Option<Db>>,
}

impl Bridge {
    pub fn new(settings: BridgeSettings, shutdown: Shutdown) -> anyhow::Result<Self> {
        let mapping = Mapping::load(&settings.mapping)?;
        let db_password = match &settings.database_password_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?
                    .trim_end()
                    .to_string(),
            ),
            None => None,
        };
        Ok(Self {
            evidence: EvidenceStore::new(
                &settings.evidence_dir,
                &settings.url_secret,
                &settings.public_url,
                settings.url_ttl,
            ),
            workorder: Workorder::new(
                &settings.workorder_url,
                &settings.workorder_secret,
                settings.timeout,
            ),
            mapping,
            db_password,
            shutdown,
            intake_db: Mutex::new(None),
            filing_db: Mutex::new(None),
            http_db: Mutex::new(None),
            taken: Default::default(),
            link: std::sync::OnceLock::new(),
            connected: std::sync::atomic::AtomicBool::new(false),
            verify_db: Mutex::new(None),
            settings,
        })
    }

    /// The connection in `slot`, (re)connected if it is missing or closed (still `None` if that failed).
    async fn connected<'s>(
        &self,
        slot: &'s Mutex<Option<Db>>,
    ) -> tokio::sync::MutexGuard<'s, Option<Db>> {
        let mut guard = slot.lock().await;
        if guard.as_ref().is_none_or(Db::is_closed) {
            match Db::connect(&self.settings.database, self.db_password.as_deref()).await {
                Ok(db) => *guard = Some(db),
                Err(error) => tracing::warn!(
                    error = format!("{error:#}"),
                    "PostgreSQL unreachable; trying again."
                ),
            }
        }
        guard
    }

    /// Run `op` on this connection, connecting (again) as needed, until it succeeds; `None` on shutdown.
    async fn db_on<T>(
        &self,
        slot: &Mutex<Option<Db>>,
        what: &str,
        op: impl for<'a> FnMut(&'a mut Db) -> DbFuture<'a, T>,
    ) -> Option<T> {
        self.db_retrying(slot, what, false, op).await
    }

    /// As `db_on`; with `drop_bad_data`, data the database can never take (a `22…` data exception, such
    /// as a NUL character in an event's text) also ends it with `None`, logged: a message that would never
    /// commit must not hold up the ones behind it.
    async fn db_retrying<T>(
        &self,
        slot: &Mutex<Option<Db>>,
        what: &str,
        drop_bad_data: bool,
        mut op: impl for<'a> FnMut(&'a mut Db) -> DbFuture<'a, T>,
    ) -> Option<T> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            if self.shutdown.is_triggered() {
                return None;
            }
            let mut guard = self.connected(slot).await;
            if let Some(db) = guard.as_mut() {
                match op(db).await {
                    Ok(v) => return Some(v),
                    Err(error) if drop_bad_data && store::bad_data(&error) => {
                        tracing::error!(
                            error = format!("{error:#}"),
                            what,
                            "The database refuses this message's data; dropped."
                        );
                        return None;
                    }
                    Err(error) => tracing::warn!(
                        error = format!("{error:#}"),
                        what,
                        "PostgreSQL failed; trying again."
                    ),
                }
            }
            drop(guard);
            let wait = backoff.next_delay(&mut rand::rng());
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.shutdown.wait() => return None,
            }
        }
    }

    /// A message's work on the intake's connection (`None`: shutdown, or data the database cannot take).
    async fn with_db<T>(
        &self,
        what: &str,
        op: impl for<'a> FnMut(&'a mut Db) -> DbFuture<'a, T>,
    ) -> Option<T> {
        self.db_retrying(&self.intake_db, what, true, op).await
    }

    /// The signed URLs of the pictures `shas` (SHA-256 strings) that have arrived.
    fn evidence_urls(&self, shas: &serde_json::Value) -> Vec<String> {
        shas.as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|s| s.as_str())
                    .filter(|sha| self.evidence.has(sha))
                    .map(|sha| self.evidence.url(sha))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The call a due case needs: its filing, or the report of its re-check.
    async fn call(&self, due: store::DueCase, retry_in: Duration) -> store::Filed {
        match &due.report {
            None => {
                let shas: Vec<serde_json::Value> = due.event["evidence"]
                    .as_array()
                    .map(|l| l.iter().map(|e| e["sha256"].clone()).collect())
                    .unwrap_or_default();
                let urls = self.evidence_urls(&serde_json::Value::Array(shas));
                let body = self.mapping.render(&due.event, &urls);
                self.workorder
                    .create(&due.incident_id, body, retry_in)
                    .await
            }
            Some((case_id, found)) => {
                let urls = self.evidence_urls(&found["evidence"]);
                let body = self.mapping.report(case_id, found, &urls);
                let key = format!(
                    "streetsight-{}-check-{}",
                    due.incident_id,
                    &crate::base::sha256_hex(found.to_string().as_bytes())[..16]
                );
                self.workorder.report(case_id, key, body, retry_in).await
            }
        }
    }

    /// File the oldest due case, if any; `None` on shutdown.
    async fn file_one(&self, retry_in: Duration) -> Option<bool> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            if self.shutdown.is_triggered() {
                return None;
            }
            let mut guard = self.connected(&self.filing_db).await;
            if let Some(db) = guard.as_mut() {
                let filed = db
                    .file_next(self.settings.evidence_wait, |due| self.call(due, retry_in))
                    .await;
                match filed {
                    Ok(v) => return Some(v),
                    Err(error) => tracing::warn!(
                        error = format!("{error:#}"),
                        "PostgreSQL failed while filing; trying again."
                    ),
                }
            }
            drop(guard);
            let wait = backoff.next_delay(&mut rand::rng());
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.shutdown.wait() => return None,
            }
        }
    }

    /// File due cases one at a time, oldest first, until shutdown. While the work-order system fails,
    /// every replica waits the same jittered, growing delay (kept in the database) before the next try.
    async fn filing(&self) {
        loop {
            let state = self
                .db_on(&self.filing_db, "filing", |db| {
                    Box::pin(async move { Ok((db.gate().await?, db.failures().await?)) })
                })
                .await;
            let Some((gate, failures)) = state else {
                return;
            };
            let pause = match gate {
                Some(wait) => wait.min(Duration::from_secs(1)),
                None => {
                    let retry_in = Backoff::new(Duration::from_secs(1), self.settings.retry_max)
                        .after(failures)
                        .next_delay(&mut rand::rng());
                    let filed = self.file_one(retry_in).await;
                    match filed {
                        None => return,
                        Some(true) => Duration::ZERO,
                        Some(false) => Duration::from_millis(250),
                    }
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.shutdown.wait() => return,
            }
        }
    }
}

impl Bridge {
    /// The case loop's middle: every disposed case's pole is asked to re-check it (`verify`), and a
    /// re-check not answered within `verify_timeout` is reported as such.
    async fn verifier(&self) {
        loop {
            let timeout = self.settings.verify_timeout;
            let due = self
                .db_on(&self.verify_db, "verify", |db| {
                    Box::pin(async move {
                        let late = db.unanswered(None, timeout).await?;
                        if late > 0 {
                            tracing::warn!(cases = late, "Poles did not answer the re-check in time; the cases are left for a person.");
                        }
                        db.to_verify().await
                    })
                })
                .await;
            let Some(due) = due else { return };
            for case in due {
                let Some(link) = self.link.get() else {
                    break;
                };
                if !self.connected.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
                let request_id = format!(
                    "bridge-verify-{}-{}",
                    case.seq,
                    &uuid::Uuid::now_v7().simple().to_string()[20..]
                );
                let command = serde_json::json!({
                    "request_id": request_id,
                    "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "nonce": uuid::Uuid::now_v7().to_string(),
                    "incident_id": case.incident_id,
                });
                let topic = format!("{}/{}/cmd/verify", self.settings.topic_prefix, case.device);
                let payload = serde_json::to_vec(&command).expect("JSON");
                // Claim it first: with several replicas, only one asks the pole.
                let seq = case.seq;
                let claim = |rid: Option<String>| {
                    self.db_on(&self.verify_db, "verify", move |db| {
                        let rid = rid.clone();
                        Box::pin(async move { db.claim_verify(seq, rid.as_deref()).await })
                    })
                };
                if claim(Some(request_id.clone())).await != Some(true) {
                    continue;
                }
                if let Err(error) = link.send(topic, payload).await {
                    tracing::warn!(%error, "The re-check could not be sent; trying again.");
                    claim(None).await;
                    break;
                }
                tracing::info!(incident = %case.incident_id, device = %case.device, request = %request_id, "Re-check asked of the pole.");
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                () = self.shutdown.wait() => return,
            }
        }
    }
}

impl Bridge {
    /// Every hour: delete the pictures older than `keep_days` and forget them in the database (every
    /// replica may do it; deleting twice is harmless).
    async fn janitor(&self) {
        loop {
            let (store, keep) = (self.evidence.clone(), self.settings.keep);
            match tokio::task::spawn_blocking(move || store.sweep(keep)).await {
                Ok(Ok(gone)) if !gone.is_empty() => {
                    tracing::info!(
                        pictures = gone.len(),
                        "Evidence past its retention deleted."
                    );
                    self.db_on(&self.http_db, "sweep", |db| {
                        let gone = gone.clone();
                        Box::pin(async move { db.forget_evidence(&gone).await })
                    })
                    .await;
                }
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "Evidence sweep failed; trying again in an hour.")
                }
                Err(_) => {}
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(3600)) => {}
                () = self.shutdown.wait() => return,
            }
        }
    }
}

/// The connection commands to the poles go out on.
enum Link {
    Mqtt(rumqttc::v5::AsyncClient),
    /// A NATS core publish on the topic's subject reaches the pole through the cluster's MQTT gateway.
    Nats(async_nats::Client),
}

impl Link {
    /// Hand a command to the connection without waiting for the broker (the reply says what came of it).
    async fn send(&self, topic: String, payload: Vec<u8>) -> anyhow::Result<()> {
        match self {
            Link::Mqtt(c) => {
                let qos = rumqttc::v5::mqttbytes::QoS::AtLeastOnce;
                Ok(c.try_publish(topic, qos, false, payload)?)
            }
            Link::Nats(c) => Ok(c
                .publish(jetstream::subject(&topic), payload.into())
                .await?),
        }
    }
}

/// Run one replica until `shutdown`: the intake, the filing and the HTTP listener.
pub async fn run(settings: BridgeSettings, shutdown: Shutdown) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
    let bridge = Arc::new(Bridge::new(settings, shutdown)?);
    tracing::info!(listen = %bridge.settings.listen, group = %bridge.settings.group, "Bridge started.");
    let (intake, (), (), (), served) = tokio::join!(
        bridge.intake(),
        bridge.filing(),
        bridge.verifier(),
        bridge.janitor(),
        http::serve(bridge.clone(), listener)
    );
    intake?;
    served?;
    tracing::info!("Bridge stopped.");
    Ok(())
}
