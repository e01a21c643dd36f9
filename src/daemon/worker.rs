//! A model's worker thread: detect on frames from its cameras, run each camera's analysis, and carry out
//! commands that wait for a camera's next frame. What the analysis leaves to publish (evidence images,
//! events, the outbox append) goes to the worker's evidence thread, in order, so JPEG encoding and the
//! flash never hold up inference.

use crate::base::Shutdown;
use crate::control::{
    ExampleOp, ModelNews, Pending, Swap, Swapped, Verified, VerifyAnswer, WorkerCmd, accept,
};
use crate::detect::Detector;
use crate::detect::probation::{Probation, Verdict};
use crate::incident::{
    Analyser, CaseRecord, EvidenceJob, ModelInfo, Publication, ResolveReason, SceneBoard,
    VERIFY_SAMPLES, still_present,
};
use crate::ingest::{CameraStats, FrameQueue};
use crossbeam_channel::{Sender, bounded};
use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Jobs waiting for the evidence thread. Each holds one frame's picture (≈ 6 MB at 1080p), so this bounds
/// memory; when it is full the worker waits (an event is never dropped) and frames queue upstream, where
/// the oldest are dropped.
const EVIDENCE_QUEUE: usize = 4;

/// What to do with a job's events once they are stored (a verify's reply).
type Then = Box<dyn FnOnce(&[Publication]) + Send>;

/// A worker's evidence thread: renders evidence, makes events and appends them to the outbox (committed
/// before the next job starts), in the order the analysis produced them.
pub(super) struct Evidence {
    tx: Option<Sender<(Option<EvidenceJob>, Option<Then>)>>,
    thread: Option<JoinHandle<()>>,
}

impl Evidence {
    pub(super) fn start(sink: super::sink::Sink) -> Self {
        let (tx, rx) = bounded::<(Option<EvidenceJob>, Option<Then>)>(EVIDENCE_QUEUE);
        let thread = std::thread::Builder::new()
            .name("evidence".into())
            .spawn(move || {
                for (job, then) in rx {
                    // No job: a marker whose `then` runs once every job before it is stored.
                    let Some(job) = job else {
                        if let Some(then) = then {
                            then(&[]);
                        }
                        continue;
                    };
                    let camera = job.publisher.camera.id.clone();
                    // A job that panics (an encoder bug) costs its own events, not every later one.
                    let publications =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run()))
                            .unwrap_or_else(|_| {
                                tracing::error!(camera = %camera, "Evidence job failed; its events are lost.");
                                Vec::new()
                            });
                    for p in &publications {
                        sink.store(p);
                    }
                    if let Some(then) = then {
                        then(&publications);
                    }
                }
            })
            .expect("spawn evidence thread");
        Self {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    fn send(&self, job: EvidenceJob, then: Option<Then>) {
        if let Some(tx) = &self.tx
            && tx.send((Some(job), then)).is_err()
        {
            tracing::error!("Evidence thread is gone; an event could not be stored.");
        }
    }

    /// Wait until every job queued so far is stored (the thread goes on).
    fn flush(&self) {
        let Some(tx) = &self.tx else {
            return;
        };
        let (done, stored) = bounded::<()>(1);
        let then: Then = Box::new(move |_: &[Publication]| {
            let _ = done.send(());
        });
        if tx.send((None, Some(then))).is_ok() {
            let _ = stored.recv();
        }
    }

    /// Let every queued job finish (their events are in the outbox when this returns).
    fn finish(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("Evidence thread ended abnormally.");
        }
    }
}

/// Camera `id`'s health after its last frame.
fn analyser_health(
    analysers: &HashMap<String, (Analyser, Arc<CameraStats>)>,
    id: &str,
) -> Option<crate::health::HealthReport> {
    analysers.get(id).and_then(|(a, _)| a.health().cloned())
}

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
    pub(super) evidence: Evidence,
    /// Where the cameras' scene-zone reference states are shown, and whom to tell when one changes.
    pub(super) scenes: SceneBoard,
    /// Where the cameras' health is shown (status, telemetry, `/healthz`, `/metrics`).
    pub(super) health: crate::incident::HealthBoard,
    pub(super) status_changed: Arc<tokio::sync::Notify>,
    pub(super) shutdown: Shutdown,
    /// A candidate model in shadow beside this worker's model, and where its report is shown.
    pub(super) shadow: Option<crate::incident::Shadow>,
    pub(super) shadows: crate::incident::ShadowBoard,
    /// Where the installer's console finds each camera's latest frame (encoded only while it watches).
    pub(super) live: crate::incident::LiveBoard,
    /// Which model this is, which of its workers, and which version of it runs (`configured` or an
    /// installed version's name).
    pub(super) model: String,
    pub(super) index: usize,
    pub(super) version: String,
    /// A version activated lately, watched until it has shown it works, and the one to go back to.
    pub(super) probation: Option<OnProbation>,
    /// Where case records are read back and resolutions stored when a version takes over.
    pub(super) sink: super::sink::Sink,
    /// The running configuration and the suppressions, to build analysers when going back.
    pub(super) running: crate::control::RunningConfig,
    pub(super) suppressions: crate::incident::Suppressions,
    /// Where probation's outcome is told.
    pub(super) news: Sender<ModelNews>,
    /// The embedder sessions the cameras' zone-state rules use, loaded when first wanted.
    pub(super) embedders: HashMap<String, crate::base::SharedEmbedder>,
}

