//! One connection to one camera: build the GStreamer pipeline, deliver frames, and end with a typed reason.

use super::codec::Codec;
use super::picture::{accept_padded_pictures, frame_from_sample};
use super::queue::FrameQueue;
use super::source::{CameraSource, CameraStats, RtspTransport, Sampling, StreamInfo};
use crate::base::Shutdown;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a camera connection ended.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    #[error("cannot build the pipeline: {0}")]
    Build(String),
    #[error("{element}: {error}")]
    Bus {
        element: String,
        error: String,
        debug: Option<String>,
    },
    #[error("the stream ended (EOS)")]
    Eos,
    #[error("no frame for {0:?}")]
    Stalled(Duration),
    /// The camera announced (in its RTSP session description) another video codec than the configured one.
    #[error("the camera sends {announced} video but codec = \"{configured}\" is configured")]
    CodecMismatch {
        configured: &'static str,
        announced: String,
    },
}

impl IngestError {
    /// Did the camera offer no stream over the transport asked for (it serves RTP over UDP only, or TCP
    /// only)? GStreamer says "No supported stream was found … allow more transport protocols".
    pub fn wrong_transport(&self) -> bool {
        let IngestError::Bus { error, .. } = self else {
            return false;
        };
        let e = error.to_lowercase();
        e.contains("transport protocols") || e.contains("unsupported transport")
    }

    /// Did the camera refuse the credentials (RTSP 401)?
    pub fn is_unauthorized(&self) -> bool {
        let IngestError::Bus { error, debug, .. } = self else {
            return false;
        };
        [Some(error), debug.as_ref()]
            .into_iter()
            .flatten()
            .any(|t| {
                let t = t.to_lowercase();
                t.contains("unauthorized") || t.contains("not authorized") || t.contains(" 401")
            })
    }
}

/// The video codecs the camera announced for this connection (RTP encoding names, e.g. `H264`), one per
/// video stream of its session.
type Announced = Arc<Mutex<Vec<String>>>;

/// The error to report when the camera announced video, but none in the configured codec.
fn mismatch(configured: Codec, announced: &Announced) -> Option<IngestError> {
    let announced = announced.lock().expect("codec lock");
    (!announced.is_empty() && !announced.iter().any(|a| configured.is_encoding(a))).then(|| {
        IngestError::CodecMismatch {
            configured: configured.name(),
            announced: announced.join("/"),
        }
    })
}

/// The announced codec the pipeline decodes: the configured one when the camera offers it.
fn decoded_codec(configured: Codec, announced: &Announced) -> Option<String> {
    let announced = announced.lock().expect("codec lock");
    let matching = announced.iter().find(|a| configured.is_encoding(a));
    matching.or(announced.first()).cloned()
}

/// How long to wait for the first frame, and for each next one, before calling the camera stalled.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub first_frame: Duration,
    pub stall: Duration,
}

impl Timeouts {
    pub fn for_sampling(sampling: Sampling) -> Self {
        let interval = match sampling {
            Sampling::Keyframe => Duration::from_secs(10), // GOPs of up to 10 s are common on city cameras
            Sampling::Interval { interval_ms } => Duration::from_millis(interval_ms),
        };
        Timeouts {
            first_frame: Duration::from_secs(20).max(interval * 2),
            stall: Duration::from_secs(10).max(interval * 3),
        }
    }
}

fn description(src: &CameraSource) -> String {
    let codec = src.codec;
    // Nothing before the connection's first keyframe reaches the decoder: a decoder started between
    // keyframes conceals the missing references with grey, and that picture must never be analysed.
    let keyframe_filter = match src.sampling {
        Sampling::Keyframe => "identity drop-buffer-flags=delta-unit ! identity name=gate ! ",
        Sampling::Interval { .. } => "identity name=first_keyframe ! ",
    };
    format!(
        "rtspsrc name=src latency=200 ! {} ! {keyframe_filter}{} ! identity name=sampler ! videoconvert ! \
         video/x-raw,format={{I420,NV12}} ! appsink name=sink sync=false max-buffers=2 drop=true",
        src.template.depay_parse(codec),
        src.template.decoder(codec),
    )
}

