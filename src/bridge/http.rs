//! The bridge's HTTP listener: the evidence pictures at their signed URLs, `/healthz` and `/metrics`.

use super::Bridge;
use super::evidence::Refusal;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

#[derive(serde::Deserialize)]
struct Signed {
    exp: u64,
    sig: String,
}

async fn picture(
    State(b): State<Arc<Bridge>>,
    Path(file): Path<String>,
    Query(q): Query<Signed>,
) -> Response {
    match b.evidence.open(&file, q.exp, &q.sig) {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "private, max-age=300"),
            ],
            bytes,
        )
            .into_response(),
        Err(Refusal::Forged) => {
            (StatusCode::FORBIDDEN, "not a URL this bridge signed\n").into_response()
        }
        Err(Refusal::Expired) => (
            StatusCode::GONE,
            "this evidence URL has expired; ask the bridge for a new one\n",
        )
            .into_response(),
        Err(Refusal::NotFound) => (StatusCode::NOT_FOUND, "no such picture\n").into_response(),
    }
}

async fn counts(b: &Bridge) -> Option<super::Counts> {
    let probe = b.db_on(&b.http_db, "metrics", |db| {
        Box::pin(async move { db.counts().await })
    });
    tokio::time::timeout(std::time::Duration::from_secs(5), probe)
        .await
        .ok()
        .flatten()
}

async fn metrics(State(b): State<Arc<Bridge>>) -> Response {
    let Some(c) = counts(&b).await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the database does not answer\n",
        )
            .into_response();
    };
    let text = format!(
        "# HELP streetsight_bridge_events Events kept (each once, by event id).\n# TYPE streetsight_bridge_events gauge\nstreetsight_bridge_events {}\n\
         # HELP streetsight_bridge_cases_pending Cases waiting to be filed.\n# TYPE streetsight_bridge_cases_pending gauge\nstreetsight_bridge_cases_pending {}\n\
         # HELP streetsight_bridge_cases_filed Cases the work-order system took.\n# TYPE streetsight_bridge_cases_filed gauge\nstreetsight_bridge_cases_filed {}\n\
         # HELP streetsight_bridge_dead_letters Cases the work-order system refused.\n# TYPE streetsight_bridge_dead_letters gauge\nstreetsight_bridge_dead_letters {}\n\
         # HELP streetsight_bridge_taken_total Messages this replica took from the broker.\n# TYPE streetsight_bridge_taken_total counter\n\
         streetsight_bridge_taken_total{{kind=\"event\"}} {}\nstreetsight_bridge_taken_total{{kind=\"evidence\"}} {}\n\
         # HELP streetsight_bridge_cases Cases by where they are in the case loop.\n# TYPE streetsight_bridge_cases gauge\n\
         streetsight_bridge_cases{{state=\"verifying\"}} {}\nstreetsight_bridge_cases{{state=\"closed\"}} {}\n\
         streetsight_bridge_cases{{state=\"returned\"}} {}\nstreetsight_bridge_cases{{state=\"manual\"}} {}\n\
         streetsight_bridge_cases{{state=\"cancelled\"}} {}\n",
        c.events,
        c.pending,
        c.filed,
        c.dead_letters,
        b.taken[0].load(std::sync::atomic::Ordering::Relaxed),
        b.taken[1].load(std::sync::atomic::Ordering::Relaxed),
        c.verifying,
        c.closed,
        c.returned,
        c.manual,
        c.cancelled,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn healthz(State(b): State<Arc<Bridge>>) -> Response {
    match counts(&b).await {
        Some(c) => {
            let reading = b.connected.load(std::sync::atomic::Ordering::Acquire);
            axum::Json(serde_json::json!({ "ok": true, "reading": reading, "counts": c }))
                .into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "ok": false, "error": "the database does not answer" })),
        )
            .into_response(),
    }
}

/// The work-order system's webhook: case `case_id` was disposed (处置), re-check it. Signed like the
/// bridge's own calls (`X-Timestamp`, `X-Signature: hmac-sha256=` over `{timestamp}.{body}` with the shared
/// secret, at most 5 minutes off). `202` once the re-check is under way (also for a repeated call), `404`
/// for an unknown case, `409` for one that is closed or withdrawn, `401` for a bad signature.
async fn disposed(
    State(b): State<Arc<Bridge>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let ts = header("x-timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let fresh = ts.parse::<u64>().is_ok_and(|t| t.abs_diff(now) <= 300);
    let mut signed = ts.as_bytes().to_vec();
    signed.push(b'.');
    signed.extend_from_slice(&body);
    let valid = header("x-signature")
        .strip_prefix("hmac-sha256=")
        .is_some_and(|sig| super::evidence::verify(&b.settings.workorder_secret, &signed, sig));
    let answer = |status: StatusCode, v: serde_json::Value| (status, axum::Json(v)).into_response();
    if !(fresh && valid) {
        return answer(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({ "error": "bad or stale signature" }),
        );
    }
    let Some(case_id) = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["case_id"].as_str().map(str::to_string))
        .filter(|c| !c.is_empty() && c.len() <= 128)
    else {
        return answer(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "error": "the body must be {\"case_id\": \"…\"}" }),
        );
    };
    let id = case_id.clone();
    let marked = b.db_on(&b.http_db, "webhook", move |db| {
        let id = id.clone();
        Box::pin(async move { db.disposed(&id).await })
    });
    match tokio::time::timeout(std::time::Duration::from_secs(10), marked).await {
        Ok(Some(Some(true))) => {
            tracing::info!(case = %case_id, "Case disposed; re-checking it.");
            answer(
                StatusCode::ACCEPTED,
                serde_json::json!({ "case_id": case_id, "state": "verifying" }),
            )
        }
        Ok(Some(Some(false))) => answer(
            StatusCode::CONFLICT,
            serde_json::json!({ "error": "the case is closed or withdrawn" }),
        ),
        Ok(Some(None)) => answer(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": "no case with that id" }),
        ),
        _ => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "error": "the database does not answer; call again" }),
        ),
    }
}

/// Serve until the bridge shuts down.
pub(super) async fn serve(b: Arc<Bridge>, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let stop = b.shutdown.clone();
    let app = axum::Router::new()
        .route("/evidence/{file}", get(picture))
        .route("/metrics", get(metrics))
        .route("/webhook/disposed", axum::routing::post(disposed))
        .route("/healthz", get(healthz))
        .with_state(b);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.wait().await })
        .await?;
    Ok(())
}
