//! An MQTT subscriber standing in for the city's dispatch side: receives what the broker delivers.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::Duration;
use tokio::sync::mpsc;

/// One delivered message.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

pub struct Subscriber {
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    /// Connect to a plain `mqtt://host:port` broker and subscribe to `filter` with QoS 1. Returns once the
    /// subscription is acknowledged; keeps reconnecting (and resubscribing) if the broker goes away.
    pub async fn connect(broker: &str, filter: &str) -> anyhow::Result<Subscriber> {
        Self::connect_as(
            broker,
            filter,
            &format!("sub-{}", uuid::Uuid::now_v7().simple()),
            true,
        )
        .await
    }

    /// Like `connect`, with a fixed client id; with `clean_session = false` the broker keeps the
    /// subscription and queues QoS 1 messages while this subscriber is away (a dispatch consumer's setup).
    pub async fn connect_as(
        broker: &str,
        filter: &str,
        client_id: &str,
        clean_session: bool,
    ) -> anyhow::Result<Subscriber> {
        let url = url::Url::parse(broker)?;
        let mut opts = MqttOptions::new(
            client_id,
            url.host_str().unwrap_or("127.0.0.1"),
            url.port().unwrap_or(1883),
        );
        opts.set_clean_session(clean_session);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let filter = filter.to_string();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.subscribe(filter.clone(), QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx
                            .send(Received {
                                topic: p.topic,
                                payload: p.payload.to_vec(),
                                retain: p.retain,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .map_err(|_| anyhow::anyhow!("no SUBACK from {broker} within 10 s"))??;
        Ok(Subscriber {
            rx: tokio::sync::Mutex::new(rx),
            task,
        })
    }

    /// The next delivered message.
    pub async fn next(&self) -> Option<Received> {
        self.rx.lock().await.recv().await
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}
