//! A real RTSP camera without a camera: GStreamer's RTSP server, in-process, serving an H.264 or H.265 clip in an
//! endless loop at its real frame rate. Used by `streetsight demo`, `streetsight serve-clip` and the tests.
//!
//! The clip is parsed once into access units; for each connecting session a feeder thread pushes them into
//! an `appsrc` paced by wall-clock time, so the stream looks live and no re-encoding is needed.

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The clip as H.264 or H.265 access units (byte-stream, one frame each).
#[derive(Clone)]
pub struct Clip {
    /// `"h264"` or `"h265"`: the parser and payloader the server uses.
    codec: &'static str,
    caps: gst::Caps,
    units: Arc<Vec<gst::Buffer>>,
    frame: Duration,
    /// Each session starts at this access unit (0: the clip's first keyframe).
    start: usize,
    /// Served over UDP only (the server refuses RTP over the RTSP connection), like some cameras.
    udp_only: bool,
}

impl Clip {
    /// Demux and parse an MP4/MKV file with H.264 or H.265 video.
    pub fn load(path: &Path) -> anyhow::Result<Clip> {
        crate::ingest::init_gstreamer()?;
        anyhow::ensure!(path.is_file(), "clip {} does not exist", path.display());
        let codec = video_codec(path)?;
        let (pipeline, sink) = crate::ingest::play_file(
            &format!(
                "parsebin ! {codec}parse ! video/x-{codec},stream-format=byte-stream,alignment=au"
            ),
            path,
        )?;
        let mut units = Vec::new();
        let mut caps = None;
        while let Ok(sample) = sink.pull_sample() {
            caps = caps.or_else(|| sample.caps_owned());
            if let Some(b) = sample.buffer_owned() {
                units.push(b);
            }
        }
        pipeline.set_state(gst::State::Null)?;
        let caps =
            caps.ok_or_else(|| anyhow::anyhow!("clip {} has no {codec} video", path.display()))?;
        let fps = caps
            .structure(0)
            .and_then(|s| s.get::<gst::Fraction>("framerate").ok())
            .filter(|f| f.numer() > 0)
            .map(|f| f.numer() as f64 / f.denom() as f64)
            .unwrap_or(25.0);
        anyhow::ensure!(!units.is_empty(), "clip {} has no frames", path.display());
        Ok(Clip {
            codec,
            caps,
            units: Arc::new(units),
            frame: Duration::from_secs_f64(1.0 / fps),
            start: 0,
            udp_only: false,
        })
    }

    pub fn frames(&self) -> usize {
        self.units.len()
    }

    pub fn frame_duration(&self) -> Duration {
        self.frame
    }

    /// Start every session in the middle of a group of pictures, `delta` frames after the next keyframe
    /// at or after `near`, with the parameter sets sent first (as many real servers do: their SDP or a
    /// cached header carries them). A client that decodes before the next keyframe gets garbage (grey
    /// concealment): what a client must never analyse.
    pub fn mid_gop(mut self, delta: usize) -> Clip {
        let key = self
            .units
            .iter()
            .position(|u| !u.flags().contains(gst::BufferFlags::DELTA_UNIT))
            .unwrap_or(0);
        self.start = (key + delta) % self.units.len();
        self
    }

    /// Serve it over UDP only: a client asking for RTP over TCP is refused (461 Unsupported transport).
    /// Frames from one keyframe to the next (the clip's GOP); 1 when it has a single keyframe.
    pub fn gop(&self) -> usize {
        let mut keys = self
            .units
            .iter()
            .enumerate()
            .filter(|(_, u)| !u.flags().contains(gst::BufferFlags::DELTA_UNIT))
            .map(|(i, _)| i);
        match (keys.next(), keys.next()) {
            (Some(a), Some(b)) => b - a,
            _ => 1,
        }
    }

    pub fn udp_only(mut self) -> Clip {
        self.udp_only = true;
        self
    }

