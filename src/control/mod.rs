//! Remote operations: commands from `cmd/{name}` are checked (fields, timestamp, nonce), written to the
//! audit log, and carried out by the model workers that own the cameras; the answer goes to
//! `cmd_result/{request_id}`. A refused or failed command changes nothing.
//!
//! ```text
//! uplink ──IncomingCommand──▶ control thread ──(parse, replay guard, audit)──▶ one thread per command
//!     ──WorkerCmd──▶ model worker(s) (acts on the camera's next frame) ──answer──▶ reply via the uplink
//! ```

pub mod audit;
mod cases;
pub mod command;
mod download;
pub mod example_args;
mod examples;
pub mod model_args;
mod replay;
mod reply;
mod rollout;
mod shadow;
mod versions;
mod worker;

pub use versions::{ModelBoard, ModelStatus, record_rollback};
pub use worker::{
    ExampleOp, ModelNews, Pending, Swap, Swapped, Verified, VerifyAnswer, WorkerCmd, WorkerLink,
    WorkerRegistry, accept, labelled,
};

use crate::config::LoadedConfig;
use crate::detect::Detector;
use crate::plan::load_model;
use crate::uplink::{IncomingCommand, Messenger};
use audit::{AuditEntry, AuditLog};
use command::{Command, CommandError, Request};
use crossbeam_channel::{Receiver, Sender, bounded};
use replay::ReplayGuard;
use reply::Reply;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request to apply a new configuration, answered by the daemon's main loop.
pub struct ReloadRequest {
    pub prepared: Prepared,
    pub reply: Sender<Result<serde_json::Value, String>>,
}

/// A configuration checked for a reload, with its models already loaded (they are used as they are).
pub struct Prepared {
    pub loaded: LoadedConfig,
    pub detectors: HashMap<String, Detector>,
}

/// The control thread's state.
pub struct Control {
    pub rx: Receiver<IncomingCommand>,
    pub messenger: Messenger,
    pub workers: WorkerRegistry,
    pub reload: tokio::sync::mpsc::Sender<ReloadRequest>,
    pub config_path: PathBuf,
    pub max_skew: Duration,
    /// How long a command waits for a camera's next frame (`uplink.command_wait_s`).
    pub frame_wait: Duration,
    pub audit_path: PathBuf,
    pub audit: SharedAudit,
    /// Held while a reload is prepared and applied (shared with the daemon's SIGHUP handler): reloads run
    /// one at a time, so a storm of them cannot load every model many times over in parallel.
    pub reloading: ReloadGate,
    /// Where the kept cases are read and suppressions kept.
    pub ledger: crate::uplink::OutboxWriter,
    /// The suppressions in force (shared with every analyser).
    pub suppressions: crate::incident::Suppressions,
    /// The configuration the pipelines run now.
    pub running: RunningConfig,
    /// What the shadows found so far.
    pub shadows: crate::incident::ShadowBoard,
    /// The models as the status message shows them, and how to have it published again.
    pub models: ModelBoard,
    pub status_changed: Arc<tokio::sync::Notify>,
    /// What the model workers say about versions on probation.
    pub news: Receiver<ModelNews>,
}

/// The configuration the pipelines run, replaced when a reload is applied.
pub type RunningConfig = Arc<Mutex<Arc<LoadedConfig>>>;

/// One reload at a time: whoever holds the gate prepares (reads the file, loads the models) and applies.
pub type ReloadGate = Arc<tokio::sync::Mutex<()>>;

/// Open the audit log at `path`; `None` (logged) when it cannot be written — commands are then refused.
pub fn open_audit(path: &std::path::Path) -> SharedAudit {
    Arc::new(Mutex::new(match AuditLog::open(path, 4 * 1024 * 1024) {
        Ok(l) => Some(l),
        Err(error) => {
            tracing::error!(%error, "Audit log cannot be written; every command is refused until it can.");
            None
        }
    }))
}

