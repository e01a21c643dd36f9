//! A built-in 5x7 bitmap font for the English caption banner on evidence images (category, zone, local
//! time, camera) and the installer's snapshot, needing no font file; Chinese captions are drawn with a font
//! read from disk (`caption.rs`).
//!
//! Printable ASCII (0x20–0x7E) only; any other character is drawn as `?`. Text is laid out in cells of
//! 6 x 9 units (the glyph plus one unit of space on the right and below, one above) and a one-unit margin
//! on the left, each unit `scale` pixels, so `text_width` and `text_height` give the exact box `bg` fills.

use image::{Rgb, RgbImage};

const GLYPH_W: u32 = 5;
const GLYPH_H: u32 = 7;
/// Horizontal distance between glyph origins, in units.
const ADVANCE: u32 = GLYPH_W + 1;
/// Height of the text box, in units: one above, seven of glyph, one below.
const LINE: u32 = GLYPH_H + 2;

/// Glyphs for 0x20..=0x7E, one byte per column from left to right, bit 0 the top row.
#[rustfmt::skip]
const GLYPHS: [[u8; 5]; 95] = [
    [0x00, 0x00, 0x00, 0x00, 0x00], // ' '
    [0x00, 0x00, 0x5F, 0x00, 0x00], // '!'
    [0x00, 0x07, 0x00, 0x07, 0x00], // '"'
    [0x14, 0x7F, 0x14, 0x7F, 0x14], // '#'
    [0x24, 0x2A, 0x7F, 0x2A, 0x12], // '$'
    [0x23, 0x13, 0x08, 0x64, 0x62], // '%'
    [0x36, 0x49, 0x55, 0x22, 0x50], // '&'
    [0x00, 0x05, 0x03, 0x00, 0x00], // '''
    [0x00, 0x1C, 0x22, 0x41, 0x00], // '('
    [0x00, 0x41, 0x22, 0x1C, 0x00], // ')'
    [0x14, 0x08, 0x3E, 0x08, 0x14], // '*'
    [0x08, 0x08, 0x3E, 0x08, 0x08], // '+'
    [0x00, 0x50, 0x30, 0x00, 0x00], // ','
    [0x08, 0x08, 0x08, 0x08, 0x08], // '-'
    [0x00, 0x60, 0x60, 0x00, 0x00], // '.'
    [0x20, 0x10, 0x08, 0x04, 0x02], // '/'
    [0x3E, 0x51, 0x49, 0x45, 0x3E], // '0'
    [0x00, 0x42, 0x7F, 0x40, 0x00], // '1'
    [0x42, 0x61, 0x51, 0x49, 0x46], // '2'
    [0x21, 0x41, 0x45, 0x4B, 0x31], // '3'
    [0x18, 0x14, 0x12, 0x7F, 0x10], // '4'
    [0x27, 0x45, 0x45, 0x45, 0x39], // '5'
    [0x3C, 0x4A, 0x49, 0x49, 0x30], // '6'
    [0x01, 0x71, 0x09, 0x05, 0x03], // '7'
    [0x36, 0x49, 0x49, 0x49, 0x36], // '8'
    [0x06, 0x49, 0x49, 0x29, 0x1E], // '9'
    [0x00, 0x36, 0x36, 0x00, 0x00], // ':'
    [0x00, 0x56, 0x36, 0x00, 0x00], // ';'
    [0x08, 0x14, 0x22, 0x41, 0x00], // '<'
    [0x14, 0x14, 0x14, 0x14, 0x14], // '='
    [0x00, 0x41, 0x22, 0x14, 0x08], // '>'
    [0x02, 0x01, 0x51, 0x09, 0x06], // '?'
    [0x32, 0x49, 0x79, 0x41, 0x3E], // '@'
    [0x7E, 0x11, 0x11, 0x11, 0x7E], // 'A'
    [0x7F, 0x49, 0x49, 0x49, 0x36], // 'B'
    [0x3E, 0x41, 0x41, 0x41, 0x22], // 'C'
    [0x7F, 0x41, 0x41, 0x22, 0x1C], // 'D'
    [0x7F, 0x49, 0x49, 0x49, 0x41], // 'E'
    [0x7F, 0x09, 0x09, 0x09, 0x01], // 'F'
    [0x3E, 0x41, 0x49, 0x49, 0x7A], // 'G'
    [0x7F, 0x08, 0x08, 0x08, 0x7F], // 'H'
    [0x00, 0x41, 0x7F, 0x41, 0x00], // 'I'
    [0x20, 0x40, 0x41, 0x3F, 0x01], // 'J'
    [0x7F, 0x08, 0x14, 0x22, 0x41], // 'K'
    [0x7F, 0x40, 0x40, 0x40, 0x40], // 'L'
    [0x7F, 0x02, 0x0C, 0x02, 0x7F], // 'M'
    [0x7F, 0x04, 0x08, 0x10, 0x7F], // 'N'
    [0x3E, 0x41, 0x41, 0x41, 0x3E], // 'O'
    [0x7F, 0x09, 0x09, 0x09, 0x06], // 'P'
    [0x3E, 0x41, 0x51, 0x21, 0x5E], // 'Q'
    [0x7F, 0x09, 0x19, 0x29, 0x46], // 'R'
    [0x46, 0x49, 0x49, 0x49, 0x31], // 'S'
    [0x01, 0x01, 0x7F, 0x01, 0x01], // 'T'
    [0x3F, 0x40, 0x40, 0x40, 0x3F], // 'U'
    [0x1F, 0x20, 0x40, 0x20, 0x1F], // 'V'
    [0x3F, 0x40, 0x38, 0x40, 0x3F], // 'W'
    [0x63, 0x14, 0x08, 0x14, 0x63], // 'X'
    [0x07, 0x08, 0x70, 0x08, 0x07], // 'Y'
    [0x61, 0x51, 0x49, 0x45, 0x43], // 'Z'
    [0x00, 0x7F, 0x41, 0x41, 0x00], // '['
    [0x02, 0x04, 0x08, 0x10, 0x20], // '\'
    [0x00, 0x41, 0x41, 0x7F, 0x00], // ']'
    [0x04, 0x02, 0x01, 0x02, 0x04], // '^'
    [0x40, 0x40, 0x40, 0x40, 0x40], // '_'
    [0x00, 0x01, 0x02, 0x04, 0x00], // '`'
    [0x20, 0x54, 0x54, 0x54, 0x78], // 'a'
    [0x7F, 0x48, 0x44, 0x44, 0x38], // 'b'
    [0x38, 0x44, 0x44, 0x44, 0x20], // 'c'
    [0x38, 0x44, 0x44, 0x48, 0x7F], // 'd'
    [0x38, 0x54, 0x54, 0x54, 0x18], // 'e'
    [0x08, 0x7E, 0x09, 0x01, 0x02], // 'f'
    [0x08, 0x54, 0x54, 0x54, 0x3C], // 'g'
    [0x7F, 0x08, 0x04, 0x04, 0x78], // 'h'
    [0x00, 0x44, 0x7D, 0x40, 0x00], // 'i'
    [0x20, 0x40, 0x44, 0x3D, 0x00], // 'j'
    [0x7F, 0x10, 0x28, 0x44, 0x00], // 'k'
    [0x00, 0x41, 0x7F, 0x40, 0x00], // 'l'
    [0x7C, 0x04, 0x18, 0x04, 0x78], // 'm'
    [0x7C, 0x08, 0x04, 0x04, 0x78], // 'n'
    [0x38, 0x44, 0x44, 0x44, 0x38], // 'o'
    [0x7C, 0x14, 0x14, 0x14, 0x08], // 'p'
    [0x08, 0x14, 0x14, 0x18, 0x7C], // 'q'
    [0x7C, 0x08, 0x04, 0x04, 0x08], // 'r'
    [0x48, 0x54, 0x54, 0x54, 0x20], // 's'
    [0x04, 0x3F, 0x44, 0x40, 0x20], // 't'
    [0x3C, 0x40, 0x40, 0x20, 0x7C], // 'u'
    [0x1C, 0x20, 0x40, 0x20, 0x1C], // 'v'
    [0x3C, 0x40, 0x30, 0x40, 0x3C], // 'w'
    [0x44, 0x28, 0x10, 0x28, 0x44], // 'x'
    [0x0C, 0x50, 0x50, 0x50, 0x3C], // 'y'
    [0x44, 0x64, 0x54, 0x4C, 0x44], // 'z'
    [0x00, 0x08, 0x36, 0x41, 0x00], // '{'
    [0x00, 0x00, 0x7F, 0x00, 0x00], // '|'
    [0x00, 0x41, 0x36, 0x08, 0x00], // '}'
    [0x08, 0x04, 0x08, 0x10, 0x08], // '~'
];

