//! A borrowed view of packed RGB pixels whose rows may be padded. The constructor checks that the buffer
//! holds what the sizes promise, so nothing downstream (pre-processing, thumbnails, evidence) re-checks or
//! indexes out of bounds.

/// A borrowed packed RGB image whose rows may be padded (`stride` ≥ `width × 3`).
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    width: usize,
    height: usize,
    stride: usize,
    data: &'a [u8],
}

/// Why a buffer cannot be viewed as an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("an image needs a width and a height above 0, got {width}×{height}")]
    Empty { width: usize, height: usize },
    #[error("a row of {width} RGB pixels needs {need} bytes, but the stride is {stride}")]
    Stride {
        width: usize,
        stride: usize,
        need: usize,
    },
    #[error(
        "a {width}×{height} image with stride {stride} needs {need} bytes, the buffer has {have}"
    )]
    Short {
        width: usize,
        height: usize,
        stride: usize,
        need: usize,
        have: usize,
    },
}

impl<'a> ImageView<'a> {
    /// View `data` as `height` rows of `stride` bytes, each starting with `width` RGB pixels (the last row
    /// need not be padded).
    pub fn new(
        width: usize,
        height: usize,
        stride: usize,
        data: &'a [u8],
    ) -> Result<Self, ImageError> {
        if width == 0 || height == 0 {
            return Err(ImageError::Empty { width, height });
        }
        let row = width.saturating_mul(3);
        if stride < row {
            return Err(ImageError::Stride {
                width,
                stride,
                need: row,
            });
        }
        let need = stride
            .checked_mul(height - 1)
            .and_then(|b| b.checked_add(row))
            .unwrap_or(usize::MAX);
        if data.len() < need {
            return Err(ImageError::Short {
                width,
                height,
                stride,
                need,
                have: data.len(),
            });
        }
        Ok(Self {
            width,
            height,
            stride,
            data,
        })
    }

    /// A tightly packed image (`stride = width × 3`).
    pub fn packed(width: usize, height: usize, data: &'a [u8]) -> Result<Self, ImageError> {
        Self::new(width, height, width.saturating_mul(3), data)
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Bytes from the start of one row to the start of the next.
    pub fn stride(&self) -> usize {
        self.stride
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Row `y`'s `width × 3` pixel bytes, without the padding.
    pub fn row(&self, y: usize) -> &'a [u8] {
        let start = y * self.stride;
        &self.data[start..start + self.width * 3]
    }

    /// Tightly packed RGB bytes (`width × height × 3`): one copy, for encoders that want no padding.
    pub fn to_packed(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.width * self.height * 3);
        for y in 0..self.height {
            out.extend_from_slice(self.row(y));
        }
        out
    }

    /// The part of the picture inside `region` (normalised, clamped to the picture), without copying:
    /// same rows, offset start. `None` when less than one pixel is left.
    pub fn crop(&self, region: crate::base::BBox) -> Option<ImageView<'a>> {
        let r = region.clamped();
        let px = |v: f32, size: usize| ((v * size as f32).round() as usize).min(size);
        let (x1, x2) = (px(r.x1, self.width), px(r.x2, self.width));
        let (y1, y2) = (px(r.y1, self.height), px(r.y2, self.height));
        if x2 <= x1 || y2 <= y1 {
            return None;
        }
        let start = y1 * self.stride + x1 * 3;
        ImageView::new(x2 - x1, y2 - y1, self.stride, &self.data[start..]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crop_shares_the_rows_and_starts_at_its_corner() {
        // 4 × 2 picture whose red byte is the pixel's index; rows padded to 16 bytes.
        let mut data = vec![0u8; 16 * 2];
        for y in 0..2 {
            for x in 0..4 {
                data[y * 16 + x * 3] = (y * 4 + x) as u8;
            }
        }
        let img = ImageView::new(4, 2, 16, &data).unwrap();
        let half = |x1, y1, x2, y2| crate::base::BBox { x1, y1, x2, y2 };
        let c = img.crop(half(0.5, 0.5, 1.0, 1.0)).unwrap();
        assert_eq!((c.width(), c.height(), c.stride()), (2, 1, 16));
        assert_eq!((c.row(0)[0], c.row(0)[3]), (6, 7));
        assert!(
            img.crop(half(0.5, 0.5, 0.6, 0.6)).is_none(),
            "under a pixel"
        );
        let all = img.crop(half(-1.0, -1.0, 2.0, 2.0)).unwrap();
        assert_eq!(
            (all.width(), all.height()),
            (4, 2),
            "clamped to the picture"
        );
    }

    #[test]
    fn a_buffer_shorter_than_its_sizes_is_refused() {
        let data = vec![0u8; 10 * 3 * 4];
        assert!(ImageView::packed(10, 4, &data).is_ok());
        assert_eq!(
            ImageView::packed(10, 5, &data).unwrap_err(),
            ImageError::Short {
                width: 10,
                height: 5,
                stride: 30,
                need: 150,
                have: 120
            }
        );
        assert!(matches!(
            ImageView::new(10, 4, 29, &data),
            Err(ImageError::Stride { need: 30, .. })
        ));
        assert!(matches!(
            ImageView::packed(0, 4, &data),
            Err(ImageError::Empty { .. })
        ));
        assert!(matches!(
            ImageView::new(usize::MAX, 2, usize::MAX, &data),
            Err(ImageError::Short { .. })
        ));
    }

    #[test]
    fn the_last_row_needs_no_padding_and_rows_skip_it() {
        // 2×2 pixels, stride 8 (2 padding bytes), last row unpadded: 8 + 6 bytes.
        let data: Vec<u8> = (0..14).collect();
        let v = ImageView::new(2, 2, 8, &data).unwrap();
        assert_eq!(v.row(1), &[8, 9, 10, 11, 12, 13]);
        assert_eq!(v.to_packed(), vec![0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]);
    }
}
