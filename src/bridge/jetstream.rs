//! The poles' messages from a NATS JetStream cluster, for fleets that outgrow one broker.
//!
//! The poles publish over MQTT 3.1.1 to the cluster's MQTT gateway. The gateway stores every QoS 1 publish
//! in its own replicated stream (`$MQTT_msgs`, subjects `$MQTT.msgs.<subject>`) *before* it acknowledges
//! it, and that stream keeps a message while a consumer is interested in it. So the bridge reads that
//! stream through one durable consumer shared by its replicas (named by `group`): a PUBACK the pole got
//! is a message the bridge will get. A stream of the bridge's own over `streetsight.>` would not do: the
//! gateway does not wait for other streams, and a node lost at the wrong moment loses acknowledged events
//! from them (measured: hundreds in a run). Each message is acknowledged once what it carries is committed;
//! one not acknowledged within `ACK_WAIT` (its replica died) goes to another replica.

use super::{Bridge, Link};
use crate::base::Backoff;
use async_nats::jetstream::{self, consumer::AckPolicy, consumer::pull, stream};
use futures_util::StreamExt;
use std::time::Duration;

/// The MQTT gateway's stream of QoS 1 messages (created by the bridge, with the gateway's own settings,
/// if no MQTT client has connected yet: the poles' first events must find the consumer there).
const MQTT_STREAM: &str = "$MQTT_msgs";
const MQTT_SUBJECTS: &str = "$MQTT.msgs.";
/// How long a taken message may stay unacknowledged before another replica gets it.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// Messages fetched at a time: few, so that a replica never holds many another one could take.
const BATCH: usize = 16;

/// The NATS subject of MQTT topic `topic` (`a/b/c` → `a.b.c`).
pub(super) fn subject(topic: &str) -> String {
    topic.replace('/', ".")
}

/// The MQTT topic of a message in the gateway's stream (`$MQTT.msgs.a.b.c` → `a/b/c`).
fn topic(subject: &str) -> Option<String> {
    subject
        .strip_prefix(MQTT_SUBJECTS)
        .map(|s| s.replace('.', "/"))
}

impl Bridge {
    fn nats_options(&self, servers: &[String]) -> anyhow::Result<async_nats::ConnectOptions> {
        let s = &self.settings;
        let mut o = async_nats::ConnectOptions::new()
            .name(&s.client_id)
            .retry_on_initial_connect()
            .max_reconnects(None::<usize>)
            .connection_timeout(Duration::from_secs(5));
        if servers.iter().any(|u| u.starts_with("tls:")) {
            o = o.require_tls(true);
        }
        if let Some(tls) = &s.tls {
            o = o.add_root_certificates(tls.ca.clone());
            if let Some((cert, key)) = &tls.client {
                o = o.add_client_certificate(cert.clone(), key.clone());
            }
        }
        if let Some(user) = &s.username {
            let password = match &s.broker_password_file {
                Some(p) => std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?
                    .trim_end()
                    .to_string(),
                None => String::new(),
            };
            o = o.user_and_password(user.clone(), password);
        }
        Ok(o)
    }

    /// Consume from the cluster until shutdown; the client reconnects to any of `servers` by itself, the
    /// consumer is set up again after an error.
    pub(super) async fn intake_nats(
        &self,
        servers: &[String],
        replicas: usize,
    ) -> anyhow::Result<()> {
        let client = self
            .nats_options(servers)?
            .connect(servers.to_vec())
            .await?;
        let _ = self.link.set(Link::Nats(client.clone()));
        let js = jetstream::new(client);
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
        loop {
            let error = match self.consume(&js, replicas, &mut backoff).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            self.connected
                .store(false, std::sync::atomic::Ordering::Release);
            let wait = backoff.next_delay(&mut rand::rng());
            tracing::warn!(%error, retry_in_s = wait.as_secs_f64(), "Bridge lost the cluster's stream; reading again.");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.shutdown.wait() => return Ok(()),
            }
        }
    }

    /// Read the gateway's stream through the group's durable consumer until shutdown (`Ok`) or an error.
    async fn consume(
        &self,
        js: &jetstream::Context,
        replicas: usize,
        backoff: &mut Backoff,
    ) -> anyhow::Result<()> {
        let stream = js
            .get_or_create_stream(stream::Config {
                name: MQTT_STREAM.into(),
                subjects: vec![format!("{MQTT_SUBJECTS}>")],
                retention: stream::RetentionPolicy::Interest,
                storage: stream::StorageType::File,
                num_replicas: replicas,
                ..Default::default()
            })
            .await?;
        let group = &self.settings.group;
        let consumer: jetstream::consumer::Consumer<pull::Config> = stream
            .get_or_create_consumer(
                group,
                pull::Config {
                    durable_name: Some(group.clone()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    max_deliver: -1,
                    max_ack_pending: 1024,
                    filter_subject: format!(
                        "{MQTT_SUBJECTS}{}.>",
                        subject(&self.settings.topic_prefix)
                    ),
                    ..Default::default()
                },
            )
            .await?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(BATCH)
            .messages()
            .await?;
        self.connected
            .store(true, std::sync::atomic::Ordering::Release);
        backoff.reset();
        tracing::info!(server = %self.settings.source.display(), consumer = %group, "Bridge reading the cluster's stream.");
        loop {
            let next = tokio::select! {
                m = messages.next() => m,
                () = self.shutdown.wait() => return Ok(()),
            };
            let message =
                next.ok_or_else(|| anyhow::anyhow!("the consumer's messages ended"))??;
            match topic(&message.subject) {
                Some(topic) => self.take(&topic, &message.payload).await,
                None => {
                    tracing::debug!(subject = %message.subject, "Message on an unexpected subject; ignored.")
                }
            }
            if self.shutdown.is_triggered() {
                // `take` gave up on shutdown: leave the message for another replica.
                return Ok(());
            }
            if let Err(error) = message.ack().await {
                tracing::warn!(%error, "The acknowledgement failed; the message will come again (taken again as a no-op).");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_subjects_map_both_ways() {
        assert_eq!(
            subject("streetsight/v1/pole-7/cmd/verify"),
            "streetsight.v1.pole-7.cmd.verify"
        );
        assert_eq!(
            topic("$MQTT.msgs.streetsight.v1.pole-7.evidence.01a2.clean").as_deref(),
            Some("streetsight/v1/pole-7/evidence/01a2/clean")
        );
        assert_eq!(topic("streetsight.v1.pole-7.events"), None);
    }
}
