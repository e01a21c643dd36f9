//! The daemon: wires the stages together along the data's way and runs them until shutdown.
//!
//! ```text
//! camera threads ──FrameQueue (drop oldest)──▶ model worker (detect → rules → incident)
//!     ──SQLite outbox (committed before the worker goes on)──▶ uplink task ──MQTT──▶ broker
//! ```
//!
//! One worker thread per model owns its ONNX Runtime session, so cameras that use the same model share it.
//! A model that fails to load stops only the cameras that use it.

use crate::config::{CameraConfig, LoadedConfig};
use crate::detect::{Detector, Manifest};
use crate::incident::{Analyser, ModelInfo};
use crate::ingest::{
    CameraHandle, CameraList, CameraSource, CameraStats, FrameQueue, spawn_camera,
};
use crate::ops::Shutdown;
use crate::uplink::{OutboxWriter, StatusSource, Uplink, UplinkStats};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the status message says about models.
#[derive(Debug, Clone, serde::Serialize)]
struct ModelStatus {
    name: String,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Install process-wide pieces: the TLS crypto provider and GStreamer.
pub fn init_process() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::ingest::init_gstreamer()?;
    Ok(())
}

/// Run the daemon until `shutdown`; on shutdown, stop cameras and workers, then give the uplink up to
/// `drain` to deliver what is queued (the rest stays in the durable outbox).
pub async fn run(
    loaded: LoadedConfig,
    shutdown: Shutdown,
    drain: Duration,
) -> anyhow::Result<Arc<UplinkStats>> {
    init_process()?;
    let config = &loaded.config;
    let camera_stats: CameraList = Arc::default();
    let models: Arc<Mutex<Vec<ModelStatus>>> = Arc::default();
    let status = status_source(
        config.device.id.get_ref().clone(),
        camera_stats.clone(),
        models.clone(),
    );
    // The uplink and its durable outbox come first: the backlog is read before producers start.
    let (mut uplink, writer) = Uplink::from_config(config, &loaded.base_dir, status)?;
    uplink.telemetry = Some(telemetry_source(
        camera_stats.clone(),
        config.storage.state_dir.clone(),
    ));
    let mut cameras: Vec<CameraHandle> = Vec::new();
    let mut workers = Vec::new();

    for (name, model_cfg) in &config.models {
        let users: Vec<&CameraConfig> = config
            .cameras
            .iter()
            .map(|c| c.get_ref())
            .filter(|c| c.model.get_ref() == name)
            .collect();
        let threads = model_cfg.get_ref().threads;
        let loaded_model = Manifest::load(&loaded.resolve(&model_cfg.get_ref().path))
            .map_err(|e| e.to_string())
            .and_then(|m| Detector::load(m, threads).map_err(|e| e.to_string()));
        let detector = match loaded_model {
            Ok(d) => d,
            Err(error) => {
                tracing::error!(model = %name, %error, cameras = users.len(), "Model rejected; cameras that use it stay off.");
                models.lock().expect("status lock").push(ModelStatus {
                    name: name.clone(),
                    state: "rejected",
                    version: None,
                    sha256: None,
                    error: Some(error),
                });
                continue;
            }
        };
        tracing::info!(model = %name, version = %detector.manifest.version, sha256 = %detector.sha256, "Model loaded.");
        models.lock().expect("status lock").push(ModelStatus {
            name: name.clone(),
            state: "active",
            version: Some(detector.manifest.version.clone()),
            sha256: Some(detector.sha256.clone()),
            error: None,
        });
        if users.is_empty() {
            continue;
        }
        let info = ModelInfo {
            name: detector.manifest.name.clone(),
            version: detector.manifest.version.clone(),
            sha256: detector.sha256.clone(),
            labels: detector.manifest.labels.clone(),
        };
        let queue = FrameQueue::new(users.len() * 2);
        let mut analysers = HashMap::new();
        for cam in &users {
            let source = match CameraSource::from_config(cam, &loaded.base_dir) {
                Ok(s) => s,
                Err(error) => {
                    tracing::error!(camera = %cam.id, %error, "Camera cannot start.");
                    continue;
                }
            };
            let handle = spawn_camera(source, queue.clone(), shutdown.clone());
            analysers.insert(
                cam.id.clone(),
                (
                    Analyser::new(config, cam, info.clone()),
                    handle.stats.clone(),
                ),
            );
            camera_stats
                .lock()
                .expect("status lock")
                .push((handle.id.clone(), handle.stats.clone()));
            cameras.push(handle);
        }
        let worker = ModelWorker {
            detector,
            analysers,
            queue,
            outbox: writer.clone(),
            shutdown: shutdown.clone(),
        };
        workers.push(
            std::thread::Builder::new()
                .name(format!("model-{name}"))
                .spawn(move || worker.run())?,
        );
    }
    drop(writer);

    let stats = uplink.stats.clone();
    if let Some(addr) = &config.ops.http {
        let addr: std::net::SocketAddr = addr.get_ref().parse()?;
        let health = crate::ops::http::Health {
            cameras: camera_stats.clone(),
            uplink: stats.clone(),
        };
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(error) = crate::ops::http::serve(addr, health, stop).await {
                tracing::error!(%addr, %error, "Health and metrics endpoint could not start.");
            }
        });
    }
    let uplink_task = tokio::spawn(uplink.run(shutdown.clone(), drain));
    let grace = Duration::from_secs(*config.ops.watchdog_grace_s.get_ref());
    crate::ops::systemd::spawn(camera_stats.clone(), stats.clone(), grace, shutdown.clone());
    shutdown.wait().await;
    tracing::info!("Shutting down.");
    tokio::task::spawn_blocking(move || {
        for c in cameras {
            c.join();
        }
        for w in workers {
            let _ = w.join();
        }
    })
    .await?;
    uplink_task.await?;
    Ok(stats)
}

