//! A decoded sample as the frame every stage after ingest sees: the decoder's own 4:2:0 picture, mapped
//! where the decoder left it, with the layout its caps and video meta describe.

use super::IngestError;
use crate::base::{Chroma, ColorMatrix, Frame, FrameMeta, Pixels, YuvLayout};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// A decoded sample as a frame, its 4:2:0 picture mapped where the decoder left it (no copy). `None` (and
/// a warning) for a picture that is not I420 or NV12 or whose buffer does not match its caps.
pub fn frame_from_sample(sample: &gst::Sample, camera: &Arc<str>, seq: u64) -> Option<Frame> {
    let info = gst_video::VideoInfo::from_caps(sample.caps()?).ok()?;
    let buffer = sample.buffer_owned()?;
    let Some(layout) = yuv_layout(&info, &buffer) else {
        tracing::warn!(camera = %camera, format = ?info.format(), "Decoded picture is not I420 or NV12; frame refused.");
        return None;
    };
    let mapped = buffer.into_mapped_buffer_readable().ok()?;
    let meta = FrameMeta {
        camera: camera.clone(),
        seq,
        captured_at: SystemTime::now(),
        captured_mono: Instant::now(),
    };
    Frame::yuv(meta, layout, Pixels::Mapped(Box::new(mapped)))
        .inspect_err(|error| {
            tracing::warn!(camera = %camera, %error, "Decoded buffer does not match its caps; frame refused.")
        })
        .ok()
}

/// Tell the decoder the frames may keep its own padded layout (their planes described by video meta):
/// without it a software decoder cannot decode straight into the buffers it hands on (direct rendering)
/// and copies every decoded picture once more — every frame of an interval-sampled camera.
pub(super) fn accept_padded_pictures(appsink: &gst_app::AppSink) -> Result<(), IngestError> {
    let pad = appsink
        .static_pad("sink")
        .ok_or_else(|| IngestError::Build("appsink without a sink pad".into()))?;
    pad.add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, |_, info| {
        if let Some(gst::PadProbeData::Query(query)) = &mut info.data
            && let gst::QueryViewMut::Allocation(allocation) = query.view_mut()
        {
            allocation.add_allocation_meta::<gst_video::VideoMeta>(None);
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Where a decoded 4:2:0 picture's planes lie (the buffer's video meta when the decoder padded them,
/// else the caps' standard layout) and how its colours read.
fn yuv_layout(info: &gst_video::VideoInfo, buffer: &gst::Buffer) -> Option<YuvLayout> {
    let (offsets, strides): (Vec<usize>, Vec<usize>) = match buffer.meta::<gst_video::VideoMeta>() {
        Some(m) => (
            m.offset().to_vec(),
            m.stride().iter().map(|s| *s as usize).collect(),
        ),
        None => (
            info.offset().to_vec(),
            info.stride().iter().map(|s| *s as usize).collect(),
        ),
    };
    let chroma = match info.format() {
        gst_video::VideoFormat::I420 => Chroma::Planar {
            u_offset: *offsets.get(1)?,
            v_offset: *offsets.get(2)?,
            stride: *strides.get(1)?,
        },
        gst_video::VideoFormat::Nv12 => Chroma::Interleaved {
            offset: *offsets.get(1)?,
            stride: *strides.get(1)?,
        },
        _ => return None,
    };
    // The luma plane starts the buffer (every decoder here puts it first); anything else is refused.
    (*offsets.first()? == 0).then_some(())?;
    let colorimetry = info.colorimetry();
    Some(YuvLayout {
        width: info.width() as usize,
        height: info.height() as usize,
        y_stride: *strides.first()?,
        chroma,
        matrix: match colorimetry.matrix() {
            gst_video::VideoColorMatrix::Bt709 => ColorMatrix::Bt709,
            _ => ColorMatrix::Bt601,
        },
        full_range: colorimetry.range() == gst_video::VideoColorRange::Range0_255,
    })
}
