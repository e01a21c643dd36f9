//! A borrowed view of a decoder's own 4:2:0 picture (I420: three planes; NV12: luma and interleaved
//! chroma), as software and hardware decoders hand it out. Stages that only need a few pixels of it (the
//! model's input, the health checks' thumbnail) read it directly; [`YuvView::to_rgb`] makes the packed RGB
//! copy the stages that need every pixel in colour (evidence, crops) ask for. Like [`ImageView`], the
//! constructor checks the planes lie inside the buffer, so reading them cannot go out of bounds.
//!
//! [`ImageView`]: super::ImageView

use super::image::ImageError;

/// Which YUV → RGB matrix the stream was encoded with (from the decoder's colorimetry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorMatrix {
    /// ITU-R BT.601 (SD, and what many IP cameras signal).
    #[default]
    Bt601,
    /// ITU-R BT.709 (HD).
    Bt709,
}

/// Where the chroma of a 4:2:0 picture lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    /// I420: a U plane and a V plane, each `⌈w/2⌉ × ⌈h/2⌉`.
    Planar {
        u_offset: usize,
        v_offset: usize,
        stride: usize,
    },
    /// NV12: one plane of U, V pairs.
    Interleaved { offset: usize, stride: usize },
}

/// Where the planes of a 4:2:0 picture lie in its buffer, and how to read its colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YuvLayout {
    pub width: usize,
    pub height: usize,
    pub y_stride: usize,
    pub chroma: Chroma,
    pub matrix: ColorMatrix,
    /// Luma 0..255 rather than the video range 16..235 (chroma 16..240).
    pub full_range: bool,
}

/// YUV → RGB as `r = ky·(Y − y0) + rv·(V − 128)`, `g = ky·(Y − y0) − gu·(U − 128) − gv·(V − 128)`,
/// `b = ky·(Y − y0) + bu·(U − 128)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YuvToRgb {
    pub y0: f32,
    pub ky: f32,
    pub rv: f32,
    pub gu: f32,
    pub gv: f32,
    pub bu: f32,
}

impl YuvLayout {
    /// I420 with no padding, planes one after the other (Y, U, V), video range: the layout of a raw
    /// `yuv420p` file; `data` for it is `w × h + 2 × ⌈w/2⌉ × ⌈h/2⌉` bytes.
    pub fn packed_i420(width: usize, height: usize, matrix: ColorMatrix) -> YuvLayout {
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        YuvLayout {
            width,
            height,
            y_stride: width,
            chroma: Chroma::Planar {
                u_offset: width * height,
                v_offset: width * height + cw * ch,
                stride: cw,
            },
            matrix,
            full_range: false,
        }
    }

    pub fn chroma_size(&self) -> (usize, usize) {
        (self.width.div_ceil(2), self.height.div_ceil(2))
    }

    /// The conversion this picture's matrix and range call for.
    pub fn coefficients(&self) -> YuvToRgb {
        let (kr, kb) = match self.matrix {
            ColorMatrix::Bt601 => (0.299f32, 0.114f32),
            ColorMatrix::Bt709 => (0.2126, 0.0722),
        };
        let kg = 1.0 - kr - kb;
        let (y0, ky, kc) = if self.full_range {
            (0.0, 1.0, 1.0)
        } else {
            (16.0, 255.0 / 219.0, 255.0 / 224.0)
        };
        YuvToRgb {
            y0,
            ky,
            rv: 2.0 * (1.0 - kr) * kc,
            gu: 2.0 * kb * (1.0 - kb) / kg * kc,
            gv: 2.0 * kr * (1.0 - kr) / kg * kc,
            bu: 2.0 * (1.0 - kb) * kc,
        }
    }
}

impl YuvToRgb {
    /// One pixel, unclamped.
    #[inline]
    pub fn rgb(&self, y: f32, u: f32, v: f32) -> [f32; 3] {
        let l = self.ky * (y - self.y0);
        let (u, v) = (u - 128.0, v - 128.0);
        [
            l + self.rv * v,
            l - self.gu * u - self.gv * v,
            l + self.bu * u,
        ]
    }

