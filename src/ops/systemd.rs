//! systemd integration without a crate: readiness (`READY=1`), human-readable `STATUS=` lines, the watchdog
//! (`WATCHDOG=1`) and `STOPPING=1`, sent as datagrams to `$NOTIFY_SOCKET` (the sd_notify protocol).
//!
//! The watchdog is fed only while the daemon does its job: some camera delivered a frame within the grace
//! time (or no camera is configured), and no camera's frames sit unanalysed for longer than the grace (a stuck
//! model worker). When it stops being fed, systemd kills the process after `WatchdogSec=` and restarts it. The
//! decision is the pure [`Watchdog`] with time as input; [`spawn`] is the small task around it.

use crate::ingest::CameraList;
use crate::uplink::UplinkStats;
use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(
        "NOTIFY_SOCKET `{0}` is neither a path nor an abstract name (`@…`); systemd sets it, do not set it by hand"
    )]
    BadAddress(String),
    #[error("cannot send to NOTIFY_SOCKET `{socket}`: {source}")]
    Send {
        socket: String,
        source: std::io::Error,
    },
}

/// The connection to systemd's notification socket.
pub struct Notifier {
    socket: UnixDatagram,
    addr: std::os::unix::net::SocketAddr,
    name: String,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; `Ok(None)` when the daemon was not started by systemd with `Type=notify`.
    pub fn from_env() -> Result<Option<Notifier>, NotifyError> {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(name) if !name.is_empty() => Notifier::connect(&name).map(Some),
            _ => Ok(None),
        }
    }

    /// `name` is a filesystem path or `@abstract-name`.
    pub fn connect(name: &str) -> Result<Notifier, NotifyError> {
        let bad = || NotifyError::BadAddress(name.to_string());
        let addr = if let Some(abstract_name) = name.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
                .map_err(|_| bad())?
        } else if name.starts_with('/') {
            std::os::unix::net::SocketAddr::from_pathname(name).map_err(|_| bad())?
        } else {
            return Err(bad());
        };
        let socket = UnixDatagram::unbound().map_err(|source| NotifyError::Send {
            socket: name.to_string(),
            source,
        })?;
        Ok(Notifier {
            socket,
            addr,
            name: name.to_string(),
        })
    }

    /// Send one notification, e.g. `READY=1` or `STATUS=…` (newline-separated assignments).
    pub fn notify(&self, message: &str) -> Result<(), NotifyError> {
        self.socket
            .send_to_addr(message.as_bytes(), &self.addr)
            .map(|_| ())
            .map_err(|source| NotifyError::Send {
                socket: self.name.clone(),
                source,
            })
    }
}

/// `WATCHDOG_USEC` when it is meant for this process (`WATCHDOG_PID` unset or ours).
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.trim().parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// One camera's counters at one moment.
#[derive(Debug, Clone)]
pub struct CameraSample {
    pub id: Arc<str>,
    pub frames_in: u64,
    pub frames_analysed: u64,
}

/// Whether to feed the watchdog now, and what to tell systemd's status line.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Feed(String),
    Starve(String),
}

/// When each camera last made progress.
#[derive(Debug, Clone)]
struct Progress {
    frames_in: u64,
    frames_analysed: u64,
    /// When the frame counter last moved; `None` until the first frame.
    frame_at: Option<Instant>,
    analysed_at: Instant,
}

/// The pure watchdog policy: counters in, decision out. Progress is measured from `started` for cameras that
/// have not delivered anything yet, so a daemon that never gets a frame starves the watchdog after `grace`.
#[derive(Debug, Clone)]
pub struct Watchdog {
    grace: Duration,
    started: Instant,
    cameras: HashMap<Arc<str>, Progress>,
}

impl Watchdog {
    pub fn new(grace: Duration, started: Instant) -> Self {
        Watchdog {
            grace,
            started,
            cameras: HashMap::new(),
        }
    }