/// Connect, stream frames into `queue` until an error or shutdown. `Ok(())` means shutdown was requested.
pub(super) fn run_connection(
    src: &CameraSource,
    queue: &FrameQueue,
    stats: &Arc<CameraStats>,
    shutdown: &Shutdown,
    timeouts: Timeouts,
    on_first_frame: &mut dyn FnMut(StreamInfo),
) -> Result<(), IngestError> {
    let pipeline = gst::parse::launch(&description(src))
        .map_err(|e| IngestError::Build(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| IngestError::Build("not a pipeline".into()))?;
    let guard = NullOnDrop(pipeline.clone());
    let announced: Announced = Arc::default();
    configure_source(&pipeline, src, &announced)?;
    let last_frame: LastFrame = Arc::default();
    match src.sampling {
        Sampling::Interval { interval_ms } => {
            install_first_keyframe_wait(&pipeline)?;
            install_interval_sampler(
                &pipeline,
                Duration::from_millis(interval_ms),
                stats,
                &last_frame,
            )?
        }
        Sampling::Keyframe => install_keyframe_gate(&pipeline, stats, &last_frame)?,
    }
    let appsink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| IngestError::Build("no appsink".into()))?;
    accept_padded_pictures(&appsink)?;
    {
        let (queue, stats, last_frame, camera) = (
            queue.clone(),
            stats.clone(),
            last_frame.clone(),
            src.id.clone(),
        );
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let mut frame = frame_from_sample(
                        &sample,
                        &camera,
                        stats.frames_in.load(Ordering::Relaxed),
                    )
                    .ok_or(gst::FlowError::Error)?;
                    frame.hold(Box::new(AnalysisSlot::take(&stats)));
                    last_frame.lock().expect("frame clock lock").frame =
                        Some((frame.captured_mono, frame.width(), frame.height()));
                    stats.frames_in.fetch_add(1, Ordering::Relaxed);
                    stats
                        .frames_dropped
                        .fetch_add(queue.push(frame), Ordering::Relaxed);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    let started = Instant::now();
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| IngestError::Build(format!("cannot start: {e}")))?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| IngestError::Build("pipeline has no bus".into()))?;
    let mut seen_first = false;
    loop {
        if shutdown.is_triggered() {
            drop(guard);
            return Ok(());
        }
        if let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(100),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        ) {
            return Err(match msg.view() {
                // A stream of another codec cannot link to the configured depayloader: say so plainly.
                gst::MessageView::Error(e) => {
                    mismatch(src.codec, &announced).unwrap_or_else(|| IngestError::Bus {
                        element: msg
                            .src()
                            .map(|s| s.path_string().to_string())
                            .unwrap_or_else(|| "pipeline".into()),
                        error: e.error().to_string(),
                        debug: e.debug().map(|d| d.to_string()),
                    })
                }
                _ => IngestError::Eos,
            });
        }
        let (last, gated_at) = {
            let l = last_frame.lock().expect("frame clock lock");
            (l.frame, l.gated_at)
        };
        // A frame held back at the gate also proves the stream alive (the analysis is behind, not the camera).
        let alive_at = match (last.map(|l| l.0), gated_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some((at, width, height)) = last
            && !seen_first
        {
            seen_first = true;
            on_first_frame(StreamInfo {
                width,
                height,
                first_frame_after: at.saturating_duration_since(started),
                codec: decoded_codec(src.codec, &announced),
            });
        }
        match alive_at {
            Some(at) if at.elapsed() > timeouts.stall => {
                return Err(IngestError::Stalled(timeouts.stall));
            }
            None if started.elapsed() > timeouts.first_frame => {
                return Err(mismatch(src.codec, &announced)
                    .unwrap_or(IngestError::Stalled(timeouts.first_frame)));
            }
            _ => {}
        }
    }
}