    /// Luma as full-range grey 0..255 (what the BT.601 luma of the RGB picture would be).
    #[inline]
    pub fn grey(&self, y: u8) -> f32 {
        (self.ky * (y as f32 - self.y0)).clamp(0.0, 255.0)
    }
}

/// A borrowed 4:2:0 picture whose planes were checked against its buffer.
#[derive(Debug, Clone, Copy)]
pub struct YuvView<'a> {
    layout: YuvLayout,
    data: &'a [u8],
}

impl<'a> YuvView<'a> {
    pub fn new(layout: YuvLayout, data: &'a [u8]) -> Result<Self, ImageError> {
        let (w, h) = (layout.width, layout.height);
        if w == 0 || h == 0 {
            return Err(ImageError::Empty {
                width: w,
                height: h,
            });
        }
        if layout.y_stride < w {
            return Err(ImageError::Stride {
                width: w,
                stride: layout.y_stride,
                need: w,
            });
        }
        let (cw, ch) = layout.chroma_size();
        let plane_end = |offset: usize, stride: usize, row: usize, rows: usize| {
            stride
                .checked_mul(rows - 1)
                .and_then(|b| b.checked_add(row))
                .and_then(|b| b.checked_add(offset))
                .unwrap_or(usize::MAX)
        };
        let (chroma_stride, chroma_row, ends) = match layout.chroma {
            Chroma::Planar {
                u_offset,
                v_offset,
                stride,
            } => (
                stride,
                cw,
                [
                    plane_end(u_offset, stride, cw, ch),
                    plane_end(v_offset, stride, cw, ch),
                ],
            ),
            Chroma::Interleaved { offset, stride } => {
                let end = plane_end(offset, stride, 2 * cw, ch);
                (stride, 2 * cw, [end, end])
            }
        };
        if chroma_stride < chroma_row {
            return Err(ImageError::Stride {
                width: cw,
                stride: chroma_stride,
                need: chroma_row,
            });
        }
        let need = ends
            .into_iter()
            .chain([plane_end(0, layout.y_stride, w, h)])
            .max()
            .unwrap_or(usize::MAX);
        if data.len() < need {
            return Err(ImageError::Short {
                width: w,
                height: h,
                stride: layout.y_stride,
                need,
                have: data.len(),
            });
        }
        Ok(Self { layout, data })
    }

    pub fn width(&self) -> usize {
        self.layout.width
    }

    pub fn height(&self) -> usize {
        self.layout.height
    }

    pub fn layout(&self) -> &YuvLayout {
        &self.layout
    }

