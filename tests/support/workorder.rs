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
}

pub struct Workorder {
    pub url: String,
    pub board: Arc<Mutex<Board>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

type Shared = (Arc<Mutex<Board>>, Vec<u8>);

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
    b.calls += 1;
    if b.down {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "error": "maintenance" })),
        );
    }
    let ts = header("x-timestamp");
    let mut signed = ts.clone().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(&body);
    let fresh = ts.parse::<u64>().is_ok_and(|t| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        now.abs_diff(t) <= 300
    });
    let sig = header("x-signature");
    let valid = sig
        .strip_prefix("hmac-sha256=")
        .is_some_and(|s| streetsight::bridge::evidence::verify(&secret, &signed, s));
    if !(fresh && valid) {
        b.forged += 1;
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": "bad signature" })),
        );
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
    (StatusCode::CREATED, axum::Json(json!({ "case_id": id })))
}

impl Workorder {
    pub async fn start(secret: &[u8]) -> Workorder {
        let board = Arc::new(Mutex::new(Board::default()));
        let app = axum::Router::new()
            .route("/cases", post(create))
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
}

impl Drop for Workorder {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
