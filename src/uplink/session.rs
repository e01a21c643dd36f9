//! One broker connection, MQTT 5 or 3.1.1, behind one small surface: the uplink task publishes, subscribes
//! and sees the few events it acts on (connected, PUBACK, outgoing packet id, incoming publish) the same
//! way on both. MQTT 5 adds per-message properties: a content type on every message and an expiry on
//! messages that are worthless late (telemetry, replies, snapshots) — never on events or evidence.

use rumqttc::v5::mqttbytes::v5::{LastWillProperties, Packet as Packet5, PublishProperties};
use rumqttc::{Event, MqttOptions, Outgoing, Packet, QoS};
use std::time::Duration;

/// The MQTT protocol version spoken to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// MQTT 5 (EMQX, VerneMQ, HiveMQ and mosquitto ≥ 1.6 speak it).
    V5,
    /// MQTT 3.1.1.
    V311,
}

/// How a message is described on the wire (MQTT 5 properties; ignored on 3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Properties {
    pub content_type: &'static str,
    /// Seconds after which the broker may discard the message instead of delivering it.
    pub expiry_s: Option<u32>,
}

impl Properties {
    pub const JSON: Properties = Properties {
        content_type: "application/json",
        expiry_s: None,
    };
    pub const JPEG: Properties = Properties {
        content_type: "image/jpeg",
        expiry_s: None,
    };

    pub fn expiring(self, after: Duration) -> Properties {
        Properties {
            expiry_s: Some(after.as_secs().clamp(1, u32::MAX as u64) as u32),
            ..self
        }
    }

    fn v5(&self) -> PublishProperties {
        PublishProperties {
            // 1: the payload is UTF-8 text (JSON); images are bytes.
            payload_format_indicator: self
                .content_type
                .starts_with("application/json")
                .then_some(1),
            message_expiry_interval: self.expiry_s,
            content_type: Some(self.content_type.to_string()),
            ..Default::default()
        }
    }
}

/// What the uplink task reacts to.
#[derive(Debug)]
pub enum SessionEvent {
    Connected,
    PubAck(u16),
    OutgoingPublish(u16),
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    Other,
}

/// Connection options for either protocol.
pub enum SessionOptions {
    V311(Box<MqttOptions>),
    V5(Box<rumqttc::v5::MqttOptions>),
}

/// The parts of a connection's options that both protocols share.
pub struct Common {
    pub client_id: String,
    pub host: String,
    pub port: u16,
    pub keep_alive: Duration,
    pub max_packet: usize,
    pub will_topic: String,
    pub will_payload: Vec<u8>,
    pub credentials: Option<(String, String)>,
    pub transport: Option<rumqttc::Transport>,
}

impl SessionOptions {
    pub fn new(protocol: Protocol, c: Common) -> Self {
        match protocol {
            Protocol::V311 => {
                let mut o = MqttOptions::new(c.client_id, c.host, c.port);
                o.set_keep_alive(c.keep_alive);
                o.set_clean_session(true);
                o.set_max_packet_size(c.max_packet, c.max_packet);
                o.set_last_will(rumqttc::LastWill::new(
                    c.will_topic,
                    c.will_payload,
                    QoS::AtLeastOnce,
                    true,
                ));
                if let Some((u, p)) = c.credentials {
                    o.set_credentials(u, p);
                }
                if let Some(t) = c.transport {
                    o.set_transport(t);
                }
                SessionOptions::V311(Box::new(o))
            }
            Protocol::V5 => {
                let mut o = rumqttc::v5::MqttOptions::new(c.client_id, c.host, c.port);
                o.set_keep_alive(c.keep_alive);
                o.set_clean_start(true);
                o.set_max_packet_size(Some(c.max_packet as u32));
                o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
                    c.will_topic,
                    c.will_payload,
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    true,
                    Some(LastWillProperties {
                        delay_interval: None,
                        payload_format_indicator: Some(1),
                        message_expiry_interval: None,
                        content_type: Some("application/json".into()),
                        response_topic: None,
                        correlation_data: None,
                        user_properties: Vec::new(),
                    }),
                ));
                if let Some((u, p)) = c.credentials {
                    o.set_credentials(u, p);
                }
                if let Some(t) = c.transport {
                    o.set_transport(t);
                }
                SessionOptions::V5(Box::new(o))
            }
        }
    }

    /// Where these options connect: `host:port`.
    pub fn address(&self) -> String {
        let (host, port) = match self {
            SessionOptions::V311(o) => o.broker_address(),
            SessionOptions::V5(o) => o.broker_address(),
        };
        format!("{host}:{port}")
    }

    pub fn protocol(&self) -> Protocol {
        match self {
            SessionOptions::V311(_) => Protocol::V311,
            SessionOptions::V5(_) => Protocol::V5,
        }
    }

    /// A client and its event loop.
    pub fn connect(&self, cap: usize) -> (Client, EventLoop) {
        match self {
            SessionOptions::V311(o) => {
                let (c, e) = rumqttc::AsyncClient::new((**o).clone(), cap);
                (Client::V311(c), EventLoop::V311(Box::new(e)))
            }
            SessionOptions::V5(o) => {
                let (c, e) = rumqttc::v5::AsyncClient::new((**o).clone(), cap);
                (Client::V5(c), EventLoop::V5(Box::new(e)))
            }
        }
    }
}

