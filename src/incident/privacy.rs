//! Privacy of evidence images: before a frame leaves the pole, the head region of every person box is
//! obscured so that nobody can be recognised in it (PIPL art. 26 and the 2025 public-video regulation ask
//! for faces to be obscured by default).
//!
//! The obscuring is a coarse mosaic followed by a box blur, and it must not be undoable. A light gaussian
//! blur is a full-rank convolution: deconvolution brings much of the face back. Averaging each block of
//! pixels to one colour throws information away for good: all that survives is one colour per block, and
//! the blur afterwards only smooths the block edges (it reads nothing but block colours). The blocks are
//! sized from the person box, about `blocks_across` per region width, so a face is one or two blocks
//! whatever its size in the frame; small mosaics of faces are known to stay recognisable, coarse ones not.
//!
//! The region is the top `head_fraction` of the box, widened sideways and raised a little so a box that
//! sits slightly off the person still covers the head. Pixels outside that region are never touched.

use crate::base::BBox;
use image::RgbImage;

/// How heads are obscured. `PrivacyParams::default()` is what evidence should use unless configured.
#[derive(Debug, Clone, PartialEq)]
pub struct PrivacyParams {
    /// Obscure heads at all. On by default: the law asks for faces to be obscured unless there is a reason.
    pub blur_faces: bool,
    /// Top share of a person box treated as the head (0.4). A standing adult's head is about 1/7 of the
    /// body, but NanoDet's boxes on the street clip often start well above the head (a loose box put the
    /// head of a walker at 27–35% of its height), so 0.4 is what covers faces on real detections.
    pub head_fraction: f32,
    /// Extra width on each side, as a share of the box width (0.15): boxes can sit off-centre on a
    /// person turning or swinging an arm.
    pub pad_side: f32,
    /// Extra height above the box, as a share of the box height (0.05): detectors often cut hair or hats.
    pub pad_up: f32,
    /// How many mosaic blocks span the region's width (4); with the shoulders inside the region, a face
    /// becomes one or two blocks.
    pub blocks_across: u32,
    /// Smallest block edge in pixels (4), so a far-away 8-px head still loses its detail.
    pub min_block_px: u32,
}

impl Default for PrivacyParams {
    fn default() -> Self {
        Self {
            blur_faces: true,
            head_fraction: 0.4,
            pad_side: 0.15,
            pad_up: 0.05,
            blocks_across: 4,
            min_block_px: 4,
        }
    }
}

/// A rectangle of pixels, `x..x + w` by `y..y + h`, inside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelRect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

#[cfg(test)]
impl PixelRect {
    pub fn contains(&self, px: u32, py: u32) -> bool {
        px >= self.x && px < self.x + self.w && py >= self.y && py < self.y + self.h
    }
}

/// Irreversibly obscure the head region of each person box (normalised `BBox`) in `img`.
///
/// Boxes may reach past the image (they are clamped) or be empty or non-finite (they are skipped).
/// With `blur_faces == false` the image is left as it is.
pub fn blur_heads(img: &mut RgbImage, people: &[BBox], params: &PrivacyParams) {
    if !params.blur_faces {
        return;
    }
    let mut scratch = Scratch::default();
    for b in people {
        if let Some(rect) = head_region(b, img.width(), img.height(), params) {
            let block = (rect.w / params.blocks_across.max(1)).max(params.min_block_px.max(1));
            obscure(img, rect, block, &mut scratch);
        }
    }
}

/// The pixels `blur_heads` obscures for person box `b` in a `width` x `height` image, or `None` when
/// the box is empty, non-finite or wholly outside the image.
pub fn head_region(b: &BBox, width: u32, height: u32, params: &PrivacyParams) -> Option<PixelRect> {
    if ![b.x1, b.y1, b.x2, b.y2].iter().all(|v| v.is_finite()) {
        return None;
    }
    let (w, h) = (width as f32, height as f32);
    // Swapped corners still describe a person somewhere; obscuring is the safe reading.
    let (x1, x2) = (b.x1.min(b.x2) * w, b.x1.max(b.x2) * w);
    let (y1, y2) = (b.y1.min(b.y2) * h, b.y1.max(b.y2) * h);
    let (bw, bh) = (x2 - x1, y2 - y1);
    if bw <= 0.0 || bh <= 0.0 {
        return None;
    }
    let share = |v: f32, hi: f32| if v.is_finite() { v.clamp(0.0, hi) } else { 0.0 };
    let (pad_side, pad_up) = (share(params.pad_side, 1.0), share(params.pad_up, 1.0));
    let head = share(params.head_fraction, 1.0);
    // `as u32` saturates, so boxes far outside the image clamp to its edges.
    let left = (x1 - pad_side * bw).floor().max(0.0) as u32;
    let right = ((x2 + pad_side * bw).ceil().max(0.0) as u32).min(width);
    let top = (y1 - pad_up * bh).floor().max(0.0) as u32;
    let bottom = ((y1 + head * bh).ceil().max(0.0) as u32).min(height);
    (right > left && bottom > top).then(|| PixelRect {
        x: left,
        y: top,
        w: right - left,
        h: bottom - top,
    })
}

