//! Evidence captions in the pole's language: what a caption says (category by its configured name, what
//! happened, where, when), and drawing it in Chinese with a font read from disk.
//!
//! Chinese needs a real font, and a CJK font is 5–20 MB, so none is built in: the plan reads the file that
//! `device.caption_font` names (or the first of Debian's Chinese fonts installed) once, and every evidence
//! image of the cameras that share it draws with the same [`CaptionFont`]. Without one (and always for
//! `en`) the caption is the English line the built-in bitmap font draws (`font.rs`).

use super::event::{CameraRef, Phase, Verification, ZoneRef};
use ab_glyph::{Font, FontVec, GlyphId, PxScale, ScaleFont, point};
use image::{Rgb, RgbImage};

/// A font that draws Chinese captions: the first face of a TrueType/OpenType file or collection.
///
/// Rasterised with `ab_glyph` rather than `fontdue`: ab_glyph reads the file through `ttf-parser` lazily and
/// outlines only the glyphs a caption uses, so loading a CJK collection of tens of thousands of glyphs costs
/// its bytes and microseconds; fontdue outlines every glyph of the face when it loads, seconds and tens of
/// megabytes on an ARM gateway. Both are maintained and pure Rust; ab_glyph also reads the CFF outlines of
/// Noto Sans CJK.
pub struct CaptionFont {
    font: FontVec,
}

/// Why a file is no caption font.
#[derive(Debug, thiserror::Error)]
pub enum FontError {
    #[error("not a TrueType/OpenType font or collection ({0})")]
    NotAFont(String),
    #[error("the font has no Chinese characters")]
    NoChinese,
}

impl CaptionFont {
    /// The first face of the font file `bytes`; it must have Chinese characters.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<CaptionFont, FontError> {
        let font = FontVec::try_from_vec_and_index(bytes, 0)
            .map_err(|e| FontError::NotAFont(e.to_string()))?;
        if ['中', '文', '号']
            .iter()
            .any(|&c| font.glyph_id(c) == GlyphId(0))
        {
            return Err(FontError::NoChinese);
        }
        Ok(CaptionFont { font })
    }
}

impl std::fmt::Debug for CaptionFont {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptionFont")
            .field("glyphs", &self.font.glyph_count())
            .finish()
    }
}

/// What a caption names: one transition of one incident, as an evidence image shows it.
pub(super) struct Subject<'a> {
    /// The category's key (`street_vending`).
    pub category: &'a str,
    /// Its configured `[categories.*] name` (`占道经营`).
    pub name: Option<&'a str>,
    pub phase: Phase,
    pub reopened: bool,
    pub verification: Option<Verification>,
    pub health: Option<&'a crate::health::HealthReport>,
    pub zone: &'a ZoneRef,
    pub camera: &'a CameraRef,
    /// The most precise address there is (zone, camera, device).
    pub address: Option<&'a str>,
    /// When the picture was taken, in the pole's time zone.
    pub at: chrono::DateTime<chrono_tz::Tz>,
}

/// The English caption, parts separated by double spaces (ASCII, for the built-in font):
/// `street_vending  opened  zone=stall-1  cam=north  2026-11-23 14:05:09+08:00`.
pub(super) fn english(s: &Subject) -> String {
    let phase = match s.phase {
        Phase::Opened => "opened",
        Phase::Updated => "updated",
        Phase::Resolved => "resolved",
        Phase::Verified => match s.verification {
            Some(Verification::StillPresent) => "verified: still present",
            _ => "verified: cleared",
        },
    };
    let what = match s.health {
        Some(h) => health_words(h, false),
        None => format!("zone={}", s.zone.id),
    };
    format!(
        "{}  {phase}  {what}  cam={}  {}",
        s.category,
        s.camera.id,
        s.at.format("%Y-%m-%d %H:%M:%S%:z")
    )
}

/// The Chinese caption, parts separated by double spaces:
/// `2026-11-23 14:05:09  文三路7号杆  占道经营 · 发现  区域：东侧人行道  摄像机：东向摄像机`.
pub(super) fn chinese(s: &Subject) -> String {
    let name = s.name.filter(|n| !n.is_empty()).unwrap_or(s.category);
    let phase = match s.phase {
        Phase::Opened if s.reopened => "再次发现",
        Phase::Opened => "发现",
        Phase::Updated => "持续",
        Phase::Resolved => "已结束",
        Phase::Verified => match s.verification {
            Some(Verification::StillPresent) => "核查：仍存在",
            _ => "核查：已清除",
        },
    };
    let what = match s.health {
        Some(h) => health_words(h, true),
        None => format!("区域：{}", s.zone.name.as_deref().unwrap_or(&s.zone.id)),
    };
    let camera = s.camera.name.as_deref().unwrap_or(&s.camera.id);
    let mut parts = vec![s.at.format("%Y-%m-%d %H:%M:%S").to_string()];
    parts.extend(s.address.map(str::to_string));
    parts.push(format!("{name} · {phase}"));
    parts.push(what);
    parts.push(format!("摄像机：{camera}"));
    parts.join("  ")
}

