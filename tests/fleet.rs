//! A fleet on a real NATS JetStream cluster (three `nats-server` nodes on loopback, their MQTT gateways):
//! simulated poles — each the agent's own uplink with its durable outbox, replaying incidents recorded
//! from the real agent on the street clip — publish over MQTT 3.1.1; two bridge replicas share one
//! durable consumer of the gateway's stream, one PostgreSQL and one evidence directory, and file cases in
//! the reference work-order server. Mid-run one NATS node is killed (SIGKILL) and one bridge replica
//! crashes (its task aborted): every incident still becomes exactly one case and every event is kept once.
//!
//! `FLEET_POLES`, `FLEET_SECONDS` and `FLEET_RATE` (incidents per pole per hour) scale it; the 1,000-pole
//! run is `scripts/fleet-bench.sh`, its figures in docs/benchmarks.md.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use streetsight::cli::fleet::{Fleet, FleetOptions, Recording};
use support::bridge::*;
use support::nats::NatsCluster;
use support::postgres::Postgres;
use support::workorder::Workorder;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_a_nats_cluster_files_every_incident_once_through_node_and_replica_failures() {
    streetsight::ops::init_logging("warn");
    let poles: usize = env("FLEET_POLES", 24);
    let seconds: u64 = env("FLEET_SECONDS", 36);
    let rate: f64 = env("FLEET_RATE", 90.0);
    let pg = Postgres::start();
    let wo = Workorder::start(WO_SECRET).await;
    let mut nats = NatsCluster::start();
    let work = tempfile::tempdir().unwrap();
    let servers = nats.nats_urls();
    let (a_port, b_port) = (listen_port(), listen_port());
    // Both files first: a replica starting while the other's are written would read them half-written.
    let a_config = write_nats_config(work.path(), "a", &servers, &pg, &wo, a_port);
    let b_config = write_nats_config(work.path(), "b", &servers, &pg, &wo, b_port);
    let (a_stop, a) = start_bridge(&a_config);
    let (_b_stop, b) = start_bridge(&b_config);
    let reading = |port: u16| {
        let (status, body) = get(&format!("http://127.0.0.1:{port}/healthz"));
        status == 200
            && serde_json::from_slice::<serde_json::Value>(&body)
                .is_ok_and(|v| v["reading"] == true)
    };
    until(
        "both replicas reading the cluster's stream",
        Duration::from_secs(60),
        || {
            assert!(
                !a.is_finished() && !b.is_finished(),
                "a bridge replica stopped while starting"
            );
            reading(a_port) && reading(b_port)
        },
    )
    .await;

    let recording = Arc::new(Recording::load(&support::repo("benches/fleet/recorded")).unwrap());
    let mut fleet = Fleet::start(
        &FleetOptions {
            poles,
            brokers: nats.mqtt_urls(),
            protocol: streetsight::uplink::Protocol::V311,
            prefix: "fleet".into(),
            incidents_per_hour: rate,
            burst: 0.1,
            work: work.path().join("poles"),
            telemetry: Duration::from_secs(30),
        },
        recording,
    )
    .unwrap();
    until("every pole connected", Duration::from_secs(60), || {
        fleet.connected() == poles
    })
    .await;
    let started = SystemTime::now();
    let third = Duration::from_secs(seconds / 3);
    tokio::time::sleep(third).await;
    let killed = SystemTime::now();
    nats.kill_node(1);
    println!("fleet: NATS node n1 killed");
    tokio::time::sleep(third).await;
    b.abort();
    println!("fleet: bridge replica b crashed");
    tokio::time::sleep(third).await;
    fleet.stop_producing().await;
    let produced = fleet.produced.lock().unwrap().clone();
    let incidents: HashSet<String> = produced.iter().map(|p| p.incident_id.clone()).collect();
    println!(
        "fleet: {poles} poles produced {} events of {} incidents in {seconds} s",
        produced.len(),
        incidents.len()
    );
    assert!(!incidents.is_empty(), "the fleet produced incidents");
    until(
        "the poles' outboxes empty",
        Duration::from_secs(120),
        || fleet.undelivered() == 0,
    )
    .await;
    until(
        "a case for every incident",
        Duration::from_secs(180),
        || wo.board().cases.len() >= incidents.len(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (cases, created_at) = {
        let b = wo.board();
        (b.cases.clone(), b.created_at.clone())
    };
    let filed: Vec<String> = cases
        .iter()
        .map(|(_, _, body)| body["incident"].as_str().unwrap().to_string())
        .collect();
    let unique: HashSet<&String> = filed.iter().collect();
    assert_eq!(unique.len(), filed.len(), "no incident has two cases");
    assert_eq!(
        unique.len(),
        incidents.len(),
        "every incident has its case and nothing else does"
    );
    assert!(filed.iter().all(|i| incidents.contains(i)));
    let metrics = String::from_utf8(get(&format!("http://127.0.0.1:{a_port}/metrics")).1).unwrap();
    let kept = format!("streetsight_bridge_events {}\n", produced.len());
    assert!(
        metrics.contains(&kept),
        "every event kept once ({} produced):\n{metrics}",
        produced.len()
    );

    let opened: HashMap<&str, SystemTime> = produced
        .iter()
        .filter(|p| p.phase == streetsight::incident::Phase::Opened)
        .map(|p| (p.incident_id.as_str(), p.at))
        .collect();
    // Latency of every case, and of those whose incident opened before the first failure.
    let ms = |calm: bool| {
        let mut v: Vec<f64> = filed
            .iter()
            .zip(&created_at)
            .filter_map(|(i, at)| {
                let from = *opened.get(i.as_str())?;
                let ms = at.duration_since(from).ok()?.as_secs_f64() * 1e3;
                (!calm || from < killed).then_some(ms)
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (latency, calm) = (ms(false), ms(true));
    let span = created_at
        .last()
        .unwrap()
        .duration_since(started)
        .unwrap()
        .as_secs_f64();
    println!(
        "fleet: {poles} poles, {} events, {} incidents → {} cases; event→case latency before the failures p50 {:.0} ms, p99 {:.0} ms; all p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {:.1} events/s over {span:.0} s",
        produced.len(),
        incidents.len(),
        filed.len(),
        percentile(&calm, 0.5),
        percentile(&calm, 0.99),
        percentile(&latency, 0.5),
        percentile(&latency, 0.99),
        latency.last().unwrap(),
        produced.len() as f64 / span,
    );
    fleet.stop().await;
    a_stop.trigger();
    a.await.unwrap().unwrap();
}
