//! A decoded frame as every stage after ingest sees it: who took it, when, and its pixels behind a view.
//! Where the pixels live (a mapped GStreamer buffer, an owned copy) is ingest's business; stages above it
//! only ever see an [`ImageView`] (packed RGB) or, through [`Frame::picture`], the decoder's own 4:2:0
//! picture. A 4:2:0 frame is converted to RGB only when a stage asks for [`Frame::view`], once.

use super::image::{ImageError, ImageView};
use super::yuv::{YuvLayout, YuvView};
use std::sync::{Arc, OnceLock};
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

/// How a frame's bytes hold its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// Packed RGB, rows `stride` bytes apart.
    Rgb { stride: usize },
    /// A decoder's 4:2:0 picture (I420 or NV12).
    Yuv(YuvLayout),
}

/// A frame's pixels as they are, without conversion: what stages that read only some of them take.
#[derive(Debug, Clone, Copy)]
pub enum FrameView<'a> {
    Rgb(ImageView<'a>),
    Yuv(YuvView<'a>),
}

impl FrameView<'_> {
    pub fn width(&self) -> usize {
        match self {
            FrameView::Rgb(v) => v.width(),
            FrameView::Yuv(v) => v.width(),
        }
    }

    pub fn height(&self) -> usize {
        match self {
            FrameView::Rgb(v) => v.height(),
            FrameView::Yuv(v) => v.height(),
        }
    }
}

impl<'a> From<ImageView<'a>> for FrameView<'a> {
    fn from(v: ImageView<'a>) -> Self {
        FrameView::Rgb(v)
    }
}

impl<'a> From<&ImageView<'a>> for FrameView<'a> {
    fn from(v: &ImageView<'a>) -> Self {
        FrameView::Rgb(*v)
    }
}

/// One frame from a camera. Its sizes are checked against its bytes when it is made, so [`Frame::view`]
/// and [`Frame::picture`] cannot fail.
pub struct Frame {
    pub camera: Arc<str>,
    pub seq: u64,
    pub captured_at: SystemTime,
    pub captured_mono: Instant,
    width: usize,
    height: usize,
    format: PixelFormat,
    pixels: Pixels,
    /// The RGB conversion of a 4:2:0 frame, made the first time a stage asks for it.
    rgb: OnceLock<Vec<u8>>,
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
        Ok(Self::made(
            meta,
            (width, height),
            PixelFormat::Rgb { stride },
            pixels,
        ))
    }

    /// A frame of the decoder's own 4:2:0 picture, laid out as `layout` says.
    pub fn yuv(meta: FrameMeta, layout: YuvLayout, pixels: Pixels) -> Result<Self, ImageError> {
        YuvView::new(layout, pixels.bytes())?;
        Ok(Self::made(
            meta,
            (layout.width, layout.height),
            PixelFormat::Yuv(layout),
            pixels,
        ))
    }

    fn made(meta: FrameMeta, size: (usize, usize), format: PixelFormat, pixels: Pixels) -> Self {
        Self {
            camera: meta.camera,
            seq: meta.seq,
            captured_at: meta.captured_at,
            captured_mono: meta.captured_mono,
            width: size.0,
            height: size.1,
            format,
            pixels,
            rgb: OnceLock::new(),
            hold: None,
        }
    }

    /// An owned copy of the pixels as they are, without what the frame holds (its camera's analysis slot):
    /// for work that outlives the analysis, such as encoding the evidence. A 4:2:0 frame copies half the
    /// bytes its RGB would take.
    pub fn detached(&self) -> Frame {
        Self::made(
            FrameMeta {
                camera: self.camera.clone(),
                seq: self.seq,
                captured_at: self.captured_at,
                captured_mono: self.captured_mono,
            },
            (self.width, self.height),
            self.format,
            Pixels::Owned(self.pixels.bytes().to_vec()),
        )
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

    /// The pixels as the decoder made them, without conversion.
    pub fn picture(&self) -> FrameView<'_> {
        let bytes = self.pixels.bytes();
        let checked = "sizes checked when the frame was made";
        match self.format {
            PixelFormat::Rgb { stride } => FrameView::Rgb(
                ImageView::new(self.width, self.height, stride, bytes).expect(checked),
            ),
            PixelFormat::Yuv(layout) => FrameView::Yuv(YuvView::new(layout, bytes).expect(checked)),
        }
    }

    /// The frame in packed RGB: the frame's own bytes, or for a 4:2:0 frame its conversion (made on the
    /// first call, kept with the frame).
    pub fn view(&self) -> ImageView<'_> {
        match self.picture() {
            FrameView::Rgb(v) => v,
            FrameView::Yuv(v) => {
                let rgb = self.rgb.get_or_init(|| v.to_rgb());
                ImageView::packed(self.width, self.height, rgb).expect("converted to its own size")
            }
        }
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
    fn a_yuv_frame_is_read_as_it_is_and_converted_once_on_demand() {
        use crate::base::{Chroma, ColorMatrix, YuvLayout};
        let layout = YuvLayout {
            width: 2,
            height: 2,
            y_stride: 2,
            chroma: Chroma::Interleaved {
                offset: 4,
                stride: 2,
            },
            matrix: ColorMatrix::Bt601,
            full_range: true,
        };
        let f = Frame::yuv(
            meta(),
            layout,
            Pixels::Owned(vec![90, 90, 90, 90, 128, 128]),
        )
        .unwrap();
        assert!(matches!(f.picture(), FrameView::Yuv(_)));
        let first = f.view().data().as_ptr();
        assert_eq!(f.view().data(), &[90; 12]);
        assert_eq!(
            f.view().data().as_ptr(),
            first,
            "converted once, kept with the frame"
        );
        assert!(Frame::yuv(meta(), layout, Pixels::Owned(vec![0; 5])).is_err());
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
