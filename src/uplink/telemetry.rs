//! Telemetry as one struct: what the gateway reports about itself — per camera frames, drops, reconnects
//! and analysis times; the outbox and the broker link; the process's CPU and memory; free disk. The same
//! value is serialised for the `telemetry` message and exported on `/metrics` (by `crate::ops::http`), so
//! the two never disagree about what a figure means.

use super::UplinkStats;
use crate::base::{DiskGuard, process_cpu_seconds, process_rss_bytes};
use crate::ingest::{CameraList, CameraState};
use serde::Serialize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One reading of everything.
#[derive(Debug, Clone, Serialize)]
pub struct Telemetry {
    /// When it was read (RFC 3339, UTC).
    pub time: String,
    pub cameras: Vec<CameraTelemetry>,
    pub outbox: OutboxTelemetry,
    pub uplink: LinkTelemetry,
    pub process: ProcessTelemetry,
    /// Free bytes on the filesystem holding the state directory.
    pub disk_free_bytes: Option<u64>,
    /// The state directory's disk: the reserve kept for events and what a shortage cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskTelemetry>,
    /// Candidate models running in shadow beside the active ones, and how far they agree.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadows: Vec<crate::incident::ShadowReport>,
}

/// The state directory's disk.
#[derive(Debug, Clone, Serialize)]
pub struct DiskTelemetry {
    /// Bytes kept free for events; evidence is not written into them.
    pub reserve_bytes: u64,
    /// Free space is under the reserve: evidence is being dropped so events can be stored.
    pub short: bool,
    /// Evidence images not written (queued or kept) for lack of space, since start.
    pub evidence_dropped: u64,
}

/// One camera's counters.
#[derive(Debug, Clone, Serialize)]
pub struct CameraTelemetry {
    pub id: String,
    pub state: CameraState,
    /// Why the camera is down or off, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub frames_in: u64,
    pub frames_analysed: u64,
    /// Oldest frames dropped because analysis was busy.
    pub frames_dropped: u64,
    /// Frames not decoded or converted while the camera's previous frame waited for analysis.
    pub frames_skipped: u64,
    pub reconnects: u64,
    /// Detection time of the last 256 frames: median and 95th percentile, milliseconds.
    pub analysis_ms_p50: Option<f32>,
    pub analysis_ms_p95: Option<f32>,
    /// All detection time since start, seconds (with `frames_analysed`, a summary's sum and count).
    pub analysis_seconds_total: f64,
    /// The picture's health (moved, covered, …, and `signal_lost` while the stream is down).
    pub health: crate::health::HealthReport,
}

/// The durable outbox.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxTelemetry {
    /// Records waiting.
    pub depth: u64,
    /// Age of the oldest waiting record, seconds.
    pub oldest_age_s: Option<f64>,
    /// Records the broker acknowledged.
    pub delivered: u64,
    pub dropped_events: u64,
    pub dropped_evidence: u64,
}

/// The broker link and event delivery.
#[derive(Debug, Clone, Serialize)]
pub struct LinkTelemetry {
    pub connected: bool,
    /// Incident events the broker acknowledged.
    pub events_delivered: u64,
    /// From an event's frame leaving the decoder to the broker's PUBACK, last 256 events: p50 and p99 in
    /// seconds.
    pub event_latency_s_p50: Option<f64>,
    pub event_latency_s_p99: Option<f64>,
    /// Every latency measured since start: how many and their sum, seconds.
    pub event_latency_count: u64,
    pub event_latency_seconds_total: f64,
}

/// This process.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessTelemetry {
    /// CPU since the previous `telemetry` message, percent of one core.
    pub cpu_percent: Option<f64>,
    /// CPU time since start, seconds.
    pub cpu_seconds: Option<f64>,
    pub rss_bytes: Option<u64>,
}

/// Where a reading comes from: the cameras' and the uplink's counters, the state directory.
pub struct TelemetrySource {
    cameras: Mutex<Option<CameraList>>,
    disk: Mutex<Option<Arc<DiskGuard>>>,
    health: Mutex<Option<crate::incident::HealthBoard>>,
    shadows: Mutex<Option<crate::incident::ShadowBoard>>,
    stats: Arc<UplinkStats>,
    /// CPU seconds at the previous message, and when.
    last_cpu: Mutex<(Instant, f64)>,
}

impl TelemetrySource {
    pub fn new(stats: Arc<UplinkStats>) -> Self {
        Self {
            cameras: Mutex::new(None),
            disk: Mutex::new(None),
            health: Mutex::new(None),
            shadows: Mutex::new(None),
            stats,
            last_cpu: Mutex::new((Instant::now(), process_cpu_seconds().unwrap_or(0.0))),
        }
    }

