//! Operations beside the pipeline: logging, the `/healthz` and `/metrics` endpoint (`http.rs`; the
//! telemetry reading in Prometheus form in `metrics.rs`), systemd readiness and watchdog (`systemd.rs`).

pub mod http;
mod logging;
pub mod metrics;
pub mod systemd;

pub use logging::{LogFormat, init_logging};

/// Trigger `shutdown` on SIGTERM (the service manager's stop) or SIGINT (Ctrl-C).
pub async fn stop_on_signal(shutdown: crate::base::Shutdown) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    shutdown.trigger();
}
