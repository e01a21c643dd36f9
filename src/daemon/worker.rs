//! A model's worker thread: detect on frames from its cameras, run each camera's analyser, store what it
//! publishes, and carry out commands that wait for a camera's next frame.

use super::store;
use crate::base::Shutdown;
use crate::control::{Pending, VERIFY_SAMPLES, Verified, VerifyAnswer, WorkerCmd, accept};
use crate::detect::Detector;
use crate::incident::{Analyser, EvidenceArchive};
use crate::ingest::{CameraStats, FrameQueue};
use crate::uplink::OutboxWriter;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One model's worker: detect on frames from its cameras, run each camera's rules, emit events, and
/// carry out commands for its cameras.
pub(super) struct ModelWorker {
    pub(super) detector: Detector,
    /// Each camera's rules and its counters.
    pub(super) analysers: HashMap<String, (Analyser, Arc<CameraStats>)>,
    pub(super) queue: FrameQueue,
    pub(super) commands: crossbeam_channel::Receiver<WorkerCmd>,
    /// Commands waiting for a camera's next frame.
    pub(super) pending: Vec<Pending>,
    /// How long a command waits for a frame (`uplink.command_wait_s`).
    pub(super) frame_wait: Duration,
    pub(super) outbox: OutboxWriter,
    pub(super) archive: Option<Arc<Mutex<EvidenceArchive>>>,
    pub(super) shutdown: Shutdown,
}

impl ModelWorker {
    /// Run until shutdown; hands the analysers back (a reload may keep them).
    pub(super) fn run(mut self) -> HashMap<String, Analyser> {
        let rx = self.queue.receiver().clone();
        while !self.shutdown.is_triggered() {
            Pending::expire(&mut self.pending, Instant::now());
            crossbeam_channel::select! {
                recv(self.commands) -> cmd => {
                    if let Ok(cmd) = cmd {
                        accept(cmd, self.analysers.values_mut().map(|(a, _)| a), &mut self.pending, self.frame_wait);
                    }
                }
                recv(rx) -> frame => {
                    if let Ok(frame) = frame {
                        self.analyse(&frame);
                    }
                }
                default(Duration::from_millis(200)) => {}
            }
        }
        self.analysers
            .into_iter()
            .map(|(id, (a, _))| (id, a))
            .collect()
    }

    fn analyse(&mut self, frame: &crate::base::Frame) {
        let started = Instant::now();
        let output = match self.detector.run(&frame.view()) {
            Ok(o) => o,
            Err(error) => {
                tracing::warn!(camera = %frame.camera, %error, "Inference failed on a frame.");
                return;
            }
        };
        let (detections, density) = (&output.detections, output.density.as_ref());
        let ms = started.elapsed().as_secs_f32() * 1000.0;
        tracing::debug!(camera = %frame.camera, seq = frame.seq, objects = detections.len(), ms, "Frame analysed.");
        let Some((analyser, stats)) = self.analysers.get_mut(&*frame.camera) else {
            return;
        };
        stats.record_analysis(ms);
        // While the flash is slow, frames queue up upstream and the oldest are dropped there.
        for publication in analyser.analyse_with(frame, detections, density) {
            store(&self.outbox, self.archive.as_ref(), &publication);
        }
        self.serve_pending(frame, detections);
    }

    /// Commands that waited for this camera's frame.
    fn serve_pending(&mut self, frame: &crate::base::Frame, detections: &[crate::base::Detection]) {
        let Some((analyser, _)) = self.analysers.get_mut(&*frame.camera) else {
            return;
        };
        let mut still = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            if p.camera() != &*frame.camera {
                still.push(p);
                continue;
            }
            match p {
                Pending::Snapshot { reply, .. } => {
                    let _ = reply.send(
                        analyser
                            .snapshot(frame, detections)
                            .map_err(|e| e.to_string()),
                    );
                }
                Pending::SceneReference { zone, reply, .. } => {
                    let _ = reply.send(
                        analyser
                            .retake_reference(&zone, frame)
                            .map_err(|e| e.to_string()),
                    );
                }
                Pending::Verify {
                    camera,
                    incident_id,
                    request_id,
                    deadline,
                    mut samples,
                    mut present_in,
                    reply,
                } => {
                    let Some(present) = analyser.presence_of(&incident_id) else {
                        let _ = reply.send(VerifyAnswer::Failed(format!(
                            "incident `{incident_id}` resolved on its own while it was being verified"
                        )));
                        continue;
                    };
                    samples += 1;
                    present_in += usize::from(present);
                    if samples < VERIFY_SAMPLES {
                        still.push(Pending::Verify {
                            camera,
                            incident_id,
                            request_id,
                            deadline,
                            samples,
                            present_in,
                            reply,
                        });
                        continue;
                    }
                    let still_present = 2 * present_in > samples;
                    let pubs = analyser.conclude_verify(
                        &incident_id,
                        still_present,
                        &request_id,
                        frame,
                        detections,
                    );
                    let event_ids = pubs.iter().map(|p| p.event.event_id.clone()).collect();
                    let evidence = pubs
                        .first()
                        .map(|p| p.event.evidence.clone())
                        .unwrap_or_default();
                    for p in &pubs {
                        store(&self.outbox, self.archive.as_ref(), p);
                    }
                    let _ = reply.send(VerifyAnswer::Done(Verified {
                        incident_id,
                        camera,
                        result: if still_present {
                            "still_present"
                        } else {
                            "cleared"
                        },
                        samples,
                        present_in,
                        event_ids,
                        evidence,
                    }));
                }
            }
        }
        self.pending = still;
    }
}