/// The audit log is shared by the control thread, the command threads and the daemon (SIGHUP reloads).
pub type SharedAudit = Arc<Mutex<Option<AuditLog>>>;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Control {
    /// Send a command to every model worker (a broadcast: the one that owns the incident or rule answers);
    /// returns where each will answer, in registry order.
    fn ask_every_worker<T>(
        &self,
        command: impl Fn(crossbeam_channel::Sender<T>) -> WorkerCmd,
    ) -> Result<Vec<Receiver<T>>, CommandError> {
        let workers = self.workers.lock().expect("registry lock").clone();
        let mut answers = Vec::with_capacity(workers.len());
        for w in &workers {
            let (reply, answer) = bounded(1);
            send(w, command(reply))?;
            answers.push(answer);
        }
        Ok(answers)
    }

    /// Run until the uplink drops its sender (shutdown).
    pub fn run(self) {
        let mut guard = ReplayGuard::new(self.max_skew);
        let since = now_ms() - 2 * self.max_skew.as_millis() as i64;
        for e in AuditLog::read_since(&self.audit_path, since) {
            if let (Some(n), "accepted") = (&e.nonce, e.outcome.as_str()) {
                guard.remember(n, e.at_ms);
            }
        }
        let audit = self.audit.clone();
        let this = Arc::new(self);
        let watcher = this.clone();
        let spawned = std::thread::Builder::new()
            .name("probation".into())
            .spawn(move || watcher.watch_probations());
        if let Err(error) = spawned {
            tracing::error!(%error, "Probation thread could not start; a faulty model version is still reverted by its worker.");
        }
        while let Ok(incoming) = this.rx.recv() {
            // The name comes from the topic: echoed only capped and without control characters.
            let name = command::echo(&incoming.name);
            let checked = if incoming.retained {
                Err((
                    command::UNNAMED_REQUEST.to_string(),
                    CommandError::new(
                        "malformed",
                        "retained commands are refused (they would run again at every connect); publish with retain=false",
                    ),
                ))
            } else {
                command::parse(&name, &incoming.payload)
            }
            .and_then(|c| {
                guard
                    .check(&c, now_ms())
                    .map(|()| c.clone())
                    .map_err(|e| (c.request_id.clone(), e))
            });
            match checked {
                Err((request_id, error)) => {
                    tracing::warn!(command = %name, request = %request_id, %error, "Command refused.");
                    audit_refusal(&audit, &name, &request_id, &error);
                    this.reply(&Reply::error(&request_id, &name, error));
                }
                Ok(cmd) => {
                    let detail = describe(&cmd.request);
                    if let Err(e) = write_audit(
                        &audit,
                        "mqtt",
                        &name,
                        Some(&cmd.request_id),
                        Some(&cmd.nonce),
                        "accepted",
                        detail,
                    ) {
                        this.reply(&Reply::error(&cmd.request_id, &name, e));
                        continue;
                    }
                    tracing::info!(command = %name, request = %cmd.request_id, "Command accepted.");
                    let (this, audit) = (this.clone(), audit.clone());
                    let spawned = std::thread::Builder::new()
                        .name(format!("cmd-{name}"))
                        .spawn(move || this.execute(cmd, &audit));
                    if let Err(error) = spawned {
                        tracing::error!(%error, "Command thread could not start.");
                    }
                }
            }
        }
    }

    fn reply(&self, r: &Reply) {
        self.messenger.send(
            &format!("cmd_result/{}", r.request_id),
            serde_json::to_vec(r).expect("replies serialise"),
        );
    }

    fn execute(&self, cmd: Command, audit: &SharedAudit) {
        let name = cmd.request.name();
        let outcome = match &cmd.request {
            Request::Snapshot { camera } => self.snapshot(&cmd.request_id, camera),
            Request::Verify { incident_id } => self.verify(&cmd.request_id, incident_id),
            Request::Suppress {
                camera,
                category,
                zone,
                duration_s,
            } => self.suppress(camera.clone(), category, zone, *duration_s),
            Request::Unsuppress {
                camera,
                category,
                zone,
            } => self.unsuppress(camera.as_deref(), category, zone),
            Request::Suppressions => Ok(self.list_suppressions()),
            Request::Incidents { camera } => Ok(self.incidents(camera.as_deref())),
            Request::SceneReference { camera, zone } => self.scene_reference(camera, zone),
            Request::ConfirmView { camera } => self.confirm_view(camera),
            Request::Reload => self.reload(),
            Request::ShadowStart { model, path, every } => self.shadow_start(model, path, *every),
            Request::ShadowStop { model } => self.shadow_stop(model),
            Request::ShadowReport { model } => Ok(self.shadow_report(model.as_deref())),
            Request::Model(m) => self.model_command(m),
            Request::Example(e) => self.example_command(e),
        };
        let (label, detail, reply) = match outcome {
            Ok(result) => (
                "done",
                result.clone(),
                Reply::ok(&cmd.request_id, name, result),
            ),
            Err(e) => {
                tracing::warn!(command = name, request = %cmd.request_id, error = %e, "Command failed.");
                (
                    "failed",
                    serde_json::json!({ "error": e }),
                    Reply::error(&cmd.request_id, name, e),
                )
            }
        };
        let _ = write_audit(
            audit,
            "mqtt",
            name,
            Some(&cmd.request_id),
            None,
            label,
            detail,
        );
        self.reply(&reply);
    }

    /// The worker that owns `camera`.
    fn owner(&self, camera: &str) -> Result<WorkerLink, CommandError> {
        owner(&self.workers, camera)
    }

    fn snapshot(&self, request_id: &str, camera: &str) -> Result<serde_json::Value, CommandError> {
        let worker = self.owner(camera)?;
        let (reply, answer) = bounded(1);
        send(
            &worker,
            WorkerCmd::Snapshot {
                camera: camera.into(),
                reply,
            },
        )?;
        let ev = wait(&answer, self.frame_wait)?.map_err(|e| CommandError::new("failed", e))?;
        let topic = format!("snapshot/{request_id}");
        let result = serde_json::json!({
            "camera": camera, "topic": topic, "content_type": "image/jpeg",
            "bytes": ev.jpeg.len(), "sha256": ev.sha256, "width": ev.width, "height": ev.height,
        });
        self.messenger.send(&topic, ev.jpeg);
        Ok(result)
    }

    fn verify(
        &self,
        request_id: &str,
        incident_id: &str,
    ) -> Result<serde_json::Value, CommandError> {
        let answers = self.ask_every_worker(|reply| WorkerCmd::Verify {
            incident_id: incident_id.into(),
            request_id: request_id.into(),
            reply,
        })?;
        for answer in answers {
            match wait(&answer, self.frame_wait + Duration::from_secs(15))? {
                VerifyAnswer::NotHere => continue,
                VerifyAnswer::Failed(e) => return Err(CommandError::new("failed", e)),
                VerifyAnswer::Done(verified) => {
                    return Ok(serde_json::to_value(verified).expect("results serialise"));
                }
            }
        }
        Err(CommandError::new(
            "not_found",
            format!(
                "no open incident `{incident_id}` on this device (already resolved, or another device's)"
            ),
        ))
    }

    fn scene_reference(&self, camera: &str, zone: &str) -> Result<serde_json::Value, CommandError> {
        scene_reference(&self.workers, camera, zone, self.frame_wait)
    }

    fn confirm_view(&self, camera: &str) -> Result<serde_json::Value, CommandError> {
        let worker = self.owner(camera)?;
        let (reply, answer) = bounded(1);
        send(
            &worker,
            WorkerCmd::ConfirmView {
                camera: camera.into(),
                reply,
            },
        )?;
        wait(&answer, self.frame_wait)?.map_err(|e| CommandError::new("failed", e))?;
        Ok(serde_json::json!({
            "camera": camera,
            "view": "confirmed",
            "reference": "the next usable frame becomes the reference view",
        }))
    }

    fn reload(&self) -> Result<serde_json::Value, CommandError> {
        reload(&self.reloading, &self.reload, &self.config_path)
    }
}

