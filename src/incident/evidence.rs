//! Evidence images: the frame with the zone, the objects and a caption (category, zone, camera, local time)
//! drawn, as JPEG, with its SHA-256 so a dispatcher can trust the file is the one the pole produced; and the
//! clean frame, encoded the same way.

use super::caption::{self, CaptionFont};
use crate::base::BBox;
use image::{Rgb, RgbImage};

/// What to draw on the frame.
pub struct Annotation<'a> {
    pub zone: &'a [(f32, f32)],
    /// Boxes that caused the event (drawn red).
    pub counted: Vec<BBox>,
    /// Other detections (drawn grey).
    pub others: Vec<BBox>,
    /// Written in a banner along the top, wrapped at its double spaces.
    pub caption: &'a str,
    /// The font the caption is drawn with; none: the built-in one (ASCII; other characters show as `?`).
    pub font: Option<&'a CaptionFont>,
}

/// An encoded evidence image.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub jpeg: Vec<u8>,
    pub sha256: String,
    pub width: u32,
    pub height: u32,
}

const ZONE: Rgb<u8> = Rgb([255, 210, 0]);
const COUNTED: Rgb<u8> = Rgb([230, 30, 30]);
const OTHER: Rgb<u8> = Rgb([170, 170, 170]);
const CAPTION: Rgb<u8> = Rgb([255, 255, 255]);
const BANNER: Rgb<u8> = Rgb([0, 0, 0]);

/// Line width in pixels: about 1/400 of the image, and never under 3. JPEG keeps colour at half resolution
/// (4:2:0, one chroma sample per 2×2 block), so a line narrower than a whole block comes out grey on every
/// other row or column; three pixels always cover one block entirely.
fn thickness_for(img: &RgbImage) -> i32 {
    ((img.width().max(img.height()) / 400) as i32).max(3)
}

/// Draw a zone's outline (normalised polygon).
fn draw_zone(img: &mut RgbImage, zone: &[(f32, f32)]) {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let thickness = thickness_for(img);
    let px = |(x, y): (f32, f32)| ((x * w) as i32, (y * h) as i32);
    for i in 0..zone.len() {
        let a = px(zone[i]);
        let b = px(zone[(i + 1) % zone.len()]);
        line(img, a, b, ZONE, thickness);
    }
}

/// Draw `ann` on `img` and encode it.
pub fn render(
    mut img: RgbImage,
    ann: &Annotation,
    quality: u8,
) -> Result<Evidence, image::ImageError> {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let thickness = thickness_for(&img);
    let px = |(x, y): (f32, f32)| ((x * w) as i32, (y * h) as i32);
    draw_zone(&mut img, ann.zone);
    for (boxes, colour) in [(&ann.others, OTHER), (&ann.counted, COUNTED)] {
        for b in boxes.iter() {
            let (p1, p2) = (px((b.x1, b.y1)), px((b.x2, b.y2)));
            for (a, c) in [
                (p1, (p2.0, p1.1)),
                ((p2.0, p1.1), p2),
                (p2, (p1.0, p2.1)),
                ((p1.0, p2.1), p1),
            ] {
                line(&mut img, a, c, colour, thickness);
            }
        }
    }
    match ann.font {
        Some(font) => caption::draw(&mut img, ann.caption, font),
        None => bitmap_caption(&mut img, ann.caption),
    }
    encode(&img, quality)
}

/// Write the caption along the top in the built-in font, as large as fits, wrapped at its double spaces
/// when too long.
fn bitmap_caption(img: &mut RgbImage, text: &str) {
    use super::font::{draw_text, text_height, text_width};
    if text.is_empty() {
        return;
    }
    let scale = (img.width() / 480).max(1);
    let pad = 2 * scale;
    let lines = caption::wrap(text, |t| text_width(t, scale) + 2 * pad <= img.width());
    for (k, line) in lines.iter().enumerate() {
        let y = pad + k as u32 * (text_height(scale) + pad);
        draw_text(
            img,
            pad as i32,
            y as i32,
            line,
            scale,
            CAPTION,
            Some(BANNER),
        );
    }
}

/// Encode `img` as evidence (no drawing). The `jpeg-encoder` crate, not `image`'s own encoder: on a 1080p
/// street frame it is several times faster (docs/benchmarks.md), and an event encodes two such images.
pub fn encode(img: &RgbImage, quality: u8) -> Result<Evidence, image::ImageError> {
    let mut jpeg = Vec::with_capacity(img.len() / 8);
    let too_large = || {
        image::ImageError::Limits(image::error::LimitError::from_kind(
            image::error::LimitErrorKind::DimensionError,
        ))
    };
    let (w, h) = (
        u16::try_from(img.width()).map_err(|_| too_large())?,
        u16::try_from(img.height()).map_err(|_| too_large())?,
    );
    jpeg_encoder::Encoder::new(&mut jpeg, quality.clamp(1, 100))
        .encode(img.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| {
            image::ImageError::Encoding(image::error::EncodingError::new(
                image::error::ImageFormatHint::Exact(image::ImageFormat::Jpeg),
                e,
            ))
        })?;
    Ok(Evidence {
        sha256: crate::base::sha256_hex(&jpeg),
        width: img.width(),
        height: img.height(),
        jpeg,
    })
}

