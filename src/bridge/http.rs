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
         streetsight_bridge_taken_total{{kind=\"event\"}} {}\nstreetsight_bridge_taken_total{{kind=\"evidence\"}} {}\n",
        c.events,
        c.pending,
        c.filed,
        c.dead_letters,
        b.taken[0].load(std::sync::atomic::Ordering::Relaxed),
        b.taken[1].load(std::sync::atomic::Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn healthz(State(b): State<Arc<Bridge>>) -> Response {
    match counts(&b).await {
        Some(c) => axum::Json(serde_json::json!({ "ok": true, "counts": c })).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "ok": false, "error": "the database does not answer" })),
        )
            .into_response(),
    }
}

/// Serve until the bridge shuts down.
pub(super) async fn serve(b: Arc<Bridge>, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let stop = b.shutdown.clone();
    let app = axum::Router::new()
        .route("/evidence/{file}", get(picture))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(b);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.wait().await })
        .await?;
    Ok(())
}