/// The worker that analyses `camera`.
fn owner(workers: &WorkerRegistry, camera: &str) -> Result<WorkerLink, CommandError> {
    let workers = workers.lock().expect("registry lock");
    workers
        .iter()
        .find(|w| w.cameras.iter().any(|c| c == camera))
        .cloned()
        .ok_or_else(|| {
            let known: Vec<&str> = workers
                .iter()
                .flat_map(|w| w.cameras.iter().map(String::as_str))
                .collect();
            CommandError::new(
                "not_found",
                format!(
                    "no running camera `{camera}`; running cameras: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })
}

/// `camera`'s next frame becomes `zone`'s scene reference (the `scene_reference` command, the console's
/// button). Blocks until the worker took it, at most `frame_wait`.
pub fn scene_reference(
    workers: &WorkerRegistry,
    camera: &str,
    zone: &str,
    frame_wait: Duration,
) -> Result<serde_json::Value, CommandError> {
    let worker = owner(workers, camera)?;
    let (reply, answer) = bounded(1);
    send(
        &worker,
        WorkerCmd::SceneReference {
            camera: camera.into(),
            zone: zone.into(),
            reply,
        },
    )?;
    wait(&answer, frame_wait)?.map_err(|e| CommandError::new("failed", e))?;
    Ok(serde_json::json!({ "camera": camera, "zone": zone, "reference": "taken" }))
}

/// Re-read `path` and apply it (the `reload` command, SIGHUP, the console's save): one at a time through
/// `gate`; an invalid file or model changes nothing. Blocks up to two minutes.
pub fn reload(
    gate: &ReloadGate,
    daemon: &tokio::sync::mpsc::Sender<ReloadRequest>,
    path: &std::path::Path,
) -> Result<serde_json::Value, CommandError> {
    let Ok(_gate) = gate.try_lock() else {
        return Err(CommandError::new(
            "busy",
            "a reload is already being prepared or applied; retry when it is done",
        ));
    };
    apply_reload(daemon, path)
}

/// [`reload`] for a caller that holds the reload gate already (the console, from its write to the reload).
pub fn apply_reload(
    daemon: &tokio::sync::mpsc::Sender<ReloadRequest>,
    path: &std::path::Path,
) -> Result<serde_json::Value, CommandError> {
    let prepared = prepare_reload(path)?;
    let (reply, answer) = bounded(1);
    daemon
        .try_send(ReloadRequest { prepared, reply })
        .map_err(|e| match e {
            tokio::sync::mpsc::error::TrySendError::Full(_) => CommandError::new(
                "busy",
                "a reload is already being applied; retry when it is done",
            ),
            tokio::sync::mpsc::error::TrySendError::Closed(_) => {
                CommandError::new("failed", "the agent is shutting down")
            }
        })?;
    wait(&answer, Duration::from_secs(120))?.map_err(|e| CommandError::new("failed", e))
}

/// Read and validate the configuration file and load every model it names; nothing is applied here. The
/// errors name file:line as `streetsight check` does.
pub fn prepare_reload(path: &std::path::Path) -> Result<Prepared, CommandError> {
    let loaded = crate::plan::load(path).map_err(|errors| {
        CommandError::new(
            "invalid_config",
            format!("configuration not applied, the running one stays: {errors}"),
        )
    })?;
    let mut detectors = HashMap::new();
    for name in loaded.config.models.keys() {
        let detector = load_model(&loaded, name).map_err(|e| {
            CommandError::new(
                "invalid_model",
                format!("model `{name}` rejected, the running configuration stays: {e}"),
            )
        })?;
        detectors.insert(name.clone(), detector);
    }
    Ok(Prepared { loaded, detectors })
}

/// How long a command waits for room in a worker's command queue.
const WORKER_SEND_WAIT: Duration = Duration::from_secs(10);

fn send(w: &WorkerLink, cmd: WorkerCmd) -> Result<(), CommandError> {
    // Each command runs on its own thread, so waiting here holds up nothing else; a worker that takes no
    // command for this long is stuck, and the command is refused rather than queued without bound.
    w.tx.send_timeout(cmd, WORKER_SEND_WAIT)
        .map_err(|e| match e {
            crossbeam_channel::SendTimeoutError::Timeout(_) => CommandError::new(
                "busy",
                "the camera's model worker has too many commands waiting; retry in a few seconds",
            ),
            crossbeam_channel::SendTimeoutError::Disconnected(_) => {
                CommandError::new("failed", "the camera's model worker has stopped")
            }
        })
}

fn wait<T>(rx: &Receiver<T>, timeout: Duration) -> Result<T, CommandError> {
    rx.recv_timeout(timeout).map_err(|_| {
        CommandError::new(
            "timeout",
            format!("no answer within {} s", timeout.as_secs()),
        )
    })
}

/// The command's own fields, for the audit log.
fn describe(r: &Request) -> serde_json::Value {
    match r {
        Request::Snapshot { camera } => serde_json::json!({ "camera": camera }),
        Request::Verify { incident_id } => serde_json::json!({ "incident_id": incident_id }),
        Request::Suppress {
            camera,
            category,
            zone,
            duration_s,
        } => {
            serde_json::json!({ "camera": camera, "category": category, "zone": zone, "duration_s": duration_s })
        }
        Request::Unsuppress {
            camera,
            category,
            zone,
        } => serde_json::json!({ "camera": camera, "category": category, "zone": zone }),
        Request::Incidents { camera } => serde_json::json!({ "camera": camera }),
        Request::SceneReference { camera, zone } => {
            serde_json::json!({ "camera": camera, "zone": zone })
        }
        Request::ConfirmView { camera } => serde_json::json!({ "camera": camera }),
        Request::ShadowStart { model, path, every } => {
            serde_json::json!({ "model": model, "path": path, "every": every })
        }
        Request::ShadowStop { model } => serde_json::json!({ "model": model }),
        Request::ShadowReport { model } => serde_json::json!({ "model": model }),
        Request::Model(m) => m.describe(),
        Request::Example(e) => e.describe(),
        Request::Reload | Request::Suppressions => serde_json::Value::Null,
    }
}

/// Write one audit entry; a command whose acceptance cannot be recorded is not carried out.
pub fn write_audit(
    audit: &SharedAudit,
    source: &str,
    command: &str,
    request_id: Option<&str>,
    nonce: Option<&str>,
    outcome: &str,
    detail: serde_json::Value,
) -> Result<(), CommandError> {
    let entry = AuditEntry {
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        source: source.into(),
        command: command.into(),
        request_id: request_id.map(String::from),
        nonce: nonce.map(String::from),
        at_ms: now_ms(),
        outcome: outcome.into(),
        detail,
    };
    let mut log = audit.lock().expect("audit lock");
    let result = match log.as_mut() {
        Some(l) => l.write(&entry).map_err(|e| e.to_string()),
        None => Err("the audit log could not be opened".to_string()),
    };
    result.map_err(|e| {
        tracing::error!(error = %e, "Audit entry not written.");
        CommandError::new(
            "audit_unavailable",
            format!("{e}; the command was not carried out"),
        )
    })
}

/// Record that command `name` (request `request_id`) was refused, and why. A refusal that cannot be
/// recorded is logged by `write_audit`; the reply goes out either way.
fn audit_refusal(audit: &SharedAudit, name: &str, request_id: &str, error: &CommandError) {
    let _ = write_audit(
        audit,
        "mqtt",
        name,
        Some(request_id),
        None,
        "refused",
        serde_json::json!({ "error": error }),
    );
}

/// The reply to a command the uplink could not queue (too many waiting), to the request id its payload
/// names when it is small enough to read; the refusal is audited like any other.
pub fn busy_replier(audit: SharedAudit) -> crate::uplink::BusyReply {
    Arc::new(move |name: &str, payload: &[u8]| {
        let request_id =
            command::request_id_of(payload).unwrap_or_else(|| command::UNNAMED_REQUEST.to_string());
        let error = CommandError::new("busy", "too many commands waiting; retry in a few seconds");
        let name = command::echo(name);
        audit_refusal(&audit, &name, &request_id, &error);
        let reply = Reply::error(&request_id, &name, error);
        (
            request_id,
            serde_json::to_vec(&reply).expect("replies serialise"),
        )
    })
}