/// The retained status: cameras and their state, models and theirs.
fn status_source(
    device_id: String,
    cameras: CameraList,
    models: Arc<Mutex<Vec<ModelStatus>>>,
) -> StatusSource {
    Arc::new(move |state: &str| {
        let cams: Vec<_> = cameras.lock().expect("status lock").iter().map(|(id, s)| serde_json::json!({ "id": &**id, "state": s.state(), "frames_in": s.frames_in.load(std::sync::atomic::Ordering::Relaxed) })).collect();
        serde_json::json!({ "state": state, "device": device_id, "version": env!("CARGO_PKG_VERSION"), "cameras": cams, "models": *models.lock().expect("status lock") })
    })
}

/// The daemon's part of the `telemetry` message: per camera counters and analysis times, process CPU and
/// memory, free space where state lives.
fn telemetry_source(cameras: CameraList, state_dir: std::path::PathBuf) -> StatusSource {
    let last = Mutex::new((
        Instant::now(),
        crate::ops::process_cpu_seconds().unwrap_or(0.0),
    ));
    Arc::new(move |_: &str| {
        use std::sync::atomic::Ordering::Relaxed;
        let cams: Vec<_> = cameras
            .lock()
            .expect("status lock")
            .iter()
            .map(|(id, s)| {
                let p = s.analysis_percentiles();
                serde_json::json!({
                    "id": &**id, "state": s.state(),
                    "frames_in": s.frames_in.load(Relaxed), "frames_analysed": s.frames_analysed.load(Relaxed),
                    "frames_dropped": s.frames_dropped.load(Relaxed), "reconnects": s.reconnects.load(Relaxed),
                    "analysis_ms_p50": p.map(|p| p.0), "analysis_ms_p95": p.map(|p| p.1),
                })
            })
            .collect();
        let cpu_now = crate::ops::process_cpu_seconds().unwrap_or(0.0);
        let mut last = last.lock().expect("telemetry lock");
        let wall = last.0.elapsed().as_secs_f64();
        let cpu_percent = if wall > 0.0 {
            100.0 * (cpu_now - last.1) / wall
        } else {
            0.0
        };
        *last = (Instant::now(), cpu_now);
        serde_json::json!({
            "cameras": cams,
            "process": { "cpu_percent": cpu_percent, "rss_bytes": crate::ops::process_rss_bytes() },
            "disk_free_bytes": crate::ops::disk_free_bytes(&state_dir),
        })
    })
}

/// One model's worker: detect on frames from its cameras, run each camera's rules, emit events.
struct ModelWorker {
    detector: Detector,
    /// Each camera's rules and its counters.
    analysers: HashMap<String, (Analyser, Arc<CameraStats>)>,
    queue: FrameQueue,
    outbox: OutboxWriter,
    shutdown: Shutdown,
}

impl ModelWorker {
    fn run(mut self) {
        let rx = self.queue.receiver().clone();
        while !self.shutdown.is_triggered() {
            let Ok(frame) = rx.recv_timeout(Duration::from_millis(200)) else {
                continue;
            };
            let started = Instant::now();
            let detections = match self.detector.detect(&frame.view()) {
                Ok(d) => d,
                Err(error) => {
                    tracing::warn!(camera = %frame.camera, %error, "Inference failed on a frame.");
                    continue;
                }
            };
            let ms = started.elapsed().as_secs_f32() * 1000.0;
            tracing::debug!(camera = %frame.camera, seq = frame.seq, objects = detections.len(), ms, "Frame analysed.");
            let Some((analyser, stats)) = self.analysers.get_mut(&*frame.camera) else {
                continue;
            };
            stats.record_analysis(ms);
            for publication in analyser.analyse(&frame, &detections) {
                let e = &publication.event;
                // Committed to disk before this returns: from here on the event survives a power cut.
                // While the flash is slow, frames queue up upstream and the oldest are dropped there.
                match self.outbox.append(&publication) {
                    Ok(()) => {
                        tracing::info!(camera = %e.camera.id, zone = %e.zone.id, phase = ?e.phase, incident = %e.incident_id, event = %e.event_id, "Incident event stored.")
                    }
                    Err(error) => {
                        tracing::error!(camera = %e.camera.id, event = %e.event_id, %error, "Incident event could not be stored; it is lost.")
                    }
                }
            }
        }
    }
}
