//! A video file decoded frame by frame, in decode order, for measuring a model on labelled media: every
//! frame is decoded (frame `n` is the n-th picture, 0-based, as ffmpeg and CVAT count them) and handed to
//! the caller as RGB only when the caller wants it.

use super::IngestError;
use crate::base::ImageView;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use std::path::Path;

/// Decode `path` and call `each(n, at, picture)` for every frame `n` (shown `at` from the start of the
/// file) for which `wanted(n)` holds, until the file ends or `each` returns false. Returns how many frames
/// the file had (up to where it stopped).
pub fn decode_file(
    path: &Path,
    mut wanted: impl FnMut(u64) -> bool,
    mut each: impl FnMut(u64, std::time::Duration, &ImageView) -> bool,
) -> Result<u64, IngestError> {
    super::init_gstreamer()?;
    if !path.is_file() {
        return Err(IngestError::Build(format!(
            "{}: no such video file",
            path.display()
        )));
    }
    let (pipeline, sink) = play_file("decodebin ! videoconvert ! video/x-raw,format=RGB", path)?;
    sink.set_max_buffers(2);
    let stop = |p: &gst::Pipeline| {
        let _ = p.set_state(gst::State::Null);
    };
    let mut n = 0u64;
    let result = loop {
        let Ok(sample) = sink.pull_sample() else {
            break bus_error(&pipeline).map_or(Ok(n), Err);
        };
        if wanted(n) {
            let Some((width, height, stride)) = sample
                .caps()
                .and_then(|c| gst_video::VideoInfo::from_caps(c).ok())
                .map(|i| {
                    (
                        i.width() as usize,
                        i.height() as usize,
                        i.stride()[0] as usize,
                    )
                })
            else {
                break Err(IngestError::Build(
                    "decoded frame without video caps".into(),
                ));
            };
            let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) else {
                break Err(IngestError::Build("decoded frame not readable".into()));
            };
            let view = match ImageView::new(width, height, stride, map.as_slice()) {
                Ok(v) => v,
                Err(e) => break Err(IngestError::Build(format!("decoded frame: {e}"))),
            };
            let at = sample
                .buffer()
                .and_then(|b| b.pts())
                .map_or(std::time::Duration::ZERO, |t| {
                    std::time::Duration::from_nanos(t.nseconds())
                });
            if !each(n, at, &view) {
                break Ok(n + 1);
            }
        }
        n += 1;
    };
    stop(&pipeline);
    result
}

/// A playing pipeline `filesrc (path) ! {chain} ! appsink` (not synchronised to the clock: as fast as it
/// decodes) and its appsink.
pub fn play_file(
    chain: &str,
    path: &Path,
) -> Result<(gst::Pipeline, gst_app::AppSink), IngestError> {
    let build = |e: String| IngestError::Build(format!("{}: {e}", path.display()));
    let pipeline = gst::parse::launch(&format!(
        "filesrc name=src ! {chain} ! appsink name=sink sync=false"
    ))
    .map_err(|e| build(e.to_string()))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| build("not a pipeline".into()))?;
    pipeline
        .by_name("src")
        .expect("named src")
        .set_property("location", path.to_string_lossy().as_ref());
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .expect("named appsink");
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| build(e.to_string()))?;
    Ok((pipeline, sink))
}

/// The pipeline's error, if one ended it (a file that is not a video, a missing decoder).
fn bus_error(pipeline: &gst::Pipeline) -> Option<IngestError> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop() {
        if let gst::MessageView::Error(e) = msg.view() {
            return Some(IngestError::Bus {
                element: msg
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default(),
                error: e.error().to_string(),
                debug: e.debug().map(|d| d.to_string()),
            });
        }
    }
    None
}
