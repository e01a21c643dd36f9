//! The daemon: wires the stages together along the data's way and runs them until shutdown.
//!
//! ```text
//! camera threads ──FrameQueue (drop oldest)──▶ model worker (detect → analysis)
//!     ──evidence jobs (bounded, the worker waits)──▶ evidence thread (JPEGs, events)
//!     ──SQLite outbox (committed before the next job)──▶ uplink task ──MQTT──▶ broker
//! ```
//!
//! `workers` threads per model each own an ONNX Runtime session and a share of the model's cameras.
//! A model that fails to load stops only the cameras that use it.

mod cases;
mod examples;
mod reload;
mod shared;
mod sink;
mod worker;

use crate::base::Shutdown;
use crate::config::{CameraConfig, LoadedConfig};
use crate::control::{Control, ModelNews, ModelStatus, WorkerLink, write_audit};
use crate::detect::Detector;
use crate::incident::{Analyser, ModelInfo};
use crate::ingest::{CameraHandle, CameraList, FrameQueue, spawn_camera};
use crate::plan::installed::CONFIGURED;
use crate::plan::{ModelStore, load_model};
use crate::uplink::{StatusSource, Uplink, UplinkStats};
pub use shared::Handles;
use shared::Shared;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Install process-wide pieces: the TLS crypto provider and GStreamer.
pub fn init_process() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::ingest::init_gstreamer()?;
    Ok(())
}

/// Run the daemon until `shutdown`; on shutdown, stop cameras and workers, then give the uplink up to
/// `drain` to deliver what is queued (the rest stays in the durable outbox). A `reload` command or SIGHUP
/// re-reads the configuration and, if it is valid, restarts cameras and workers with it.
pub async fn run(
    loaded: LoadedConfig,
    shutdown: Shutdown,
    drain: Duration,
) -> anyhow::Result<Arc<UplinkStats>> {
    run_with(loaded, shutdown, drain, |_| {}).await
}

