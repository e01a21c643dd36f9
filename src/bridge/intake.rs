//! Events and evidence from the poles, at least once, each message acknowledged only once what it carries
//! is committed: from one MQTT 5 broker through a shared subscription (every replica of the group gets a
//! share; the broker keeps this replica's session and its unacknowledged messages while it is away), or
//! from a NATS JetStream cluster through a durable consumer (`jetstream.rs`). An event and its evidence may
//! reach different replicas: the event names its pictures by SHA-256, and whichever replica files the case
//! finds them in the shared database and evidence store.

use super::config::Source;
use super::{Bridge, Link};
use crate::base::Backoff;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use std::time::Duration;

/// What one delivered message is.
#[derive(Debug, PartialEq)]
pub enum Message<'a> {
    Event {
        device: &'a str,
    },
    Evidence {
        device: &'a str,
    },
    /// A pole's answer to a command.
    Reply,
    Other,
}

/// Sort `topic` (`{prefix}/{device}/events`, `…/evidence/…` or `…/cmd_result/…`).
pub fn classify<'a>(prefix: &str, topic: &'a str) -> Message<'a> {
    let Some(rest) = topic.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) else {
        return Message::Other;
    };
    let mut levels = rest.splitn(3, '/');
    match (levels.next(), levels.next(), levels.next()) {
        (Some(device), Some("events"), None) if !device.is_empty() => Message::Event { device },
        (Some(device), Some("evidence"), Some(_)) if !device.is_empty() => {
            Message::Evidence { device }
        }
        (Some(device), Some("cmd_result"), Some(_)) if !device.is_empty() => Message::Reply,
        _ => Message::Other,
    }
}

impl Bridge {
    fn mqtt_options(&self, url: &str) -> anyhow::Result<MqttOptions> {
        let s = &self.settings;
        let at = crate::uplink::endpoint(
            url,
            s.tls.as_ref(),
            s.username.as_deref(),
            s.broker_password_file.as_deref(),
        )?;
        let mut o = MqttOptions::new(s.client_id.clone(), at.host, at.port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_clean_start(false);
        // A replica away for up to a week finds its share of the messages waiting.
        o.set_session_expiry_interval(Some(7 * 24 * 3600));
        o.set_manual_acks(true);
        o.set_max_packet_size(Some(16 * 1024 * 1024));
        if let Some((u, p)) = at.credentials {
            o.set_credentials(u, p);
        }
        if let Some(t) = at.transport {
            o.set_transport(t);
        }
        Ok(o)
    }

    /// Consume until shutdown; reconnects by itself.
    pub(super) async fn intake(&self) -> anyhow::Result<()> {
        match &self.settings.source {
            Source::Mqtt(url) => self.intake_mqtt(url).await,
            Source::Nats { servers, replicas } => self.intake_nats(servers, *replicas).await,
        }
    }

    async fn intake_mqtt(&self, url: &str) -> anyhow::Result<()> {
        let (client, mut events) = AsyncClient::new(self.mqtt_options(url)?, 64);
        let _ = self.link.set(Link::Mqtt(client.clone()));
        let (group, prefix) = (&self.settings.group, &self.settings.topic_prefix);
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
        loop {
            let event = tokio::select! {
                e = events.poll() => e,
                () = self.shutdown.wait() => return Ok(()),
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff.reset();
                    self.connected
                        .store(true, std::sync::atomic::Ordering::Release);
                    tracing::info!(broker = %crate::base::redact_url(url), "Bridge connected to the broker.");
                    for filter in [
                        format!("$share/{group}/{prefix}/+/events"),
                        format!("$share/{group}/{prefix}/+/evidence/#"),
                        format!("$share/{group}/{prefix}/+/cmd_result/#"),
                    ] {
                        client.subscribe(filter, QoS::AtLeastOnce).await?;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic).to_string();
                    self.take(&topic, &p.payload).await;
                    // Never wait on the client's queue here: only this loop empties it. An ack that does
                    // not fit is redelivered after a reconnect, and taken again as a no-op.
                    if client.try_ack(&p).is_err() {
                        tracing::warn!(
                            topic,
                            "The acknowledgement did not fit the client's queue; the broker will deliver the message again."
                        );
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    self.connected
                        .store(false, std::sync::atomic::Ordering::Release);
                    let wait = backoff.next_delay(&mut rand::rng());
                    tracing::warn!(%error, retry_in_s = wait.as_secs_f64(), "Bridge lost the broker; reconnecting.");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.shutdown.wait() => return Ok(()),
                    }
                }
            }
        }
    }