/// The glyph for `c`: printable ASCII as itself, anything else as `?`.
fn glyph(c: char) -> &'static [u8; 5] {
    let i = match c {
        ' '..='~' => c as usize - 0x20,
        _ => '?' as usize - 0x20,
    };
    &GLYPHS[i]
}

/// Width in pixels of the box `draw_text` covers for `text` (0 for empty text). Scale 0 counts as 1.
pub fn text_width(text: &str, scale: u32) -> u32 {
    match text.chars().count() as u32 {
        0 => 0,
        n => (1 + n * ADVANCE).saturating_mul(scale.max(1)),
    }
}

/// Height in pixels of the box `draw_text` covers. Scale 0 counts as 1.
pub fn text_height(scale: u32) -> u32 {
    LINE.saturating_mul(scale.max(1))
}

/// Draw `text` with the top-left corner of its box at (`x`, `y`), each font unit `scale` pixels, in `fg`;
/// with `bg`, the box (`text_width` x `text_height`) is filled first. Anything past the image edge is
/// clipped, so positions may be negative or beyond the image.
pub fn draw_text(
    img: &mut RgbImage,
    x: i32,
    y: i32,
    text: &str,
    scale: u32,
    fg: Rgb<u8>,
    bg: Option<Rgb<u8>>,
) {
    // i64 so that large scales or long strings cannot overflow the arithmetic.
    let s = i64::from(scale.max(1));
    let (x, y) = (i64::from(x), i64::from(y));
    if let Some(bg) = bg {
        let w = i64::from(text_width(text, scale));
        fill_rect(img, x, y, w, i64::from(LINE) * s, bg);
    }
    for (i, c) in text.chars().enumerate() {
        let gx = x + (1 + i as i64 * i64::from(ADVANCE)) * s;
        if gx >= i64::from(img.width()) {
            break;
        }
        for (col, bits) in glyph(c).iter().enumerate() {
            for row in 0..GLYPH_H as i64 {
                if (bits >> row) & 1 == 1 {
                    fill_rect(img, gx + col as i64 * s, y + (1 + row) * s, s, s, fg);
                }
            }
        }
    }
}

