//! The installer's snapshot: one frame with what the agent sees drawn on it — detections with their labels,
//! every zone with its id, the masks, and a coordinate grid labelled in the normalised units the
//! configuration uses (0.0–1.0 in steps of 0.1, x to the right, y down), so zone points can be read off the
//! picture. Heads are obscured as in evidence. Pure: pixels in, JPEG out (the `snapshot` command and the
//! daemon's MQTT `snapshot` command share it).

use super::evidence::{Evidence, encode, line};
use super::font::{draw_text, text_height, text_width};
use super::privacy::{PrivacyParams, blur_heads};
use crate::base::{BBox, Detection};
use crate::rules::{Mask, Polygon, apply_masks};
use image::{Rgb, RgbImage};

/// What to draw besides the frame.
pub struct SnapshotInput<'a> {
    pub detections: &'a [Detection],
    /// The model's labels, indexed by `Detection::class`.
    pub labels: &'a [String],
    /// Zones by id.
    pub zones: &'a [(String, Polygon)],
    pub masks: &'a [Mask],
    /// One line written along the bottom (ASCII).
    pub caption: &'a str,
    pub privacy: &'a PrivacyParams,
}

const GRID: Rgb<u8> = Rgb([0, 220, 255]);
const ZONE: Rgb<u8> = Rgb([255, 210, 0]);
const MASK: Rgb<u8> = Rgb([255, 0, 200]);
const KEPT: Rgb<u8> = Rgb([40, 230, 40]);
const MASKED: Rgb<u8> = Rgb([150, 150, 150]);
const TEXT: Rgb<u8> = Rgb([255, 255, 255]);
const BANNER: Rgb<u8> = Rgb([0, 0, 0]);

/// Draw the snapshot on `img` and encode it as JPEG.
pub fn render_snapshot(
    mut img: RgbImage,
    input: &SnapshotInput,
    quality: u8,
) -> Result<Evidence, image::ImageError> {
    draw_snapshot(&mut img, input);
    encode(&img, quality)
}

/// The drawing alone: heads obscured, grid, masks, zones, detections, caption (in that order, so labels stay
/// on top of lines).
pub fn draw_snapshot(img: &mut RgbImage, input: &SnapshotInput) {
    let is_person = |class: usize| input.labels.get(class).is_some_and(|l| l == "person");
    let people: Vec<BBox> = input
        .detections
        .iter()
        .filter(|d| is_person(d.class))
        .map(|d| d.bbox)
        .collect();
    blur_heads(img, &people, input.privacy);
    let scale = (img.width() / 640).max(1);
    let thickness = ((img.width().max(img.height()) / 400) as i32).max(1);
    draw_grid(img, scale);
    for (k, m) in input.masks.iter().enumerate() {
        outline(img, &m.polygon, MASK, thickness);
        label_at(
            img,
            centroid(&m.polygon),
            &format!("mask {}", k + 1),
            scale,
            MASK,
        );
    }
    for (id, polygon) in input.zones {
        outline(img, polygon, ZONE, thickness);
        label_at(img, centroid(polygon), id, scale, ZONE);
    }
    let mut kept = input.detections.to_vec();
    apply_masks(input.masks, &mut kept, is_person);
    for d in input.detections {
        let colour = if kept.contains(d) { KEPT } else { MASKED };
        let b = d.bbox.clamped();
        let corners = [(b.x1, b.y1), (b.x2, b.y1), (b.x2, b.y2), (b.x1, b.y2)];
        outline(
            img,
            &Polygon {
                points: corners.to_vec(),
            },
            colour,
            thickness,
        );
        let name = input.labels.get(d.class).map_or("?", String::as_str);
        let text = format!("{name} {:.2}", d.score);
        let (x, y) = px(img, (b.x1, b.y1));
        draw_text(
            img,
            x,
            y - text_height(scale) as i32,
            &text,
            scale,
            BANNER,
            Some(colour),
        );
    }
    if !input.caption.is_empty() {
        let y = img.height().saturating_sub(text_height(scale)) as i32;
        draw_text(img, 0, y, input.caption, scale, TEXT, Some(BANNER));
    }
}

/// Lines every 0.1 of the width and height, blended half into the picture; the value of each line written
/// at the top (x) and at the left (y).
fn draw_grid(img: &mut RgbImage, scale: u32) {
    let (w, h) = (img.width(), img.height());
    for k in 1..10u32 {
        let x = (k as f32 / 10.0 * w as f32) as u32;
        let y = (k as f32 / 10.0 * h as f32) as u32;
        for yy in 0..h {
            blend(img, x, yy);
        }
        for xx in 0..w {
            blend(img, xx, y);
        }
    }
    for k in 1..10u32 {
        let text = format!("0.{k}");
        let x = (k as f32 / 10.0 * w as f32) as i32;
        let y = (k as f32 / 10.0 * h as f32) as i32;
        draw_text(img, x + 2, 0, &text, scale, BANNER, Some(GRID));
        draw_text(img, 0, y + 2, &text, scale, BANNER, Some(GRID));
    }
    draw_text(img, 0, 0, "0", scale, BANNER, Some(GRID));
}

