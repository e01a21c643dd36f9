//! The worker side of a command: what a model worker is asked to do, the commands that wait in it for a
//! camera's next frame, and how it answers them.

use crate::incident::{Analyser, Evidence, EvidenceRef, ExampleError};
use crossbeam_channel::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a model worker is asked to do for a command.
pub enum WorkerCmd {
    Snapshot {
        camera: String,
        reply: Sender<Result<Evidence, String>>,
    },
    Verify {
        incident_id: String,
        request_id: String,
        reply: Sender<VerifyAnswer>,
    },
    /// Which of the worker's cameras (all, or the one named) have a rule of `category` in `zone`.
    HasRule {
        camera: Option<String>,
        category: String,
        zone: String,
        reply: Sender<Vec<String>>,
    },
    SceneReference {
        camera: String,
        zone: String,
        reply: Sender<Result<(), String>>,
    },
    /// The camera's view as it is now becomes its reference view.
    ConfirmView {
        camera: String,
        reply: Sender<Result<(), String>>,
    },
    /// Run this candidate in shadow (replacing one that runs), or stop the shadow (`None`); the answer is
    /// the report of the shadow that stopped, if one ran.
    Shadow {
        setup: Option<Box<crate::incident::ShadowSetup>>,
        reply: Sender<Option<crate::incident::ShadowReport>>,
    },
    /// Take over this model version between two frames: its events so far stored, its open cases
    /// continued by the new analysers.
    Swap {
        swap: Box<Swap>,
        reply: Sender<Swapped>,
    },
    /// Go back to the version before the one on probation (another worker of the model found a fault).
    Revert { reason: String },
    /// Something about a zone's labelled examples.
    Examples {
        camera: String,
        op: ExampleOp,
        reply: Sender<Result<serde_json::Value, ExampleError>>,
    },
}

/// What is asked of a zone's examples.
pub enum ExampleOp {
    /// The camera's next `count` analysed frames whose zone is clear enough are examples of `state`.
    Label {
        zone: String,
        state: crate::incident::Wanted,
        source: String,
        count: usize,
    },
    /// This picture of the camera (an event's evidence) is an example.
    Picture {
        zone: String,
        wanted: crate::incident::Wanted,
        source: String,
        picture: image::RgbImage,
    },
    /// The samples the zone's rules lately judged an alarm are normal examples (a `false_positive`).
    Misjudged {
        zone: String,
        source: String,
    },
    List {
        zone: String,
    },
    Remove {
        zone: String,
        id: String,
    },
}

/// A model version for a worker to take over, loaded and warmed before it is sent.
pub struct Swap {
    pub detector: crate::detect::Detector,
    /// The version's name in the store (`configured` or an installed directory).
    pub version: String,
    /// Each of the worker's cameras' analysers, built for this version.
    pub analysers: std::collections::HashMap<String, Analyser>,
    /// Watch the version for this long with this latency budget (ms); none for a rollback.
    pub probation: Option<(Duration, u64)>,
}

/// A worker's answer to a swap.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Swapped {
    pub worker: usize,
    /// How long the worker analysed no frame: storing the events in hand, continuing the cases, switching.
    pub gap_ms: f64,
    /// Open incidents the new version goes on with, by id.
    pub continued: Vec<String>,
}

/// What a model worker tells the control side about a version on probation.
#[derive(Debug, Clone)]
pub enum ModelNews {
    Passed {
        model: String,
        worker: usize,
        version: String,
    },
    RolledBack {
        model: String,
        worker: usize,
        from: String,
        to: String,
        reason: String,
    },
}

/// A worker's answer to a verify.
#[derive(Debug)]
pub enum VerifyAnswer {
    /// None of this worker's cameras has the incident open.
    NotHere,
    Done(Verified),
    Failed(String),
}

