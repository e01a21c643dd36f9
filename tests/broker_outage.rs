//! A broker outage loses no event: mosquitto stops while the daemon keeps producing incidents; when it is
//! back, a persistent dispatch subscriber receives every event exactly once after dedupe by `event_id`, in
//! the order they were produced, each with its evidence image and a matching hash.

mod support;

use std::time::Duration;
use streetsight::cli::demo::{Clip, ClipServer, Mosquitto, Subscriber, free_port};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_produced_during_a_broker_outage_all_arrive_in_order() {
    streetsight::ops::init_logging("info");
    streetsight::daemon::init_process().unwrap();
    let camera = ClipServer::start(Clip::load(&clip_path()).unwrap(), 0, "/cam", None).unwrap();
    let broker_port = free_port().unwrap();
    let broker_state = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start_persistent(broker_port, broker_state.path()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let loaded = load_config(
        work.path(),
        &flapping_config(
            "outage-pole",
            &camera.url("/cam"),
            &broker.url(),
            work.path(),
        ),
    );
    // The dispatch side: a persistent session, so the broker queues for it while it is away too.
    let sub = Subscriber::connect_as(
        &broker.url(),
        "streetsight/v1/outage-pole/#",
        "dispatch-1",
        false,
    )
    .await
    .unwrap();
    let shutdown = streetsight::base::Shutdown::new();
    let daemon = tokio::spawn(streetsight::daemon::run(
        loaded,
        shutdown.clone(),
        Duration::from_secs(10),
    ));
    let schema = event_schema();
    let mut seen = Seen::default();
    assert!(
        collect_until(&sub, &mut seen, &schema, Duration::from_secs(90), |s| !s
            .events
            .is_empty())
        .await,
        "events flow before the outage"
    );

    broker.stop();
    let outage_start = chrono::Utc::now();
    // The camera keeps producing incidents meanwhile (a few per 20 s here; emulated runs analyse slower).
    tokio::time::sleep(scaled(Duration::from_secs(20))).await;
    let outage_end = chrono::Utc::now();
    let _broker = Mosquitto::start_persistent(broker_port, broker_state.path()).unwrap();
    // Give the daemon time to reconnect and replay, then stop it; it drains what is left.
    collect_until(&sub, &mut seen, &schema, Duration::from_secs(25), |_| false).await;
    shutdown.trigger();
    let stats = daemon.await.unwrap().unwrap();
    collect_until(&sub, &mut seen, &schema, Duration::from_secs(5), |_| false).await;

    let unique = delivered_once(&stats, &seen);
    let produced = unique.len();
    assert!(
        unique.windows(2).all(|w| w[0].event_id < w[1].event_id),
        "events arrive in the order they were produced (UUIDv7 ids)"
    );
    let during = unique
        .iter()
        .filter(|e| {
            e.time
                .parse::<chrono::DateTime<chrono::Utc>>()
                .is_ok_and(|t| t > outage_start && t < outage_end)
        })
        .count();
    assert!(
        during > 0,
        "some events were produced while the broker was down"
    );
    eprintln!(
        "broker outage: {produced} events produced, {during} during the outage, all delivered once after dedupe ({} deliveries)",
        seen.events.len()
    );
}

/// A pole given the nodes of a cluster fails over: its broker goes down for good, the pole goes on to the
/// next in its list, and every event arrives once — some through the first broker, the rest through the
/// second. (Two separate mosquittos stand in for two nodes; a subscriber listens on each.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pole_fails_over_to_the_next_broker_and_loses_nothing() {
    streetsight::daemon::init_process().unwrap();
    let camera = ClipServer::start(Clip::load(&clip_path()).unwrap(), 0, "/cam", None).unwrap();
    // The first node keeps what it acknowledged (as a cluster would): messages it took but had not yet
    // passed to its subscriber when it went down are read from it afterwards.
    let first_port = free_port().unwrap();
    let first_state = tempfile::tempdir().unwrap();
    let mut first = Mosquitto::start_persistent(first_port, first_state.path()).unwrap();
    let second = Mosquitto::start(0).unwrap();
    let work = tempfile::tempdir().unwrap();
    let text = flapping_config(
        "failover-pole",
        &camera.url("/cam"),
        &first.url(),
        work.path(),
    )
    .replace(
        &format!("broker = \"{}\"", first.url()),
        &format!("broker = [\"{}\", \"{}\"]", first.url(), second.url()),
    );
    let loaded = load_config(work.path(), &text);
    let topics = "streetsight/v1/failover-pole/#";
    let on_first = Subscriber::connect_as(&first.url(), topics, "dispatch-a", false)
        .await
        .unwrap();
    let on_second = Subscriber::connect_as(&second.url(), topics, "dispatch-b", false)
        .await
        .unwrap();
    let shutdown = streetsight::base::Shutdown::new();
    let daemon = tokio::spawn(streetsight::daemon::run(
        loaded,
        shutdown.clone(),
        Duration::from_secs(10),
    ));
    let schema = event_schema();
    let mut seen = Seen::default();
    assert!(
        collect_until(
            &on_first,
            &mut seen,
            &schema,
            Duration::from_secs(90),
            |s| !s.events.is_empty()
        )
        .await,
        "events flow through the first broker"
    );
    collect_until(
        &on_first,
        &mut seen,
        &schema,
        Duration::from_secs(2),
        |_| false,
    )
    .await;
    let through_first = seen.events.len();
    first.stop();
    assert!(
        collect_until(
            &on_second,
            &mut seen,
            &schema,
            scaled(Duration::from_secs(60)),
            |s| s.events.len() > through_first + 3
        )
        .await,
        "events go on through the second broker"
    );
    shutdown.trigger();
    let stats = daemon.await.unwrap().unwrap();
    collect_until(
        &on_second,
        &mut seen,
        &schema,
        Duration::from_secs(3),
        |_| false,
    )
    .await;
    let _first = Mosquitto::start_persistent(first_port, first_state.path()).unwrap();
    collect_until(
        &on_first,
        &mut seen,
        &schema,
        Duration::from_secs(5),
        |_| false,
    )
    .await;
    let produced = delivered_once(&stats, &seen).len();
    eprintln!(
        "failover: {produced} events, {through_first} through the first broker, the rest through the second"
    );
}

/// Every event the daemon produced (`stats`) arrived once after dedupe by `event_id`, each with its
/// evidence picture whose SHA-256 matches; returns them in the order they arrived.
fn delivered_once<'a>(
    stats: &streetsight::uplink::UplinkStats,
    seen: &'a Seen,
) -> Vec<&'a streetsight::incident::IncidentEvent> {
    let produced = stats
        .appended_events
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        stats.depth.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "everything was delivered before shutdown"
    );
    let mut ids = std::collections::HashSet::new();
    let unique: Vec<_> = seen
        .events
        .iter()
        .filter(|e| ids.insert(e.event_id.clone()))
        .collect();
    assert_eq!(
        unique.len() as u64,
        produced,
        "every produced event arrived exactly once after dedupe"
    );
    for e in &unique {
        let r = &e.evidence[0];
        let jpeg = seen
            .evidence
            .get(r.topic.strip_prefix("evidence/").unwrap())
            .expect("the evidence of every event arrived");
        assert_eq!(streetsight::base::sha256_hex(jpeg), r.sha256);
    }
    unique
}