    /// The keyframe's parameter sets (H.264 SPS, PPS: NAL types 7 and 8; H.265 VPS, SPS, PPS: 32–34) as one
    /// byte-stream unit.
    fn parameter_sets(&self) -> Vec<u8> {
        let Some(key) = self
            .units
            .iter()
            .find(|u| !u.flags().contains(gst::BufferFlags::DELTA_UNIT))
        else {
            return Vec::new();
        };
        let Ok(map) = key.map_readable() else {
            return Vec::new();
        };
        let data = map.as_slice();
        let is_parameter_set = |header: u8| match self.codec {
            "h265" => matches!((header >> 1) & 0x3f, 32..=34),
            _ => matches!(header & 0x1f, 7 | 8),
        };
        // Split on 00 00 01 start codes; keep the parameter sets with a 4-byte start code each.
        let starts: Vec<usize> = (0..data.len().saturating_sub(3))
            .filter(|&i| data[i..i + 3] == [0, 0, 1])
            .map(|i| i + 3)
            .collect();
        let mut out = Vec::new();
        for (n, &at) in starts.iter().enumerate() {
            let end = starts.get(n + 1).map_or(data.len(), |next| next - 3);
            let nal = &data[at..end];
            if nal.first().is_some_and(|h| is_parameter_set(*h)) {
                out.extend_from_slice(&[0, 0, 0, 1]);
                out.extend_from_slice(nal.strip_suffix(&[0]).unwrap_or(nal));
            }
        }
        out
    }
}

/// A running RTSP server; stops when dropped.
pub struct ClipServer {
    port: u16,
    main_loop: glib::MainLoop,
    thread: Option<std::thread::JoinHandle<()>>,
    stopped: Arc<AtomicBool>,
}

impl ClipServer {
    /// Serve `clip` at `rtsp://127.0.0.1:{port}{mount}` (port 0 picks a free one). With `credentials`, the
    /// server demands digest-free basic auth with that user and password.
    pub fn start(
        clip: Clip,
        port: u16,
        mount: &str,
        credentials: Option<(&str, &str)>,
    ) -> anyhow::Result<ClipServer> {
        Self::start_mounts(clip, port, &[mount], credentials)
    }

    /// [`ClipServer::start_mounts`] with each mount's stream beginning at another point of the GOP, spread
    /// evenly (mount i at i/n of it): cameras connected at the same moment still send their keyframes at
    /// different times, as real cameras do (`streetsight serve-clip --cameras N`, the benchmarks).
    pub fn start_mounts_spread(
        clip: Clip,
        port: u16,
        mounts: &[&str],
    ) -> anyhow::Result<ClipServer> {
        let (gop, n) = (clip.gop(), mounts.len().max(1));
        let clips = (0..mounts.len())
            .map(|i| clip.clone().mid_gop(i * gop / n))
            .collect();
        Self::serve(clips, port, mounts, None)
    }

    /// Serve `clip` at several mounts, each its own live stream (started when its first client connects,
    /// so streams are out of phase like real cameras'), e.g. for many simulated cameras in one process.
    pub fn start_mounts(
        clip: Clip,
        port: u16,
        mounts: &[&str],
        credentials: Option<(&str, &str)>,
    ) -> anyhow::Result<ClipServer> {
        Self::serve(vec![clip; mounts.len()], port, mounts, credentials)
    }