/// [`run`], handing `started` what the console needs once the uplink and cameras are started.
pub async fn run_with(
    mut loaded: LoadedConfig,
    shutdown: Shutdown,
    drain: Duration,
    started: impl FnOnce(Handles),
) -> anyhow::Result<Arc<UplinkStats>> {
    init_process()?;
    let config = &loaded.config;
    let disk = Arc::new(crate::base::DiskGuard::new(
        config.storage.state_dir.get_ref(),
        config.storage.reserve_mb.get_ref() * 1024 * 1024,
    ));
    check_capacity(config, &disk);
    // Workers tell the control side about versions on probation (rare: unbounded is fine).
    let (news_tx, news_rx) = crossbeam_channel::unbounded::<ModelNews>();
    let shared = Shared {
        camera_stats: Arc::default(),
        counters: Arc::default(),
        status_changed: Arc::default(),
        scenes: Arc::default(),
        health: Arc::default(),
        models: Arc::default(),
        workers: Arc::default(),
        suppressions: crate::incident::Suppressions::default(),
        shadows: Arc::default(),
        running: Arc::new(Mutex::new(Arc::new(loaded.clone()))),
        news: news_tx,
        audit: crate::control::open_audit(&config.storage.state_dir.get_ref().join("audit.jsonl")),
    };
    let status = status_source(
        config.device.id.get_ref().clone(),
        shared.camera_stats.clone(),
        shared.models.clone(),
        shared.scenes.clone(),
        shared.health.clone(),
        disk.clone(),
    );
    // The uplink and its durable outbox come first: the backlog is read before producers start.
    let (mut uplink, writer) = Uplink::new(&crate::plan::uplink_settings(&loaded), status)?;
    uplink.status_changed = shared.status_changed.clone();
    uplink.disk = Some(disk.clone());
    let sink = sink::Sink::new(config, writer.clone(), disk.clone());
    // Cases and suppressions from before: what the agent could not watch ends, the rest goes on.
    cases::after_downtime(&sink, config);
    shared
        .suppressions
        .replace(cases::kept_suppressions(&writer));
    let alive = cases::keep_alive(writer.clone(), disk.clone(), shutdown.clone());
    uplink.telemetry().watch(
        shared.camera_stats.clone(),
        disk.clone(),
        shared.health.clone(),
        shared.shadows.clone(),
    );
    // One reload at a time: a second one while the first is applied is answered `busy`.
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel(1);
    let audit = shared.audit.clone();
    let mut control = None;
    let reloading = crate::control::ReloadGate::default();
    if config.uplink.commands {
        let (tx, rx) = crossbeam_channel::bounded(32);
        uplink.commands = Some(crate::uplink::CommandInbox {
            tx,
            busy_reply: crate::control::busy_replier(audit.clone()),
        });
        let c = Control {
            rx,
            messenger: uplink.messenger(),
            workers: shared.workers.clone(),
            reload: reload_tx.clone(),
            config_path: loaded.path.clone(),
            max_skew: Duration::from_secs(*config.uplink.command_max_skew_s.get_ref()),
            frame_wait: Duration::from_secs(*config.uplink.command_wait_s.get_ref()),
            audit_path: config.storage.state_dir.get_ref().join("audit.jsonl"),
            audit: audit.clone(),
            reloading: reloading.clone(),
            ledger: writer.clone(),
            suppressions: shared.suppressions.clone(),
            running: shared.running.clone(),
            shadows: shared.shadows.clone(),
            models: shared.models.clone(),
            status_changed: shared.status_changed.clone(),
            news: news_rx,
        };
        control = Some(
            std::thread::Builder::new()
                .name("control".into())
                .spawn(move || c.run())?,
        );
    }

    let stats = uplink.stats.clone();
    let telemetry = uplink.telemetry();
    if let Some(addr) = &config.ops.http {
        let addr: std::net::SocketAddr = addr.get_ref().parse()?;
        let health = crate::ops::http::Health {
            cameras: shared.camera_stats.clone(),
            uplink: stats.clone(),
            telemetry: uplink.telemetry(),
            scenes: shared.scenes.clone(),
            disk: Some(disk.clone()),
        };
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(error) = crate::ops::http::serve(addr, health, stop).await {
                tracing::error!(%addr, %error, "Health and metrics endpoint could not start.");
            }
        });
    }
    let uplink_task = tokio::spawn(uplink.run(shutdown.clone(), drain));
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut pipelines = Pipelines::start(&loaded, HashMap::new(), HashMap::new(), &shared, &sink)?;
    // Ready once cameras, workers and the uplink are started; the watchdog is fed while cameras deliver.
    let grace = Duration::from_secs(*loaded.config.ops.watchdog_grace_s.get_ref());
    crate::ops::systemd::spawn(
        shared.camera_stats.clone(),
        stats.clone(),
        grace,
        shutdown.clone(),
    );
    started(Handles {
        cameras: shared.camera_stats.clone(),
        scenes: shared.scenes.clone(),
        health: shared.health.clone(),
        live: sink.live.clone(),
        telemetry: telemetry.clone(),
        uplink: stats.clone(),
        workers: shared.workers.clone(),
        reload: reload_tx.clone(),
        reloading: reloading.clone(),
        running: shared.running.clone(),
        audit: audit.clone(),
        evidence_dir: loaded.config.storage.state_dir.get_ref().join("evidence"),
    });
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            Some(req) = reload_rx.recv() => {
                let (next, summary) = reload::reload(pipelines, &loaded, req.prepared, &shared, &sink).await?;
                pipelines = next;
                loaded = summary.0;
                let _ = req.reply.send(Ok(summary.1));
            }
            Some(()) = hangup.recv() => {
                // Never waits for the gate: a command's reload holds it while this loop applies it.
                let Ok(_gate) = reloading.try_lock() else {
                    tracing::warn!("SIGHUP while a reload is being prepared or applied; send it again when that one is done.");
                    let _ = write_audit(&audit, "signal", "reload", None, None, "busy", serde_json::Value::Null);
                    continue;
                };
                tracing::info!("SIGHUP: reloading the configuration.");
                let path = loaded.path.clone();
                let _ = write_audit(&audit, "signal", "reload", None, None, "accepted", serde_json::Value::Null);
                match tokio::task::spawn_blocking(move || crate::control::prepare_reload(&path)).await? {
                    Ok(new) => {
                        let (next, summary) = reload::reload(pipelines, &loaded, new, &shared, &sink).await?;
                        pipelines = next;
                        loaded = summary.0;
                        tracing::info!(result = %summary.1, "Configuration reloaded.");
                        let _ = write_audit(&audit, "signal", "reload", None, None, "done", summary.1);
                    }
                    Err(error) => {
                        tracing::error!(%error, "Configuration not reloaded; the running one stays.");
                        let _ = write_audit(&audit, "signal", "reload", None, None, "failed", serde_json::json!({ "error": error }));
                    }
                }
            }
        }
    }
    tracing::info!("Shutting down.");
    drop(reload_rx);
    tokio::task::spawn_blocking(move || pipelines.stop()).await?;
    let _ = tokio::task::spawn_blocking(move || alive.join()).await;
    writer.mark_alive();
    drop((writer, sink));
    uplink_task.await?;
    if let Some(c) = control {
        // The uplink's command sender is gone with it; the control thread ends on its own.
        let _ = tokio::task::spawn_blocking(move || c.join()).await;
    }
    Ok(stats)
}

