//! A camera's source from its configuration: the password resolved (file or environment), the decoder
//! template chosen (software when the template's decoder element is not installed on this gateway), and the
//! configuration's codec, transport and sampling as ingest's own types.

use crate::config::{self, CameraConfig};
use crate::ingest::{CameraSource, Codec, DecoderTemplate, RtspTransport, Sampling, Secret};
use std::path::Path;

/// What ingest needs to open `cam`. Fails when a secret cannot be read or the decoder is unknown.
pub fn camera_source(cam: &CameraConfig, base_dir: &Path) -> Result<CameraSource, String> {
    let password = if let Some(p) = &cam.password_file {
        let path = config::resolve(base_dir, p);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "camera `{}`: cannot read password_file {}: {e}",
                cam.id,
                path.display()
            )
        })?;
        Some(Secret::from(
            text.trim_end_matches(['\r', '\n']).to_string(),
        ))
    } else if let Some(var) = &cam.password_env {
        Some(Secret::from(std::env::var(var).map_err(|_| {
            format!(
                "camera `{}`: environment variable `{var}` is not set",
                cam.id
            )
        })?))
    } else {
        None
    };
    let codec = codec(cam.codec);
    let mut template = DecoderTemplate::find(&cam.decoder)
        .ok_or_else(|| format!("camera `{}`: unknown decoder `{}`", cam.id, cam.decoder))?;
    let factory = template.decoder_factory(codec).to_string();
    if gstreamer::ElementFactory::find(&factory).is_none() && template.name != "software" {
        tracing::warn!(camera = %cam.id, decoder = %factory, "Decoder element is not installed; falling back to software decoding.");
        template = DecoderTemplate::find("software").expect("software template is compiled in");
    }
    Ok(CameraSource {
        id: cam.id.as_str().into(),
        url: cam.url.get_ref().clone(),
        username: cam.username.clone(),
        password,
        transport: match cam.transport {
            config::RtspTransport::Auto => RtspTransport::Auto,
            config::RtspTransport::Tcp => RtspTransport::Tcp,
            config::RtspTransport::Udp => RtspTransport::Udp,
        },
        codec,
        template,
        sampling: match cam.sampling {
            config::Sampling::Keyframe => Sampling::Keyframe,
            config::Sampling::Interval { interval_ms } => Sampling::Interval { interval_ms },
        },
    })
}

/// The configuration's codec as ingest's.
pub(crate) fn codec(c: config::Codec) -> Codec {
    match c {
        config::Codec::H264 => Codec::H264,
        config::Codec::H265 => Codec::H265,
    }
}