/// Mosaic `rect` into `block`-pixel squares, then box-blur the mosaic within `rect`.
fn obscure(img: &mut RgbImage, rect: PixelRect, block: u32, scratch: &mut Scratch) {
    let (w, h) = (rect.w as usize, rect.h as usize);
    let block = block as usize;
    let stride = img.width() as usize * 3;
    let start = |y: usize| (rect.y as usize + y) * stride + rect.x as usize * 3;
    let row = w * 3;
    let Scratch { region, tmp } = scratch;
    region.clear();
    region.resize(row * h, 0);
    tmp.clear();
    tmp.resize(row * h, 0);
    let raw: &mut [u8] = img;
    // 1. Mosaic: every pixel of a block gets the block's mean colour.
    for by in (0..h).step_by(block) {
        let bh = block.min(h - by);
        for bx in (0..w).step_by(block) {
            let bw = block.min(w - bx);
            let mut sum = [0u32; 3];
            for y in by..by + bh {
                let s = start(y) + bx * 3;
                for p in raw[s..s + bw * 3].chunks_exact(3) {
                    for c in 0..3 {
                        sum[c] += u32::from(p[c]);
                    }
                }
            }
            let n = (bw * bh) as u32;
            let mean = sum.map(|s| ((s + n / 2) / n) as u8);
            for y in by..by + bh {
                let s = y * row + bx * 3;
                for p in region[s..s + bw * 3].chunks_exact_mut(3) {
                    p.copy_from_slice(&mean);
                }
            }
        }
    }
    // 2. Box blur of the mosaic only (never of the original pixels), radius half a block.
    let r = block / 2;
    box_blur_1d(region, tmp, w, h, r, Axis::Row);
    box_blur_1d(tmp, region, w, h, r, Axis::Column);
    for y in 0..h {
        raw[start(y)..start(y) + row].copy_from_slice(&region[y * row..(y + 1) * row]);
    }
}

/// Buffers reused across the people of one frame.
#[derive(Default)]
struct Scratch {
    region: Vec<u8>,
    tmp: Vec<u8>,
}

#[derive(Clone, Copy)]
enum Axis {
    Row,
    Column,
}