/// Do the storage caps fit the state directory's disk? A warning with the numbers when they do not: the
/// agent still runs (evidence gives way first), but the installer should lower the caps or grow the disk.
fn check_capacity(config: &crate::config::Config, disk: &crate::base::DiskGuard) {
    let s = &config.storage;
    let mb = 1024 * 1024;
    let wanted = (s.outbox_max_mb.get_ref() + s.evidence_max_mb.get_ref()) * mb + disk.reserve();
    if let Some(capacity) = disk.capacity()
        && wanted > capacity
    {
        tracing::warn!(
            outbox_max_mb = s.outbox_max_mb.get_ref(),
            evidence_max_mb = s.evidence_max_mb.get_ref(),
            reserve_mb = s.reserve_mb.get_ref(),
            disk_mb = capacity / mb,
            free_mb = disk.free().unwrap_or(0) / mb,
            "The storage caps do not fit the state directory's disk: events keep the reserve, evidence is dropped first when it runs short. Lower storage.outbox_max_mb and storage.evidence_max_mb, or give state_dir a larger disk."
        );
    }
}

/// One model worker and the cameras it analyses: their frame queue, analysers (kept ones reused), and the
/// registry link that routes commands for these cameras to it.
fn start_worker(
    loaded: &LoadedConfig,
    (model, index, version, detector): (&str, usize, &str, Detector),
    users: &[&CameraConfig],
    carry: &mut cases::Carryover,
    shared: &Shared,
    sink: &sink::Sink,
    shutdown: &Shutdown,
) -> (worker::ModelWorker, WorkerLink, Vec<CameraHandle>) {
    let info = ModelInfo::new(&detector.manifest, &detector.sha256);
    let queue = FrameQueue::new(users.len() * 2);
    let mut analysers = HashMap::new();
    let mut handles = Vec::new();
    for cam in users {
        let source = match crate::plan::camera_source(cam, &loaded.base_dir) {
            Ok(s) => s,
            Err(error) => {
                tracing::error!(camera = %cam.id, %error, "Camera cannot start.");
                shared.list_off(&cam.id, error);
                continue;
            }
        };
        let handle = spawn_camera(
            source,
            queue.clone(),
            shared.counters_of(&cam.id),
            shutdown.clone(),
        );
        let analyser = carry.analyser(&cam.id, &info.sha256, &shared.suppressions, || {
            crate::plan::analyser(&loaded.config, cam, info.clone())
        });
        analysers.insert(cam.id.clone(), (analyser, handle.stats.clone()));
        shared
            .camera_stats
            .lock()
            .expect("status lock")
            .push((handle.id.clone(), handle.stats.clone()));
        handles.push(handle);
    }
    // Commands in flight are bounded upstream (the command inbox holds 32); a worker whose queue stays full
    // for 10 s is stuck, and the command is answered `busy`.
    let (tx, commands) = crossbeam_channel::bounded(64);
    let link = WorkerLink {
        model: model.to_string(),
        index,
        cameras: analysers.keys().cloned().collect(),
        tx,
    };
    let worker = worker::ModelWorker {
        detector,
        analysers,
        queue,
        commands,
        pending: Vec::new(),
        frame_wait: Duration::from_secs(*loaded.config.uplink.command_wait_s.get_ref()),
        evidence: worker::Evidence::start(sink.clone()),
        scenes: shared.scenes.clone(),
        health: shared.health.clone(),
        status_changed: shared.status_changed.clone(),
        shutdown: shutdown.clone(),
        shadow: None,
        shadows: shared.shadows.clone(),
        model: model.to_string(),
        index,
        version: version.to_string(),
        probation: None,
        sink: sink.clone(),
        running: shared.running.clone(),
        suppressions: shared.suppressions.clone(),
        news: shared.news.clone(),
        embedders: HashMap::new(),
        live: sink.live.clone(),
    };
    (worker, link, handles)
}

