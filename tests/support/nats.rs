//! A real three-node NATS JetStream cluster on loopback for one test (Debian's `nats-server`): each node
//! with its client, cluster-route, monitoring and MQTT ports and its own store in a temporary directory;
//! killed when dropped. A node can be killed (SIGKILL) and started again on the same ports and store.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NatsNode {
    pub client: u16,
    pub mqtt: u16,
    pub http: u16,
    config: std::path::PathBuf,
    child: Option<Child>,
}

pub struct NatsCluster {
    pub nodes: Vec<NatsNode>,
    _dir: tempfile::TempDir,
}

fn free() -> u16 {
    streetsight::cli::demo::free_port().unwrap()
}

impl NatsCluster {
    /// Three nodes, JetStream and the MQTT gateway on each; returns once the cluster has a meta leader.
    pub fn start() -> NatsCluster {
        let dir = tempfile::Builder::new().prefix("nats-").tempdir().unwrap();
        let routes: Vec<u16> = (0..3).map(|_| free()).collect();
        let route_list = routes
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        let nodes = (0..3)
            .map(|i| {
                let (client, mqtt, http) = (free(), free(), free());
                let config = dir.path().join(format!("n{i}.conf"));
                std::fs::write(
                    &config,
                    format!(
                        "server_name: n{i}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{http}\n\
                         max_payload: 8MB\n\
                         jetstream {{ store_dir: \"{store}\", max_memory_store: 64MB, max_file_store: 2GB }}\n\
                         cluster {{ name: streetsight, listen: 127.0.0.1:{route}, routes: [{route_list}] }}\n\
                         mqtt {{ listen: 127.0.0.1:{mqtt} }}\n",
                        store = dir.path().join(format!("store-{i}")).display(),
                        route = routes[i],
                    ),
                )
                .unwrap();
                NatsNode {
                    client,
                    mqtt,
                    http,
                    config,
                    child: None,
                }
            })
            .collect();
        let mut cluster = NatsCluster { nodes, _dir: dir };
        for i in 0..3 {
            cluster.start_node(i);
        }
        cluster.wait_for_leader(Duration::from_secs(30));
        cluster
    }

    pub fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&node.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (scripts/setup.sh installs it)");
        node.child = Some(child);
    }

    /// SIGKILL node `i`: no goodbye to its clients or its peers.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Wait until the cluster's JetStream has a meta leader (as node 0..2 that is up reports it).
    pub fn wait_for_leader(&self, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            for n in self.nodes.iter().filter(|n| n.child.is_some()) {
                let url = format!("http://127.0.0.1:{}/jsz", n.http);
                if let Ok(mut r) = ureq::get(&url).call()
                    && let Ok(text) = r.body_mut().read_to_string()
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                    && v["meta_cluster"]["leader"]
                        .as_str()
                        .is_some_and(|l| !l.is_empty())
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("the NATS cluster elected no leader within {timeout:?}");
    }

    /// The MQTT gateways' URLs, node 0 first.
    pub fn mqtt_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("mqtt://127.0.0.1:{}", n.mqtt))
            .collect()
    }

    /// The NATS client URLs.
    pub fn nats_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.client))
            .collect()
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
    }
}
