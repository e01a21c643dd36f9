//! The bridge's state in PostgreSQL, shared by every replica: events by id (a redelivered event is a
//! no-op), evidence that arrived, one case row per incident with its filing state, and the dead letters.
//! Filing holds the one gate row while it files the oldest due case, so two replicas never file one case
//! and cases go out in the order their incidents opened.

use super::mapping::WhenResolved;
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
    filed_at     timestamptz,
    -- The pictures the next call waits for (up to evidence_wait_s from due_since).
    waiting_for  jsonb NOT NULL DEFAULT '[]',
    due_since    timestamptz NOT NULL DEFAULT now(),
    disposed_at  timestamptz,
    verify_request text,
    verify_sent_at timestamptz,
    -- What the re-check found, to report: {result, evidence, verified_at, error}.
    verification jsonb,
    closed_at    timestamptz
);
CREATE INDEX IF NOT EXISTS bridge_cases_due ON bridge_cases (seq) WHERE state IN ('pending', 'verified');
CREATE INDEX IF NOT EXISTS bridge_cases_case ON bridge_cases (case_id);
CREATE INDEX IF NOT EXISTS bridge_cases_request ON bridge_cases (verify_request);
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

/// `error` is PostgreSQL refusing the data itself (SQLSTATE class 22, a data exception): trying again
/// cannot help.
pub fn bad_data(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|e| e.downcast_ref::<tokio_postgres::Error>())
        .filter_map(tokio_postgres::Error::code)
        .any(|c| c.code().starts_with("22"))
}

mod recheck;

/// An arbitrary, fixed key: replicas starting together create the schema one at a time.
const SCHEMA_LOCK: i64 = 0x5354_5245_4554;

/// One connection to the bridge's database.
pub struct Db {
    client: Client,
}

/// A call due to the work-order system: a case to file (its incident's `opened` event), or a re-check's
/// result to report.
#[derive(Debug, Clone)]
pub struct DueCase {
    pub seq: i64,
    pub incident_id: String,
    pub event: Value,
    /// `Some` for a report: the case's id and what the re-check found.
    pub report: Option<(String, Value)>,
}

/// The pictures `event` names.
fn shas(event: &Value) -> Value {
    event["evidence"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|e| e["sha256"].as_str().map(Value::from))
                .collect()
        })
        .unwrap_or_else(|| Value::Array(Vec::new()))
}

/// A case the pole should re-check now.
#[derive(Debug, Clone)]
pub struct ToVerify {
    pub seq: i64,
    pub incident_id: String,
    pub device: String,
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
    /// Being re-checked: disposed, verify sent, or its result not yet reported.
    pub verifying: i64,
    pub closed: i64,
    pub returned: i64,
    /// Left for a person (the pole did not answer the re-check, or the system refused its report).
    pub manual: i64,
    /// Withdrawn: the incident ended on its own before dispatch (by the mapping's policy).
    pub cancelled: i64,
}