    /// Report on these cameras, their health and the state directory's disk from now on.
    pub fn watch(
        &self,
        cameras: CameraList,
        disk: Arc<DiskGuard>,
        health: crate::incident::HealthBoard,
        shadows: crate::incident::ShadowBoard,
    ) {
        *self.shadows.lock().expect("telemetry lock") = Some(shadows);
        *self.cameras.lock().expect("telemetry lock") = Some(cameras);
        *self.disk.lock().expect("telemetry lock") = Some(disk);
        *self.health.lock().expect("telemetry lock") = Some(health);
    }

    /// Camera `id`'s health as shown (its last report, `signal_lost` unless `streaming`).
    pub fn camera_health(&self, id: &str, streaming: bool) -> crate::health::HealthReport {
        let board = self.health.lock().expect("telemetry lock").clone();
        let report = board.and_then(|b| b.lock().expect("health board lock").get(id).cloned());
        crate::health::HealthReport::shown(report.as_ref(), streaming)
    }

    /// Read every counter now (`process.cpu_percent` is left to [`TelemetrySource::message`]).
    pub fn gather(&self) -> Telemetry {
        let cameras = self
            .cameras
            .lock()
            .expect("telemetry lock")
            .as_ref()
            .map(|list| {
                list.lock()
                    .expect("camera list lock")
                    .iter()
                    .map(|(id, s)| {
                        let p = s.analysis_percentiles();
                        let streaming = s.state() == CameraState::Streaming;
                        CameraTelemetry {
                            health: self.camera_health(id, streaming),
                            id: id.to_string(),
                            state: s.state(),
                            last_error: s.last_error.lock().expect("stats lock").clone(),
                            frames_in: s.frames_in.load(Relaxed),
                            frames_analysed: s.frames_analysed.load(Relaxed),
                            frames_dropped: s.frames_dropped.load(Relaxed),
                            frames_skipped: s.frames_skipped.load(Relaxed),
                            reconnects: s.reconnects.load(Relaxed),
                            analysis_ms_p50: p.map(|p| p.0),
                            analysis_ms_p95: p.map(|p| p.1),
                            analysis_seconds_total: s.analysis_us_total.load(Relaxed) as f64 / 1e6,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let u = &self.stats;
        let oldest = u.oldest_created_ms.load(Relaxed);
        let latency = u.event_latency_ms.quantiles([0.5, 0.99]);
        let disk = self.disk.lock().expect("telemetry lock").clone();
        let free = disk.as_ref().and_then(|d| d.refresh());
        Telemetry {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            cameras,
            outbox: OutboxTelemetry {
                depth: u.depth.load(Relaxed),
                oldest_age_s: (oldest > 0)
                    .then(|| (super::store::now_ms() - oldest).max(0) as f64 / 1000.0),
                delivered: u.delivered.load(Relaxed),
                dropped_events: u.dropped_events.load(Relaxed),
                dropped_evidence: u.dropped_evidence.load(Relaxed),
            },
            uplink: LinkTelemetry {
                connected: u.connected.load(Relaxed),
                events_delivered: u.delivered_events.load(Relaxed),
                event_latency_s_p50: latency.map(|q| f64::from(q[0]) / 1000.0),
                event_latency_s_p99: latency.map(|q| f64::from(q[1]) / 1000.0),
                event_latency_count: u.event_latency_count.load(Relaxed),
                event_latency_seconds_total: u.event_latency_ms_total.load(Relaxed) as f64 / 1000.0,
            },
            process: ProcessTelemetry {
                cpu_percent: None,
                cpu_seconds: process_cpu_seconds(),
                rss_bytes: process_rss_bytes(),
            },
            disk_free_bytes: free,
            disk: disk.map(|d| DiskTelemetry {
                reserve_bytes: d.reserve(),
                short: d.is_short(),
                evidence_dropped: d.evidence_dropped(),
            }),
            shadows: self
                .shadows
                .lock()
                .expect("telemetry lock")
                .as_ref()
                .map(|b| {
                    b.lock()
                        .expect("shadow board lock")
                        .values()
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The `telemetry` message: a reading with the CPU share since the previous message.
    pub fn message(&self) -> Vec<u8> {
        let mut t = self.gather();
        if let Some(cpu_now) = t.process.cpu_seconds {
            let mut last = self.last_cpu.lock().expect("telemetry lock");
            let wall = last.0.elapsed().as_secs_f64();
            t.process.cpu_percent = Some(if wall > 0.0 {
                100.0 * (cpu_now - last.1) / wall
            } else {
                0.0
            });
            *last = (Instant::now(), cpu_now);
        }
        serde_json::to_vec(&t).expect("telemetry serialises")
    }
}
