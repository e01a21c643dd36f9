//! The work-order system's create-case call (the reference API, docs/bridge.md):
//! `POST {workorder.url}` with the mapped JSON body and
//! - `Idempotency-Key: streetsight-{incident_id}` — the same incident asked twice is one case;
//! - `X-Timestamp: {unix s}` and `X-Signature: hmac-sha256={hex}` over `{timestamp}.{body}` with the shared
//!   secret, so the system can tell the bridge from anyone else and a captured call cannot be replayed later.
//!
//! `POST {workorder.url}/{case_id}/verification` reports what a re-check found, the same way.
//!
//! It answers `200`/`201` with `{"case_id": "…"}`. A `4xx` other than 408 and 429 is a refusal (the case
//! goes to the dead letters); anything else — no answer, a timeout, a `5xx` — is tried again.

use super::evidence::sign;
use super::store::Filed;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The client of one work-order system.
#[derive(Clone)]
pub struct Workorder {
    url: String,
    secret: Vec<u8>,
    agent: ureq::Agent,
}

impl Workorder {
    pub fn new(url: &str, secret: &[u8], timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Self {
            url: url.to_string(),
            secret: secret.to_vec(),
            agent,
        }
    }

    /// Ask for a case for `incident_id` with `body`; `retry_in` is the wait before another try should it fail.
    pub async fn create(&self, incident_id: &str, body: Value, retry_in: Duration) -> Filed {
        let key = format!("streetsight-{incident_id}");
        self.call(self.url.clone(), key, body, retry_in, true).await
    }

    /// Report what the re-check of case `case_id` found (`POST {url}/{case_id}/verification`); `key` names
    /// the re-check, so a repeated report is one.
    pub async fn report(
        &self,
        case_id: &str,
        key: String,
        body: Value,
        retry_in: Duration,
    ) -> Filed {
        let url = format!(
            "{}/{}/verification",
            self.url.trim_end_matches('/'),
            url_segment(case_id)
        );
        self.call(url, key, body, retry_in, false).await
    }

    async fn call(
        &self,
        url: String,
        key: String,
        body: Value,
        retry_in: Duration,
        wants_id: bool,
    ) -> Filed {
        let this = self.clone();
        let joined = tokio::task::spawn_blocking(move || this.post(&url, &key, &body)).await;
        let failed = |error: String| Filed::Failed { error, retry_in };
        match joined {
            Ok(Ok((status, text, body))) => match status {
                200..=299 if !wants_id => Filed::Created {
                    case_id: String::new(),
                },
                200 | 201 => match serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["case_id"].as_str().map(str::to_string))
                {
                    Some(case_id) if !case_id.is_empty() => Filed::Created { case_id },
                    _ => failed(format!(
                        "answered {status} without a case_id: {}",
                        clip(&text)
                    )),
                },
                408 | 429 => failed(format!("answered {status}: {}", clip(&text))),
                400..=499 => Filed::Refused {
                    status,
                    response: clip(&text),
                    body,
                },
                _ => failed(format!("answered {status}: {}", clip(&text))),
            },
            Ok(Err(e)) => failed(e),
            Err(e) => failed(format!("the call did not finish: {e}")),
        }
    }

    fn post(&self, url: &str, key: &str, body: &Value) -> Result<(u16, String, Value), String> {
        let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            .to_string();
        let mut signed = ts.clone().into_bytes();
        signed.push(b'.');
        signed.extend_from_slice(&bytes);
        let response = self
            .agent
            .post(url)
            .header("Content-Type", "application/json; charset=utf-8")
            .header("Idempotency-Key", key)
            .header("X-Timestamp", &ts)
            .header(
                "X-Signature",
                format!("hmac-sha256={}", sign(&self.secret, &signed)),
            )
            .send(&bytes[..])
            .map_err(|e| format!("{}: {e}", crate::base::redact_url(url)))?;
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .with_config()
            .limit(1024 * 1024)
            .read_to_string()
            .unwrap_or_default();
        Ok((status, text, body.clone()))
    }
}

/// `id` made safe as one path segment (percent-encoded).
fn url_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// At most 500 characters of an answer, for logs and the dead letters.
fn clip(text: &str) -> String {
    text.chars().take(500).collect()
}
