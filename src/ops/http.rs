//! The local health and metrics endpoint: `GET /healthz` (200 when every camera streams and the broker is
//! connected, 503 otherwise, with a JSON body saying what is wrong) and `GET /metrics` (Prometheus text).
//! Meant for the gateway's own monitoring on loopback; it serves nothing else and reads no request body.

use crate::ingest::{CameraList, CameraState, CameraStats};
use crate::uplink::UplinkStats;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the endpoint reports on.
#[derive(Clone)]
pub struct Health {
    pub cameras: CameraList,
    pub uplink: Arc<UplinkStats>,
}

impl Health {
    /// `(healthy, JSON body)`.
    pub fn healthz(&self) -> (bool, String) {
        let cams = self.cameras.lock().expect("health lock");
        let cameras: Vec<_> = cams.iter().map(|(id, s)| serde_json::json!({ "id": &**id, "state": s.state(), "last_error": *s.last_error.lock().expect("stats lock") })).collect();
        let connected = self.uplink.connected.load(Relaxed);
        let healthy = connected
            && cams
                .iter()
                .all(|(_, s)| s.state() == CameraState::Streaming);
        let body = serde_json::json!({ "healthy": healthy, "cameras": cameras, "uplink": { "connected": connected, "outbox_depth": self.uplink.depth.load(Relaxed) } });
        (healthy, body.to_string())
    }

    /// Prometheus text exposition (version 0.0.4).
    pub fn metrics(&self) -> String {
        let mut m = String::new();
        let cams = self.cameras.lock().expect("health lock");
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
            let _ = writeln!(m, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in rows {
                let _ = writeln!(m, "{name}{labels} {value}");
            }
        };
        let per_camera = |f: &dyn Fn(&CameraStats) -> String| {
            cams.iter()
                .map(|(id, s)| (format!("{{camera=\"{id}\"}}"), f(s)))
                .collect::<Vec<_>>()
        };
        family(
            "streetsight_camera_up",
            "gauge",
            "1 while the camera streams.",
            per_camera(&|s| u8::from(s.state() == CameraState::Streaming).to_string()),
        );
        family(
            "streetsight_camera_frames_total",
            "counter",
            "Frames received from the camera after sampling.",
            per_camera(&|s| s.frames_in.load(Relaxed).to_string()),
        );
        family(
            "streetsight_camera_frames_analysed_total",
            "counter",
            "Frames the detector analysed.",
            per_camera(&|s| s.frames_analysed.load(Relaxed).to_string()),
        );
        family(
            "streetsight_camera_frames_dropped_total",
            "counter",
            "Frames dropped (oldest first) because analysis was busy.",
            per_camera(&|s| s.frames_dropped.load(Relaxed).to_string()),
        );
        family(
            "streetsight_camera_frames_skipped_total",
            "counter",
            "Frames not decoded or converted because the camera's previous frame was still being analysed.",
            per_camera(&|s| s.frames_skipped.load(Relaxed).to_string()),
        );
        family(
            "streetsight_camera_reconnects_total",
            "counter",
            "Times the camera's stream was lost.",
            per_camera(&|s| s.reconnects.load(Relaxed).to_string()),
        );
        let quantiles = cams
            .iter()
            .filter_map(|(id, s)| s.analysis_percentiles().map(|p| (id, p)))
            .flat_map(|(id, (p50, p95))| {
                [
                    (
                        format!("{{camera=\"{id}\",quantile=\"0.5\"}}"),
                        (p50 / 1000.0).to_string(),
                    ),
                    (
                        format!("{{camera=\"{id}\",quantile=\"0.95\"}}"),
                        (p95 / 1000.0).to_string(),
                    ),
                ]
            })
            .collect();
        family(
            "streetsight_analysis_seconds",
            "summary",
            "Detection time per frame over the last 256 frames.",
            quantiles,
        );
        let u = &self.uplink;
        family(
            "streetsight_uplink_connected",
            "gauge",
            "1 while connected to the broker.",
            vec![(
                String::new(),
                u8::from(u.connected.load(Relaxed)).to_string(),
            )],
        );
        family(
            "streetsight_outbox_records",
            "gauge",
            "Records waiting in the outbox.",
            vec![(String::new(), u.depth.load(Relaxed).to_string())],
        );
        family(
            "streetsight_outbox_delivered_total",
            "counter",
            "Records acknowledged by the broker.",
            vec![(String::new(), u.delivered.load(Relaxed).to_string())],
        );
        let latency = u
            .event_latency_ms
            .quantiles([0.5, 0.99])
            .map_or_else(Vec::new, |q| {
                [0.5, 0.99]
                    .iter()
                    .zip(q)
                    .map(|(p, ms)| (format!("{{quantile=\"{p}\"}}"), (ms / 1000.0).to_string()))
                    .collect()
            });
        family(
            "streetsight_event_latency_seconds",
            "summary",
            "From an event's frame leaving the decoder to the broker's PUBACK, over the last 256 events.",
            latency,
        );
        family(
            "streetsight_events_delivered_total",
            "counter",
            "Incident events acknowledged by the broker.",
            vec![(String::new(), u.delivered_events.load(Relaxed).to_string())],
        );
        family(
            "streetsight_outbox_dropped_total",
            "counter",
            "Records the outbox bounds dropped.",
            vec![
                (
                    "{kind=\"event\"}".into(),
                    u.dropped_events.load(Relaxed).to_string(),
                ),
                (
                    "{kind=\"evidence\"}".into(),
                    u.dropped_evidence.load(Relaxed).to_string(),
                ),
            ],
        );
        family(
            "streetsight_process_resident_memory_bytes",
            "gauge",
            "Resident set size.",
            vec![(
                String::new(),
                super::process_rss_bytes().unwrap_or(0).to_string(),
            )],
        );
        family(
            "streetsight_process_cpu_seconds_total",
            "counter",
            "CPU time used by the process.",
            vec![(
                String::new(),
                super::process_cpu_seconds().unwrap_or(0.0).to_string(),
            )],
        );
        m
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