/// Mean over a window of `2r + 1` samples along `axis`, the window shrunk at the buffer's edge (so
/// nothing outside the region is read). Prefix sums keep it linear in the region's area.
fn box_blur_1d(src: &[u8], dst: &mut [u8], w: usize, h: usize, r: usize, axis: Axis) {
    // Byte distance between neighbouring samples along the axis, and between neighbouring lines.
    let (lines, len, step, line_step) = match axis {
        Axis::Row => (h, w, 3, w * 3),
        Axis::Column => (w, h, w * 3, 3),
    };
    let mut prefix = vec![[0u32; 3]; len + 1];
    // Integer division per sample would cost more than everything else here; multiply instead.
    let inv: Vec<f32> = (0..=2 * r + 1).map(|n| 1.0 / n.max(1) as f32).collect();
    for line in 0..lines {
        let base = line * line_step;
        for k in 0..len {
            let i = base + k * step;
            let (prev, px) = (prefix[k], &src[i..i + 3]);
            prefix[k + 1] = [0, 1, 2].map(|c| prev[c] + u32::from(px[c]));
        }
        for k in 0..len {
            let (lo, hi) = (k.saturating_sub(r), (k + r + 1).min(len));
            let inv_n = inv[hi - lo];
            let i = base + k * step;
            for c in 0..3 {
                dst[i + c] = ((prefix[hi][c] - prefix[lo][c]) as f32 * inv_n + 0.5) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;
    use proptest::prelude::*;

    /// A deterministic high-detail image: pseudo-random noise, different in every channel.
    fn noise(w: u32, h: u32) -> RgbImage {
        let mut s: u32 = 0x1234_5678;
        RgbImage::from_fn(w, h, |_, _| {
            let mut next = || {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 24) as u8
            };
            Rgb([next(), next(), next()])
        })
    }

    fn variance(img: &RgbImage, r: PixelRect) -> f64 {
        let vals: Vec<f64> = (r.y..r.y + r.h)
            .flat_map(|y| (r.x..r.x + r.w).map(move |x| (x, y)))
            .flat_map(|(x, y)| img.get_pixel(x, y).0.map(f64::from))
            .collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64
    }

    fn person(x1: f32, y1: f32, x2: f32, y2: f32) -> BBox {
        BBox { x1, y1, x2, y2 }
    }

    fn assert_untouched_outside(before: &RgbImage, after: &RgbImage, regions: &[PixelRect]) {
        for (x, y, p) in after.enumerate_pixels() {
            if !regions.iter().any(|r| r.contains(x, y)) {
                assert_eq!(
                    p,
                    before.get_pixel(x, y),
                    "pixel ({x}, {y}) outside the head regions changed"
                );
            }
        }
    }

    #[test]
    fn head_detail_loses_over_ninety_percent_of_its_variance() {
        let p = PrivacyParams::default();
        // People from far (30x75 px) to near (70x150 px) on a 768x576 frame.
        for (bw, bh) in [(30.0, 75.0), (45.0, 110.0), (70.0, 150.0)] {
            let mut img = noise(768, 576);
            let b = person(
                300.0 / 768.0,
                200.0 / 576.0,
                (300.0 + bw) / 768.0,
                (200.0 + bh) / 576.0,
            );
            let head = PixelRect {
                x: 300,
                y: 200,
                w: bw as u32,
                h: (bh * p.head_fraction) as u32,
            };
            let before = variance(&img, head);
            blur_heads(&mut img, &[b], &p);
            let after = variance(&img, head);
            assert!(
                after < 0.1 * before,
                "{bw}x{bh}: variance {before:.0} -> {after:.0}"
            );
        }
    }

    #[test]
    fn a_one_pixel_checkerboard_becomes_flat() {
        let mut img = RgbImage::from_fn(200, 200, |x, y| {
            if (x + y) % 2 == 0 {
                Rgb([255; 3])
            } else {
                Rgb([0; 3])
            }
        });
        let head = PixelRect {
            x: 80,
            y: 40,
            w: 40,
            h: 25,
        };
        let before = variance(&img, head);
        blur_heads(
            &mut img,
            &[person(0.4, 0.2, 0.6, 0.7)],
            &PrivacyParams::default(),
        );
        assert!(variance(&img, head) < 0.02 * before);
    }

    #[test]
    fn pixels_outside_the_padded_region_are_byte_identical() {
        let p = PrivacyParams::default();
        let before = noise(768, 576);
        let mut img = before.clone();
        let people = [
            person(0.3, 0.3, 0.36, 0.5),
            person(0.34, 0.32, 0.4, 0.55),
            person(0.7, 0.1, 0.75, 0.2),
        ];
        blur_heads(&mut img, &people, &p);
        let regions: Vec<_> = people
            .iter()
            .filter_map(|b| head_region(b, 768, 576, &p))
            .collect();
        assert_eq!(regions.len(), 3);
        assert_untouched_outside(&before, &img, &regions);
        assert_ne!(before, img);
    }

    #[test]
    fn the_region_is_padded_sideways_and_up() {
        let p = PrivacyParams::default();
        let r = head_region(&person(0.5, 0.5, 0.6, 0.9), 1000, 1000, &p).unwrap();
        // Box 100 x 400 px at (500, 500): 15 px each side, 20 px up, 160 px down (0.4 of the height).
        assert_eq!(
            r,
            PixelRect {
                x: 485,
                y: 480,
                w: 130,
                h: 180
            }
        );
    }

    #[test]
    fn boxes_touching_or_crossing_the_image_edge_are_clamped() {
        let p = PrivacyParams::default();
        let before = noise(64, 48);
        let mut img = before.clone();
        let people = [
            person(-0.2, -0.1, 0.3, 0.8),
            person(0.8, 0.0, 1.0, 1.0),
            person(0.9, 0.9, 1.5, 1.7),
            person(-3.0, -0.1, 4.0, 2.0),
        ];
        blur_heads(&mut img, &people, &p);
        assert_eq!(head_region(&people[0], 64, 48, &p).unwrap().x, 0);
        let r = head_region(&people[1], 64, 48, &p).unwrap();
        assert_eq!(r.x + r.w, 64);
        let r = head_region(&people[3], 64, 48, &p).unwrap();
        assert_eq!((r.x, r.y, r.w), (0, 0, 64));
        // A box whose head lies wholly above the frame has nothing to obscure.
        assert_eq!(head_region(&person(-3.0, -3.0, 4.0, 4.0), 64, 48, &p), None);
    }

    #[test]
    fn empty_non_finite_and_outside_boxes_change_nothing() {
        let p = PrivacyParams::default();
        let before = noise(64, 48);
        let mut img = before.clone();
        let people = [
            person(0.5, 0.5, 0.5, 0.5),
            person(0.2, 0.2, 0.2, 0.9),
            person(f32::NAN, 0.1, 0.5, 0.5),
            person(0.1, 0.1, f32::INFINITY, 0.5),
            person(1.2, 1.2, 1.5, 1.5),
            person(-0.5, -0.9, -0.1, -0.1),
        ];
        blur_heads(&mut img, &people, &p);
        assert_eq!(img, before);
    }

    #[test]
    fn swapped_corners_are_still_obscured() {
        let p = PrivacyParams::default();
        let straight = head_region(&person(0.2, 0.2, 0.4, 0.8), 100, 100, &p);
        assert_eq!(
            head_region(&person(0.4, 0.8, 0.2, 0.2), 100, 100, &p),
            straight
        );
    }

    #[test]
    fn switched_off_leaves_the_image_alone() {
        let before = noise(64, 48);
        let mut img = before.clone();
        let off = PrivacyParams {
            blur_faces: false,
            ..PrivacyParams::default()
        };
        blur_heads(&mut img, &[person(0.1, 0.1, 0.6, 0.9)], &off);
        assert_eq!(img, before);
    }

    #[test]
    fn odd_parameters_obscure_the_head_region_and_nothing_else() {
        let b = person(0.1, 0.1, 0.9, 0.9);
        let one_block = PrivacyParams {
            min_block_px: 1000,
            ..PrivacyParams::default()
        };
        for p in [
            PrivacyParams {
                head_fraction: f32::NAN,
                pad_side: -1.0,
                pad_up: 9.0,
                ..PrivacyParams::default()
            },
            PrivacyParams {
                blocks_across: 0,
                min_block_px: 0,
                ..PrivacyParams::default()
            },
            one_block.clone(),
        ] {
            let before = noise(32, 32);
            let mut after = before.clone();
            blur_heads(&mut after, &[b], &p);
            let rect =
                head_region(&b, 32, 32, &p).expect("a box inside the image has a head region");
            assert_untouched_outside(&before, &after, &[rect]);
            let changed = after
                .enumerate_pixels()
                .filter(|&(x, y, px)| rect.contains(x, y) && px != before.get_pixel(x, y))
                .count() as u32;
            assert!(
                changed * 10 >= rect.w * rect.h * 9,
                "{p:?}: only {changed} of {} head pixels obscured",
                rect.w * rect.h
            );
            if p == one_block {
                // A block larger than the region: the whole head region is one colour.
                let first = after.get_pixel(rect.x, rect.y);
                assert!(
                    after
                        .enumerate_pixels()
                        .filter(|&(x, y, _)| rect.contains(x, y))
                        .all(|(_, _, px)| px == first)
                );
            }
        }
    }

    proptest! {
        #[test]
        fn any_boxes_leave_everything_outside_their_regions_untouched(
            w in 1u32..80,
            h in 1u32..80,
            boxes in prop::collection::vec((-0.5f32..1.5, -0.5f32..1.5, -0.5f32..1.5, -0.5f32..1.5), 0..6),
        ) {
            let p = PrivacyParams::default();
            let before = noise(w, h);
            let mut img = before.clone();
            let people: Vec<BBox> = boxes.iter().map(|&(a, b, c, d)| person(a, b, c, d)).collect();
            blur_heads(&mut img, &people, &p);
            let regions: Vec<_> = people.iter().filter_map(|b| head_region(b, w, h, &p)).collect();
            for r in &regions {
                prop_assert!(r.w > 0 && r.h > 0 && r.x + r.w <= w && r.y + r.h <= h);
            }
            assert_untouched_outside(&before, &img, &regions);
        }
    }
}
