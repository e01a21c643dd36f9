//! One-shot camera probe for `streetsight check` and `streetsight snapshot`: connect once through the same
//! pipeline the daemon uses (no retries), wait for the first frame, count frames for a moment to measure the
//! frame rate, and hand back the first frame.

use super::pipeline::{IngestError, Timeouts, run_connection};
use super::queue::FrameQueue;
use super::source::{CameraSource, CameraStats, RtspTransport, Sampling};
use crate::base::{Frame, Shutdown};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one connection to a camera showed.
#[derive(Debug)]
pub struct Probe {
    pub width: usize,
    pub height: usize,
    /// Time from starting the connection to the first decoded frame.
    pub first_frame_after: Duration,
    /// Decoded frames per second measured over `measure` (every frame decoded, not only the sampled ones).
    pub fps: Option<f64>,
    /// The video codec the camera announced (RTP encoding name, e.g. `H264`).
    pub codec: Option<String>,
    /// The transport the frames came over (`auto` tries TCP, then UDP).
    pub transport: RtspTransport,
    /// The first frame decoded (from the connection's first keyframe on).
    pub frame: Frame,
}

/// Connect to `src` once (with `auto` transport: over TCP, and over UDP if the camera offers no stream over
/// TCP). Fails with the connection's error, or `Stalled` when no frame arrives within `first_frame`. With
/// `measure` zero, returns right after the first frame without a frame rate.
pub fn probe(
    src: &CameraSource,
    first_frame: Duration,
    measure: Duration,
) -> Result<Probe, IngestError> {
    match probe_once(src, first_frame, measure) {
        Err(e) if e.wrong_transport() => match src.transport.fallback() {
            Some(next) => probe_once(
                &CameraSource {
                    transport: next,
                    ..src.clone()
                },
                first_frame,
                measure,
            ),
            None => Err(e),
        },
        other => other,
    }
}

fn probe_once(
    src: &CameraSource,
    first_frame: Duration,
    measure: Duration,
) -> Result<Probe, IngestError> {
    let transport = src.transport;
    let mut src = src.clone();
    // Decode every frame from the first keyframe on: the frame rate is the camera's.
    src.sampling = Sampling::Interval { interval_ms: 0 };
    let queue = FrameQueue::new(1);
    let stats = Arc::new(CameraStats::default());
    let shutdown = Shutdown::new();
    let timeouts = Timeouts {
        first_frame,
        stall: first_frame.max(Duration::from_secs(5)),
    };
    let (tx, rx) = crossbeam_channel::bounded(1);
    let worker = {
        let (queue, stats, shutdown) = (queue.clone(), stats.clone(), shutdown.clone());
        std::thread::Builder::new()
            .name(format!("probe-{}", src.id))
            .spawn(move || {
                let mut on_first = |info| {
                    let _ = tx.try_send((info, Instant::now()));
                };
                run_connection(&src, &queue, &stats, &shutdown, timeouts, &mut on_first)
            })
            .map_err(|e| IngestError::Build(format!("cannot start a probe thread: {e}")))?
    };
    let finish = |shutdown: &Shutdown, worker: std::thread::JoinHandle<_>| {
        shutdown.trigger();
        worker
            .join()
            .unwrap_or_else(|_| Err(IngestError::Build("probe thread panicked".into())))
    };
    // The connection thread ends on its own with an error, or reports the first frame.
    let (info, first_at) = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(got) => break got,
            Err(_) if worker.is_finished() => {
                return Err(finish(&shutdown, worker)
                    .err()
                    .unwrap_or(IngestError::Stalled(first_frame)));
            }
            Err(_) => {}
        }
    };
    // Every frame the camera delivered counts: the first one waits in the queue (holding the camera's
    // analysis slot), so the frames after it are skipped rather than converted.
    let counted_from = stats.frames_delivered();
    let mut fps = None;
    if !measure.is_zero() {
        std::thread::sleep(measure.saturating_sub(first_at.elapsed()));
        let frames = stats.frames_delivered() - counted_from;
        fps = Some(frames as f64 / first_at.elapsed().as_secs_f64());
    }
    let frame = queue.receiver().try_recv();
    let ended = finish(&shutdown, worker);
    let frame = match (frame, ended) {
        (Ok(f), _) => f,
        (Err(_), Err(e)) => return Err(e),
        (Err(_), Ok(())) => return Err(IngestError::Stalled(first_frame)),
    };
    Ok(Probe {
        width: info.width,
        height: info.height,
        first_frame_after: info.first_frame_after,
        fps,
        codec: info.codec,
        transport,
        frame,
    })
}