/// A version on probation in one worker, and the version before it (kept loaded: going back is a swap).
pub(super) struct OnProbation {
    watch: Probation,
    previous: Detector,
    previous_version: String,
}

impl ModelWorker {
    /// Run until shutdown; hands the analysers back (a reload may keep them).
    pub(super) fn run(mut self) -> HashMap<String, Analyser> {
        let rx = self.queue.receiver().clone();
        self.equip();
        let cameras: Vec<String> = self.analysers.keys().cloned().collect();
        for id in &cameras {
            self.show_scene_states(id);
        }
        while !self.shutdown.is_triggered() {
            Pending::expire(&mut self.pending, Instant::now());
            crossbeam_channel::select! {
                recv(self.commands) -> cmd => match cmd {
                    Ok(WorkerCmd::Shadow { setup, reply }) => {
                        let _ = reply.send(self.replace_shadow(setup.map(|s| crate::incident::Shadow::new(*s))));
                    }
                    Ok(WorkerCmd::Swap { swap, reply }) => {
                        let _ = reply.send(self.swap(*swap));
                    }
                    Ok(WorkerCmd::Revert { reason }) => self.revert(reason, false),
                    Ok(WorkerCmd::Examples { camera, op: ExampleOp::Picture { zone, wanted, source, picture }, reply }) => {
                        let _ = reply.send(self.example_from(&camera, &zone, wanted, &source, &picture));
                    }
                    Ok(cmd) => accept(cmd, self.analysers.values_mut().map(|(a, _)| a), &mut self.pending, self.frame_wait),
                    Err(_) => {}
                },
                recv(rx) -> frame => {
                    if let Ok(frame) = frame {
                        self.analyse(&frame);
                    }
                }
                default(Duration::from_millis(200)) => {}
            }
        }
        // A shadow ends with its worker (a reload starts workers afresh).
        self.replace_shadow(None);
        // Whatever the analysis handed on is stored before the analysers go back (a reload or shutdown
        // then resolves their incidents after these events, not before).
        self.evidence.finish();
        self.analysers
            .into_iter()
            .map(|(id, (a, _))| (id, a))
            .collect()
    }

    /// Detect on `frame`; a version on probation that faults on it is replaced by the one before, which
    /// detects on the same frame (no frame goes unanalysed for it).
    fn infer(&mut self, frame: &crate::base::Frame) -> Option<(crate::detect::Output, f32)> {
        let started = Instant::now();
        let output = self.detector.run(frame.picture());
        let ms = started.elapsed().as_secs_f32() * 1000.0;
        let error = output.as_ref().err().map(ToString::to_string);
        if let Some(e) = &error {
            tracing::warn!(camera = %frame.camera, error = %e, "Inference failed on a frame.");
        }
        let verdict = self.probation.as_mut().map(|p| {
            let seen = error.as_deref().map_or(Ok(ms), Err);
            p.watch.observe(Instant::now(), seen)
        });
        match verdict {
            Some(Verdict::Fault(reason)) => {
                self.revert(reason, true);
                return self.infer(frame);
            }
            Some(Verdict::Passed) => {
                self.probation = None;
                tracing::info!(model = %self.model, version = %self.version, "Model version passed its probation.");
                let _ = self.news.send(ModelNews::Passed {
                    model: self.model.clone(),
                    worker: self.index,
                    version: self.version.clone(),
                });
            }
            _ => {}
        }
        output.ok().map(|o| (o, ms))
    }