fn blend(img: &mut RgbImage, x: u32, y: u32) {
    if x < img.width() && y < img.height() {
        let p = img.get_pixel_mut(x, y);
        for c in 0..3 {
            p.0[c] = ((u16::from(p.0[c]) + u16::from(GRID.0[c])) / 2) as u8;
        }
    }
}

fn px(img: &RgbImage, (x, y): (f32, f32)) -> (i32, i32) {
    (
        (x * img.width() as f32) as i32,
        (y * img.height() as f32) as i32,
    )
}

fn outline(img: &mut RgbImage, p: &Polygon, colour: Rgb<u8>, thickness: i32) {
    let n = p.points.len();
    for i in 0..n {
        let (a, b) = (px(img, p.points[i]), px(img, p.points[(i + 1) % n]));
        line(img, a, b, colour, thickness);
    }
}

fn centroid(p: &Polygon) -> (f32, f32) {
    let n = p.points.len().max(1) as f32;
    let (sx, sy) = p
        .points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    (sx / n, sy / n)
}

/// A label centred on a normalised point.
fn label_at(img: &mut RgbImage, at: (f32, f32), text: &str, scale: u32, colour: Rgb<u8>) {
    let (x, y) = px(img, at);
    let x = x - text_width(text, scale) as i32 / 2;
    let y = y - text_height(scale) as i32 / 2;
    draw_text(img, x, y, text, scale, BANNER, Some(colour));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(
        zones: &'a [(String, Polygon)],
        detections: &'a [Detection],
        labels: &'a [String],
        privacy: &'a PrivacyParams,
    ) -> SnapshotInput<'a> {
        SnapshotInput {
            detections,
            labels,
            zones,
            masks: &[],
            caption: "",
            privacy,
        }
    }

    fn is(p: &Rgb<u8>, c: Rgb<u8>) -> bool {
        p.0.iter().zip(c.0).all(|(a, b)| a.abs_diff(b) <= 2)
    }

    #[test]
    fn grid_lines_sit_at_every_tenth_and_cells_stay_untouched() {
        let mut img = RgbImage::from_pixel(400, 200, Rgb([0, 0, 0]));
        let privacy = PrivacyParams::default();
        draw_snapshot(&mut img, &input(&[], &[], &[], &privacy));
        let half = Rgb([0, 110, 127]); // the grid colour blended half into black
        // x = 0.3 is pixel column 120, y = 0.7 is pixel row 140; away from the labels along the edges.
        assert!(
            is(img.get_pixel(120, 90), half),
            "{:?}",
            img.get_pixel(120, 90)
        );
        assert!(
            is(img.get_pixel(300, 140), half),
            "{:?}",
            img.get_pixel(300, 140)
        );
        // The middle of a cell is the picture itself.
        assert!(is(img.get_pixel(130, 150), Rgb([0, 0, 0])));
        // The label of x = 0.5 is written along the top, right of its line: some pixels in the grid colour.
        let label_has_ink = (202..222).any(|x| (0..9).any(|y| is(img.get_pixel(x, y), GRID)));
        assert!(label_has_ink, "the 0.5 label is drawn at the top");
    }

    #[test]
    fn a_zone_is_outlined_at_its_coordinates_with_its_id() {
        let mut img = RgbImage::from_pixel(400, 200, Rgb([0, 0, 0]));
        let zones = [(
            "plaza".to_string(),
            Polygon::new(&[[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]]),
        )];
        let privacy = PrivacyParams::default();
        draw_snapshot(&mut img, &input(&zones, &[], &[], &privacy));
        // Left edge at x = 100, top edge at y = 50, right edge at x = 300.
        assert!(is(img.get_pixel(100, 80), ZONE));
        assert!(is(img.get_pixel(260, 50), ZONE));
        assert!(is(img.get_pixel(300, 130), ZONE));
        // The id is written at the centre (200, 100), on a zone-coloured background.
        let around_centre = (180..220).any(|x| (95..105).any(|y| is(img.get_pixel(x, y), BANNER)));
        let background = (180..220).any(|x| (95..105).any(|y| is(img.get_pixel(x, y), ZONE)));
        assert!(
            around_centre && background,
            "the zone id is drawn at its centre"
        );
        // Outside the zone, away from grid lines, nothing changed.
        assert!(is(img.get_pixel(30, 30), Rgb([0, 0, 0])));
    }

    #[test]
    fn a_snapshot_is_a_jpeg_of_the_frame_size_with_the_detection_labelled() {
        let img = RgbImage::from_pixel(320, 240, Rgb([90, 90, 90]));
        let labels = vec!["person".to_string(), "bench".to_string()];
        let detections = [Detection {
            class: 1,
            score: 0.9,
            bbox: BBox {
                x1: 0.55,
                y1: 0.55,
                x2: 0.85,
                y2: 0.85,
            },
        }];
        let privacy = PrivacyParams::default();
        let ev = render_snapshot(img, &input(&[], &detections, &labels, &privacy), 90).unwrap();
        let decoded = image::load_from_memory(&ev.jpeg).unwrap().to_rgb8();
        assert_eq!((decoded.width(), decoded.height()), (320, 240));
        let p = decoded.get_pixel((0.85 * 320.0) as u32, 200); // the box's right edge
        assert!(p[1] > 180 && p[0] < 120, "{p:?}");
    }
}
