//! The local health and metrics endpoint: `GET /healthz` (200 when every camera streams and the broker is
//! connected, 503 otherwise, with a JSON body saying what is wrong) and `GET /metrics` (Prometheus text).
//! Meant for the gateway's own monitoring on loopback; it serves nothing else and reads no request body.

use crate::ingest::{CameraList, CameraState};
use crate::uplink::{TelemetrySource, UplinkStats};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the endpoint reports on.
#[derive(Clone)]
pub struct Health {
    pub cameras: CameraList,
    pub uplink: Arc<UplinkStats>,
    /// What `/metrics` exports (the same reading as the `telemetry` message).
    pub telemetry: Arc<TelemetrySource>,
}

impl Health {
    /// `(healthy, JSON body)`.
    pub fn healthz(&self) -> (bool, String) {
        #[derive(serde::Serialize)]
        struct Camera {
            id: String,
            state: CameraState,
            last_error: Option<String>,
        }
        #[derive(serde::Serialize)]
        struct Link {
            connected: bool,
            outbox_depth: u64,
        }
        #[derive(serde::Serialize)]
        struct Body {
            healthy: bool,
            cameras: Vec<Camera>,
            uplink: Link,
        }
        let cams = self.cameras.lock().expect("health lock");
        let connected = self.uplink.connected.load(Relaxed);
        let healthy = connected
            && cams
                .iter()
                .all(|(_, s)| s.state() == CameraState::Streaming);
        let body = Body {
            healthy,
            cameras: cams
                .iter()
                .map(|(id, s)| Camera {
                    id: id.to_string(),
                    state: s.state(),
                    last_error: s.last_error.lock().expect("stats lock").clone(),
                })
                .collect(),
            uplink: Link {
                connected,
                outbox_depth: self.uplink.depth.load(Relaxed),
            },
        };
        (
            healthy,
            serde_json::to_string(&body).expect("health serialises"),
        )
    }

    /// Prometheus text exposition (version 0.0.4) of one telemetry reading.
    pub fn metrics(&self) -> String {
        super::metrics::exposition(&self.telemetry.gather())
    }
}

/// Serve until `shutdown`. Binding errors are returned; a bad request only gets a 4xx.
pub async fn serve(
    addr: std::net::SocketAddr,
    health: Health,
    shutdown: crate::base::Shutdown,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "Health and metrics endpoint listening.");
    loop {
        let (mut socket, _) = tokio::select! {
            r = listener.accept() => r?,
            _ = shutdown.wait() => return Ok(()),
        };
        let health = health.clone();
        tokio::spawn(async move {
            // A request may arrive in several segments: read until the end of the headers (or 2 KiB).
            let mut buf = Vec::with_capacity(512);
            let read_head = async {
                let mut chunk = [0u8; 512];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 2048 {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            };
            if tokio::time::timeout(std::time::Duration::from_secs(5), read_head)
                .await
                .is_err()
            {
                return;
            }
            let request = String::from_utf8_lossy(&buf);
            let path = request
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("GET "))
                .and_then(|l| l.split_whitespace().next());
            let (status, kind, body) = match path {
                Some("/healthz") => {
                    let (ok, body) = health.healthz();
                    (
                        if ok {
                            "200 OK"
                        } else {
                            "503 Service Unavailable"
                        },
                        "application/json",
                        body,
                    )
                }
                Some("/metrics") => ("200 OK", "text/plain; version=0.0.4", health.metrics()),
                Some(_) => (
                    "404 Not Found",
                    "text/plain",
                    "try /healthz or /metrics\n".to_string(),
                ),
                None => (
                    "405 Method Not Allowed",
                    "text/plain",
                    "only GET\n".to_string(),
                ),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}
