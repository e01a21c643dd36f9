//! The bridge's state in PostgreSQL, shared by every replica: events by id (a redelivered event is a
//! no-op), evidence that arrived, one case row per incident with its filing state, and the dead letters.
//! Filing holds the one gate row while it files the oldest due case, so two replicas never file one case
//! and cases go out in the order their incidents opened.

use anyhow::Context;
use serde_json::Value;
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS bridge_events (
    event_id    text PRIMARY KEY,
    incident_id text NOT NULL,
    device      text NOT NULL,
    phase       text NOT NULL,
    body        jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS bridge_events_incident ON bridge_events (incident_id);
CREATE TABLE IF NOT EXISTS bridge_evidence (
    sha256      text PRIMARY KEY,
    bytes       bigint NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS bridge_cases (
    seq          bigserial PRIMARY KEY,
    incident_id  text NOT NULL UNIQUE,
    device       text NOT NULL,
    category     text NOT NULL,
    opened_event text NOT NULL,
    state        text NOT NULL,
    case_id      text,
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    filed_at     timestamptz
);
CREATE INDEX IF NOT EXISTS bridge_cases_pending ON bridge_cases (seq) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS bridge_dead_letters (
    incident_id text PRIMARY KEY,
    status      integer,
    response    text NOT NULL,
    body        jsonb NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS bridge_gate (
    id              integer PRIMARY KEY,
    next_attempt_at timestamptz NOT NULL,
    failures        integer NOT NULL
);
INSERT INTO bridge_gate VALUES (1, now(), 0) ON CONFLICT DO NOTHING;
"#;

/// An arbitrary, fixed key: replicas starting together create the schema one at a time.
const SCHEMA_LOCK: i64 = 0x5354_5245_4554;

/// One connection to the bridge's database.
pub struct Db {
    client: Client,
}

/// A case due for filing: its incident's `opened` event.
#[derive(Debug, Clone)]
pub struct DueCase {
    pub seq: i64,
    pub incident_id: String,
    pub event: Value,
}

/// How a filing attempt ended.
pub enum Filed {
    Created {
        case_id: String,
    },
    /// The work-order system refused the case for good (a 4xx): it goes to the dead letters.
    Refused {
        status: u16,
        response: String,
        body: Value,
    },
    /// Down, timed out or a 5xx: tried again after `retry_in`.
    Failed {
        error: String,
        retry_in: Duration,
    },
}

/// What the tables hold (for `/metrics` and the tests).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Counts {
    pub events: i64,
    pub pending: i64,
    pub filed: i64,
    pub dead_letters: i64,
}

impl Db {
    /// Connect (the password, if any, from `password`) and create the tables if they are missing.
    pub async fn connect(url: &str, password: Option<&str>) -> anyhow::Result<Self> {
        let mut config: tokio_postgres::Config = url.parse().context("database.url")?;
        if let Some(p) = password {
            config.password(p);
        }
        config.connect_timeout(Duration::from_secs(10));
        let (client, connection) = config
            .connect(NoTls)
            .await
            .context("connecting to PostgreSQL")?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "PostgreSQL connection ended.");
            }
        });
        let mut db = Self { client };
        db.migrate().await?;
        Ok(db)
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    async fn migrate(&mut self) -> anyhow::Result<()> {
        let tx = self.client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        tx.batch_execute(SCHEMA)
            .await
            .context("creating the bridge's tables")?;
        tx.commit().await?;
        Ok(())
    }

    /// Take one event from pole `device`: kept once by its id; an `opened` event starts its incident's
    /// case (once per incident — a reopened incident is the same case). `false` when it was a duplicate.
    pub async fn intake(&mut self, device: &str, event: &Value) -> anyhow::Result<bool> {
        let field = |k: &str| event[k].as_str().unwrap_or_default().to_string();
        let (event_id, incident_id, phase) =
            (field("event_id"), field("incident_id"), field("phase"));
        let tx = self.client.transaction().await?;
        let new = tx
            .execute(
                "INSERT INTO bridge_events (event_id, incident_id, device, phase, body) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (event_id) DO NOTHING",
                &[&event_id, &incident_id, &device, &phase, event],
            )
            .await?
            == 1;
        if new && phase == "opened" {
            tx.execute(
                "INSERT INTO bridge_cases (incident_id, device, category, opened_event, state)
                 VALUES ($1, $2, $3, $4, 'pending') ON CONFLICT (incident_id) DO NOTHING",
                &[&incident_id, &device, &field("category"), &event_id],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(new)
    }

    /// Evidence picture `sha256` (`bytes` long) is in the evidence store.
    pub async fn evidence_arrived(&mut self, sha256: &str, bytes: i64) -> anyhow::Result<()> {
        self.client
            .execute(
                "INSERT INTO bridge_evidence (sha256, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&sha256, &bytes],
            )
            .await?;
        Ok(())
    }

    /// Whether picture `sha256` has arrived.
    pub async fn has_evidence(&self, sha256: &str) -> anyhow::Result<bool> {
        Ok(self
            .client
            .query_opt(
                "SELECT 1 FROM bridge_evidence WHERE sha256 = $1",
                &[&sha256],
            )
            .await?
            .is_some())
    }

    /// While the work-order system is failing, how long until the next attempt (`None`: now).
    pub async fn gate(&self) -> anyhow::Result<Option<Duration>> {
        let row = self
            .client
            .query_one(
                "SELECT GREATEST(EXTRACT(EPOCH FROM next_attempt_at - now()), 0)::float8 FROM bridge_gate WHERE id = 1",
                &[],
            )
            .await?;
        let wait: f64 = row.get(0);
        Ok((wait > 0.0).then(|| Duration::from_secs_f64(wait)))
    }

    /// File the oldest case that is due — its evidence has arrived, or it waited `evidence_wait` — with
    /// `file`, holding the gate so no other replica files meanwhile; `false` when none is due.
    pub async fn file_next<F, Fut>(
        &mut self,
        evidence_wait: Duration,
        file: F,
    ) -> anyhow::Result<bool>
    where
        F: FnOnce(DueCase) -> Fut,
        Fut: std::future::Future<Output = Filed>,
    {
        let tx = self.client.transaction().await?;
        // One filing at a time across the replicas: cases reach the work-order system in the order their
        // incidents opened (a replica that dies mid-call releases the lock with its connection).
        tx.execute("SELECT 1 FROM bridge_gate WHERE id = 1 FOR UPDATE", &[])
            .await?;
        let wait = evidence_wait.as_secs_f64();
        let row = tx
            .query_opt(
                "SELECT c.seq, c.incident_id, e.body FROM bridge_cases c
                   JOIN bridge_events e ON e.event_id = c.opened_event
                  WHERE c.state = 'pending'
                    AND (c.created_at <= now() - make_interval(secs => $1)
                         OR NOT EXISTS (
                            SELECT 1 FROM jsonb_array_elements(COALESCE(e.body->'evidence', '[]'::jsonb)) x
                             WHERE NOT EXISTS (SELECT 1 FROM bridge_evidence v WHERE v.sha256 = x->>'sha256')))
                  ORDER BY c.seq LIMIT 1",
                &[&wait],
            )
            .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let due = DueCase {
            seq: row.get(0),
            incident_id: row.get(1),
            event: row.get(2),
        };
        let seq = due.seq;
        let incident = due.incident_id.clone();
        match file(due).await {
            Filed::Created { case_id } => {
                tx.execute(
                    "UPDATE bridge_cases SET state = 'filed', case_id = $2, attempts = attempts + 1, filed_at = now(),
                            last_error = NULL WHERE seq = $1",
                    &[&seq, &case_id],
                )
                .await?;
                tx.execute(
                    "UPDATE bridge_gate SET failures = 0, next_attempt_at = now() WHERE id = 1",
                    &[],
                )
                .await?;
                tracing::info!(incident = %incident, case = %case_id, "Case filed.");
            }
            Filed::Refused {
                status,
                response,
                body,
            } => {
                tx.execute(
                    "UPDATE bridge_cases SET state = 'dead', attempts = attempts + 1, last_error = $2 WHERE seq = $1",
                    &[&seq, &format!("refused with {status}")],
                )
                .await?;
                tx.execute(
                    "INSERT INTO bridge_dead_letters (incident_id, status, response, body) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (incident_id) DO UPDATE SET status = $2, response = $3, body = $4, at = now()",
                    &[&incident, &(status as i32), &response, &body],
                )
                .await?;
                tracing::error!(incident = %incident, status, response = %response, "The work-order system refused the case; kept as a dead letter.");
            }
            Filed::Failed { error, retry_in } => {
                tx.execute(
                    "UPDATE bridge_cases SET attempts = attempts + 1, last_error = $2 WHERE seq = $1",
                    &[&seq, &error],
                )
                .await?;
                tx.execute(
                    "UPDATE bridge_gate SET failures = failures + 1,
                            next_attempt_at = now() + make_interval(secs => $1) WHERE id = 1",
                    &[&retry_in.as_secs_f64()],
                )
                .await?;
                tracing::warn!(incident = %incident, %error, retry_in_s = retry_in.as_secs_f64(), "The work-order system did not take the case; trying again.");
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// How many filing attempts have failed in a row.
    pub async fn failures(&self) -> anyhow::Result<u32> {
        let row = self
            .client
            .query_one("SELECT failures FROM bridge_gate WHERE id = 1", &[])
            .await?;
        Ok(row.get::<_, i32>(0).max(0) as u32)
    }

    pub async fn counts(&self) -> anyhow::Result<Counts> {
        let row = self
            .client
            .query_one(
                "SELECT (SELECT count(*) FROM bridge_events),
                        (SELECT count(*) FROM bridge_cases WHERE state = 'pending'),
                        (SELECT count(*) FROM bridge_cases WHERE state = 'filed'),
                        (SELECT count(*) FROM bridge_dead_letters)",
                &[],
            )
            .await?;
        Ok(Counts {
            events: row.get(0),
            pending: row.get(1),
            filed: row.get(2),
            dead_letters: row.get(3),
        })
    }
}
