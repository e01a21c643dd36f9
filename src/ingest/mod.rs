//! Ingest: one GStreamer pipeline per camera (rtspsrc → depay → parse → [keyframe filter] → decoder →
//! sampler → the decoder's own I420/NV12 picture → appsink), supervised by a thread that reconnects with jittered exponential backoff.
//! A camera that fails never stops the others or the daemon.

mod codec;
mod credentials;
mod file;
mod picture;
mod pipeline;
mod probe;
mod queue;
mod source;
mod supervisor;
mod template;

pub use codec::Codec;
pub use file::{decode_file, play_file};
pub use picture::frame_from_sample;
pub use pipeline::IngestError;
pub use probe::{Probe, probe};
pub use queue::FrameQueue;
pub use source::{
    CameraList, CameraSource, CameraState, CameraStats, RtspTransport, Sampling, Secret, StreamInfo,
};
pub use supervisor::{CameraHandle, spawn_camera};
pub use template::DecoderTemplate;

/// Initialise GStreamer once; safe to call repeatedly.
pub fn init_gstreamer() -> Result<(), IngestError> {
    gstreamer::init()
        .map_err(|e| IngestError::Build(format!("GStreamer failed to initialise: {e}")))
}
