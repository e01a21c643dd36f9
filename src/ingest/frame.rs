//! A decoded, sampled frame and the bounded queue that carries frames to a detector.

use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Pixels of a frame: the GStreamer buffer itself (no copy) or an owned buffer.
pub enum Pixels {
    Gst(gstreamer::MappedBuffer<gstreamer::buffer::Readable>),
    Owned(Vec<u8>),
}

/// One packed-RGB frame from a camera.
pub struct Frame {
    /// Camera id.
    pub camera: Arc<str>,
    /// Per-camera sequence number of analysed frames, from 0 at daemon start.
    pub seq: u64,
    /// Wall-clock time the frame left the decoder.
    pub captured_at: SystemTime,
    /// Monotonic time of the same moment (for dwell and sustain logic).
    pub captured_mono: Instant,
    pub width: usize,
    pub height: usize,
    /// Bytes per row (rows may be padded).
    pub stride: usize,
    pub pixels: Pixels,
    /// The camera whose analysis slot this frame holds: while the frame exists the camera decodes no further
    /// keyframe (keyframe sampling) or converts no further frame (interval sampling), so an overloaded
    /// gateway lowers its sampling rate instead of spending CPU on frames that would be dropped. Released
    /// when the frame is dropped (analysed, or pushed out of the queue).
    pub slot: Option<Arc<crate::ingest::CameraStats>>,
}

impl Drop for Frame {
    fn drop(&mut self) {
        if let Some(stats) = &self.slot {
            stats
                .in_analysis
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

impl Frame {
    pub fn data(&self) -> &[u8] {
        match &self.pixels {
            Pixels::Gst(m) => m.as_slice(),
            Pixels::Owned(v) => v,
        }
    }

    pub fn view(&self) -> crate::detect::ImageView<'_> {
        crate::detect::ImageView {
            width: self.width,
            height: self.height,
            stride: self.stride,
            data: self.data(),
        }
    }

    /// Tightly packed RGB copy (for JPEG encoding).
    pub fn to_rgb_image(&self) -> image::RgbImage {
        let mut out = Vec::with_capacity(self.width * self.height * 3);
        for row in self.data().chunks(self.stride).take(self.height) {
            out.extend_from_slice(&row[..self.width * 3]);
        }
        image::RgbImage::from_raw(self.width as u32, self.height as u32, out)
            .expect("buffer sized to width × height × 3")
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Frame({} #{} {}×{})",
            self.camera, self.seq, self.width, self.height
        )
    }
}

/// A bounded frame queue that drops the *oldest* frame when full: analysis wants the freshest picture.
#[derive(Clone)]
pub struct FrameQueue {
    tx: Sender<Frame>,
    rx: Receiver<Frame>,
}

impl FrameQueue {
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        Self { tx, rx }
    }

    /// Enqueue; returns how many frames were dropped to make room (0 or 1).
    pub fn push(&self, mut frame: Frame) -> u64 {
        let mut dropped = 0;
        loop {
            match self.tx.try_send(frame) {
                Ok(()) => return dropped,
                Err(TrySendError::Full(f)) => {
                    if self.rx.try_recv().is_ok() {
                        dropped += 1;
                    }
                    frame = f;
                }
                Err(TrySendError::Disconnected(_)) => return dropped + 1,
            }
        }
    }

    pub fn receiver(&self) -> &Receiver<Frame> {
        &self.rx
    }
}
