//! One thread per camera: connect, stream, and on any failure wait a jittered backoff and connect again.
//! Nothing a camera does can end this loop except shutdown. The delay stays short (a camera that is back
//! is seen within seconds, even after a long outage — a pole camera costs nothing to retry), except when
//! the camera refuses the login: then it is retried only every few minutes and shown as `unauthorized`,
//! because real cameras lock the account after a few failed logins.

use super::pipeline::{IngestError, Timeouts, run_connection};
use super::queue::FrameQueue;
use super::source::{CameraSource, CameraState, CameraStats, StreamInfo};
use crate::base::{Backoff, Shutdown, redact_url};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The running camera thread.
pub struct CameraHandle {
    pub id: Arc<str>,
    pub stats: Arc<CameraStats>,
    thread: std::thread::JoinHandle<()>,
}

impl CameraHandle {
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// Start the supervisor thread of one camera; frames go into `queue`, counts into `stats` (kept across
/// restarts of the same camera, so its counters only ever grow).
pub fn spawn_camera(
    src: CameraSource,
    queue: FrameQueue,
    stats: Arc<CameraStats>,
    shutdown: Shutdown,
) -> CameraHandle {
    stats.set_state(CameraState::Connecting);
    *stats.last_error.lock().expect("stats lock") = None;
    let id = src.id.clone();
    let thread_stats = stats.clone();
    let thread = std::thread::Builder::new()
        .name(format!("cam-{}", src.id))
        .spawn(move || supervise(&src, &queue, &thread_stats, &shutdown))
        .expect("spawn camera thread");
    CameraHandle { id, stats, thread }
}

fn supervise(
    src: &CameraSource,
    queue: &FrameQueue,
    stats: &Arc<CameraStats>,
    shutdown: &Shutdown,
) {
    let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
    let mut refused = Backoff::new(LOGIN_RETRY_FIRST, LOGIN_RETRY_MAX);
    let mut rng = rand::rng();
    let url = redact_url(&src.url);
    let timeouts = Timeouts::for_sampling(src.sampling);
    // `auto` starts with TCP and stays with UDP once the camera offered no stream over TCP.
    let mut src = src.clone();
    let src = &mut src;
    while !shutdown.is_triggered() {
        stats.set_state(CameraState::Connecting);
        tracing::info!(camera = %src.id, %url, decoder = src.template.name, "Connecting to camera.");
        let mut on_first = |info: StreamInfo| {
            backoff.reset();
            refused.reset();
            stats.set_state(CameraState::Streaming);
            tracing::info!(camera = %src.id, width = info.width, height = info.height, after_ms = info.first_frame_after.as_millis() as u64, "Camera streaming.");
            *stats.stream.lock().expect("stats lock") = Some(info);
        };
        match run_connection(src, queue, stats, shutdown, timeouts, &mut on_first) {
            Ok(()) => break,
            Err(error) => {
                if error.wrong_transport()
                    && let Some(next) = src.transport.fallback()
                {
                    tracing::warn!(camera = %src.id, %url, "The camera offers no stream over TCP; falling back to UDP (set transport = \"udp\" for this camera to say so, or \"tcp\" to never fall back).");
                    src.transport = next;
                    continue;
                }
                let unauthorized = error.is_unauthorized();
                let delay = if unauthorized {
                    stats.set_state(CameraState::Unauthorized);
                    refused.next_delay(&mut rng)
                } else {
                    stats.set_state(CameraState::Down);
                    backoff.next_delay(&mut rng)
                };
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
                log_failure(src, &url, &error, delay);
                // Shown by /healthz and the console: the location redacted as in the log.
                *stats.last_error.lock().expect("stats lock") =
                    Some(error.to_string().replace(&src.url, &url));
                if shutdown.sleep_or_stop(delay) {
                    break;
                }
            }
        }
    }
    stats.set_state(CameraState::Stopped);
}

/// Reconnect delays after a failure: from half a second, never more than a few seconds.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(4);
/// After a refused login: a minute, growing to a quarter of an hour.
const LOGIN_RETRY_FIRST: Duration = Duration::from_secs(60);
const LOGIN_RETRY_MAX: Duration = Duration::from_secs(900);

fn log_failure(src: &CameraSource, url: &str, error: &IngestError, delay: Duration) {
    // GStreamer's own messages may quote the location; never let credentials through.
    let message = error.to_string().replace(&src.url, url);
    let details = match error {
        IngestError::Bus { debug: Some(d), .. } => d.replace(&src.url, url),
        _ => String::new(),
    };
    if error.wrong_transport() {
        tracing::warn!(camera = %src.id, error = %message, transport = ?src.transport, retry_in_ms = delay.as_millis() as u64, "The camera offers no stream over this transport: set transport = \"udp\" (or \"tcp\") for this camera.");
    } else if error.is_unauthorized() {
        tracing::error!(camera = %src.id, error = %message, retry_in_s = delay.as_secs(), "Camera refused the login (401): check its username and password (password_file / password_env). Retried only every few minutes: cameras lock the account after repeated failures.");
    } else {
        tracing::warn!(camera = %src.id, error = %message, %details, retry_in_ms = delay.as_millis() as u64, "Camera stream lost; reconnecting.");
    }
}