    /// `clips[i]` at `mounts[i]`.
    fn serve(
        clips: Vec<Clip>,
        port: u16,
        mounts: &[&str],
        credentials: Option<(&str, &str)>,
    ) -> anyhow::Result<ClipServer> {
        crate::ingest::init_gstreamer()?;
        let context = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let server = rtsp::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service(&port.to_string());
        let stopped = Arc::new(AtomicBool::new(false));
        let auth = credentials.map(|(user, password)| {
            let auth = rtsp::RTSPAuth::new();
            let token = rtsp::RTSPToken::builder()
                .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
                .build();
            let basic = rtsp::RTSPAuth::make_basic(user, password);
            auth.add_basic(basic.as_str(), &token);
            auth
        });
        server.set_auth(auth.as_ref());
        let mount_points = server.mount_points().expect("server has mount points");
        for (mount, clip) in mounts.iter().zip(&clips) {
            let factory = clip_factory(clip, &stopped);
            if auth.is_some() {
                factory.add_role_from_structure(
                    &gst::Structure::builder("user")
                        .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                        .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                        .build(),
                );
            }
            mount_points.add_factory(mount, factory);
        }
        let source = server.attach(Some(&context))?;
        let port = u16::try_from(server.bound_port())
            .map_err(|_| anyhow::anyhow!("RTSP server did not bind"))?;
        let thread_loop = main_loop.clone();
        let thread = std::thread::Builder::new()
            .name("rtsp-server".into())
            .spawn(move || {
                context
                    .with_thread_default(|| thread_loop.run())
                    .expect("RTSP context is free");
                // Close every session and the listening socket before the thread ends. The source lives in
                // our own context, so it is destroyed there (SourceId::remove looks in the default one).
                server.client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
                if let Some(s) = context.find_source_by_id(&source) {
                    s.destroy();
                }
            })?;
        Ok(ClipServer {
            port,
            main_loop,
            thread: Some(thread),
            stopped,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self, mount: &str) -> String {
        format!("rtsp://127.0.0.1:{}{mount}", self.port)
    }

    /// Stop serving: clients are disconnected, the port is closed.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ClipServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The video codec of a file (`"h264"` or `"h265"`), from its first parsed video buffer's caps.
fn video_codec(path: &Path) -> anyhow::Result<&'static str> {
    let (pipeline, sink) = crate::ingest::play_file("parsebin", path)?;
    let caps = sink.pull_sample().ok().and_then(|s| s.caps_owned());
    pipeline.set_state(gst::State::Null)?;
    match caps
        .as_ref()
        .and_then(|c| c.structure(0))
        .map(|s| s.name().as_str())
    {
        Some("video/x-h264") => Ok("h264"),
        Some("video/x-h265") => Ok("h265"),
        other => anyhow::bail!(
            "clip {}: expected H.264 or H.265 video, found {}",
            path.display(),
            other.unwrap_or("no video")
        ),
    }
}

/// A factory whose media (one per client) pushes the clip's access units from a feeder thread of its own.
fn clip_factory(clip: &Clip, stopped: &Arc<AtomicBool>) -> rtsp::RTSPMediaFactory {
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&format!(
        "( appsrc name=feed is-live=true format=time do-timestamp=true ! {c}parse ! rtp{c}pay name=pay0 pt=96 config-interval=-1 )",
        c = clip.codec
    ));
    // One media (and feeder) per client: with a shared media a client that connects while the previous
    // one's media is being torn down (a camera restarted by a reload) could join a dying stream and get
    // no frame at all.
    factory.set_shared(false);
    if clip.udp_only {
        factory.set_protocols(rtsp::gst_rtsp::RTSPLowerTrans::UDP);
    }
    let (clip, feeder_stop) = (clip.clone(), stopped.clone());
    factory.connect_media_configure(move |_, media| {
        let Some(appsrc) = media
            .element()
            .downcast::<gst::Bin>()
            .ok()
            .and_then(|b| b.by_name_recurse_up("feed"))
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        else {
            return;
        };
        appsrc.set_caps(Some(&clip.caps));
        let (clip, stop) = (clip.clone(), feeder_stop.clone());
        std::thread::Builder::new()
            .name("rtsp-feed".into())
            .spawn(move || feed(&appsrc, &clip, &stop))
            .expect("spawn feeder");
    });
    factory
}

/// Push the clip's frames in a loop, paced to real time, until the media goes away or the server stops.
fn feed(appsrc: &gst_app::AppSrc, clip: &Clip, stop: &AtomicBool) {
    let mut start = None;
    for (n, unit) in clip.units.iter().cycle().skip(clip.start).enumerate() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let due = *start.get_or_insert_with(Instant::now) + clip.frame * n as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut buffer = if n == 0 && clip.start > 0 {
            // Mid-GOP: the parameter sets first, in the same unit, so the client can start decoding.
            let mut bytes = clip.parameter_sets();
            if let Ok(map) = unit.map_readable() {
                bytes.extend_from_slice(map.as_slice());
            }
            let mut b = gst::Buffer::from_mut_slice(bytes);
            b.get_mut()
                .expect("fresh buffer is writable")
                .set_flags(gst::BufferFlags::DELTA_UNIT);
            b
        } else {
            unit.copy()
        };
        {
            let b = buffer.get_mut().expect("fresh copy is writable");
            b.set_pts(gst::ClockTime::NONE);
            b.set_dts(gst::ClockTime::NONE);
            b.set_duration(gst::ClockTime::from_nseconds(clip.frame.as_nanos() as u64));
        }
        if !push(appsrc, buffer, n == 0, stop) {
            break; // the media was torn down (no clients left)
        }
        if n == 0 {
            start = Some(Instant::now());
        }
    }
}

/// Push one unit; false once the media is gone. The feeder starts when the media is configured, before it
/// is prepared, and the server flushes the pipeline when a client plays (its seek to the start): a push
/// refused as flushing then is retried, and only a pipeline back in NULL after it ran means torn down.
fn push(appsrc: &gst_app::AppSrc, buffer: gst::Buffer, first: bool, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match appsrc.push_buffer(buffer.clone()) {
            Ok(_) => return true,
            Err(gst::FlowError::Flushing) if !stop.load(Ordering::SeqCst) => {
                let (_, current, pending) = appsrc.state(gst::ClockTime::ZERO);
                let running = current >= gst::State::Paused || pending >= gst::State::Paused;
                if !(running || first) || Instant::now() > deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return false,
        }
    }
}