/// Model `name` at its active version (`ready` when a reload loaded it already): its version's name and
/// session. An installed version that no longer loads is left for the last good one (or the configured
/// bundle), recorded as a rollback.
fn active_model(
    loaded: &LoadedConfig,
    name: &str,
    ready: Option<Detector>,
    shared: &Shared,
    sink: &sink::Sink,
) -> Result<(String, Detector), String> {
    let store = ModelStore::of(loaded);
    let (version, _) = store
        .active_path(loaded, name)
        .ok_or_else(|| format!("no model `{name}` in the configuration"))?;
    let error = match ready.map_or_else(|| load_model(loaded, name), Ok) {
        Ok(d) => return Ok((version, d)),
        Err(e) if version != CONFIGURED => e,
        Err(e) => return Err(e),
    };
    let last_good = store.versions(name).last_good;
    let to = if last_good == version {
        CONFIGURED.to_string()
    } else {
        last_good
    };
    tracing::error!(model = %name, %version, %error, back_to = %to, "The active model version does not load; going back.");
    let reason = format!("it does not load: {error}");
    crate::control::record_rollback(
        loaded,
        name,
        (&version, &to),
        &reason,
        &shared.audit,
        &sink.outbox,
    );
    load_model(loaded, name).map(|d| (to, d))
}

/// Cameras and model workers started from one configuration.
struct Pipelines {
    shutdown: Shutdown,
    cameras: Vec<CameraHandle>,
    workers: Vec<std::thread::JoinHandle<HashMap<String, Analyser>>>,
}

impl Pipelines {
    /// Load every model (unless `loaded_models` has it already) and start its cameras and worker; `kept`
    /// analysers are reused for their cameras.
    fn start(
        loaded: &LoadedConfig,
        kept: HashMap<String, Analyser>,
        mut loaded_models: HashMap<String, Detector>,
        shared: &Shared,
        sink: &sink::Sink,
    ) -> anyhow::Result<Self> {
        let config = &loaded.config;
        *shared.running.lock().expect("running config lock") = Arc::new(loaded.clone());
        let mut carry = cases::Carryover::read(&sink.outbox, kept);
        let shutdown = Shutdown::new();
        let mut cameras: Vec<CameraHandle> = Vec::new();
        let mut workers = Vec::new();
        let mut links = Vec::new();
        shared.camera_stats.lock().expect("status lock").clear();
        shared.models.lock().expect("status lock").clear();
        for name in config.models.keys() {
            let users: Vec<&CameraConfig> = config
                .cameras
                .iter()
                .map(|c| c.get_ref())
                .filter(|c| c.model.get_ref() == name)
                .collect();
            let (version, detector) = match active_model(
                loaded,
                name,
                loaded_models.remove(name),
                shared,
                sink,
            ) {
                Ok(d) => d,
                Err(error) => {
                    tracing::error!(model = %name, %error, cameras = users.len(), "Model rejected; cameras that use it stay off.");
                    for cam in &users {
                        shared.list_off(&cam.id, format!("model `{name}` was rejected: {error}"));
                    }
                    let status = ModelStatus::rejected(name, error);
                    shared.models.lock().expect("status lock").push(status);
                    continue;
                }
            };
            let (threads, sessions) = crate::plan::model_parallelism(config, name);
            tracing::info!(model = %name, version = %detector.manifest.version, sha256 = %detector.sha256, threads, workers = sessions.min(users.len().max(1)), "Model loaded.");
            let versions = ModelStore::of(loaded).versions(name);
            let status = ModelStatus::active(name, &detector, &versions, &version);
            shared.models.lock().expect("status lock").push(status);
            if users.is_empty() {
                continue;
            }
            // One session per worker; the model was verified once, so a failing extra load only means
            // fewer workers.
            let wanted = sessions.clamp(1, users.len());
            let mut detectors = vec![detector];
            while detectors.len() < wanted {
                match load_model(loaded, name) {
                    Ok(d) => detectors.push(d),
                    Err(error) => {
                        tracing::warn!(model = %name, %error, workers = detectors.len(), "Extra model worker not started.");
                        break;
                    }
                }
            }
            let count = detectors.len();
            for (w, detector) in detectors.into_iter().enumerate() {
                let mine: Vec<&CameraConfig> = users
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % count == w)
                    .map(|(_, c)| *c)
                    .collect();
                let (worker, link, handles) = start_worker(
                    loaded,
                    (name, w, &version, detector),
                    &mine,
                    &mut carry,
                    shared,
                    sink,
                    &shutdown,
                );
                cameras.extend(handles);
                links.push(link);
                workers.push(
                    std::thread::Builder::new()
                        .name(format!("model-{name}-{w}"))
                        .spawn(move || worker.run())?,
                );
            }
        }
        // Cases no analyser took over (their camera, zone or rule is gone, or the camera is off) end here.
        carry.finish(config, sink);
        *shared.workers.lock().expect("registry lock") = links;
        shared.status_changed.notify_one();
        Ok(Pipelines {
            shutdown,
            cameras,
            workers,
        })
    }

    /// Stop cameras and workers; returns every camera's analyser.
    fn stop(self) -> HashMap<String, Analyser> {
        self.shutdown.trigger();
        for c in self.cameras {
            c.join();
        }
        let mut out = HashMap::new();
        for w in self.workers {
            if let Ok(analysers) = w.join() {
                out.extend(analysers);
            }
        }
        out
    }
}