    /// Luma row `y` (`width` bytes).
    #[inline]
    pub fn y_row(&self, y: usize) -> &'a [u8] {
        let start = y * self.layout.y_stride;
        &self.data[start..start + self.layout.width]
    }

    /// Chroma row `cy` as (U bytes, V bytes, bytes from one chroma sample to the next): the U of column
    /// `cx` is `u[cx × step]`, its V `v[cx × step]`.
    #[inline]
    pub fn chroma_rows(&self, cy: usize) -> (&'a [u8], &'a [u8], usize) {
        let cw = self.layout.chroma_size().0;
        match self.layout.chroma {
            Chroma::Planar {
                u_offset,
                v_offset,
                stride,
            } => {
                let (u, v) = (u_offset + cy * stride, v_offset + cy * stride);
                (&self.data[u..u + cw], &self.data[v..v + cw], 1)
            }
            Chroma::Interleaved { offset, stride } => {
                let start = offset + cy * stride;
                let row = &self.data[start..start + 2 * cw];
                (row, &row[1..], 2)
            }
        }
    }

    /// Tightly packed RGB (`width × height × 3`), each pixel with the chroma of its 2 × 2 block.
    pub fn to_rgb(&self) -> Vec<u8> {
        let (w, h) = (self.width(), self.height());
        let k = self.layout.coefficients();
        // 16.16 fixed point: the same arithmetic as `YuvToRgb::rgb`, rounded once.
        let fx = |v: f32| (v * 65536.0).round() as i32;
        let (ky, rv, gu, gv, bu) = (fx(k.ky), fx(k.rv), fx(k.gu), fx(k.gv), fx(k.bu));
        let y0 = k.y0 as i32;
        let mut out = vec![0u8; w * h * 3];
        let clamp = |v: i32| (v >> 16).clamp(0, 255) as u8;
        let half = 1 << 15;
        for (y, dest) in out.chunks_exact_mut(w * 3).enumerate() {
            let luma = self.y_row(y);
            let (us, vs, step) = self.chroma_rows(y / 2);
            // Two pixels share a chroma sample: its terms are computed once for both.
            let pixels = dest.chunks_mut(6).zip(luma.chunks(2));
            for (cx, (px, l)) in pixels.enumerate() {
                let (u, v) = (us[cx * step] as i32 - 128, vs[cx * step] as i32 - 128);
                let (r, g, b) = (rv * v + half, half - gu * u - gv * v, bu * u + half);
                for (p, &l) in px.chunks_exact_mut(3).zip(l) {
                    let l = ky * (l as i32 - y0);
                    p[0] = clamp(l + r);
                    p[1] = clamp(l + g);
                    p[2] = clamp(l + b);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An I420 picture of one colour, planes packed one after the other.
    fn i420(w: usize, h: usize, yuv: [u8; 3]) -> (YuvLayout, Vec<u8>) {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut data = vec![yuv[0]; w * h];
        data.extend(std::iter::repeat_n(yuv[1], cw * ch));
        data.extend(std::iter::repeat_n(yuv[2], cw * ch));
        (YuvLayout::packed_i420(w, h, ColorMatrix::Bt601), data)
    }

    #[test]
    fn video_range_grey_and_primaries_convert_to_their_rgb() {
        for (yuv, rgb) in [
            ([16, 128, 128], [0, 0, 0]),
            ([235, 128, 128], [255, 255, 255]),
            ([126, 128, 128], [128, 128, 128]),
            // BT.601 red, green, blue in video range.
            ([81, 90, 240], [255, 0, 0]),
            ([145, 54, 34], [0, 255, 1]),
            ([41, 240, 110], [0, 0, 255]),
        ] {
            let (layout, data) = i420(5, 3, yuv);
            let got = YuvView::new(layout, &data).unwrap().to_rgb();
            for px in got.chunks_exact(3) {
                for c in 0..3 {
                    assert!(
                        px[c].abs_diff(rgb[c]) <= 2,
                        "{yuv:?} → {px:?}, want {rgb:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn nv12_reads_the_same_as_i420() {
        let (w, h) = (6, 4);
        let (layout, data) = i420(w, h, [100, 60, 200]);
        let planar = YuvView::new(layout, &data).unwrap().to_rgb();
        let mut nv12 = vec![100u8; w * h];
        nv12.extend([60u8, 200].repeat(3 * 2));
        let layout = YuvLayout {
            chroma: Chroma::Interleaved {
                offset: w * h,
                stride: w,
            },
            ..layout
        };
        assert_eq!(YuvView::new(layout, &nv12).unwrap().to_rgb(), planar);
    }

    #[test]
    fn planes_outside_the_buffer_are_refused() {
        let (layout, mut data) = i420(8, 6, [1, 2, 3]);
        data.pop();
        assert!(matches!(
            YuvView::new(layout, &data),
            Err(ImageError::Short { .. })
        ));
        let narrow = YuvLayout {
            y_stride: 7,
            ..layout
        };
        assert!(YuvView::new(narrow, &data).is_err());
    }

    #[test]
    fn full_range_luma_is_its_own_grey() {
        let k = YuvLayout {
            full_range: true,
            ..i420(2, 2, [0; 3]).0
        }
        .coefficients();
        assert_eq!(k.grey(200), 200.0);
        assert_eq!(k.rgb(90.0, 128.0, 128.0), [90.0; 3]);
    }
}