/// Bresenham line, `t` pixels thick, clipped to the image.
pub(super) fn line(
    img: &mut RgbImage,
    (mut x0, mut y0): (i32, i32),
    (x1, y1): (i32, i32),
    c: Rgb<u8>,
    t: i32,
) {
    let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
    let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
    let mut err = dx + dy;
    let (w, h) = (img.width() as i32, img.height() as i32);
    loop {
        let r = t / 2;
        for ox in -r..=(t - 1 - r) {
            for oy in -r..=(t - 1 - r) {
                let (x, y) = (x0 + ox, y0 + oy);
                if x >= 0 && y >= 0 && x < w && y < h {
                    img.put_pixel(x as u32, y as u32, c);
                }
            }
        }
        if x0 == x1 && y0 == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x0 += sx;
        }
        if e2 <= dx {
            err += dx;
            y0 += sy;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_is_a_decodable_jpeg_with_the_box_drawn() {
        let img = RgbImage::from_pixel(200, 100, Rgb([0, 0, 0]));
        let ann = Annotation {
            zone: &[(0.1, 0.1), (0.9, 0.1), (0.9, 0.9)],
            counted: vec![BBox {
                x1: 0.25,
                y1: 0.25,
                x2: 0.75,
                y2: 0.75,
            }],
            others: vec![],
            caption: "crowd_density  zone=walkway",
            font: None,
        };
        let ev = render(img, &ann, 95).unwrap();
        assert_eq!(ev.sha256, crate::base::sha256_hex(&ev.jpeg));
        let decoded = image::load_from_memory(&ev.jpeg).unwrap().to_rgb8();
        assert_eq!((decoded.width(), decoded.height()), (200, 100));
        let p = decoded.get_pixel(50, 50); // the box's top-left corner
        assert!(p[0] > 150 && p[1] < 100, "{p:?}");
    }

    #[test]
    fn box_edges_stay_red_on_every_row_and_column_after_encoding() {
        // A mid-grey street-like frame at the resolution of the committed clip; the box starts on odd and
        // even rows and columns alike.
        for (x1, y1) in [(0.25, 0.25), (101.0 / 768.0, 77.0 / 576.0)] {
            let img = RgbImage::from_pixel(768, 576, Rgb([120, 120, 120]));
            let ann = Annotation {
                zone: &[],
                counted: vec![BBox {
                    x1,
                    y1,
                    x2: 0.75,
                    y2: 0.75,
                }],
                others: vec![],
                caption: "",
                font: None,
            };
            let decoded = image::load_from_memory(&render(img, &ann, 85).unwrap().jpeg)
                .unwrap()
                .to_rgb8();
            let (left, top) = ((x1 * 768.0) as u32, (y1 * 576.0) as u32);
            // Along the left edge (every row) and the top edge (every column), inside the box's span.
            let edge = (top + 10..top + 60)
                .map(|y| (left, y))
                .chain((left + 10..left + 60).map(|x| (x, top)));
            for (x, y) in edge {
                let p = decoded.get_pixel(x, y);
                assert!(
                    i32::from(p[0]) - i32::from(p[1]) > 80,
                    "pixel ({x}, {y}) of the red edge came out {p:?}"
                );
            }
        }
    }

    /// A street-grey 768×576 frame with `caption` drawn, encoded and decoded again.
    fn rendered(caption: &str, font: Option<&CaptionFont>) -> RgbImage {
        let ann = Annotation {
            zone: &[],
            counted: vec![],
            others: vec![],
            caption,
            font,
        };
        let img = RgbImage::from_pixel(768, 576, Rgb([128, 128, 128]));
        let jpeg = render(img, &ann, 90).unwrap().jpeg;
        image::load_from_memory(&jpeg).unwrap().to_rgb8()
    }

    /// Light (text) and dark (band) pixels among rows `rows`.
    fn census(img: &RgbImage, rows: std::ops::Range<u32>) -> (usize, usize) {
        let pixels = rows.flat_map(|y| (0..img.width()).map(move |x| img.get_pixel(x, y).0[1]));
        pixels.fold((0, 0), |(light, dark), g| {
            (light + usize::from(g >= 200), dark + usize::from(g <= 70))
        })
    }

    #[test]
    fn a_chinese_caption_draws_glyphs_on_a_dark_band_unlike_the_english_one() {
        let font = caption::wqy_microhei();
        let zh = rendered("2026-12-05 14:03 文三路7号杆 · 占道经营", Some(&font));
        // 576 / 24 = 24 px text: one line and its padding within the top 40 rows.
        let band = 40 * 768;
        let (light, dark) = census(&zh, 0..40);
        assert!(
            light > band / 50 && light < band / 4,
            "{light} light pixels of {band}: no strokes, or a blot"
        );
        assert!(dark > band / 2, "{dark} dark pixels of {band}: no band");
        // The strokes spread along the line, as text does, and stop where it ends.
        let inked = |x: u32| (0..40).any(|y| zh.get_pixel(x, y).0[1] >= 200);
        let columns = (0..768).filter(|&x| inked(x)).count();
        assert!((150..600).contains(&columns), "{columns} inked columns");
        // Below the band the picture is as it was.
        assert_eq!(census(&zh, 60..576), (0, 0));
        // The same event in English, in the built-in font, is another picture.
        let en = rendered(
            "street_vending  opened  zone=stall-1  cam=north  2026-12-05 14:03:09+08:00",
            None,
        );
        let differ = (0..40)
            .flat_map(|y| (0..768).map(move |x| (x, y)))
            .filter(|&(x, y)| zh.get_pixel(x, y).0[1].abs_diff(en.get_pixel(x, y).0[1]) > 60)
            .count();
        assert!(differ > band / 10, "only {differ} pixels differ");
    }
}
