//! The dispatcher's side of remote commands, for the tests that send them: a client that publishes
//! `cmd/{name}` with a fresh timestamp and nonce, and an inbox of replies, snapshots and events.

use super::{Seen, event_schema, scaled};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const BASE: &str = "streetsight/v1/demo-pole";

/// The dispatcher's side: publishes commands with QoS 1.
pub struct Dispatcher {
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
    n: u32,
}

impl Dispatcher {
    pub async fn connect(broker: &str) -> Dispatcher {
        let url = url::Url::parse(broker).unwrap();
        let mut opts = MqttOptions::new("dispatcher", "127.0.0.1", url.port().unwrap());
        // Room for the oversized commands the tests send on purpose.
        opts.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(opts, 16);
        let task = tokio::spawn(async move {
            loop {
                if eventloop.poll().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        Dispatcher { client, task, n: 0 }
    }

    pub async fn raw(&self, name: &str, payload: impl Into<Vec<u8>>, retain: bool) {
        self.client
            .publish(
                format!("{BASE}/cmd/{name}"),
                QoS::AtLeastOnce,
                retain,
                payload.into(),
            )
            .await
            .unwrap();
    }

    /// A well-formed command with a fresh timestamp and nonce; returns its request id.
    pub async fn send(&mut self, name: &str, fields: Value) -> (String, Value) {
        self.n += 1;
        let mut v = fields;
        let id = format!("req-{}-{name}", self.n);
        v["request_id"] = json!(id);
        v["timestamp"] = json!(chrono::Utc::now().to_rfc3339());
        v["nonce"] = json!(format!(
            "nonce-{}-{}",
            self.n,
            uuid::Uuid::now_v7().simple()
        ));
        self.raw(name, v.to_string(), false).await;
        (id, v)
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Start the daemon with `loaded`, connect a dispatcher to `broker`, and wait until the daemon says it is
/// online (it subscribes to commands once connected).
pub async fn commanded_daemon(
    loaded: streetsight::config::LoadedConfig,
    broker: &str,
) -> (super::RunningDaemon, Dispatcher, Inbox) {
    let daemon = super::RunningDaemon::start(loaded, broker, &format!("{BASE}/#")).await;
    let d = Dispatcher::connect(broker).await;
    let mut inbox = Inbox::default();
    assert!(
        wait_for(&daemon.sub, &mut inbox, Duration::from_secs(30), |i| {
            i.seen.status.iter().any(|s| s["state"] == "online")
        })
        .await,
        "the daemon never said it is online"
    );
    (daemon, d, inbox)
}

/// What the dispatch side has received.
#[derive(Default)]
pub struct Inbox {
    pub seen: Seen,
    pub replies: HashMap<String, Vec<Value>>,
    pub snapshots: HashMap<String, Vec<u8>>,
}

pub async fn wait_for(
    sub: &streetsight::cli::demo::Subscriber,
    inbox: &mut Inbox,
    timeout: Duration,
    done: impl Fn(&Inbox) -> bool,
) -> bool {
    let schema = event_schema();
    // Waits stretch under emulation (STREETSIGHT_TEST_TIME_SCALE); what is awaited does not change.
    let timeout = scaled(timeout);
    let deadline = Instant::now() + timeout;
    while !done(inbox) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(m)) = tokio::time::timeout(left, sub.next()).await else {
            return done(inbox);
        };
        let suffix = m
            .topic
            .strip_prefix(&format!("{BASE}/"))
            .unwrap_or_default()
            .to_string();
        if let Some(id) = suffix.strip_prefix("cmd_result/") {
            let v: Value = serde_json::from_slice(&m.payload).expect("reply is JSON");
            assert_eq!(v["request_id"], id, "reply on its request's topic");
            inbox.replies.entry(id.to_string()).or_default().push(v);
        } else if let Some(id) = suffix.strip_prefix("snapshot/") {
            inbox.snapshots.insert(id.to_string(), m.payload);
        } else {
            inbox.seen.absorb(m, &schema);
        }
    }
    true
}

pub async fn reply(
    sub: &streetsight::cli::demo::Subscriber,
    inbox: &mut Inbox,
    id: &str,
    timeout: Duration,
) -> Value {
    let got = wait_for(sub, inbox, timeout, |i| i.replies.contains_key(id)).await;
    assert!(got, "no reply to {id} within {timeout:?}");
    inbox.replies[id].last().unwrap().clone()
}

pub fn error_code(r: &Value) -> &str {
    assert_eq!(r["ok"], false, "expected an error reply: {r}");
    r["error"]["code"].as_str().unwrap()
}

/// Wait until camera `camera` has a frame to analyse: snapshots until one is answered (a first RTSP session
/// of the test server now and then stalls, and the daemon reconnects after its no-frame timeout). For tests
/// whose next command waits for a frame and is not about the camera's start. Returns how many snapshots
/// it sent and how many of them failed.
pub async fn first_frame(
    d: &mut Dispatcher,
    sub: &streetsight::cli::demo::Subscriber,
    inbox: &mut Inbox,
    camera: &str,
) -> (usize, usize) {
    for sent in 1..=3 {
        let (id, _) = d
            .send("snapshot", serde_json::json!({ "camera": camera }))
            .await;
        if reply(sub, inbox, &id, Duration::from_secs(60)).await["ok"] == true {
            return (sent, sent - 1);
        }
    }
    panic!("camera `{camera}` delivered no frame");
}

/// The id of the first incident opened, waiting up to `timeout` for one.
pub async fn opened_incident(
    sub: &streetsight::cli::demo::Subscriber,
    inbox: &mut Inbox,
    timeout: Duration,
) -> String {
    let opened = |i: &Inbox| {
        i.seen
            .events
            .iter()
            .find(|e| e.phase == streetsight::incident::Phase::Opened)
            .map(|e| e.incident_id.clone())
    };
    assert!(
        wait_for(sub, inbox, timeout, |i| opened(i).is_some()).await,
        "no incident opened within {timeout:?}"
    );
    opened(inbox).unwrap()
}
