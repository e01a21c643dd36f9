//! The zone-state examples' commands on the control side: `label` waits in the camera's worker for a
//! frame with nobody over the zone; `feedback` reads the event's evidence picture from the gateway's
//! archive (the clean frame when kept, else the annotated one) and hands it to the worker — a
//! `false_positive` then also makes the samples the rule lately judged an alarm normal examples, and labels
//! the live zone's next two clear frames normal; `examples` and
//! `example_remove` are answered by the worker at once. Each reply says what was added or removed, and the
//! audit log records every command with its reply.

use super::example_args::{ExampleRequest, Verdict};
use super::worker::{ExampleOp, WorkerCmd};
use super::{Control, send, wait};
use crate::control::command::CommandError;
use crate::incident::{ExampleError, Wanted};
use crossbeam_channel::bounded;
use std::path::{Path, PathBuf};

/// Event `event_id`'s evidence pictures in the archive `dir`, the clean one first.
fn evidence_files(dir: &Path, event_id: &str) -> [PathBuf; 2] {
    [
        dir.join(format!("evidence-{event_id}-clean.jpg")),
        dir.join(format!("evidence-{event_id}.jpg")),
    ]
}

/// Frames of the live zone a `false_positive` also takes as normal examples.
const LIVE_EXAMPLES: usize = 2;

fn refused(e: ExampleError) -> CommandError {
    CommandError::new(e.code(), e.to_string())
}

impl Control {
    pub(super) fn example_command(
        &self,
        request: &ExampleRequest,
    ) -> Result<serde_json::Value, CommandError> {
        let (camera, zone) = request.place();
        let zone = zone.to_string();
        let op = match request {
            ExampleRequest::Label { state, .. } => ExampleOp::Label {
                zone,
                state: Wanted::Named(state.clone()),
                source: "label".into(),
                count: 1,
            },
            ExampleRequest::List { .. } => ExampleOp::List { zone },
            ExampleRequest::Remove { id, .. } => ExampleOp::Remove {
                zone,
                id: id.clone(),
            },
            ExampleRequest::Feedback {
                event_id, verdict, ..
            } => ExampleOp::Picture {
                zone: zone.clone(),
                wanted: match verdict {
                    Verdict::FalsePositive => Wanted::Normal,
                    Verdict::Confirmed => Wanted::Alarm,
                },
                source: format!("feedback:{event_id}"),
                picture: self.evidence_picture(event_id)?,
            },
        };
        let mut answer = self.ask_examples(camera, op)?;
        // A false positive is a scene, not one picture: the samples the rule lately judged an alarm (the
        // very pictures it got wrong, passers-by and all) and, while the zone still shows it, the next
        // frames clear enough to judge are normal examples too.
        if let ExampleRequest::Feedback {
            event_id,
            verdict: Verdict::FalsePositive,
            ..
        } = request
        {
            let misjudged = ExampleOp::Misjudged {
                zone: request.place().1.to_string(),
                source: format!("feedback:{event_id}:misjudged"),
            };
            answer["misjudged"] = match self.ask_examples(camera, misjudged) {
                Ok(kept) => kept["examples"].clone(),
                Err(e) => serde_json::json!({ "error": e }),
            };
            let live = ExampleOp::Label {
                zone: request.place().1.to_string(),
                state: Wanted::Normal,
                source: format!("feedback:{event_id}:live"),
                count: LIVE_EXAMPLES,
            };
            answer["live"] = match self.ask_examples(camera, live) {
                Ok(taken) => taken["examples"].clone(),
                Err(e) => serde_json::json!({ "error": e }),
            };
        }
        answer["camera"] = camera.into();
        Ok(answer)
    }

    /// Send `op` to camera `camera`'s worker and wait for its answer (a label may wait the whole command
    /// wait for clear frames; the rest answer at once).
    fn ask_examples(&self, camera: &str, op: ExampleOp) -> Result<serde_json::Value, CommandError> {
        let worker = self.owner(camera)?;
        let (reply, answer) = bounded(1);
        send(
            &worker,
            WorkerCmd::Examples {
                camera: camera.to_string(),
                op,
                reply,
            },
        )?;
        wait(&answer, self.frame_wait + std::time::Duration::from_secs(2))?.map_err(refused)
    }

    /// Event `event_id`'s evidence picture, decoded, from the gateway's archive.
    fn evidence_picture(&self, event_id: &str) -> Result<image::RgbImage, CommandError> {
        let dir = {
            let running = self.running.lock().expect("running config lock");
            running.config.storage.state_dir.get_ref().join("evidence")
        };
        let files = evidence_files(&dir, event_id);
        let Some(file) = files.iter().find(|f| f.is_file()) else {
            return Err(CommandError::new(
                "not_found",
                format!(
                    "no evidence of event `{event_id}` is kept on this gateway (it keeps storage.evidence_max_mb and evidence_max_age_h of it); label the zone instead"
                ),
            ));
        };
        let bytes = std::fs::read(file).map_err(|e| {
            CommandError::new(
                "failed",
                format!("{} could not be read: {e}", file.display()),
            )
        })?;
        image::load_from_memory(&bytes)
            .map(|i| i.to_rgb8())
            .map_err(|e| {
                CommandError::new(
                    "failed",
                    format!("{} is not a readable JPEG: {e}", file.display()),
                )
            })
    }
}
