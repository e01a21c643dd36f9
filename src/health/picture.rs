//! What the health checks read from one frame, in one pass over a fraction of its rows: a small grey
//! thumbnail (registration, texture per cell), the sharpness of the full-resolution picture, brightness,
//! clipped highlights, colour cast, and a sparse set of raw pixels (to tell a frozen picture from a still
//! street: a frozen one repeats them exactly, a live sensor never does).

use crate::base::FrameView;

/// Thumbnail width (its height follows the frame's aspect; both fit the registration grid).
pub(super) const THUMB: usize = 128;
/// Texture cells across and down the thumbnail.
pub(super) const CELLS_X: usize = 8;
pub(super) const CELLS_Y: usize = 6;
/// Every this many rows of the full frame are read for sharpness and the raw samples.
const ROW_STEP: usize = 8;
/// Every this many rows (every other pixel of each) feed the thumbnail and the colour means.
const THUMB_ROW_STEP: usize = 4;
/// Raw-pixel samples across a sampled row.
const SAMPLES_PER_ROW: usize = 64;
/// Added to a mean luma before dividing by it, so near-black noise does not count as texture.
pub(super) const DARK_OFFSET: f32 = 10.0;

/// One frame as the health checks see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    /// Grey thumbnail, `tw × th`, luma 0..255.
    pub grey: Vec<f32>,
    pub tw: usize,
    pub th: usize,
    /// Texture of each cell of the thumbnail (mean absolute gradient over mean luma), row-major.
    pub texture: Vec<f32>,
    /// Root-mean-square gradient of the full-resolution luma over its mean: falls when the picture blurs.
    pub sharpness: f32,
    /// Mean luma, 0..255.
    pub brightness: f32,
    /// Fraction of the thumbnail at or above 250 (blown out).
    pub clipped: f32,
    /// Spread of the mean red, green and blue over the mean luma: 0 for a neutral (or infrared grey)
    /// picture, large for a picture with one colour missing or dominant.
    pub cast: f32,
    /// Raw luma of a sparse, fixed set of pixels.
    pub samples: Vec<u8>,
}

impl Picture {
    /// Read `image`: an eighth of its rows for the full-resolution figures, every other pixel of a quarter
    /// of them for the thumbnail and the colour.
    pub fn read<'a>(picture: impl Into<FrameView<'a>>) -> Picture {
        let image = picture.into();
        let (w, h) = (image.width(), image.height());
        let tw = THUMB.min(w);
        let th = ((tw * h + w / 2) / w).clamp(1, super::register::GRID.min(h));
        let mut sums = vec![0u64; tw * th];
        let mut counts = vec![0u32; tw * th];
        let col_of: Vec<usize> = (0..w).map(|x| x * tw / w).collect();
        // Colour sums: R, G, B of an RGB picture; Y, U, V of a 4:2:0 one (converted once, as means).
        let (mut colour, mut grad2, mut grad_n, mut read) = ([0u64; 3], 0f64, 0u64, 0u64);
        let mut samples = Vec::with_capacity(SAMPLES_PER_ROW * h / ROW_STEP + 1);
        let sample_step = (w / SAMPLES_PER_ROW).max(1);
        let mut here: Vec<i32> = Vec::with_capacity(w);
        let mut below: Vec<i32> = Vec::with_capacity(w);
        let grey = GreyRows::new(image);
        // Every THUMB_ROW_STEP-th row, every other pixel, feeds the thumbnail and the colour means; every
        // ROW_STEP-th row also the gradient at full resolution (with its right-hand and lower neighbours)
        // and the raw samples.
        for y in (0..h).step_by(THUMB_ROW_STEP) {
            let cell = (y * th / h) * tw;
            let mut add = |x: usize, luma: i32| {
                sums[cell + col_of[x]] += luma as u64;
                counts[cell + col_of[x]] += 1;
            };
            match image {
                FrameView::Rgb(img) => {
                    for (x, p) in img.row(y).chunks_exact(3).enumerate().step_by(2) {
                        colour[0] += p[0] as u64;
                        colour[1] += p[1] as u64;
                        colour[2] += p[2] as u64;
                        add(x, luma(p));
                    }
                }
                FrameView::Yuv(v) => {
                    let (us, vs, step) = v.chroma_rows(y / 2);
                    for (x, &l) in v.y_row(y).iter().enumerate().step_by(2) {
                        colour[0] += l as u64;
                        colour[1] += us[x / 2 * step] as u64;
                        colour[2] += vs[x / 2 * step] as u64;
                        add(x, grey.lut[l as usize]);
                    }
                }
            }
            read += w.div_ceil(2) as u64;
            if y % ROW_STEP != 0 || y + 1 >= h {
                continue;
            }
            grey.row(y, &mut here);
            grey.row(y + 1, &mut below);
            for (x, pair) in here.windows(2).enumerate() {
                let (dx, dy) = (pair[1] - pair[0], below[x] - pair[0]);
                grad2 += (dx * dx + dy * dy) as f64;
            }
            grad_n += here.len().saturating_sub(1) as u64;
            samples.extend(here.iter().step_by(sample_step).map(|&l| l as u8));
        }
        let grey: Vec<f32> = sums
            .iter()
            .zip(&counts)
            .map(|(s, n)| *s as f32 / (*n).max(1) as f32)
            .collect();
        let pixels = read.max(1) as f32;
        let means = match image {
            FrameView::Rgb(_) => colour.map(|c| c as f32 / pixels),
            FrameView::Yuv(v) => {
                let [y, u, v2] = colour.map(|c| c as f32 / pixels);
                v.layout()
                    .coefficients()
                    .rgb(y, u, v2)
                    .map(|c| c.clamp(0.0, 255.0))
            }
        };
        let brightness = 0.299 * means[0] + 0.587 * means[1] + 0.114 * means[2];
        let spread = means.iter().cloned().fold(f32::MIN, f32::max)
            - means.iter().cloned().fold(f32::MAX, f32::min);
        let rms = (grad2 / grad_n.max(1) as f64).sqrt() as f32;
        Picture {
            texture: texture(&grey, tw, th),
            clipped: grey.iter().filter(|v| **v >= 250.0).count() as f32 / grey.len() as f32,
            grey,
            tw,
            th,
            sharpness: rms / (brightness + DARK_OFFSET),
            brightness,
            cast: spread / (brightness + DARK_OFFSET),
            samples,
        }
    }
}