    pub fn observe(&mut self, now: Instant, samples: &[CameraSample]) -> Decision {
        if samples.is_empty() {
            return Decision::Feed("running; no camera configured".into());
        }
        let mut fresh = 0;
        let mut delivering = 0;
        let mut stuck = Vec::new();
        let mut quiet_for = Duration::MAX;
        for s in samples {
            let p = self.cameras.entry(s.id.clone()).or_insert(Progress {
                frames_in: 0,
                frames_analysed: 0,
                frame_at: None,
                analysed_at: self.started,
            });
            if s.frames_in != p.frames_in {
                p.frames_in = s.frames_in;
                p.frame_at = Some(now);
            }
            if s.frames_analysed != p.frames_analysed {
                p.frames_analysed = s.frames_analysed;
                p.analysed_at = now;
            }
            // A camera that has not delivered yet is measured from start: the daemon gets the grace to connect.
            let since_frame = now.saturating_duration_since(p.frame_at.unwrap_or(self.started));
            quiet_for = quiet_for.min(since_frame);
            if since_frame <= self.grace {
                fresh += 1;
                delivering += usize::from(p.frame_at.is_some());
                // Frames keep arriving but none is analysed: the model worker is stuck (or fails every frame).
                if now.saturating_duration_since(p.analysed_at) > self.grace {
                    stuck.push(s.id.to_string());
                }
            }
        }
        let total = samples.len();
        if fresh == 0 {
            Decision::Starve(format!(
                "no camera delivered a frame for {} s (grace {} s); watchdog not fed",
                quiet_for.as_secs(),
                self.grace.as_secs()
            ))
        } else if !stuck.is_empty() {
            Decision::Starve(format!(
                "frames of camera(s) {} not analysed for over {} s: model worker stuck; watchdog not fed",
                stuck.join(", "),
                self.grace.as_secs()
            ))
        } else if delivering == 0 {
            Decision::Feed(format!("0/{total} cameras delivering frames, connecting"))
        } else {
            Decision::Feed(format!("{delivering}/{total} cameras delivering frames"))
        }
    }
}

/// The current counters of the running cameras.
pub fn sample(cameras: &CameraList) -> Vec<CameraSample> {
    cameras
        .lock()
        .expect("camera list lock")
        .iter()
        // A camera left off (rejected model, unreadable secret) or refusing the login is not waited for:
        // restarting the daemon would not bring it back (and would hammer a camera that locks accounts).
        .filter(|(_, s)| {
            !matches!(
                s.state(),
                crate::ingest::CameraState::Off | crate::ingest::CameraState::Unauthorized
            )
        })
        .map(|(id, s)| CameraSample {
            id: id.clone(),
            // Skipped frames arrived too (the camera streams); only the analysis is behind.
            frames_in: s.frames_delivered(),
            frames_analysed: s.frames_analysed.load(Relaxed),
        })
        .collect()
}