/// What a camera-health caption says: the conditions and the measured shift, in Chinese or English.
fn health_words(h: &crate::health::HealthReport, chinese: bool) -> String {
    let conditions = match (h.conditions.is_empty(), chinese) {
        (true, true) => "画面正常".to_string(),
        (true, false) => "healthy".to_string(),
        (false, true) => h
            .conditions
            .iter()
            .map(|c| c.chinese())
            .collect::<Vec<_>>()
            .join("、"),
        (false, false) => h
            .conditions
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join("+"),
    };
    let Some(s) = h.shift else {
        return conditions;
    };
    let (x, y) = (s.x * 100.0, s.y * 100.0);
    if chinese {
        format!(
            "{conditions}  偏移 {x:+.1}%,{y:+.1}% 旋转 {:+.1}° 缩放 ×{:.2}",
            s.degrees, s.scale
        )
    } else {
        format!(
            "{conditions}  shift {x:+.1}%,{y:+.1}% {:+.1}deg x{:.2}",
            s.degrees, s.scale
        )
    }
}

/// The caption for `s` and the font it is drawn with: Chinese in `font` when the pole speaks Chinese and has
/// one; otherwise English in the built-in font (`None`).
pub(super) fn choose<'f>(
    s: &Subject,
    language: crate::base::Language,
    font: Option<&'f CaptionFont>,
) -> (String, Option<&'f CaptionFont>) {
    match (language, font) {
        (crate::base::Language::ZhCn, Some(font)) => (chinese(s), Some(font)),
        _ => (english(s), None),
    }
}

/// `text` as lines that `fits`, broken at its double spaces (a part too long for any line stands alone).
pub(super) fn wrap(text: &str, fits: impl Fn(&str) -> bool) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for part in text.split("  ") {
        match lines.last_mut() {
            Some(line) if fits(&format!("{line}  {part}")) => {
                line.push_str("  ");
                line.push_str(part);
            }
            _ => lines.push(part.to_string()),
        }
    }
    lines
}

const TEXT: [f32; 3] = [255.0, 255.0, 255.0];
/// How much of the picture shows through the band behind the text.
const SHOW_THROUGH: f32 = 0.35;

/// Draw `text` along the top of `img` in `font`, white on a dark translucent band the width of the picture,
/// the text 1/24 of the picture's height (at least 12 px), wrapped at its double spaces and clipped at the
/// right edge.
pub(super) fn draw(img: &mut RgbImage, text: &str, font: &CaptionFont) {
    if text.is_empty() || img.width() == 0 || img.height() == 0 {
        return;
    }
    let px = (img.height() as f32 / 24.0).max(12.0);
    let scaled = font.font.as_scaled(PxScale::from(px));
    let pad = (px / 4.0).ceil();
    let line_h = (scaled.ascent() - scaled.descent()).ceil();
    let room = img.width() as f32 - 2.0 * pad;
    let lines = wrap(text, |t| width(&scaled, t) <= room);
    let band = (2.0 * pad + lines.len() as f32 * line_h).min(img.height() as f32) as u32;
    for y in 0..band {
        for x in 0..img.width() {
            let p = img.get_pixel_mut(x, y);
            p.0 = p.0.map(|v| (f32::from(v) * SHOW_THROUGH).round() as u8);
        }
    }
    for (k, line) in lines.iter().enumerate() {
        let baseline = pad + k as f32 * line_h + scaled.ascent();
        draw_line(img, &scaled, line, point(pad, baseline));
    }
}

/// The advance width of `text` in pixels, kerning included.
fn width<F: Font>(font: &ab_glyph::PxScaleFont<&F>, text: &str) -> f32 {
    let mut prev: Option<GlyphId> = None;
    let mut w = 0.0;
    for c in text.chars() {
        let id = font.glyph_id(c);
        w += prev.map_or(0.0, |p| font.kern(p, id)) + font.h_advance(id);
        prev = Some(id);
    }
    w
}

/// One line from `origin` (its baseline's left end), each glyph's coverage blended over the band; what
/// falls outside the picture is not drawn.
fn draw_line<F: Font>(
    img: &mut RgbImage,
    font: &ab_glyph::PxScaleFont<&F>,
    text: &str,
    origin: ab_glyph::Point,
) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let mut x = origin.x;
    let mut prev: Option<GlyphId> = None;
    for c in text.chars() {
        if x >= w as f32 {
            break;
        }
        let id = font.glyph_id(c);
        x += prev.map_or(0.0, |p| font.kern(p, id));
        prev = Some(id);
        let glyph = id.with_scale_and_position(font.scale(), point(x, origin.y));
        x += font.h_advance(id);
        let Some(outline) = font.outline_glyph(glyph) else {
            continue; // a space
        };
        let bounds = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let (px, py) = (
                bounds.min.x as i64 + i64::from(gx),
                bounds.min.y as i64 + i64::from(gy),
            );
            if (0..w).contains(&px) && (0..h).contains(&py) {
                let p = img.get_pixel_mut(px as u32, py as u32);
                let a = coverage.clamp(0.0, 1.0);
                *p = Rgb(std::array::from_fn(|i| {
                    (f32::from(p.0[i]) * (1.0 - a) + TEXT[i] * a).round() as u8
                }));
            }
        });
    }
}