    /// Commit what message `topic` carries; retried until the database takes it (the message stays
    /// unacknowledged meanwhile). Malformed messages are logged and dropped: they would never commit.
    pub(super) async fn take(&self, topic: &str, payload: &[u8]) {
        match classify(&self.settings.topic_prefix, topic) {
            Message::Event { device } => {
                let event: serde_json::Value = match serde_json::from_slice(payload) {
                    Ok(v) => v,
                    Err(error) => {
                        tracing::warn!(topic, %error, "Not an event (not JSON); dropped.");
                        return;
                    }
                };
                let plain = |k: &str| {
                    event[k]
                        .as_str()
                        .is_some_and(|s| !s.is_empty() && s.len() <= 64)
                };
                if !(plain("event_id") && plain("incident_id") && plain("phase")) {
                    tracing::warn!(
                        topic,
                        "Not an event (no event_id, incident_id or phase); dropped."
                    );
                    return;
                }
                let device = device.to_string();
                let policy = self
                    .mapping
                    .when_resolved(event["category"].as_str().unwrap_or_default());
                self.taken[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.with_db("event", |db| {
                    let (device, event) = (device.clone(), event.clone());
                    Box::pin(async move { db.intake(&device, &event, policy).await.map(|_| ()) })
                })
                .await;
            }
            Message::Evidence { .. } => {
                let sha = loop {
                    match self.evidence.put(payload) {
                        Ok(sha) => break sha,
                        Err(error) => {
                            tracing::error!(%error, "Evidence could not be stored; trying again.");
                            if self.shutdown.is_triggered() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                };
                let bytes = payload.len() as i64;
                self.taken[1].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.with_db("evidence", |db| {
                    let sha = sha.clone();
                    Box::pin(async move { db.evidence_arrived(&sha, bytes).await })
                })
                .await;
            }
            Message::Reply => {
                // A refused re-check (the incident is not open on the pole any more, the camera is off…):
                // its case is reported as not re-checked. Answers that worked come as `verified` events.
                let Ok(reply) = serde_json::from_slice::<serde_json::Value>(payload) else {
                    return;
                };
                let rid = reply["request_id"].as_str().unwrap_or_default().to_string();
                if !rid.starts_with("bridge-verify-") || reply["ok"] != false {
                    return;
                }
                let error = format!(
                    "{}: {}",
                    reply["error"]["code"].as_str().unwrap_or("failed"),
                    reply["error"]["message"].as_str().unwrap_or_default()
                );
                tracing::warn!(request = %rid, %error, "The pole refused the re-check.");
                let timeout = self.settings.verify_timeout;
                self.with_db("reply", |db| {
                    let (rid, error) = (rid.clone(), error.clone());
                    Box::pin(async move {
                        db.unanswered(Some((&rid, &error)), timeout)
                            .await
                            .map(|_| ())
                    })
                })
                .await;
            }
            Message::Other => tracing::debug!(topic, "Message on an unexpected topic; ignored."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_sorted_by_their_levels() {
        let p = "streetsight/v1";
        assert_eq!(
            classify(p, "streetsight/v1/pole-7/events"),
            Message::Event { device: "pole-7" }
        );
        assert_eq!(
            classify(p, "streetsight/v1/pole-7/evidence/01a2/clean"),
            Message::Evidence { device: "pole-7" }
        );
        assert_eq!(classify(p, "streetsight/v1/pole-7/status"), Message::Other);
        assert_eq!(
            classify(p, "streetsight/v1/pole-7/cmd_result/bridge-verify-1-a"),
            Message::Reply
        );
        assert_eq!(classify(p, "streetsight/v1//events"), Message::Other);
        assert_eq!(classify(p, "other/pole-7/events"), Message::Other);
    }
}
