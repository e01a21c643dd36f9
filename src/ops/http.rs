//! The local health and metrics endpoint: `GET /healthz` (200 when every camera streams, the broker is
//! connected and the state directory's disk has its reserve; 503 otherwise, with a JSON body saying what
//! is wrong) and `GET /metrics` (Prometheus text).
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
    /// Scene-change zones and whether each has its reference.
    pub scenes: crate::incident::SceneBoard,
    /// The state directory's disk.
    pub disk: Option<Arc<crate::base::DiskGuard>>,
}

impl Health {
    /// `(healthy, JSON body)`.
    pub fn healthz(&self) -> (bool, String) {
        #[derive(serde::Serialize)]
        struct Camera {
            id: String,
            state: CameraState,
            last_error: Option<String>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            scene_zones: Vec<crate::incident::SceneZoneState>,
            health: crate::health::HealthReport,
        }
        #[derive(serde::Serialize)]
        struct Link {
            connected: bool,
            outbox_depth: u64,
        }
        #[derive(serde::Serialize)]
        struct Disk {
            free_bytes: Option<u64>,
            reserve_bytes: u64,
            short: bool,
            evidence_dropped: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            problem: Option<String>,
        }
        #[derive(serde::Serialize)]
        struct Body {
            healthy: bool,
            cameras: Vec<Camera>,
            uplink: Link,
            #[serde(skip_serializing_if = "Option::is_none")]
            disk: Option<Disk>,
        }
        let scenes = self.scenes.lock().expect("scene board lock").clone();
        let cams = self.cameras.lock().expect("health lock");
        let connected = self.uplink.connected.load(Relaxed);
        let disk = self.disk.as_ref().map(|d| {
            let free = d.refresh();
            let short = d.is_short();
            Disk {
                free_bytes: free,
                reserve_bytes: d.reserve(),
                short,
                evidence_dropped: d.evidence_dropped(),
                problem: short.then(|| {
                    format!(
                        "{} MiB free, under the {} MiB kept for events: evidence images are being dropped; free space in the state directory or lower storage.evidence_max_mb / outbox_max_mb",
                        free.unwrap_or(0) / (1024 * 1024),
                        d.reserve() / (1024 * 1024)
                    )
                }),
            }
        });
        let healthy = connected
            && !disk.as_ref().is_some_and(|d| d.short)
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
                    scene_zones: scenes.get(&**id).cloned().unwrap_or_default(),
                    health: self
                        .telemetry
                        .camera_health(id, s.state() == CameraState::Streaming),
                })
                .collect(),
            uplink: Link {
                connected,
                outbox_depth: self.uplink.depth.load(Relaxed),
            },
            disk,
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

/// Connections served at once; more are closed at once (a monitoring scrape needs one or two).
pub const MAX_CONNECTIONS: usize = 16;

/// Serve until `shutdown`. Binding errors are returned; after that nothing stops the endpoint but shutdown:
/// a failed accept (out of file descriptors, say) is logged and retried, a bad request only gets a 4xx,
/// and past [`MAX_CONNECTIONS`] a new connection is closed without an answer.
pub async fn serve(
    addr: std::net::SocketAddr,
    health: Health,
    shutdown: crate::base::Shutdown,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "Health and metrics endpoint listening.");
    serve_on(listener, health, shutdown).await;
    Ok(())
}

/// [`serve`] on a bound listener.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    health: Health,
    shutdown: crate::base::Shutdown,
) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut last_warning: Option<std::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait() => return,
        };
        let mut socket = match accepted {
            Ok((socket, _)) => socket,
            Err(error) => {
                if last_warning.is_none_or(|t| t.elapsed() > std::time::Duration::from_secs(60)) {
                    tracing::warn!(%error, "Health endpoint could not accept a connection; retrying.");
                    last_warning = Some(std::time::Instant::now());
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(socket);
            continue;
        };
        let health = health.clone();
        tokio::spawn(async move {
            let _slot = slot;
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn health() -> Health {
        let uplink = Arc::new(UplinkStats::default());
        Health {
            cameras: CameraList::default(),
            telemetry: Arc::new(TelemetrySource::new(uplink.clone())),
            uplink,
            scenes: Default::default(),
            disk: None,
        }
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn idle_connections_past_the_cap_are_closed_and_the_endpoint_keeps_answering() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = crate::base::Shutdown::new();
        let server = tokio::spawn(serve_on(listener, health(), shutdown.clone()));
        assert!(
            get(addr, "/healthz").await.starts_with("HTTP/1.1 503"),
            "no camera, no broker"
        );
        // Every slot held by a client that never sends its request.
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(std::time::Duration::from_secs(2), extra.read(&mut buf))
            .await
            .expect("a connection past the cap is closed at once, not left hanging")
            .unwrap_or(0);
        assert_eq!(n, 0);
        drop(idle);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let metrics = get(addr, "/metrics").await;
        assert!(
            metrics.contains("streetsight_uplink_connected 0"),
            "{metrics}"
        );
        shutdown.trigger();
        server.await.unwrap();
    }
}
