//! Decoder templates from `pipelines/`: how to depayload, parse and decode each codec on a given kind of
//! hardware. They are compiled in, so a gateway cannot lose them; a template whose decoder element is not
//! installed falls back to software decoding.

use super::codec::Codec;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodecChain {
    depay: String,
    parse: String,
    decoder: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    description: String,
    h264: CodecChain,
    h265: CodecChain,
}

/// One decoder template.
#[derive(Debug, Clone)]
pub struct DecoderTemplate {
    pub name: &'static str,
    pub description: String,
    file: TemplateFile,
}

const TEMPLATES: &[(&str, &str)] = &[
    ("software", include_str!("../../pipelines/software.toml")),
    (
        "rockchip-mpp",
        include_str!("../../pipelines/rockchip-mpp.toml"),
    ),
    ("v4l2", include_str!("../../pipelines/v4l2.toml")),
    ("jetson", include_str!("../../pipelines/jetson.toml")),
];

impl DecoderTemplate {
    pub fn names() -> Vec<&'static str> {
        TEMPLATES.iter().map(|(n, _)| *n).collect()
    }

    pub fn find(name: &str) -> Option<DecoderTemplate> {
        let (name, text) = TEMPLATES.iter().find(|(n, _)| *n == name)?;
        let file: TemplateFile =
            toml::from_str(text).expect("compiled-in pipeline templates parse (checked by a test)");
        Some(DecoderTemplate {
            name,
            description: file.description.clone(),
            file,
        })
    }

    /// `depay ! parse` for the codec.
    pub fn depay_parse(&self, codec: Codec) -> String {
        let c = self.chain(codec);
        format!("{} ! {}", c.depay, c.parse)
    }

    /// The decoder element chain for the codec.
    pub fn decoder(&self, codec: Codec) -> &str {
        &self.chain(codec).decoder
    }

    /// Factory name of the first decoder element, to check it is installed.
    pub fn decoder_factory(&self, codec: Codec) -> &str {
        self.decoder(codec)
            .split_whitespace()
            .next()
            .unwrap_or_default()
    }

    fn chain(&self, codec: Codec) -> &CodecChain {
        match codec {
            Codec::H264 => &self.file.h264,
            Codec::H265 => &self.file.h265,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_template_parses() {
        for name in DecoderTemplate::names() {
            let t = DecoderTemplate::find(name).unwrap();
            assert!(!t.decoder_factory(Codec::H264).is_empty(), "{name}");
        }
    }
}