/// Grey rows of a picture, 0..255: the BT.601 luma of an RGB picture, the luma plane of a 4:2:0 one
/// stretched to full range.
struct GreyRows<'a> {
    image: FrameView<'a>,
    lut: [i32; 256],
}

impl<'a> GreyRows<'a> {
    fn new(image: FrameView<'a>) -> Self {
        let mut lut = [0; 256];
        if let FrameView::Yuv(v) = image {
            let k = v.layout().coefficients();
            for (i, g) in lut.iter_mut().enumerate() {
                *g = k.grey(i as u8).round() as i32;
            }
        }
        Self { image, lut }
    }

    fn row(&self, y: usize, out: &mut Vec<i32>) {
        out.clear();
        match self.image {
            FrameView::Rgb(img) => out.extend(img.row(y).chunks_exact(3).map(luma)),
            FrameView::Yuv(v) => out.extend(v.y_row(y).iter().map(|&l| self.lut[l as usize])),
        }
    }
}

fn luma(p: &[u8]) -> i32 {
    (77 * p[0] as i32 + 150 * p[1] as i32 + 29 * p[2] as i32) >> 8
}

/// Mean absolute gradient over mean luma per cell of a `tw × th` thumbnail.
pub(super) fn texture(grey: &[f32], tw: usize, th: usize) -> Vec<f32> {
    let mut grad = [0f32; CELLS_X * CELLS_Y];
    let mut luma = [0f32; CELLS_X * CELLS_Y];
    let mut n = [0u32; CELLS_X * CELLS_Y];
    for y in 0..th.saturating_sub(1) {
        for x in 0..tw.saturating_sub(1) {
            let v = grey[y * tw + x];
            let g = (grey[y * tw + x + 1] - v).abs() + (grey[(y + 1) * tw + x] - v).abs();
            let c = (y * CELLS_Y / th) * CELLS_X + x * CELLS_X / tw;
            grad[c] += g;
            luma[c] += v;
            n[c] += 1;
        }
    }
    (0..grad.len())
        .map(|c| {
            let k = n[c].max(1) as f32;
            (grad[c] / k) / (luma[c] / k + DARK_OFFSET)
        })
        .collect()
}

/// Fraction of sampled pixels whose raw value differs between two pictures of the same size (1 when the
/// sizes differ: a new resolution is a change).
pub(super) fn changed_fraction(a: &[u8], b: &[u8]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 1.0;
    }
    a.iter().zip(b).filter(|(x, y)| x.abs_diff(**y) > 1).count() as f32 / a.len() as f32
}
