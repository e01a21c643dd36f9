//! One thread per camera: connect, stream, and on any failure wait a jittered backoff and connect again.
//! Nothing a camera does can end this loop except shutdown.

use super::backoff::Backoff;
use super::frame::FrameQueue;
use super::pipeline::{IngestError, StreamInfo, Timeouts, run_connection};
use super::template::DecoderTemplate;
use crate::config::{CameraConfig, Codec, RtspTransport, Sampling};
use crate::ops::{Shutdown, redact_url};
use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A password that does not print itself.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Everything needed to open a camera, secrets resolved.
#[derive(Debug, Clone)]
pub struct CameraSource {
    pub id: Arc<str>,
    pub url: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub transport: RtspTransport,
    pub codec: Codec,
    pub template: DecoderTemplate,
    pub sampling: Sampling,
}

impl CameraSource {
    /// Resolve the password (file or environment) and the decoder template, falling back to software when
    /// the template's decoder element is not installed on this gateway.
    pub fn from_config(cam: &CameraConfig, base_dir: &Path) -> Result<Self, String> {
        let password = if let Some(p) = &cam.password_file {
            let path = if p.is_absolute() {
                p.clone()
            } else {
                base_dir.join(p)
            };
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "camera `{}`: cannot read password_file {}: {e}",
                    cam.id,
                    path.display()
                )
            })?;
            Some(Secret(text.trim_end_matches(['\r', '\n']).to_string()))
        } else if let Some(var) = &cam.password_env {
            Some(Secret(std::env::var(var).map_err(|_| {
                format!(
                    "camera `{}`: environment variable `{var}` is not set",
                    cam.id
                )
            })?))
        } else {
            None
        };
        let mut template = DecoderTemplate::find(&cam.decoder)
            .ok_or_else(|| format!("camera `{}`: unknown decoder `{}`", cam.id, cam.decoder))?;
        let factory = template.decoder_factory(cam.codec).to_string();
        if gstreamer::ElementFactory::find(&factory).is_none() && template.name != "software" {
            tracing::warn!(camera = %cam.id, decoder = %factory, "Decoder element is not installed; falling back to software decoding.");
            template = DecoderTemplate::find("software").expect("software template is compiled in");
        }
        Ok(CameraSource {
            id: cam.id.as_str().into(),
            url: cam.url.get_ref().clone(),
            username: cam.username.clone(),
            password,
            transport: cam.transport,
            codec: cam.codec,
            template,
            sampling: cam.sampling,
        })
    }
}

/// Connection state of a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    Connecting,
    Streaming,
    Down,
    Stopped,
}

/// The running cameras' ids and counters, shared with status, telemetry and the health endpoint.
pub type CameraList = Arc<Mutex<Vec<(Arc<str>, Arc<CameraStats>)>>>;

/// Counters a camera's thread updates and telemetry reads.
#[derive(Debug, Default)]
pub struct CameraStats {
    pub frames_in: AtomicU64,
    pub frames_dropped: AtomicU64,
    /// Frames not decoded (keyframe sampling) or not converted (interval sampling) because the camera's
    /// previous frame was still waiting for analysis: how an overloaded gateway samples less.
    pub frames_skipped: AtomicU64,
    /// Frames of this camera queued for or in analysis (see `Frame::slot`); a counter, not a flag, because a
    /// decoder with output delay can have two in flight.
    pub in_analysis: std::sync::atomic::AtomicU32,
    pub reconnects: AtomicU64,
    /// Frames the model worker analysed.
    pub frames_analysed: AtomicU64,
    /// Recent per-frame analysis times (detect), milliseconds, newest last; at most 256.
    pub analysis_ms: crate::ops::Recent,
    state: AtomicU8,
    pub last_error: Mutex<Option<String>>,
    pub stream: Mutex<Option<StreamInfo>>,
}

impl CameraStats {
    /// Frames the camera delivered: converted for analysis, or skipped while its previous frame was being
    /// analysed (the stream is alive either way).
    pub fn frames_delivered(&self) -> u64 {
        self.frames_in.load(Ordering::Relaxed) + self.frames_skipped.load(Ordering::Relaxed)
    }

    /// Record one analysed frame and how long its detection took.
    pub fn record_analysis(&self, ms: f32) {
        self.frames_analysed.fetch_add(1, Ordering::Relaxed);
        self.analysis_ms.record(ms);
    }

    /// Median and 95th percentile of the recent analysis times.
    pub fn analysis_percentiles(&self) -> Option<(f32, f32)> {
        self.analysis_ms
            .quantiles([0.5, 0.95])
            .map(|[p50, p95]| (p50, p95))
    }

    pub fn state(&self) -> CameraState {
        match self.state.load(Ordering::Relaxed) {
            0 => CameraState::Connecting,
            1 => CameraState::Streaming,
            2 => CameraState::Down,
            _ => CameraState::Stopped,
        }
    }

    fn set_state(&self, s: CameraState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }
}

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

/// Start the supervisor thread of one camera; frames go into `queue`.
pub fn spawn_camera(src: CameraSource, queue: FrameQueue, shutdown: Shutdown) -> CameraHandle {
    let stats = Arc::new(CameraStats::default());
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
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut rng = rand::rng();
    let url = redact_url(&src.url);
    let timeouts = Timeouts::for_sampling(src.sampling);
    while !shutdown.is_triggered() {
        stats.set_state(CameraState::Connecting);
        tracing::info!(camera = %src.id, %url, decoder = src.template.name, "Connecting to camera.");
        let mut on_first = |info: StreamInfo| {
            backoff.reset();
            stats.set_state(CameraState::Streaming);
            tracing::info!(camera = %src.id, width = info.width, height = info.height, after_ms = info.first_frame_after.as_millis() as u64, "Camera streaming.");
            *stats.stream.lock().expect("stats lock") = Some(info);
        };
        match run_connection(src, queue, stats, shutdown, timeouts, &mut on_first) {
            Ok(()) => break,
            Err(error) => {
                let delay = backoff.next_delay(&mut rng);
                stats.set_state(CameraState::Down);
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
                log_failure(src, &url, &error, delay);
                *stats.last_error.lock().expect("stats lock") = Some(error.to_string());
                if shutdown.sleep_or_stop(delay) {
                    break;
                }
            }
        }
    }
    stats.set_state(CameraState::Stopped);
}

fn log_failure(src: &CameraSource, url: &str, error: &IngestError, delay: Duration) {
    // GStreamer's own messages may quote the location; never let credentials through.
    let message = error.to_string().replace(&src.url, url);
    let details = match error {
        IngestError::Bus { debug: Some(d), .. } => d.replace(&src.url, url),
        _ => String::new(),
    };
    tracing::warn!(camera = %src.id, error = %message, %details, retry_in_ms = delay.as_millis() as u64, "Camera stream lost; reconnecting.");
}