    fn analyse(&mut self, frame: &crate::base::Frame) {
        let Some((output, ms)) = self.infer(frame) else {
            return;
        };
        let (detections, density) = (&output.detections, output.density.as_ref());
        tracing::debug!(camera = %frame.camera, seq = frame.seq, objects = detections.len(), ms, "Frame analysed.");
        let Some((analyser, stats)) = self.analysers.get_mut(&*frame.camera) else {
            return;
        };
        stats.record_analysis(ms);
        self.live
            .offer(frame, detections, &self.detector.manifest.labels);
        let mut took_reference = false;
        if let Some(job) = analyser.defer(frame, detections, density) {
            took_reference = !job.references.is_empty();
            if let Some(shadow) = &mut self.shadow {
                shadow.count_active(&frame.camera, &job.drafts);
            }
            self.evidence.send(job, None);
        }
        // The candidate runs after the active model's events are on their way, never before them.
        if let Some(shadow) = &mut self.shadow
            && shadow.observe(frame, detections, &self.detector.manifest.labels)
        {
            let report = shadow.report();
            self.shadows
                .lock()
                .expect("shadow board lock")
                .insert(shadow.board_key(), report);
        }
        if took_reference {
            self.show_scene_states(&frame.camera);
        }
        if let Some(report) = analyser_health(&self.analysers, &frame.camera) {
            let mut board = self.health.lock().expect("health board lock");
            let changed = board
                .get(&*frame.camera)
                .is_none_or(|old| old.conditions != report.conditions);
            board.insert(frame.camera.to_string(), report);
            if changed {
                self.status_changed.notify_one();
            }
        }
        self.serve_pending(frame, detections);
    }

    /// Take over `swap`'s version between two frames. Returns how long no frame was analysed.
    fn swap(&mut self, swap: Swap) -> Swapped {
        let started = Instant::now();
        let Swap {
            detector,
            version,
            analysers,
            probation,
        } = swap;
        let continued = self.take_over(analysers);
        let old = std::mem::replace(&mut self.detector, detector);
        let old_version = std::mem::replace(&mut self.version, version);
        let gap_ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(model = %self.model, worker = self.index, from = %old_version, to = %self.version, gap_ms, continued = continued.len(), "Model version swapped.");
        // Replacing a version on probation drops its fallback too (a rollback, or another activation).
        self.probation = probation.map(|(length, budget_ms)| OnProbation {
            watch: Probation::new(Instant::now(), length, budget_ms),
            previous: old,
            previous_version: old_version,
        });
        Swapped {
            worker: self.index,
            gap_ms,
            continued,
        }
    }

    /// `fresh` analysers take over this worker's cameras: the events in hand are stored first, then each
    /// camera's open cases are continued from their records (same incident ids). A case the new analyser
    /// cannot continue (its rule needs a label the version lacks) ends `config_changed`. Returns the ids of
    /// the incidents that go on.
    fn take_over(&mut self, mut fresh: HashMap<String, Analyser>) -> Vec<String> {
        self.evidence.flush();
        let mut by_camera: HashMap<String, Vec<CaseRecord>> = HashMap::new();
        for r in self.sink.outbox.cases() {
            by_camera.entry(r.camera.clone()).or_default().push(r);
        }
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut continued = Vec::new();
        for (id, (analyser, _)) in self.analysers.iter_mut() {
            let Some(mut next) = fresh.remove(id) else {
                continue;
            };
            let records = by_camera.remove(id).unwrap_or_default();
            let open: Vec<String> = records
                .iter()
                .filter(|r| r.is_open())
                .map(|r| r.incident_id.clone())
                .collect();
            let left = next.resume(records, now, wall);
            for r in left {
                if r.is_open() {
                    tracing::info!(camera = %id, incident = %r.incident_id, "Open incident ended: the new model version has no rule for it.");
                    self.sink.store(&r.resolution(
                        ResolveReason::ConfigChanged,
                        wall,
                        &next.wording(),
                    ));
                } else {
                    self.sink.outbox.forget(&r);
                }
            }
            continued.extend(open.into_iter().filter(|i| next.has_open_incident(i)));
            *analyser = next;
        }
        self.equip();
        continued
    }

    /// Go back from the version on probation to the one before it, for `reason`; `found_here` when this
    /// worker saw the fault (it tells the control side, which brings the model's other workers back too).
    fn revert(&mut self, reason: String, found_here: bool) {
        let Some(p) = self.probation.take() else {
            return;
        };
        let info = ModelInfo::new(&p.previous.manifest, &p.previous.sha256);
        let running = self.running.lock().expect("running config lock").clone();
        let mine = |id: &str| self.analysers.contains_key(id);
        let analysers = crate::plan::analysers(&running.config, mine, &info, &self.suppressions);
        let from = self.version.clone();
        let to = p.previous_version.clone();
        tracing::warn!(model = %self.model, worker = self.index, %from, %to, %reason, "Model version rolled back.");
        self.swap(Swap {
            detector: p.previous,
            version: p.previous_version,
            analysers,
            probation: None,
        });
        if found_here {
            let _ = self.news.send(ModelNews::RolledBack {
                model: self.model.clone(),
                worker: self.index,
                from,
                to,
                reason,
            });
        }
    }

