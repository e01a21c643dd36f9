//! Connection options from the configuration, for MQTT 5 or 3.1.1: broker address, client id, credentials,
//! TLS files (read here), keep-alive and the `offline` last will.

use super::session::{Common, Protocol, SessionOptions};
use super::{Topics, UplinkError};
use crate::config::UplinkConfig;
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use std::path::Path;
use std::time::Duration;

/// MQTT 3.1.1 connection options from the configuration (TLS files are read here).
pub fn mqtt_options(
    cfg: &UplinkConfig,
    device_id: &str,
    base_dir: &Path,
    topics: &Topics,
) -> Result<MqttOptions, UplinkError> {
    match SessionOptions::new(
        Protocol::V311,
        common_options(cfg, device_id, base_dir, topics)?,
    ) {
        SessionOptions::V311(o) => Ok(*o),
        SessionOptions::V5(_) => unreachable!("3.1.1 options asked for"),
    }
}

/// Connection options in the configured protocol.
pub fn session_options(
    cfg: &UplinkConfig,
    device_id: &str,
    base_dir: &Path,
    topics: &Topics,
) -> Result<SessionOptions, UplinkError> {
    Ok(SessionOptions::new(
        cfg.protocol,
        common_options(cfg, device_id, base_dir, topics)?,
    ))
}

fn common_options(
    cfg: &UplinkConfig,
    device_id: &str,
    base_dir: &Path,
    topics: &Topics,
) -> Result<Common, UplinkError> {
    let raw = cfg.broker.get_ref();
    let url = url::Url::parse(raw).map_err(|e| UplinkError::Url(raw.clone(), e.to_string()))?;
    let host = url
        .host_str()
        .ok_or_else(|| UplinkError::Url(raw.clone(), "no host".into()))?
        .trim_matches(['[', ']'])
        .to_string();
    let tls = url.scheme() == "mqtts";
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    let client_id = cfg
        .client_id
        .clone()
        .unwrap_or_else(|| format!("streetsight-{device_id}"));
    let read = |p: &Path| {
        let path = if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        };
        std::fs::read(&path).map_err(|source| UplinkError::Read { path, source })
    };
    let credentials = match &cfg.username {
        Some(user) => {
            let password = match &cfg.password_file {
                Some(p) => String::from_utf8_lossy(&read(p)?).trim_end().to_string(),
                None => String::new(),
            };
            Some((user.clone(), password))
        }
        None => None,
    };
    let transport = if tls {
        let t = cfg
            .tls
            .as_ref()
            .ok_or_else(|| UplinkError::Url(raw.clone(), "mqtts:// needs [uplink.tls]".into()))?
            .get_ref();
        let client_auth = match (&t.cert, &t.key) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            _ => None,
        };
        Some(Transport::tls_with_config(TlsConfiguration::Simple {
            ca: read(&t.ca)?,
            alpn: None,
            client_auth,
        }))
    } else {
        None
    };
    Ok(Common {
        client_id,
        host,
        port,
        keep_alive: Duration::from_secs(cfg.keep_alive_s.max(5)),
        max_packet: 16 * 1024 * 1024,
        will_topic: topics.status(),
        will_payload: offline_payload(device_id),
        credentials,
        transport,
    })
}

pub(super) fn offline_payload(device_id: &str) -> Vec<u8> {
    serde_json::json!({ "state": "offline", "device": device_id })
        .to_string()
        .into_bytes()
}
