//! The video codecs a camera may send and streetsight decodes.

/// Video codec of the camera stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    H265,
}

impl Codec {
    /// The configuration's name for the codec (`codec = "h264"`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
        }
    }

    /// Whether an RTP encoding name (`H264`, `H265`, …) is this codec.
    pub(super) fn is_encoding(self, encoding: &str) -> bool {
        encoding.eq_ignore_ascii_case(self.name())
    }

    /// The codec an RTP encoding name stands for, when streetsight decodes it.
    pub fn from_encoding(encoding: &str) -> Option<Codec> {
        [Codec::H264, Codec::H265]
            .into_iter()
            .find(|c| c.is_encoding(encoding))
    }
}