/// Fill the rectangle `x..x + w` by `y..y + h`, clipped to the image.
fn fill_rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, c: Rgb<u8>) {
    let (iw, ih) = (i64::from(img.width()), i64::from(img.height()));
    let (x0, x1) = (x.clamp(0, iw), (x.saturating_add(w)).clamp(0, iw));
    let (y0, y1) = (y.clamp(0, ih), (y.saturating_add(h)).clamp(0, ih));
    for py in y0..y1 {
        for px in x0..x1 {
            img.put_pixel(px as u32, py as u32, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
    const BLACK: Rgb<u8> = Rgb([0, 0, 0]);

    fn set_pixels(img: &RgbImage, c: Rgb<u8>) -> usize {
        img.pixels().filter(|p| **p == c).count()
    }

    fn render(text: &str, scale: u32) -> RgbImage {
        let mut img = RgbImage::new(text_width(text, scale).max(1), text_height(scale));
        draw_text(&mut img, 0, 0, text, scale, WHITE, None);
        img
    }

    #[test]
    fn a_letter_has_set_pixels_and_a_space_has_none() {
        assert!(set_pixels(&render("A", 1), WHITE) > 10);
        assert_eq!(set_pixels(&render(" ", 1), WHITE), 0);
    }

    #[test]
    fn every_printable_character_but_space_draws_something() {
        for c in '!'..='~' {
            assert!(
                set_pixels(&render(&c.to_string(), 1), WHITE) > 0,
                "{c:?} is blank"
            );
        }
    }

    #[test]
    fn every_glyph_is_distinct() {
        for (i, a) in GLYPHS.iter().enumerate() {
            for (j, b) in GLYPHS.iter().enumerate().skip(i + 1) {
                let (ca, cb) = ((i as u8 + 0x20) as char, (j as u8 + 0x20) as char);
                assert_ne!(a, b, "{ca:?} and {cb:?} look the same");
            }
        }
    }

    #[test]
    fn non_ascii_and_control_characters_render_as_a_question_mark() {
        let question = render("?", 2);
        for c in ["é", "北", "\n", "\u{7f}"] {
            assert_eq!(render(c, 2), question, "{c:?}");
        }
    }

    #[test]
    fn scale_multiplies_the_ink() {
        assert_eq!(
            set_pixels(&render("A", 3), WHITE),
            9 * set_pixels(&render("A", 1), WHITE)
        );
    }

    #[test]
    fn width_counts_characters_not_bytes() {
        assert_eq!(text_width("", 2), 0);
        assert_eq!(text_width("ab", 1), 13);
        assert_eq!(text_width("北京", 2), text_width("ab", 2));
        assert_eq!(text_width("a", 0), text_width("a", 1));
    }

    #[test]
    fn background_fills_exactly_the_text_box() {
        let mut img = RgbImage::from_pixel(100, 40, Rgb([9, 9, 9]));
        let text = "zone=stall-1";
        draw_text(&mut img, 3, 5, text, 1, WHITE, Some(BLACK));
        let (w, h) = (text_width(text, 1), text_height(1));
        for (x, y, p) in img.enumerate_pixels() {
            let inside = (3..3 + w).contains(&x) && (5..5 + h).contains(&y);
            assert_eq!(*p == Rgb([9, 9, 9]), !inside, "pixel ({x}, {y})");
        }
    }

    #[test]
    fn text_crossing_any_edge_is_clipped_to_its_box() {
        let base = Rgb([9, 9, 9]);
        let caption = "street_vending  zone=stall-1  2026-11-23 14:05:09+08:00  cam=north";
        let (w, h) = (i64::from(text_width(caption, 3)), i64::from(text_height(3)));
        for (x, y, visible) in [
            (-7, -3, true),
            (35, 15, true),
            (-1000, 5, true), // the caption is about 1,200 px wide at scale 3
            (-2000, 5, false),
            (5, 1000, false),
            (i32::MIN, i32::MIN, false),
            (i32::MAX, i32::MAX, false),
        ] {
            let mut img = RgbImage::from_pixel(40, 20, base);
            draw_text(&mut img, x, y, caption, 3, WHITE, Some(BLACK));
            let changed: Vec<(u32, u32)> = img
                .enumerate_pixels()
                .filter(|(_, _, p)| **p != base)
                .map(|(px, py, _)| (px, py))
                .collect();
            assert_eq!(!changed.is_empty(), visible, "text at ({x}, {y})");
            let (x, y) = (i64::from(x), i64::from(y));
            for (px, py) in changed {
                let (px, py) = (i64::from(px), i64::from(py));
                assert!(
                    (x..x + w).contains(&px) && (y..y + h).contains(&py),
                    "pixel ({px}, {py}) outside the text box at ({x}, {y})"
                );
            }
        }
        // A scale too large for any image: the background covers everything there is.
        let mut img = RgbImage::from_pixel(40, 20, base);
        draw_text(&mut img, 0, 0, caption, u32::MAX, WHITE, Some(BLACK));
        assert!(img.pixels().all(|p| *p == BLACK || *p == WHITE));
        let mut empty = RgbImage::new(0, 0);
        draw_text(&mut empty, 0, 0, caption, 1, WHITE, Some(BLACK));
        assert_eq!(empty.dimensions(), (0, 0));
    }

    #[test]
    fn clipped_text_matches_the_visible_part_of_unclipped_text() {
        let full = render("Hi", 2);
        let mut img = RgbImage::new(full.width(), full.height());
        draw_text(&mut img, -5, -4, "Hi", 2, WHITE, None);
        for (x, y, p) in img.enumerate_pixels() {
            if x + 5 < full.width() && y + 4 < full.height() {
                assert_eq!(p, full.get_pixel(x + 5, y + 4));
            }
        }
    }
}