/// A verify's outcome, as the reply's `result` carries it.
#[derive(Debug, serde::Serialize)]
pub struct Verified {
    pub incident_id: String,
    pub camera: String,
    /// `still_present` or `cleared`.
    pub result: &'static str,
    pub samples: usize,
    /// How many of the samples showed it.
    pub present_in: usize,
    pub event_ids: Vec<String>,
    pub evidence: Vec<EvidenceRef>,
    /// A cleared zone-state case: the example of the zone's normal state taken from the fresh look.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

/// A running model worker as the control side sees it.
#[derive(Clone)]
pub struct WorkerLink {
    /// The configured model this worker runs, and which of its workers it is.
    pub model: String,
    pub index: usize,
    pub cameras: Vec<String>,
    pub tx: Sender<WorkerCmd>,
}

pub type WorkerRegistry = Arc<Mutex<Vec<WorkerLink>>>;

/// A command waiting in a worker for its camera's next frame(s).
pub enum Pending {
    Snapshot {
        camera: String,
        deadline: Instant,
        reply: Sender<Result<Evidence, String>>,
    },
    Verify {
        camera: String,
        incident_id: String,
        request_id: String,
        deadline: Instant,
        samples: usize,
        present_in: usize,
        reply: Sender<VerifyAnswer>,
    },
    SceneReference {
        camera: String,
        zone: String,
        deadline: Instant,
        reply: Sender<Result<(), String>>,
    },
    /// A `label` waiting for frames whose zone is clear enough: `remaining` more to take.
    Label {
        camera: String,
        zone: String,
        state: crate::incident::Wanted,
        source: String,
        remaining: usize,
        taken: Vec<crate::incident::ExampleInfo>,
        deadline: Instant,
        reply: Sender<Result<serde_json::Value, ExampleError>>,
    },
}

/// A `label`'s answer: the examples it took (the first also as `example`).
pub fn labelled(zone: &str, taken: &[crate::incident::ExampleInfo]) -> serde_json::Value {
    serde_json::json!({ "zone": zone, "example": taken.first(), "examples": taken })
}

impl Pending {
    pub fn camera(&self) -> &str {
        match self {
            Pending::Snapshot { camera, .. }
            | Pending::Verify { camera, .. }
            | Pending::SceneReference { camera, .. }
            | Pending::Label { camera, .. } => camera,
        }
    }

    fn deadline(&self) -> Instant {
        match self {
            Pending::Snapshot { deadline, .. }
            | Pending::Verify { deadline, .. }
            | Pending::SceneReference { deadline, .. }
            | Pending::Label { deadline, .. } => *deadline,
        }
    }