/// The font Debian's fonts-wqy-microhei installs (scripts/setup.sh installs it; the .deb depends on it).
#[cfg(test)]
pub(super) fn wqy_microhei() -> CaptionFont {
    const WQY: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";
    let bytes =
        std::fs::read(WQY).unwrap_or_else(|e| panic!("{WQY}: {e}; apt install fonts-wqy-microhei"));
    CaptionFont::from_bytes(bytes).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::Language;

    fn zone() -> ZoneRef {
        serde_json::from_value(serde_json::json!({ "id": "stall-1", "name": "东侧人行道" }))
            .unwrap()
    }

    fn camera() -> CameraRef {
        serde_json::from_value(serde_json::json!({ "id": "north", "name": "东向摄像机" })).unwrap()
    }

    fn subject<'a>(zone: &'a ZoneRef, camera: &'a CameraRef) -> Subject<'a> {
        use chrono::TimeZone;
        Subject {
            category: "street_vending",
            name: Some("占道经营"),
            phase: Phase::Opened,
            reopened: false,
            verification: None,
            health: None,
            zone,
            camera,
            address: Some("文三路7号杆"),
            at: chrono_tz::Asia::Shanghai
                .with_ymd_and_hms(2026, 12, 5, 14, 3, 9)
                .unwrap(),
        }
    }

    #[test]
    fn a_caption_longer_than_the_picture_wraps_and_is_clipped_at_its_right_edge() {
        let font = wqy_microhei();
        let mut img = RgbImage::from_pixel(160, 120, Rgb([128, 128, 128]));
        let text = "占道经营占道经营占道经营占道经营  东侧人行道";
        draw(&mut img, text, &font);
        // The band: every row above the first row left as it was; two lines of 12 px text (the minimum).
        let untouched = |y: u32| (0..160).all(|x| img.get_pixel(x, y).0[0] == 128);
        let band = (0..120).find(|&y| untouched(y)).unwrap();
        assert!((24..60).contains(&band), "band of {band} rows");
        assert!((band..120).all(untouched));
        let right_edge_inked = (0..band).any(|y| img.get_pixel(159, y).0[0] > 150);
        assert!(right_edge_inked, "the first line runs to the edge");
        let mut empty = RgbImage::new(0, 0);
        draw(&mut empty, text, &font);
    }

    #[test]
    fn captions_name_the_configured_category_where_and_when_in_the_poles_language() {
        let (zone, camera) = (zone(), camera());
        let s = subject(&zone, &camera);
        assert_eq!(
            chinese(&s),
            "2026-12-05 14:03:09  文三路7号杆  占道经营 · 发现  区域：东侧人行道  摄像机：东向摄像机"
        );
        assert_eq!(
            english(&s),
            "street_vending  opened  zone=stall-1  cam=north  2026-12-05 14:03:09+08:00"
        );
        let unnamed = Subject {
            name: None,
            address: None,
            phase: Phase::Verified,
            verification: Some(Verification::StillPresent),
            ..subject(&zone, &camera)
        };
        assert_eq!(
            chinese(&unnamed),
            "2026-12-05 14:03:09  street_vending · 核查：仍存在  区域：东侧人行道  摄像机：东向摄像机"
        );
    }

    #[test]
    fn without_a_font_a_chinese_pole_captions_in_english_with_the_built_in_font() {
        let (zone, camera) = (zone(), camera());
        let s = subject(&zone, &camera);
        let font = wqy_microhei();
        let (text, chosen) = choose(&s, Language::ZhCn, None);
        assert_eq!(
            (text.as_str(), chosen.is_none()),
            (english(&s).as_str(), true)
        );
        let (text, chosen) = choose(&s, Language::En, Some(&font));
        assert_eq!(
            (text.as_str(), chosen.is_none()),
            (english(&s).as_str(), true)
        );
        let (text, chosen) = choose(&s, Language::ZhCn, Some(&font));
        assert_eq!(
            (text.as_str(), chosen.is_some()),
            (chinese(&s).as_str(), true)
        );
    }

    #[test]
    fn a_file_that_is_no_font_or_has_no_chinese_is_refused() {
        assert!(matches!(
            CaptionFont::from_bytes(b"not a font".to_vec()),
            Err(FontError::NotAFont(_))
        ));
        let latin = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
        if let Ok(bytes) = std::fs::read(latin) {
            assert!(matches!(
                CaptionFont::from_bytes(bytes),
                Err(FontError::NoChinese)
            ));
        }
    }
}