/// The city's policy for an incident that ended (`resolved`, an event) before its case was disposed.
async fn resolved_before_dispatch(
    tx: &tokio_postgres::Transaction<'_>,
    incident_id: &str,
    resolved: &Value,
    when_resolved: WhenResolved,
) -> anyhow::Result<()> {
    let field = |k: &str| resolved[k].as_str().unwrap_or_default().to_string();
    let result = match when_resolved {
        WhenResolved::Keep => return Ok(()),
        WhenResolved::Cancel => "cancelled",
        WhenResolved::Close => "cleared",
    };
    let found = serde_json::json!({
        "result": result,
        "resolved_by_itself": true,
        "reason": field("reason"),
        "evidence": shas(resolved),
        "verified_at": field("time"),
    });
    if when_resolved == WhenResolved::Cancel {
        tx.execute(
            "UPDATE bridge_cases SET state = 'cancelled' WHERE incident_id = $1 AND state = 'pending'",
            &[&incident_id],
        )
        .await?;
    }
    // Filed: the report is due now. Still pending (to close): it follows the filing.
    tx.execute(
        "UPDATE bridge_cases SET verification = $2,
                waiting_for = CASE WHEN state = 'filed' THEN $3 ELSE waiting_for END,
                due_since = CASE WHEN state = 'filed' THEN now() ELSE due_since END,
                state = CASE WHEN state = 'filed' THEN 'verified' ELSE state END
          WHERE incident_id = $1 AND state IN ('pending', 'filed')",
        &[&incident_id, &found, &shas(resolved)],
    )
    .await?;
    Ok(())
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
    pub async fn intake(
        &mut self,
        device: &str,
        event: &Value,
        when_resolved: WhenResolved,
    ) -> anyhow::Result<bool> {
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
            let started = tx
                .execute(
                    "INSERT INTO bridge_cases (incident_id, device, category, opened_event, state, waiting_for)
                     VALUES ($1, $2, $3, $4, 'pending', $5) ON CONFLICT (incident_id) DO NOTHING",
                    &[&incident_id, &device, &field("category"), &event_id, &shas(event)],
                )
                .await?
                == 1;
            // Replicas take a pole's events in parallel: its `resolved` may have been kept before this
            // `opened`. The case then starts as that event says.
            let ended = tx
                .query_opt(
                    "SELECT body FROM bridge_events WHERE incident_id = $1 AND phase = 'resolved'
                        AND body->>'time' > $2 ORDER BY body->>'time' DESC LIMIT 1",
                    &[&incident_id, &field("time")],
                )
                .await?;
            match (started, ended) {
                (true, Some(row)) => {
                    let resolved: Value = row.get(0);
                    resolved_before_dispatch(&tx, &incident_id, &resolved, when_resolved).await?;
                }
                (true, None) => {}
                // Back within its cooldown after its unfiled case was withdrawn: filed after all.
                (false, _) => {
                    tx.execute(
                        "UPDATE bridge_cases SET state = 'pending', verification = NULL, due_since = now()
                          WHERE incident_id = $1 AND state = 'cancelled' AND case_id IS NULL",
                        &[&incident_id],
                    )
                    .await?;
                }
            }
        }
        if new && phase == "resolved" {
            resolved_before_dispatch(&tx, &incident_id, event, when_resolved).await?;
        }
        if new && phase == "verified" {
            let found = serde_json::json!({
                "result": field("verification"),
                "evidence": shas(event),
                "verified_at": field("time"),
            });
            let n = tx
                .execute(
                    "UPDATE bridge_cases SET state = 'verified', verification = $2, waiting_for = $3, due_since = now()
                      WHERE verify_request = $1 AND state = 'verifying'",
                    &[&field("request_id"), &found, &shas(event)],
                )
                .await?;
            if n == 1 {
                tracing::info!(incident = %incident_id, result = %field("verification"), "The pole re-checked the case.");
            }
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

    /// The pictures `shas` were deleted from the evidence store (their time was up).
    pub async fn forget_evidence(&self, shas: &[String]) -> anyhow::Result<()> {
        self.client
            .execute(
                "DELETE FROM bridge_evidence WHERE sha256 = ANY($1)",
                &[&shas],
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
                "SELECT c.seq, c.incident_id, e.body, c.state, c.case_id, c.verification FROM bridge_cases c
                   JOIN bridge_events e ON e.event_id = c.opened_event
                  WHERE c.state IN ('pending', 'verified')
                    AND (c.due_since <= now() - make_interval(secs => $1)
                         OR NOT EXISTS (
                            SELECT 1 FROM jsonb_array_elements_text(c.waiting_for) x
                             WHERE NOT EXISTS (SELECT 1 FROM bridge_evidence v WHERE v.sha256 = x)))
                  ORDER BY c.seq LIMIT 1",
                &[&wait],
            )
            .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let state: String = row.get(3);
        let due = DueCase {
            seq: row.get(0),
            incident_id: row.get(1),
            event: row.get(2),
            report: (state == "verified").then(|| {
                (
                    row.get::<_, Option<String>>(4).unwrap_or_default(),
                    row.get::<_, Option<Value>>(5).unwrap_or_default(),
                )
            }),
        };
        let seq = due.seq;
        let incident = due.incident_id.clone();
        let reported = due
            .report
            .as_ref()
            .map(|(_, v)| v["result"].as_str().unwrap_or_default().to_string());
        match (file(due).await, reported) {
            (Filed::Created { .. }, Some(result)) => {
                let next = match result.as_str() {
                    "cleared" => "closed",
                    "still_present" => "returned",
                    "cancelled" => "cancelled",
                    _ => "manual",
                };
                tx.execute(
                    "UPDATE bridge_cases SET state = $2, attempts = attempts + 1, last_error = NULL,
                            closed_at = CASE WHEN $2 = 'closed' THEN now() END WHERE seq = $1",
                    &[&seq, &next],
                )
                .await?;
                tx.execute(
                    "UPDATE bridge_gate SET failures = 0, next_attempt_at = now() WHERE id = 1",
                    &[],
                )
                .await?;
                tracing::info!(incident = %incident, result = %result, state = next, "Re-check reported.");
            }
            (Filed::Created { case_id }, None) => {
                tx.execute(
                    "UPDATE bridge_cases SET case_id = $2, attempts = attempts + 1, filed_at = now(), last_error = NULL,
                            state = CASE WHEN verification IS NULL THEN 'filed' ELSE 'verified' END,
                            waiting_for = COALESCE(verification->'evidence', waiting_for), due_since = now()
                      WHERE seq = $1",
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
            (
                Filed::Refused {
                    status,
                    response,
                    body,
                },
                report,
            ) => {
                // A refused case is dead; a refused report leaves its (filed) case for a person.
                let (state, what) = match report {
                    None => ("dead", "refused"),
                    Some(_) => ("manual", "report refused"),
                };
                tx.execute(
                    "UPDATE bridge_cases SET state = $2, attempts = attempts + 1, last_error = $3 WHERE seq = $1",
                    &[&seq, &state, &format!("{what} with {status}")],
                )
                .await?;
                tx.execute(
                    "INSERT INTO bridge_dead_letters (incident_id, status, response, body) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (incident_id) DO UPDATE SET status = $2, response = $3, body = $4, at = now()",
                    &[&incident, &(status as i32), &response, &body],
                )
                .await?;
                tracing::error!(incident = %incident, status, response = %response, state, "The work-order system refused the call; kept as a dead letter.");
            }
            (Filed::Failed { error, retry_in }, _) => {
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
                        (SELECT count(*) FROM bridge_dead_letters),
                        (SELECT count(*) FROM bridge_cases WHERE state IN ('disposed', 'verifying', 'verified')),
                        (SELECT count(*) FROM bridge_cases WHERE state = 'closed'),
                        (SELECT count(*) FROM bridge_cases WHERE state = 'returned'),
                        (SELECT count(*) FROM bridge_cases WHERE state = 'manual'),
                        (SELECT count(*) FROM bridge_cases WHERE state = 'cancelled')",
                &[],
            )
            .await?;
        Ok(Counts {
            events: row.get(0),
            pending: row.get(1),
            filed: row.get(2),
            dead_letters: row.get(3),
            verifying: row.get(4),
            closed: row.get(5),
            returned: row.get(6),
            manual: row.get(7),
            cancelled: row.get(8),
        })
    }
}