    /// Answer commands whose camera sent no frame in time.
    pub fn expire(pending: &mut Vec<Pending>, now: Instant) {
        pending.retain(|p| {
            if now < p.deadline() {
                return true;
            }
            let why = format!(
                "camera `{}` delivered no frame within uplink.command_wait_s; check it with the status message",
                p.camera(),
            );
            match p {
                Pending::Snapshot { reply, .. } => {
                    let _ = reply.send(Err(why));
                }
                Pending::SceneReference { reply, .. } => {
                    let _ = reply.send(Err(why));
                }
                Pending::Verify { reply, .. } => {
                    let _ = reply.send(VerifyAnswer::Failed(why));
                }
                // Those taken so far answer it; none taken, the zone was never clear enough.
                Pending::Label {
                    zone, taken, reply, ..
                } => {
                    let _ = reply.send(if taken.is_empty() {
                        Err(ExampleError::NeverClear(zone.clone()))
                    } else {
                        Ok(labelled(zone, taken))
                    });
                }
            }
            false
        });
    }
}

/// Accept a worker command: answer at once what needs no frame, queue the rest.
pub fn accept<'a>(
    cmd: WorkerCmd,
    mut analysers: impl Iterator<Item = &'a mut Analyser>,
    pending: &mut Vec<Pending>,
    frame_wait: Duration,
) {
    let deadline = Instant::now() + frame_wait;
    match cmd {
        WorkerCmd::HasRule {
            camera,
            category,
            zone,
            reply,
        } => {
            let having = analysers
                .by_ref()
                .filter(|a| {
                    camera.as_ref().is_none_or(|c| c == a.camera_id())
                        && a.has_rule(&category, &zone)
                })
                .map(|a| a.camera_id().to_string())
                .collect();
            let _ = reply.send(having);
        }
        WorkerCmd::Verify {
            incident_id,
            request_id,
            reply,
        } => match analysers.find(|a| a.has_open_incident(&incident_id)) {
            Some(a) => pending.push(Pending::Verify {
                camera: a.camera_id().to_string(),
                incident_id,
                request_id,
                deadline: deadline + Duration::from_secs(10),
                samples: 0,
                present_in: 0,
                reply,
            }),
            None => {
                let _ = reply.send(VerifyAnswer::NotHere);
            }
        },
        WorkerCmd::Snapshot { camera, reply } => pending.push(Pending::Snapshot {
            camera,
            deadline,
            reply,
        }),
        WorkerCmd::SceneReference {
            camera,
            zone,
            reply,
        } => pending.push(Pending::SceneReference {
            camera,
            zone,
            deadline,
            reply,
        }),
        WorkerCmd::ConfirmView { camera, reply } => {
            let answer = match analysers
                .find(|a| a.camera_id() == camera)
                .map(|a| a.confirm_view())
            {
                Some(true) => {
                    tracing::info!(camera = %camera, "View confirmed by command; the next usable frame becomes the reference view.");
                    Ok(())
                }
                Some(false) => Err(format!(
                    "camera `{camera}` has every health check off ([camera.health]); there is no view to confirm"
                )),
                None => Err(format!("camera `{camera}` is not analysed by this worker")),
            };
            let _ = reply.send(answer);
        }
        // The model worker keeps its shadow itself; a worker without one has none to stop.
        WorkerCmd::Shadow { reply, .. } => {
            let _ = reply.send(None);
        }
        // Swaps are the model worker's own business too; nothing to revert elsewhere.
        WorkerCmd::Swap { .. } | WorkerCmd::Revert { .. } => {}
        WorkerCmd::Examples {
            camera,
            op:
                ExampleOp::Label {
                    zone,
                    state,
                    source,
                    count,
                },
            reply,
        } => pending.push(Pending::Label {
            camera,
            zone,
            state,
            source,
            remaining: count.max(1),
            taken: Vec::new(),
            deadline,
            reply,
        }),
        WorkerCmd::Examples { camera, op, reply } => {
            let answer = match analysers.find(|a| a.camera_id() == camera) {
                Some(a) => examples_now(a, op),
                None => Err(ExampleError::NotFound(format!(
                    "camera `{camera}` is not analysed by this worker"
                ))),
            };
            let _ = reply.send(answer);
        }
    }
}

/// The example operations that need no frame.
fn examples_now(a: &mut Analyser, op: ExampleOp) -> Result<serde_json::Value, ExampleError> {
    match op {
        ExampleOp::List { zone } => a
            .list_examples(&zone)
            .map(|list| serde_json::json!({ "zone": zone, "examples": list })),
        ExampleOp::Misjudged { zone, source } => a
            .misjudged(&zone, &source)
            .map(|list| serde_json::json!({ "zone": zone, "examples": list })),
        ExampleOp::Remove { zone, id } => a
            .drop_example(&zone, &id)
            .map(|()| serde_json::json!({ "zone": zone, "removed": id })),
        // A label waits for a frame; a picture is the model worker's (it finds the people to mask).
        ExampleOp::Label { zone, .. } | ExampleOp::Picture { zone, .. } => {
            Err(ExampleError::Invalid(format!(
                "zone `{zone}`: this example needs the camera's model worker"
            )))
        }
    }
}
