//! Operations beside the pipeline: logging, the `/healthz` and `/metrics` endpoint (`http.rs`; the
//! telemetry reading in Prometheus form in `metrics.rs`), systemd readiness and watchdog (`systemd.rs`).

pub mod http;
mod logging;
pub mod metrics;
pub mod systemd;

pub use logging::{LogFormat, init_logging};