/// Tell systemd the daemon is ready, then keep its status line current and feed the watchdog while
/// [`Watchdog`] says so; `STOPPING=1` on shutdown. Does nothing when not started by systemd.
pub fn spawn(
    cameras: CameraList,
    uplink: Arc<UplinkStats>,
    grace: Duration,
    shutdown: crate::base::Shutdown,
) {
    let notifier = match Notifier::from_env() {
        Ok(Some(n)) => n,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, "systemd notification socket unusable; no readiness or watchdog.");
            return;
        }
    };
    let send = move |message: &str| {
        if let Err(error) = notifier.notify(message) {
            tracing::warn!(%error, "systemd notification failed.");
        }
    };
    send("READY=1\nSTATUS=Started.");
    let watchdog = watchdog_interval();
    // Half the watchdog period, as sd_watchdog_enabled(3) recommends; without a watchdog, status every 10 s.
    let tick = watchdog.map_or(Duration::from_secs(10), |w| w / 2);
    tracing::info!(
        watchdog_ms = watchdog.map(|w| w.as_millis() as u64),
        grace_s = grace.as_secs(),
        "Told systemd we are ready."
    );
    tokio::spawn(async move {
        let mut policy = Watchdog::new(grace, Instant::now());
        let mut starving = false;
        let mut interval = tokio::time::interval(tick);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.wait() => break,
            }
            let decision = policy.observe(Instant::now(), &sample(&cameras));
            let broker = if uplink.connected.load(Relaxed) {
                "broker connected"
            } else {
                "broker disconnected"
            };
            let outbox = uplink.depth.load(Relaxed);
            match decision {
                Decision::Feed(status) => {
                    let feed = if watchdog.is_some() {
                        "WATCHDOG=1\n"
                    } else {
                        ""
                    };
                    send(&format!(
                        "{feed}STATUS=Running: {status}, {broker}, outbox {outbox}."
                    ));
                    if starving {
                        tracing::info!(%status, "Healthy again; feeding the watchdog.");
                    }
                    starving = false;
                }
                Decision::Starve(reason) => {
                    send(&format!("STATUS=Unhealthy: {reason}; {broker}."));
                    if !starving {
                        tracing::error!(%reason, "Unhealthy; not feeding the watchdog, so systemd will restart the daemon.");
                    }
                    starving = true;
                }
            }
        }
        send("STOPPING=1\nSTATUS=Stopping.");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam(id: &str, frames_in: u64, frames_analysed: u64) -> CameraSample {
        CameraSample {
            id: id.into(),
            frames_in,
            frames_analysed,
        }
    }

    fn fed(d: &Decision) -> bool {
        matches!(d, Decision::Feed(_))
    }

    const GRACE: Duration = Duration::from_secs(30);

    #[test]
    fn no_camera_configured_is_always_fed() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(GRACE, t0);
        assert!(fed(&w.observe(t0 + Duration::from_secs(3600), &[])));
    }

    #[test]
    fn a_camera_that_never_delivers_starves_the_watchdog_after_the_grace_since_start() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(GRACE, t0);
        assert!(fed(
            &w.observe(t0 + Duration::from_secs(29), &[cam("a", 0, 0)])
        ));
        let d = w.observe(t0 + Duration::from_secs(31), &[cam("a", 0, 0)]);
        assert!(
            matches!(&d, Decision::Starve(r) if r.contains("no camera delivered a frame for 31 s")),
            "{d:?}"
        );
    }

    #[test]
    fn one_streaming_camera_keeps_the_watchdog_fed_while_another_is_down() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(GRACE, t0);
        for k in 1..=20u64 {
            let now = t0 + Duration::from_secs(10 * k);
            let d = w.observe(now, &[cam("up", k, k), cam("down", 0, 0)]);
            assert_eq!(d, Decision::Feed("1/2 cameras delivering frames".into()));
        }
    }

    #[test]
    fn all_cameras_down_longer_than_the_grace_starve_it_and_a_frame_feeds_it_again() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(GRACE, t0);
        let s = Duration::from_secs;
        assert!(fed(&w.observe(t0 + s(5), &[cam("a", 10, 10)])));
        // The camera stops at t0+5: still within the grace at t0+35, not after.
        assert!(fed(&w.observe(t0 + s(35), &[cam("a", 10, 10)])));
        assert!(!fed(&w.observe(t0 + s(36), &[cam("a", 10, 10)])));
        assert!(!fed(&w.observe(t0 + s(300), &[cam("a", 10, 10)])));
        assert!(fed(&w.observe(t0 + s(301), &[cam("a", 11, 11)])));
    }

    #[test]
    fn frames_arriving_but_never_analysed_mean_a_stuck_worker() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(GRACE, t0);
        let s = Duration::from_secs;
        assert!(fed(&w.observe(t0 + s(1), &[cam("a", 1, 1)])));
        // Frames keep coming; the analysis counter stays at 1 from t0+1.
        for k in 2..=31 {
            assert!(fed(&w.observe(t0 + s(k), &[cam("a", k, 1)])), "t={k}");
        }
        let d = w.observe(t0 + s(32), &[cam("a", 32, 1)]);
        assert!(
            matches!(&d, Decision::Starve(r) if r.contains("model worker stuck") && r.contains('a')),
            "{d:?}"
        );
    }

    #[test]
    fn notifications_arrive_as_datagrams_on_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(path.to_str().unwrap()).unwrap();
        n.notify("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
    }

    #[test]
    fn notifications_arrive_on_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("streetsight-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::connect(&format!("@{name}")).unwrap();
        n.notify("WATCHDOG=1").unwrap();
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }

    #[test]
    fn a_relative_notify_socket_is_refused() {
        assert!(matches!(
            Notifier::connect("notify"),
            Err(NotifyError::BadAddress(_))
        ));
    }
}