fn configure_source(
    pipeline: &gst::Pipeline,
    src: &CameraSource,
    announced: &Announced,
) -> Result<(), IngestError> {
    let rtspsrc = pipeline
        .by_name("src")
        .ok_or_else(|| IngestError::Build("no rtspsrc".into()))?;
    // rtspsrc offers each stream of the session description (media, RTP encoding name) before it sets the
    // streams up: the codec is known even when nothing arrives after.
    let announced = announced.clone();
    rtspsrc.connect("select-stream", false, move |args| {
        let caps = args.get(2).and_then(|v| v.get::<gst::Caps>().ok());
        if let Some(s) = caps.as_ref().and_then(|c| c.structure(0))
            && s.get::<&str>("media").is_ok_and(|m| m == "video")
            && let Ok(encoding) = s.get::<&str>("encoding-name")
        {
            announced
                .lock()
                .expect("codec lock")
                .push(encoding.to_string());
        }
        Some(true.to_value())
    });
    // Credentials never go into the location: GStreamer's own debug log prints it. A user and password
    // written into the URL are taken out of it and passed like configured ones (which win).
    let (location, url_user, url_password) = super::credentials::split_credentials(&src.url);
    rtspsrc.set_property("location", location.as_str());
    let protocols = match src.transport {
        RtspTransport::Auto | RtspTransport::Tcp => "tcp",
        RtspTransport::Udp => "udp",
    };
    rtspsrc.set_property_from_str("protocols", protocols);
    if let Some(user) = src.username.clone().or(url_user) {
        rtspsrc.set_property("user-id", user.as_str());
    }
    if let Some(password) = src
        .password
        .as_ref()
        .map(|p| p.expose().to_string())
        .or(url_password)
    {
        rtspsrc.set_property("user-pw", password.as_str());
    }
    Ok(())
}

/// Drop decoded frames until `interval` has passed since the last one kept (by buffer timestamp), before
/// the costly colour conversion.
fn install_interval_sampler(
    pipeline: &gst::Pipeline,
    interval: Duration,
    stats: &Arc<CameraStats>,
    last_frame: &LastFrame,
) -> Result<(), IngestError> {
    let pad = sink_pad(pipeline, "sampler")?;
    let interval = interval.as_nanos() as u64;
    let next_due = Mutex::new(None::<u64>);
    let (stats, last_frame) = (stats.clone(), last_frame.clone());
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(pts) = buffer.pts() else {
            return gst::PadProbeReturn::Ok;
        };
        // Half a frame of slack (20 ms when the frame duration is unknown).
        let slack = buffer.duration().map_or(20_000_000, |d| d.nseconds() / 2);
        let mut due = next_due.lock().expect("sampler lock");
        let (keep, next) = sample_at(*due, pts.nseconds(), interval, slack);
        if !keep {
            *due = next;
            return DROP_BUFFER;
        }
        // Due, but this camera's previous frame is still being analysed: skip the conversion and keep the
        // schedule, so the next frame after the slot frees is taken.
        if busy(&stats, &last_frame) {
            return DROP_BUFFER;
        }
        *due = next;
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// How a probe drops a buffer. Not `PadProbeReturn::Drop`: the bindings take the buffer out of the probe
/// info (leaving it NULL) and free it, and GStreamer 1.22 then calls unref on that NULL — a CRITICAL log line
/// per dropped frame. `Handled` means "the probe consumed it", which is what happens.
const DROP_BUFFER: gst::PadProbeReturn = gst::PadProbeReturn::Handled;

/// When the newest frame left the pipeline (and its size), and when a frame was last held back at the gate:
/// either proves the stream alive.
#[derive(Default)]
struct Liveness {
    frame: Option<(Instant, usize, usize)>,
    gated_at: Option<Instant>,
}

type LastFrame = Arc<Mutex<Liveness>>;

fn sink_pad(pipeline: &gst::Pipeline, element: &str) -> Result<gst::Pad, IngestError> {
    pipeline
        .by_name(element)
        .and_then(|e| e.static_pad("sink"))
        .ok_or_else(|| IngestError::Build(format!("no sink pad on `{element}`")))
}

/// Whether the camera's previous frame still waits for analysis; if so the frame at hand is skipped,
/// counted, and still proves the stream alive (so an overloaded gateway does not mistake it for a stall).
fn busy(stats: &CameraStats, last_frame: &LastFrame) -> bool {
    if stats.in_analysis.load(Ordering::Acquire) == 0 {
        return false;
    }
    stats.frames_skipped.fetch_add(1, Ordering::Relaxed);
    last_frame.lock().expect("frame clock lock").gated_at = Some(Instant::now());
    true
}

/// Keyframe sampling: a keyframe reaches the decoder only when the camera's previous frame has been
/// analysed. Decoding is most of a camera's cost besides inference, so under overload the gateway decodes
/// only what it will analyse.
fn install_keyframe_gate(
    pipeline: &gst::Pipeline,
    stats: &Arc<CameraStats>,
    last_frame: &LastFrame,
) -> Result<(), IngestError> {
    let pad = sink_pad(pipeline, "gate")?;
    let (stats, last_frame) = (stats.clone(), last_frame.clone());
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        if busy(&stats, &last_frame) {
            DROP_BUFFER
        } else {
            gst::PadProbeReturn::Ok
        }
    });
    Ok(())
}

