//! A decoded frame as every stage after ingest sees it: who took it, when, and its RGB pixels behind a view.
//! Where the pixels live (a mapped GStreamer buffer, an owned copy) is ingest's business; stages above it
//! only ever see an [`ImageView`].

use super::image::{ImageError, ImageView};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Bytes of a frame: owned, or borrowed from a decoder's buffer (no copy) that stays mapped while the frame
/// lives.
pub enum Pixels {
    Owned(Vec<u8>),
    Mapped(Box<dyn AsRef<[u8]> + Send>),
}

impl Pixels {
    fn bytes(&self) -> &[u8] {
        match self {
            Pixels::Owned(v) => v,
            Pixels::Mapped(m) => (**m).as_ref(),
        }
    }
}

/// Who took a frame, and when.
#[derive(Debug, Clone)]
pub struct FrameMeta {
    /// Camera id.
    pub camera: Arc<str>,
    /// Per-camera sequence number of analysed frames, from 0 at daemon start.
    pub seq: u64,
    /// Wall-clock time the frame left the decoder.
    pub captured_at: SystemTime,
    /// Monotonic time of the same moment (for dwell and sustain logic).
    pub captured_mono: Instant,
}

/// One packed-RGB frame from a camera. Its sizes are checked against its bytes when it is made, so
/// [`Frame::view`] cannot fail.
pub struct Frame {
    pub camera: Arc<str>,
    pub seq: u64,
    pub captured_at: SystemTime,
    pub captured_mono: Instant,
    width: usize,
    height: usize,
    stride: usize,
    pixels: Pixels,
    /// Released when the frame is dropped: ingest's analysis slot (while a camera's frame waits for
    /// analysis the camera decodes no further one).
    hold: Option<Box<dyn Send>>,
}

impl Frame {
    /// A frame of `width × height` RGB pixels in rows `stride` bytes apart.
    pub fn new(
        meta: FrameMeta,
        width: usize,
        height: usize,
        stride: usize,
        pixels: Pixels,
    ) -> Result<Self, ImageError> {
        ImageView::new(width, height, stride, pixels.bytes())?;
        Ok(Self {
            camera: meta.camera,
            seq: meta.seq,
            captured_at: meta.captured_at,
            captured_mono: meta.captured_mono,
            width,
            height,
            stride,
            pixels,
            hold: None,
        })
    }

    /// Keep `value` alive as long as the frame and drop it with the frame.
    pub fn hold(&mut self, value: Box<dyn Send>) {
        self.hold = Some(value);
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn view(&self) -> ImageView<'_> {
        ImageView::new(self.width, self.height, self.stride, self.pixels.bytes())
            .expect("sizes checked when the frame was made")
    }

    /// Tightly packed RGB copy (for JPEG encoding and drawing).
    pub fn to_rgb_image(&self) -> image::RgbImage {
        image::RgbImage::from_raw(
            self.width as u32,
            self.height as u32,
            self.view().to_packed(),
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn meta() -> FrameMeta {
        FrameMeta {
            camera: "c".into(),
            seq: 0,
            captured_at: SystemTime::UNIX_EPOCH,
            captured_mono: Instant::now(),
        }
    }

    #[test]
    fn a_frame_whose_bytes_do_not_match_its_sizes_is_refused() {
        assert!(Frame::new(meta(), 4, 4, 12, Pixels::Owned(vec![0; 47])).is_err());
        let f = Frame::new(meta(), 4, 4, 12, Pixels::Owned(vec![0; 48])).unwrap();
        assert_eq!(f.view().width(), 4);
    }

    #[test]
    fn what_a_frame_holds_is_released_with_it() {
        struct Count(Arc<AtomicUsize>);
        impl Drop for Count {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut f = Frame::new(meta(), 1, 1, 3, Pixels::Mapped(Box::new(vec![1u8, 2, 3]))).unwrap();
        f.hold(Box::new(Count(dropped.clone())));
        assert_eq!(f.view().data(), &[1, 2, 3]);
        assert_eq!(dropped.load(Ordering::SeqCst), 0);
        drop(f);
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
    }
}
