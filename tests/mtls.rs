//! Mutual TLS to the broker: mosquitto requires a client certificate from the city's CA. The agent with its
//! device certificate connects and delivers; a certificate from an unknown CA is refused; and an agent that
//! does not trust the broker's CA refuses the broker. Certificates are made with openssl for each run.

mod support;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use streetsight::cli::demo::{Mosquitto, free_port};
use streetsight::uplink::{StatusSource, Uplink, UplinkStats};
use support::issue;

/// Run an uplink with these TLS files for `secs`; returns its counters.
async fn connect_with(
    dir: &Path,
    port: u16,
    ca: &str,
    client: &str,
    secs: u64,
) -> std::sync::Arc<UplinkStats> {
    let state = tempfile::tempdir().unwrap();
    let text = format!(
        "[device]\nid = \"tls-pole\"\n[uplink]\nbroker = \"mqtts://127.0.0.1:{port}\"\n[uplink.tls]\nca = \"{d}/{ca}.pem\"\ncert = \"{d}/{client}.pem\"\nkey = \"{d}/{client}.key\"\n[storage]\nstate_dir = \"{s}\"\n",
        d = dir.display(),
        s = state.path().display()
    );
    let path = state.path().join("streetsight.toml");
    std::fs::write(&path, &text).unwrap();
    let loaded = streetsight::plan::load_str(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    let status: StatusSource = std::sync::Arc::new(|s: &str| serde_json::json!({ "state": s }));
    let (uplink, _writer) =
        Uplink::new(&streetsight::plan::uplink_settings(&loaded), status).unwrap();
    let stats = uplink.stats.clone();
    let shutdown = streetsight::base::Shutdown::new();
    let task = tokio::spawn(uplink.run(shutdown.clone(), Duration::from_secs(1)));
    let deadline = Instant::now() + support::scaled(Duration::from_secs(secs));
    while Instant::now() < deadline && stats.delivered.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.trigger();
    task.await.unwrap();
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_device_certificate_from_the_citys_ca_gets_in() {
    streetsight::ops::init_logging("info");
    streetsight::daemon::init_process().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    issue(
        d,
        "city-ca",
        "broker",
        "broker",
        Some("IP:127.0.0.1,DNS:localhost"),
    );
    issue(d, "city-ca", "pole", "tls-pole", None);
    issue(d, "rogue-ca", "rogue", "tls-pole", None);
    // mosquitto drops to its own user: it must be able to read the files.
    for entry in std::fs::read_dir(d).unwrap() {
        let p = entry.unwrap().path();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let port = free_port().unwrap();
    let tls = format!(
        "cafile {d}/city-ca.pem\ncertfile {d}/broker.pem\nkeyfile {d}/broker.key\nrequire_certificate true\nuse_identity_as_username true",
        d = d.display()
    );
    let _broker = Mosquitto::start_with(port, &tls).unwrap();

    let good = connect_with(d, port, "city-ca", "pole", 15).await;
    assert!(
        good.connects.load(Ordering::Relaxed) >= 1,
        "the device certificate is accepted"
    );
    assert!(
        good.delivered.load(Ordering::Relaxed) >= 1,
        "and a message is acknowledged over mutual TLS"
    );

    let rogue = connect_with(d, port, "city-ca", "rogue", 4).await;
    assert_eq!(
        rogue.connects.load(Ordering::Relaxed),
        0,
        "a certificate from an unknown CA is refused"
    );

    let distrust = connect_with(d, port, "rogue-ca", "pole", 4).await;
    assert_eq!(
        distrust.connects.load(Ordering::Relaxed),
        0,
        "a broker whose certificate is not from the configured CA is refused"
    );
}