/// Interval sampling decodes every frame, but only from the connection's first keyframe on: delta units
/// before it are dropped ahead of the decoder (each connection is a new pipeline, so this is per connect).
fn install_first_keyframe_wait(pipeline: &gst::Pipeline) -> Result<(), IngestError> {
    let pad = sink_pad(pipeline, "first_keyframe")?;
    let seen = std::sync::atomic::AtomicBool::new(false);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if !seen.load(Ordering::Relaxed) {
            let delta = info
                .buffer()
                .is_some_and(|b| b.flags().contains(gst::BufferFlags::DELTA_UNIT));
            if delta {
                return DROP_BUFFER;
            }
            seen.store(true, Ordering::Relaxed);
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Whether a frame with timestamp `pts` (ns) is kept, and the next due time. Due times advance on a fixed
/// schedule, and a frame up to `slack` early counts: RTP timestamps jitter by a few ms, and a schedule that
/// restarted at each kept frame would skip a whole frame whenever the due one came a little early
/// (0.93 analysed frames per second at 1 s on a 10 fps camera instead of 1). After a gap (a stream
/// stall, a timestamp jump) the schedule restarts at the frame.
fn sample_at(due: Option<u64>, pts: u64, interval: u64, slack: u64) -> (bool, Option<u64>) {
    let slack = slack.min(interval / 2);
    match due {
        // Timestamps jumped back by more than an interval (a new segment): start over at this frame.
        Some(d) if pts + interval < d => (true, Some(pts + interval)),
        Some(d) if pts + slack < d => (false, due),
        // On schedule; a frame taken late does not make the next one due at once.
        Some(d) if pts < d + interval => (true, Some((d + interval).max(pts + interval - slack))),
        _ => (true, Some(pts + interval)),
    }
}

/// The camera's analysis slot, held by its frame: while the frame exists the camera decodes no further
/// keyframe (keyframe sampling) or converts no further frame (interval sampling), so an overloaded gateway
/// lowers its sampling rate instead of spending CPU on frames that would be dropped. Released when the frame
/// is dropped (analysed, or pushed out of the queue).
struct AnalysisSlot(Arc<CameraStats>);

impl AnalysisSlot {
    fn take(stats: &Arc<CameraStats>) -> Self {
        stats.in_analysis.fetch_add(1, Ordering::AcqRel);
        Self(stats.clone())
    }
}

impl Drop for AnalysisSlot {
    fn drop(&mut self) {
        self.0.in_analysis.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whatever happens, a pipeline left behind is stopped (its sockets and threads released).
struct NullOnDrop(gst::Pipeline);

impl Drop for NullOnDrop {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::{Announced, Codec, IngestError, decoded_codec, mismatch, sample_at};

    #[test]
    fn a_camera_announcing_another_codec_is_a_mismatch_and_the_same_codec_is_not() {
        let announced = |names: &[&str]| -> Announced {
            std::sync::Arc::new(std::sync::Mutex::new(
                names.iter().map(|n| n.to_string()).collect(),
            ))
        };
        assert!(mismatch(Codec::H264, &announced(&["H264"])).is_none());
        assert!(mismatch(Codec::H265, &announced(&["h265"])).is_none());
        assert!(mismatch(Codec::H264, &announced(&[])).is_none());
        // A second video stream in another codec beside the configured one is no mismatch.
        let two = announced(&["JPEG", "H264"]);
        assert!(mismatch(Codec::H264, &two).is_none());
        assert_eq!(decoded_codec(Codec::H264, &two).as_deref(), Some("H264"));
        let Some(IngestError::CodecMismatch {
            configured,
            announced,
        }) = mismatch(Codec::H264, &announced(&["H265", "JPEG"]))
        else {
            panic!("H.265 and JPEG streams for an H.264 camera")
        };
        assert_eq!((configured, announced.as_str()), ("h264", "H265/JPEG"));
    }

    const MS: u64 = 1_000_000;

    /// Run the sampler over frames at `fps` with timestamps jittered by ±`jitter_ms`; count kept frames.
    fn kept(fps: u64, seconds: u64, interval_ms: u64, jitter_ms: i64) -> usize {
        let (mut due, mut n) = (None, 0);
        let frame = 1000 * MS / fps;
        for i in 0..fps * seconds {
            let j = if i % 2 == 0 { jitter_ms } else { -jitter_ms };
            let pts = (10 * 1000 * MS + i * frame).saturating_add_signed(j * MS as i64);
            let (keep, next) = sample_at(due, pts, interval_ms * MS, frame / 2);
            due = next;
            n += usize::from(keep);
        }
        n
    }

    #[test]
    fn jittered_timestamps_still_give_one_frame_per_interval() {
        assert_eq!(kept(10, 60, 1000, 3), 60);
        assert_eq!(kept(25, 60, 2000, 2), 30);
        assert_eq!(kept(10, 60, 1000, 0), 60);
    }

    #[test]
    fn an_interval_shorter_than_a_frame_keeps_every_frame() {
        assert_eq!(kept(10, 10, 50, 0), 100);
    }

    #[test]
    fn timestamps_jumping_back_restart_the_schedule_instead_of_dropping_everything() {
        let s = 1000 * MS;
        let (keep, due) = sample_at(Some(100 * s), 3 * s, s, 50 * MS);
        assert!(keep);
        assert_eq!(due, Some(4 * s));
    }

    #[test]
    fn a_frame_taken_late_does_not_make_the_next_one_due_at_once() {
        let s = 1000 * MS;
        // Due at 10 s, taken at 10.9 s (the camera was busy until then): the next is due about 1 s later.
        let (keep, due) = sample_at(Some(10 * s), 10 * s + 900 * MS, s, 50 * MS);
        assert!(keep);
        assert_eq!(due, Some(11 * s + 850 * MS));
    }

    #[test]
    fn after_a_gap_the_schedule_restarts_at_the_next_frame() {
        let s = 1000 * MS;
        let (keep, due) = sample_at(Some(5 * s), 60 * s, s, 50 * MS);
        assert!(keep);
        assert_eq!(due, Some(61 * s));
        let (keep, _) = sample_at(due, 60 * s + 900 * MS, s, 50 * MS);
        assert!(!keep, "the next frame waits for the new schedule");
    }
}
