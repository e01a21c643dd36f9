//! The language of what a person reads: Simplified Chinese by default, English as the switch.

use serde::Deserialize;

/// `zh-CN` (the default: the people who read events and cases are Chinese city staff) or `en`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Language {
    #[default]
    #[serde(rename = "zh-CN")]
    ZhCn,
    #[serde(rename = "en")]
    En,
}

impl Language {
    /// The text in this language: `zh` or `en`.
    pub fn pick<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Language::ZhCn => zh,
            Language::En => en,
        }
    }
}
