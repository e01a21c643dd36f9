//! Device-wide settings that schedules and evidence depend on: the time zone, the head share obscured and the
//! font Chinese captions are drawn with.

use super::check::Check;
use crate::base::Language;
use crate::config::Config;
use crate::incident::CaptionFont;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// The device's time zone: checked, and what schedules and captions use.
pub(crate) fn timezone(c: &mut Check, config: &Config) -> chrono_tz::Tz {
    let tz = &config.device.timezone;
    tz.get_ref().parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
        c.push(
            tz,
            format!(
                "timezone `{}` is not an IANA time zone; write e.g. \"Asia/Shanghai\"",
                tz.get_ref()
            ),
        );
        chrono_tz::Asia::Shanghai
    })
}

/// The evidence settings.
pub(crate) fn verify_evidence(c: &mut Check, config: &Config) {
    let h = &config.evidence.head_fraction;
    if !(*h.get_ref() > 0.0 && *h.get_ref() <= 1.0) {
        c.push(
            h,
            format!("evidence.head_fraction = {} must be in (0, 1]", h.get_ref()),
        );
    }
    verify_caption_font(c, config);
}

/// Debian's Chinese fonts (fonts-wqy-microhei, fonts-wqy-zenhei, fonts-noto-cjk), in the order a caption font
/// is looked for when `device.caption_font` is unset.
pub const CAPTION_FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
];

/// The file `zh-CN` captions are drawn with: the configured one, else the first of [`CAPTION_FONTS`] that
/// exists; none when neither.
pub fn caption_font_path(config: &Config) -> Option<PathBuf> {
    font_path(config, &CAPTION_FONTS)
}

fn font_path(config: &Config, installed: &[&str]) -> Option<PathBuf> {
    match &config.device.caption_font {
        Some(p) => Some(p.get_ref().clone()),
        None => installed.iter().map(PathBuf::from).find(|p| p.is_file()),
    }
}

/// The caption font for `config`'s evidence, read once per file and shared by every camera (a CJK font is
/// 5–20 MB); none for `en`, and none when no font is configured or installed or it cannot be read — then
/// captions are in English, in the built-in font (logged; `streetsight check` says so too).
pub fn caption_font(config: &Config) -> Option<Arc<CaptionFont>> {
    font_for(config, caption_font_path(config))
}

fn font_for(config: &Config, path: Option<PathBuf>) -> Option<Arc<CaptionFont>> {
    if config.device.language != Language::ZhCn {
        return None;
    }
    let Some(path) = path else {
        tracing::warn!(
            "No Chinese font for evidence captions; they are in English (apt install fonts-wqy-microhei)."
        );
        return None;
    };
    load_caption_font(&path)
        .inspect_err(|error| {
            tracing::warn!(file = %path.display(), %error, "Caption font unusable; evidence captions are in English.")
        })
        .ok()
}

/// The font at `path`, shared with whoever loaded the same unchanged file before and still holds it.
pub fn load_caption_font(path: &Path) -> Result<Arc<CaptionFont>, String> {
    type Key = (PathBuf, u64, Option<std::time::SystemTime>);
    static LOADED: Mutex<Option<(Key, Weak<CaptionFont>)>> = Mutex::new(None);
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let key: Key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((k, font)) = loaded.as_ref()
        && *k == key
        && let Some(font) = font.upgrade()
    {
        return Ok(font);
    }
    let font = Arc::new(read_caption_font(path)?);
    *loaded = Some((key, Arc::downgrade(&font)));
    Ok(font)
}

fn read_caption_font(path: &Path) -> Result<CaptionFont, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    CaptionFont::from_bytes(bytes).map_err(|e| e.to_string())
}

/// A configured caption font must be an absolute path to a font with Chinese characters.
fn verify_caption_font(c: &mut Check, config: &Config) {
    let Some(p) = &config.device.caption_font else {
        return;
    };
    let path = p.get_ref();
    let problem = if path.is_relative() {
        "is not an absolute path".to_string()
    } else if let Err(why) = read_caption_font(path) {
        format!("cannot be used: {why}")
    } else {
        return;
    };
    c.push(
        p,
        format!(
            "device.caption_font `{}` {problem}; install the Chinese font (apt install fonts-wqy-microhei) and \
             remove caption_font, or point it to a TrueType/OpenType font with Chinese characters",
            path.display()
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Lines;

    const WQY: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";

    fn config(device: &str) -> (String, Config) {
        let text = format!(
            "[device]\nid = \"pole-7\"\n{device}\n[uplink]\nbroker = \"mqtt://127.0.0.1:1883\"\n"
        );
        let config = crate::config::parse_str(Path::new("/etc/streetsight.toml"), &text)
            .unwrap()
            .config;
        (text, config)
    }

    /// The caption font's problems, as `file:line: message`.
    fn problems(device: &str) -> Vec<String> {
        let (text, config) = config(device);
        let lines = Lines::new(Path::new("/etc/streetsight.toml"), &text);
        let mut check = Check::new(&lines, Path::new("/etc"));
        verify_caption_font(&mut check, &config);
        check
            .into_errors()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_configured_caption_font_that_is_missing_or_no_font_is_an_error_at_its_line_with_the_fix() {
        let not_a_font = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        for (path, why) in [
            ("/usr/share/fonts/none.ttc", "No such file"),
            (not_a_font, "not a TrueType/OpenType font"),
            ("fonts/wqy.ttc", "is not an absolute path"),
        ] {
            let found = problems(&format!("caption_font = \"{path}\""));
            assert_eq!(found.len(), 1, "{found:?}");
            let p = &found[0];
            assert!(
                p.starts_with("/etc/streetsight.toml:3: device.caption_font")
                    && p.contains(why)
                    && p.contains("apt install fonts-wqy-microhei"),
                "{p}"
            );
        }
        assert!(problems(&format!("caption_font = \"{WQY}\"")).is_empty());
        assert!(problems("").is_empty());
    }

    #[test]
    fn with_no_chinese_font_configured_or_installed_captions_fall_back_to_english() {
        let (_, zh) = config("");
        assert_eq!(font_path(&zh, &["/nowhere/a.ttc", "/nowhere/b.ttc"]), None);
        assert!(font_for(&zh, None).is_none());
        assert!(font_for(&zh, Some("/nowhere/a.ttc".into())).is_none());
        assert_eq!(font_path(&zh, &["/nowhere/a.ttc", WQY]), Some(WQY.into()));
        let font = font_for(&zh, Some(WQY.into())).expect("apt install fonts-wqy-microhei");
        // Read once: the next camera shares it.
        assert!(Arc::ptr_eq(
            &font,
            &font_for(&zh, Some(WQY.into())).unwrap()
        ));
        let (_, en) = config("language = \"en\"");
        assert!(font_for(&en, Some(WQY.into())).is_none());
    }
}
