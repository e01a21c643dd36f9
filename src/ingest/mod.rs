//! Ingest: one GStreamer pipeline per camera (rtspsrc → depay → parse → [keyframe filter] → decoder →
//! sampler → RGB → appsink), supervised by a thread that reconnects with jittered exponential backoff.
//! A camera that fails never stops the others or the daemon.

mod backoff;
mod frame;
mod pipeline;
mod probe;
mod supervisor;
mod template;

pub use backoff::Backoff;
pub use frame::{Frame, FrameQueue, Pixels};
pub use pipeline::{IngestError, StreamInfo};
pub use probe::{Probe, probe};
pub use supervisor::{
    CameraHandle, CameraList, CameraSource, CameraState, CameraStats, spawn_camera,
};
pub use template::DecoderTemplate;

/// Initialise GStreamer once; safe to call repeatedly.
pub fn init_gstreamer() -> Result<(), IngestError> {
    gstreamer::init()
        .map_err(|e| IngestError::Build(format!("GStreamer failed to initialise: {e}")))
}
