//! The reference work-order system (docs/bridge.md): the one test double of the bridge's tests, because
//! each city's system is its own. A real HTTP server on loopback that checks what a real one must check —
//! the HMAC signature and its timestamp, the idempotency key (the same key is the same case) — and can be
//! switched down (503) or set to refuse a type code (422).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Board {
    /// Cases in the order they were created: (case id, idempotency key, body).
    pub cases: Vec<(String, String, Value)>,
    /// Every call, answered or not.
    pub calls: usize,
    /// Answer 503 to everything.
    pub down: bool,
    /// Type codes answered 422.
    pub refuse: Vec<String>,
    /// Calls whose signature did not hold.
    pub forged: usize,
    /// Re-check reports, in order: (case id, idempotency key, body).
    pub reports: Vec<(String, String, Value)>,
    /// When each case was created, in the order of `cases`.
    pub created_at: Vec<std::time::SystemTime>,
}

pub struct Workorder {
    pub url: String,
    pub board: Arc<Mutex<Board>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

type Shared = (Arc<Mutex<Board>>, Vec<u8>);

/// The headers the bridge's calls (and the webhook) carry: `X-Timestamp` and the HMAC over `{ts}.{body}`.
pub fn signature(secret: &[u8], body: &[u8]) -> (String, String) {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut signed = ts.clone().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    let sig = streetsight::bridge::evidence::sign(secret, &signed);
    (ts, format!("hmac-sha256={sig}"))
}

/// The call is signed with `secret` and at most 5 minutes old.
fn signed(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let ts = header("x-timestamp");
    let mut signed = ts.as_bytes().to_vec();
    signed.push(b'.');
    signed.extend_from_slice(body);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    ts.parse::<u64>().is_ok_and(|t| now.abs_diff(t) <= 300)
        && header("x-signature")
            .strip_prefix("hmac-sha256=")
            .is_some_and(|s| streetsight::bridge::evidence::verify(secret, &signed, s))
}

type Answer = (StatusCode, axum::Json<Value>);

/// Count the call; the answer when the system is down or the call is not signed.
fn admit(b: &mut Board, secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Option<Answer> {
    b.calls += 1;
    if b.down {
        let down = json!({ "error": "maintenance" });
        return Some((StatusCode::SERVICE_UNAVAILABLE, axum::Json(down)));
    }
    if !signed(secret, headers, body) {
        b.forged += 1;
        let forged = json!({ "error": "bad signature" });
        return Some((StatusCode::UNAUTHORIZED, axum::Json(forged)));
    }
    None
}

async fn create(
    State((board, secret)): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut b = board.lock().unwrap();
    if let Some(refused) = admit(&mut b, &secret, &headers, &body) {
        return refused;
    }
    let key = header("idempotency-key");
    if key.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "Idempotency-Key missing" })),
        );
    }
    if let Some((id, _, _)) = b.cases.iter().find(|(_, k, _)| *k == key) {
        return (StatusCode::OK, axum::Json(json!({ "case_id": id })));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "not JSON" })),
        );
    };
    if let Some(code) = body["type_code"].as_str()
        && b.refuse.iter().any(|r| r == code)
    {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({ "error": format!("unknown type code {code}") })),
        );
    }
    let id = format!("WO-{:06}", b.cases.len() + 1);
    b.cases.push((id.clone(), key, body));
    b.created_at.push(std::time::SystemTime::now());
    (StatusCode::CREATED, axum::Json(json!({ "case_id": id })))
}

/// `POST /cases/{id}/verification`: what the re-check found; the same key twice is one report.
async fn verification(
    State((board, secret)): State<Shared>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let mut b = board.lock().unwrap();
    if let Some(refused) = admit(&mut b, &secret, &headers, &body) {
        return refused;
    }
    if !b.cases.iter().any(|(c, _, _)| *c == id) {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": "no such case" })),
        );
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if !b.reports.iter().any(|(_, k, _)| *k == key) {
        let Ok(body) = serde_json::from_slice::<Value>(&body) else {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": "not JSON" })),
            );
        };
        b.reports.push((id.clone(), key, body));
    }
    (StatusCode::OK, axum::Json(json!({ "case_id": id })))
}

impl Workorder {
    pub async fn start(secret: &[u8]) -> Workorder {
        let board = Arc::new(Mutex::new(Board::default()));
        let app = axum::Router::new()
            .route("/cases", post(create))
            .route("/cases/{id}/verification", post(verification))
            .with_state((board.clone(), secret.to_vec()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/cases", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Workorder {
            url,
            board,
            stop: Some(stop),
        }
    }

    pub fn board(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board.lock().unwrap()
    }

    /// As the city's system does when a case was disposed: call the bridge's webhook, signed.
    pub fn dispose(&self, bridge_port: u16, case_id: &str, secret: &[u8]) -> u16 {
        let body = serde_json::to_vec(&json!({ "case_id": case_id })).unwrap();
        let (ts, sig) = signature(secret, &body);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        agent
            .post(format!("http://127.0.0.1:{bridge_port}/webhook/disposed"))
            .header("X-Timestamp", &ts)
            .header("X-Signature", &sig)
            .send(&body[..])
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }
}

impl Drop for Workorder {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
