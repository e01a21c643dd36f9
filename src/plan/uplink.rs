//! The uplink's settings from the configuration: broker, identity, TLS files resolved against the
//! configuration's directory, protocol, telemetry period, and the outbox's file and bounds.

use crate::config::{self, LoadedConfig, MqttProtocol};
use crate::uplink::{Bounds, Protocol, TlsFiles, UplinkSettings};
use std::time::Duration;

/// What the uplink task and `check`'s broker probe take.
pub fn uplink_settings(loaded: &LoadedConfig) -> UplinkSettings {
    let (c, base) = (&loaded.config, &loaded.base_dir);
    let up = &c.uplink;
    UplinkSettings {
        device_id: c.device.id.get_ref().clone(),
        brokers: up.broker.get_ref().0.clone(),
        topic_prefix: up.topic_prefix.get_ref().clone(),
        client_id: up.client_id.as_ref().map(|c| c.get_ref().clone()),
        keep_alive: Duration::from_secs(*up.keep_alive_s.get_ref()),
        telemetry_every: Duration::from_secs(*up.telemetry_s.get_ref()),
        username: up.username.as_ref().map(|u| u.get_ref().clone()),
        password_file: up.password_file.as_ref().map(|p| config::resolve(base, p)),
        tls: up.tls.as_ref().map(|t| {
            let t = t.get_ref();
            TlsFiles {
                ca: config::resolve(base, &t.ca),
                client: t
                    .cert
                    .as_ref()
                    .zip(t.key.as_ref())
                    .map(|(c, k)| (config::resolve(base, c), config::resolve(base, k))),
            }
        }),
        protocol: match up.protocol {
            MqttProtocol::V5 => Protocol::V5,
            MqttProtocol::V311 => Protocol::V311,
        },
        outbox: c.storage.state_dir.get_ref().join("outbox.sqlite"),
        bounds: store_bounds(loaded),
    }
}

/// The outbox's bounds: `storage.outbox_max_mb` and `outbox_max_age_h`.
pub fn store_bounds(loaded: &LoadedConfig) -> Bounds {
    let s = &loaded.config.storage;
    Bounds {
        max_bytes: s.outbox_max_mb.get_ref() * 1024 * 1024,
        max_age: Duration::from_secs(s.outbox_max_age_h.get_ref() * 3600),
    }
}