/// The retained `status` message.
#[derive(serde::Serialize)]
struct Status<'a> {
    /// `online`, or `offline` in the last will and at a clean stop.
    state: &'a str,
    device: &'a str,
    version: &'static str,
    cameras: Vec<CameraStatus>,
    models: Vec<ModelStatus>,
    /// The state directory's disk: free space, the reserve kept for events, whether it is short.
    storage: StorageStatus,
}

#[derive(serde::Serialize)]
struct StorageStatus {
    free_bytes: Option<u64>,
    reserve_bytes: u64,
    short: bool,
    evidence_dropped: u64,
}

/// A camera in the status message.
#[derive(serde::Serialize)]
struct CameraStatus {
    id: String,
    state: crate::ingest::CameraState,
    /// Why it is down or off.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    frames_in: u64,
    /// Its scene-change zones: without a reference a zone sees no change (it takes one from the first
    /// quiet frame, or on the `scene_reference` command).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scene_zones: Vec<crate::incident::SceneZoneState>,
    health: crate::health::HealthReport,
}

/// The retained status: cameras and their state, models and theirs.
fn status_source(
    device_id: String,
    cameras: CameraList,
    models: Arc<Mutex<Vec<ModelStatus>>>,
    scenes: crate::incident::SceneBoard,
    health: crate::incident::HealthBoard,
    disk: Arc<crate::base::DiskGuard>,
) -> StatusSource {
    Arc::new(move |state: &str| {
        let scenes = scenes.lock().expect("scene board lock").clone();
        let health = health.lock().expect("health board lock").clone();
        let cameras = cameras
            .lock()
            .expect("status lock")
            .iter()
            .map(|(id, s)| CameraStatus {
                id: id.to_string(),
                state: s.state(),
                last_error: s.last_error.lock().expect("stats lock").clone(),
                frames_in: s.frames_in.load(std::sync::atomic::Ordering::Relaxed),
                scene_zones: scenes.get(&**id).cloned().unwrap_or_default(),
                health: crate::health::HealthReport::shown(
                    health.get(&**id),
                    s.state() == crate::ingest::CameraState::Streaming,
                ),
            })
            .collect();
        let status = Status {
            state,
            device: &device_id,
            version: env!("CARGO_PKG_VERSION"),
            cameras,
            models: models.lock().expect("status lock").clone(),
            storage: StorageStatus {
                free_bytes: disk.refresh(),
                reserve_bytes: disk.reserve(),
                short: disk.is_short(),
                evidence_dropped: disk.evidence_dropped(),
            },
        };
        serde_json::to_value(status).expect("status serialises")
    })
}
