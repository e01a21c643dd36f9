//! The reference view of a camera: what its picture looked like when the zones were drawn (or the installer
//! last confirmed the view). Kept on disk as a small versioned binary file next to the scene references.

use super::picture::{CELLS_X, CELLS_Y, Picture};

const MAGIC: &[u8; 4] = b"SSHV";
const FORMAT_VERSION: u8 = 1;
/// Magic, version, width and height (u16 each), sharpness, brightness, cast (f32 each).
const HEADER_LEN: usize = 4 + 1 + 2 + 2 + 3 * 4;

/// The reference view: its grey thumbnail, texture per cell and full-resolution figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub tw: usize,
    pub th: usize,
    pub grey: Vec<u8>,
    pub texture: Vec<f32>,
    pub sharpness: f32,
    pub brightness: f32,
    pub cast: f32,
}

/// Why a stored reference view was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HealthError {
    #[error(
        "view reference: expected a stored view reference (starting with \"SSHV\", version {FORMAT_VERSION}), found {found} bytes that are not one; confirm the view to take a new one"
    )]
    NotAReference { found: usize },
    #[error(
        "view reference: expected {expected} bytes for a {width}x{height} thumbnail, found {found}; the file is truncated or corrupt, confirm the view to take a new one"
    )]
    Length {
        width: usize,
        height: usize,
        expected: usize,
        found: usize,
    },
}

impl Reference {
    /// The picture as a reference; its texture is taken from the stored (whole-step) thumbnail, so a
    /// reference read back from its bytes equals the one taken.
    pub fn of(p: &Picture) -> Reference {
        let grey: Vec<u8> = p
            .grey
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect();
        Reference {
            tw: p.tw,
            th: p.th,
            texture: super::picture::texture(&grey_f32(&grey), p.tw, p.th),
            grey,
            sharpness: p.sharpness,
            brightness: p.brightness,
            cast: p.cast,
        }
    }

    pub(super) fn grey_f32(&self) -> Vec<f32> {
        grey_f32(&self.grey)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.grey.len());
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&(self.tw as u16).to_le_bytes());
        out.extend_from_slice(&(self.th as u16).to_le_bytes());
        for v in [self.sharpness, self.brightness, self.cast] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.grey);
        out
    }

    /// Read a stored reference; its texture is recomputed from the thumbnail (so it is never out of step).
    pub fn from_bytes(bytes: &[u8]) -> Result<Reference, HealthError> {
        if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC || bytes[4] != FORMAT_VERSION {
            return Err(HealthError::NotAReference { found: bytes.len() });
        }
        let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]) as usize;
        let f32_at =
            |i: usize| f32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let (tw, th) = (u16_at(5), u16_at(7));
        let expected = HEADER_LEN + tw * th;
        if tw < CELLS_X || th < CELLS_Y || bytes.len() != expected {
            return Err(HealthError::Length {
                width: tw,
                height: th,
                expected,
                found: bytes.len(),
            });
        }
        let [sharpness, brightness, cast] = [f32_at(9), f32_at(13), f32_at(17)];
        if ![sharpness, brightness, cast]
            .iter()
            .all(|v| v.is_finite() && *v >= 0.0)
        {
            return Err(HealthError::NotAReference { found: bytes.len() });
        }
        let grey = bytes[HEADER_LEN..].to_vec();
        let texture = super::picture::texture(&grey_f32(&grey), tw, th);
        Ok(Reference {
            tw,
            th,
            grey,
            texture,
            sharpness,
            brightness,
            cast,
        })
    }
}

fn grey_f32(grey: &[u8]) -> Vec<f32> {
    grey.iter().map(|v| *v as f32).collect()
}