#[derive(Clone)]
pub enum Client {
    V311(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// The client's request queue is full (the caller retries later).
#[derive(Debug)]
pub struct Full;

impl Client {
    /// Hand a QoS 1 message to the client without waiting.
    pub fn try_publish(
        &self,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
        props: Properties,
    ) -> Result<(), Full> {
        match self {
            Client::V311(c) => c
                .try_publish(topic, QoS::AtLeastOnce, retain, payload)
                .map_err(|_| Full),
            Client::V5(c) => c
                .try_publish_with_properties(
                    topic,
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    retain,
                    payload,
                    props.v5(),
                )
                .map_err(|_| Full),
        }
    }

    pub fn try_subscribe(&self, filter: String) -> Result<(), Full> {
        match self {
            Client::V311(c) => c.try_subscribe(filter, QoS::AtLeastOnce).map_err(|_| Full),
            Client::V5(c) => c
                .try_subscribe(filter, rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
                .map_err(|_| Full),
        }
    }

    pub async fn disconnect(&self) {
        let _ = match self {
            Client::V311(c) => c.disconnect().await.map_err(|_| Full),
            Client::V5(c) => c.disconnect().await.map_err(|_| Full),
        };
    }
}

pub enum EventLoop {
    V311(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

impl EventLoop {
    /// Connect to another broker the next time a connection is made (after a failure). Requests not yet
    /// acknowledged stay queued and go to the new broker; the outbox re-sends what it had in flight.
    pub fn switch_to(&mut self, options: &SessionOptions) {
        match (self, options) {
            (EventLoop::V311(e), SessionOptions::V311(o)) => e.mqtt_options = (**o).clone(),
            (EventLoop::V5(e), SessionOptions::V5(o)) => e.options = (**o).clone(),
            _ => tracing::error!("Broker options of another protocol ignored."),
        }
    }

    /// The next event, or the connection's failure as text (for the log; the caller backs off).
    pub async fn poll(&mut self) -> Result<SessionEvent, String> {
        match self {
            EventLoop::V311(e) => match e.poll().await.map_err(|e| e.to_string())? {
                Event::Incoming(Packet::ConnAck(_)) => Ok(SessionEvent::Connected),
                Event::Incoming(Packet::PubAck(a)) => Ok(SessionEvent::PubAck(a.pkid)),
                Event::Incoming(Packet::Publish(p)) => Ok(SessionEvent::Publish {
                    topic: p.topic,
                    payload: p.payload.to_vec(),
                    retain: p.retain,
                }),
                Event::Outgoing(Outgoing::Publish(pkid)) => Ok(SessionEvent::OutgoingPublish(pkid)),
                _ => Ok(SessionEvent::Other),
            },
            EventLoop::V5(e) => match e.poll().await.map_err(|e| e.to_string())? {
                rumqttc::v5::Event::Incoming(Packet5::ConnAck(_)) => Ok(SessionEvent::Connected),
                rumqttc::v5::Event::Incoming(Packet5::PubAck(a)) => {
                    Ok(SessionEvent::PubAck(a.pkid))
                }
                rumqttc::v5::Event::Incoming(Packet5::Publish(p)) => Ok(SessionEvent::Publish {
                    topic: String::from_utf8_lossy(&p.topic).into_owned(),
                    payload: p.payload.to_vec(),
                    retain: p.retain,
                }),
                rumqttc::v5::Event::Outgoing(Outgoing::Publish(pkid)) => {
                    Ok(SessionEvent::OutgoingPublish(pkid))
                }
                _ => Ok(SessionEvent::Other),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_marked_as_text_and_images_are_not() {
        let j = Properties::JSON.v5();
        assert_eq!(j.payload_format_indicator, Some(1));
        assert_eq!(j.content_type.as_deref(), Some("application/json"));
        assert_eq!(j.message_expiry_interval, None, "events never expire");
        let i = Properties::JPEG.v5();
        assert_eq!(i.payload_format_indicator, None);
        assert_eq!(i.content_type.as_deref(), Some("image/jpeg"));
    }

    #[test]
    fn an_expiry_is_whole_seconds_and_at_least_one() {
        let p = Properties::JSON.expiring(Duration::from_millis(200));
        assert_eq!(p.expiry_s, Some(1));
        let p = Properties::JSON.expiring(Duration::from_secs(600));
        assert_eq!(p.expiry_s, Some(600));
    }
}
