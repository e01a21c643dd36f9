//! What a camera is (its source: address, codec, transport, decoder, sampling) and what it reports (its
//! state and counters). Built by the plan from the configuration; read by the pipeline, the supervisor and
//! everything that reports on cameras.

use super::codec::Codec;
use super::template::DecoderTemplate;
use crate::base::Recent;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the first frame told us about the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    pub width: usize,
    pub height: usize,
    /// Time from connecting to the first analysed frame.
    pub first_frame_after: Duration,
    /// The video codec the camera announced (RTP encoding name, e.g. `H264`), when it did.
    pub codec: Option<String>,
}

/// Transport for RTSP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtspTransport {
    /// TCP, and UDP when the camera offers no stream over TCP.
    Auto,
    Tcp,
    Udp,
}

impl RtspTransport {
    /// What to try after the camera offered no stream over this transport: `auto` falls back to UDP.
    pub fn fallback(self) -> Option<RtspTransport> {
        (self == RtspTransport::Auto).then_some(RtspTransport::Udp)
    }
}

/// How frames are sampled for analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Decode only keyframes (delta frames are dropped before the decoder: ~8× less CPU).
    Keyframe,
    /// Decode every frame but analyse at most one every `interval_ms`.
    Interval {
        /// Minimum spacing of analysed frames, in milliseconds.
        interval_ms: u64,
    },
}

/// A password that does not print itself.
#[derive(Clone)]
pub struct Secret(String);

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

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

/// Connection state of a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    Connecting,
    Streaming,
    Down,
    Stopped,
    /// Not started: its model was rejected or its source could not be opened (`last_error` says why).
    Off,
    /// The camera refused the login (401): retried only every few minutes, since cameras lock an account
    /// after a few failed logins. Fix the username or password.
    Unauthorized,
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
    /// Frames of this camera queued for or in analysis (each frame holds its camera's analysis slot); a counter, not a flag, because a
    /// decoder with output delay can have two in flight.
    pub in_analysis: std::sync::atomic::AtomicU32,
    pub reconnects: AtomicU64,
    /// Frames the model worker analysed.
    pub frames_analysed: AtomicU64,
    /// Recent per-frame analysis times (detect), milliseconds, newest last; at most 256.
    pub analysis_ms: Recent,
    /// All analysis time since start, microseconds (a summary's `_sum`).
    pub analysis_us_total: AtomicU64,
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
        self.analysis_us_total
            .fetch_add((ms.max(0.0) * 1000.0) as u64, Ordering::Relaxed);
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
            3 => CameraState::Stopped,
            5 => CameraState::Unauthorized,
            _ => CameraState::Off,
        }
    }

    /// Mark the camera as not started, for `reason`; its counters stay as they were.
    pub fn set_off(&self, reason: String) {
        self.set_state(CameraState::Off);
        *self.last_error.lock().expect("stats lock") = Some(reason);
    }

    pub(super) fn set_state(&self, s: CameraState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }
}