    /// Start, replace or stop the shadow; the report of the one that ran, if any. The board shows the
    /// running one only.
    fn replace_shadow(
        &mut self,
        next: Option<crate::incident::Shadow>,
    ) -> Option<crate::incident::ShadowReport> {
        let old = std::mem::replace(&mut self.shadow, next);
        let mut board = self.shadows.lock().expect("shadow board lock");
        let ended = old.map(|s| {
            board.remove(&s.board_key());
            s.report()
        });
        if let Some(s) = &self.shadow {
            board.insert(s.board_key(), s.report());
        }
        ended
    }

    /// Publish camera `id`'s scene-zone reference states if they changed. Called when the worker starts and
    /// when a reference is taken (by the rule or a command) — the only moments they change — not per frame.
    fn show_scene_states(&self, id: &str) {
        let Some((analyser, _)) = self.analysers.get(id) else {
            return;
        };
        let states = analyser.scene_states();
        let mut board = self.scenes.lock().expect("scene board lock");
        if board.get(id) != Some(&states) {
            board.insert(id.to_string(), states);
            self.status_changed.notify_one();
        }
    }

    /// Commands that waited for this camera's frame.
    fn serve_pending(&mut self, frame: &crate::base::Frame, detections: &[crate::base::Detection]) {
        let Some((analyser, _)) = self.analysers.get_mut(&*frame.camera) else {
            return;
        };
        let mut still = Vec::new();
        let mut retaken = false;
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
                    let taken = analyser.retake_reference(&zone, frame);
                    retaken |= taken.is_ok();
                    match taken {
                        // Written by the evidence thread after any reference queued before it, and
                        // answered once it is on disk.
                        Ok(Some(image)) => self.evidence.send(
                            analyser.reference_job(image),
                            Some(Box::new(move |_: &[Publication]| {
                                let _ = reply.send(Ok(()));
                            })),
                        ),
                        Ok(None) => {
                            let _ = reply.send(Ok(()));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e.to_string()));
                        }
                    }
                }
                Pending::Label {
                    camera,
                    zone,
                    state,
                    source,
                    mut remaining,
                    mut taken,
                    deadline,
                    reply,
                } => {
                    let view = frame.view();
                    let answer = analyser.add_example(
                        &zone,
                        state.clone(),
                        &source,
                        &view,
                        (detections, true),
                    );
                    match answer {
                        // Somebody is in the way: the next frame may be clear.
                        Err(crate::incident::ExampleError::Occluded(_)) => {}
                        Ok(example) => {
                            taken.push(example);
                            remaining -= 1;
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                            continue;
                        }
                    }
                    if remaining == 0 {
                        let _ = reply.send(Ok(crate::control::labelled(&zone, &taken)));
                    } else {
                        still.push(Pending::Label {
                            camera,
                            zone,
                            state,
                            source,
                            remaining,
                            taken,
                            deadline,
                            reply,
                        });
                    }
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
                    let still_present = still_present(samples, present_in);
                    // A zone-state case a fresh look found cleared: the zone as it is now is its normal state
                    // (taken as it is, like a dispatcher's feedback picture: the look was asked for now).
                    let example = (!still_present)
                        .then(|| analyser.zone_state_zone(&incident_id))
                        .flatten()
                        .and_then(|zone| {
                            let source = format!("verify:{incident_id}");
                            let normal = crate::incident::Wanted::Normal;
                            analyser
                                .add_example(&zone, normal, &source, &frame.view(), (detections, false))
                                .map_err(|error| tracing::info!(camera = %camera, %zone, %error, "No example taken from the cleared verify."))
                                .ok()
                        })
                        .map(|e| e.id);
                    let job = analyser.defer_verify(
                        &incident_id,
                        still_present,
                        &request_id,
                        frame,
                        detections,
                    );
                    let answer = move |pubs: &[Publication]| {
                        let _ = reply.send(VerifyAnswer::Done(Verified {
                            event_ids: pubs.iter().map(|p| p.event.event_id.clone()).collect(),
                            evidence: pubs
                                .first()
                                .map(|p| p.event.evidence.clone())
                                .unwrap_or_default(),
                            incident_id,
                            camera,
                            result: if still_present {
                                "still_present"
                            } else {
                                "cleared"
                            },
                            samples,
                            present_in,
                            example,
                        }));
                    };
                    match job {
                        // Answered once its events are stored, so the reply never names an event the
                        // outbox does not hold.
                        Some(job) => self.evidence.send(job, Some(Box::new(answer))),
                        None => answer(&[]),
                    }
                }
            }
        }
        self.pending = still;
        if retaken {
            self.show_scene_states(&frame.camera);
        }
    }
}
