//! Connection options from the uplink's settings, for MQTT 5 or 3.1.1: broker address, client id,
//! credentials, TLS files (read here), keep-alive and the `offline` last will.

use super::session::{Common, Protocol, SessionOptions};
use super::store::Bounds;
use super::{Topics, UplinkError};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything the uplink needs, built by the plan from the configuration (paths already resolved).
#[derive(Debug, Clone)]
pub struct UplinkSettings {
    pub device_id: String,
    /// `mqtts://host:port` or `mqtt://host:port`: one, or the nodes of one cluster to fail over between.
    pub brokers: Vec<String>,
    pub topic_prefix: String,
    /// Defaults to `streetsight-{device_id}`.
    pub client_id: Option<String>,
    pub keep_alive: Duration,
    pub telemetry_every: Duration,
    pub username: Option<String>,
    /// File holding the MQTT password (never logged).
    pub password_file: Option<PathBuf>,
    pub tls: Option<TlsFiles>,
    pub protocol: Protocol,
    /// The outbox's SQLite file and its bounds.
    pub outbox: PathBuf,
    pub bounds: Bounds,
}

/// PEM files for the broker connection.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    /// Client certificate and key (mutual TLS), both or neither.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// MQTT 3.1.1 connection options to `broker` from the configuration (TLS files are read here).
pub fn mqtt_options(
    cfg: &UplinkSettings,
    topics: &Topics,
    broker: &str,
) -> Result<MqttOptions, UplinkError> {
    match SessionOptions::new(Protocol::V311, common_options(cfg, topics, broker)?) {
        SessionOptions::V311(o) => Ok(*o),
        SessionOptions::V5(_) => unreachable!("3.1.1 options asked for"),
    }
}

/// Connection options in the configured protocol, one per broker, in the configured order.
pub fn session_options(
    cfg: &UplinkSettings,
    topics: &Topics,
) -> Result<Vec<SessionOptions>, UplinkError> {
    cfg.brokers
        .iter()
        .map(|b| {
            Ok(SessionOptions::new(
                cfg.protocol,
                common_options(cfg, topics, b)?,
            ))
        })
        .collect()
}

/// Where a broker is and how to reach it: host, port, credentials and the TLS transport for `mqtts://`.
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
    pub transport: Option<Transport>,
}

/// Resolve broker URL `raw` (`mqtts://` needs `tls`; the password is read from `password_file`).
pub fn endpoint(
    raw: &str,
    tls: Option<&TlsFiles>,
    username: Option<&str>,
    password_file: Option<&Path>,
) -> Result<Endpoint, UplinkError> {
    let url = url::Url::parse(raw).map_err(|e| UplinkError::Url(raw.to_string(), e.to_string()))?;
    let host = url
        .host_str()
        .ok_or_else(|| UplinkError::Url(raw.to_string(), "no host".into()))?
        .trim_matches(['[', ']'])
        .to_string();
    let secure = url.scheme() == "mqtts";
    let port = url.port().unwrap_or(if secure { 8883 } else { 1883 });
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| UplinkError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let credentials = match username {
        Some(user) => {
            let password = match password_file {
                Some(p) => String::from_utf8_lossy(&read(p)?).trim_end().to_string(),
                None => String::new(),
            };
            Some((user.to_string(), password))
        }
        None => None,
    };
    let transport = if secure {
        let t = tls.ok_or_else(|| {
            UplinkError::Url(
                raw.to_string(),
                "mqtts:// needs TLS files (a CA at least)".into(),
            )
        })?;
        let client_auth = match &t.client {
            Some((c, k)) => Some((read(c)?, read(k)?)),
            None => None,
        };
        Some(Transport::tls_with_config(TlsConfiguration::Simple {
            ca: read(&t.ca)?,
            alpn: None,
            client_auth,
        }))
    } else {
        None
    };
    Ok(Endpoint {
        host,
        port,
        credentials,
        transport,
    })
}

fn common_options(
    cfg: &UplinkSettings,
    topics: &Topics,
    broker: &str,
) -> Result<Common, UplinkError> {
    let device_id = cfg.device_id.as_str();
    let at = endpoint(
        broker,
        cfg.tls.as_ref(),
        cfg.username.as_deref(),
        cfg.password_file.as_deref(),
    )?;
    let client_id = cfg
        .client_id
        .clone()
        .unwrap_or_else(|| format!("streetsight-{device_id}"));
    Ok(Common {
        client_id,
        host: at.host,
        port: at.port,
        keep_alive: cfg.keep_alive.max(Duration::from_secs(5)),
        max_packet: 16 * 1024 * 1024,
        will_topic: topics.status(),
        will_payload: offline_payload(device_id),
        credentials: at.credentials,
        transport: at.transport,
    })
}

pub(super) fn offline_payload(device_id: &str) -> Vec<u8> {
    serde_json::json!({ "state": "offline", "device": device_id })
        .to_string()
        .into_bytes()
}
