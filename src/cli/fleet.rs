//! `streetsight fleet`: simulated poles for load tests of a broker cluster and the city-side bridge.
//!
//! Each pole is the agent's own uplink — a real MQTT client with its own client id, `offline` last will,
//! retained status, telemetry and durable outbox, so a broker node lost mid-run loses nothing, as on a
//! real pole — replaying incidents recorded from the real agent on the street clip (`streetsight demo
//! --record DIR`) with new ids and times: one incident after another, a random pause between them
//! (exponential, `incidents_per_hour` on average), some of them in bursts of three at once; each pole
//! starts at a random phase.

use crate::base::Shutdown;
use crate::incident::{Evidence, IncidentEvent, Phase, Publication};
use crate::uplink::{Bounds, OutboxWriter, Protocol, Uplink, UplinkSettings, UplinkStats};
use chrono::{DateTime, SecondsFormat, Utc};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How a fleet runs.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub poles: usize,
    /// The broker (or the nodes of a cluster); pole `i` starts at node `i mod n` and fails over in turn.
    pub brokers: Vec<String>,
    pub protocol: Protocol,
    /// Devices are `{prefix}-0000`, `{prefix}-0001`, …
    pub prefix: String,
    /// Incidents per pole per hour, on average.
    pub incidents_per_hour: f64,
    /// The share of incidents that come three at once.
    pub burst: f64,
    /// Where the poles' outboxes live.
    pub work: PathBuf,
    pub telemetry: Duration,
}

/// Incidents as the real agent published them: each one's events in order, and the pictures by SHA-256.
pub struct Recording {
    incidents: Vec<Vec<IncidentEvent>>,
    pictures: HashMap<String, Evidence>,
}

impl Recording {
    /// Read `dir/events.jsonl` and `dir/evidence/*.jpg` (what `demo --record` writes); only incidents
    /// seen from their `opened` event are kept.
    pub fn load(dir: &Path) -> anyhow::Result<Recording> {
        let text = std::fs::read_to_string(dir.join("events.jsonl"))
            .map_err(|e| anyhow::anyhow!("cannot read {}/events.jsonl: {e}", dir.display()))?;
        let mut order: Vec<String> = Vec::new();
        let mut by_incident: HashMap<String, Vec<IncidentEvent>> = HashMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let e: IncidentEvent = serde_json::from_str(line)?;
            if e.phase == Phase::Verified {
                continue;
            }
            if !by_incident.contains_key(&e.incident_id) {
                order.push(e.incident_id.clone());
            }
            by_incident
                .entry(e.incident_id.clone())
                .or_default()
                .push(e);
        }
        let incidents: Vec<Vec<IncidentEvent>> = order
            .into_iter()
            .filter_map(|id| by_incident.remove(&id))
            .filter(|events| events[0].phase == Phase::Opened)
            .map(resolved)
            .collect();
        anyhow::ensure!(
            !incidents.is_empty(),
            "{} holds no whole incident",
            dir.display()
        );
        let mut pictures = HashMap::new();
        for entry in std::fs::read_dir(dir.join("evidence"))? {
            let jpeg = std::fs::read(entry?.path())?;
            let (width, height) = image::ImageReader::new(std::io::Cursor::new(&jpeg))
                .with_guessed_format()?
                .into_dimensions()?;
            let sha256 = crate::base::sha256_hex(&jpeg);
            pictures.insert(
                sha256.clone(),
                Evidence {
                    jpeg,
                    sha256,
                    width,
                    height,
                },
            );
        }
        Ok(Recording {
            incidents,
            pictures,
        })
    }

    pub fn incidents(&self) -> usize {
        self.incidents.len()
    }
}

/// An incident's events ending with its `resolved` event: one the recording stopped before gets the one
/// the agent makes when a condition clears (the last event's content, no pictures).
fn resolved(mut events: Vec<IncidentEvent>) -> Vec<IncidentEvent> {
    let last = events.last().expect("an incident has events").clone();
    if last.phase != Phase::Resolved {
        let mut end = last;
        end.phase = Phase::Resolved;
        end.reason = Some(crate::incident::ResolveReason::Cleared);
        end.evidence.clear();
        events.push(end);
    }
    events
}

/// One event a simulated pole committed to its outbox.
#[derive(Debug, Clone)]
pub struct Produced {
    pub device: String,
    pub incident_id: String,
    pub event_id: String,
    pub phase: Phase,
    pub at: SystemTime,
}

/// A running fleet.
pub struct Fleet {
    /// Every event committed, in order per pole.
    pub produced: Arc<Mutex<Vec<Produced>>>,
    stats: Vec<Arc<UplinkStats>>,
    producing: Shutdown,
    producers: Vec<tokio::task::JoinHandle<()>>,
    uplinks_stop: Shutdown,
    uplinks: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    /// Start `opts.poles` poles replaying `recording` (inside a tokio runtime).
    pub fn start(opts: &FleetOptions, recording: Arc<Recording>) -> anyhow::Result<Fleet> {
        anyhow::ensure!(!opts.brokers.is_empty(), "a fleet needs a broker");
        let mut fleet = Fleet {
            produced: Arc::default(),
            stats: Vec::new(),
            producing: Shutdown::new(),
            producers: Vec::new(),
            uplinks_stop: Shutdown::new(),
            uplinks: Vec::new(),
        };
        for i in 0..opts.poles {
            let device = format!("{}-{i:04}", opts.prefix);
            let mut brokers = opts.brokers.clone();
            brokers.rotate_left(i % opts.brokers.len());
            let dir = opts.work.join(&device);
            std::fs::create_dir_all(&dir)?;
            let settings = UplinkSettings {
                device_id: device.clone(),
                brokers,
                topic_prefix: "streetsight/v1".into(),
                client_id: None,
                keep_alive: Duration::from_secs(30),
                telemetry_every: opts.telemetry,
                username: None,
                password_file: None,
                tls: None,
                protocol: opts.protocol,
                outbox: dir.join("outbox.sqlite"),
                bounds: Bounds {
                    max_bytes: 256 << 20,
                    max_age: Duration::from_secs(7 * 86_400),
                },
            };
            let name = device.clone();
            let status: crate::uplink::StatusSource = Arc::new(
                move |state: &str| serde_json::json!({ "state": state, "device": name, "simulated": true }),
            );
            let (uplink, writer) = Uplink::new(&settings, status)?;
            fleet.stats.push(uplink.stats.clone());
            fleet.uplinks.push(tokio::spawn(
                uplink.run(fleet.uplinks_stop.clone(), Duration::from_secs(10)),
            ));
            let pole = SimPole {
                device,
                writer,
                recording: recording.clone(),
                mean_gap: Duration::from_secs_f64(3600.0 / opts.incidents_per_hour.max(1e-3)),
                burst: opts.burst,
                produced: fleet.produced.clone(),
                stop: fleet.producing.clone(),
                rng: rand::rngs::SmallRng::seed_from_u64(i as u64 * 7919 + 17),
            };
            fleet.producers.push(tokio::spawn(pole.run()));
        }
        Ok(fleet)
    }

    /// Stop making incidents (what is in the outboxes still goes out).
    pub async fn stop_producing(&mut self) {
        self.producing.trigger();
        for p in self.producers.drain(..) {
            let _ = p.await;
        }
    }

    /// Records still waiting in the poles' outboxes.
    pub fn undelivered(&self) -> u64 {
        self.stats
            .iter()
            .map(|s| s.depth.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }

    /// Poles connected now.
    pub fn connected(&self) -> usize {
        self.stats
            .iter()
            .filter(|s| s.connected.load(std::sync::atomic::Ordering::Relaxed))
            .count()
    }

    /// Stop everything; each pole says `offline` and keeps what it could not deliver.
    pub async fn stop(mut self) {
        self.stop_producing().await;
        self.uplinks_stop.trigger();
        for u in self.uplinks.drain(..) {
            let _ = u.await;
        }
    }
}

/// `streetsight fleet`: run `poles` poles against `brokers` for `duration` (or until `shutdown`), printing
/// what they produced and delivered every ten seconds, then let them deliver what is left.
pub async fn run(
    poles: usize,
    brokers: Vec<String>,
    protocol: Protocol,
    recording: &Path,
    rate: f64,
    duration: Duration,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    anyhow::ensure!((1..=100_000).contains(&poles), "--poles must be 1–100000");
    anyhow::ensure!(
        rate.is_finite() && rate > 0.0 && rate <= 3600.0,
        "--rate must be in (0, 3600]"
    );
    let recording = Arc::new(Recording::load(recording)?);
    let work = tempfile::Builder::new()
        .prefix("streetsight-fleet")
        .tempdir()?;
    let opts = FleetOptions {
        poles,
        brokers,
        protocol,
        prefix: "fleet".into(),
        incidents_per_hour: rate,
        burst: 0.1,
        work: work.path().to_path_buf(),
        telemetry: Duration::from_secs(60),
    };
    let mut fleet = Fleet::start(&opts, recording)?;
    let started = std::time::Instant::now();
    let report = |fleet: &Fleet| {
        let produced = fleet.produced.lock().expect("produced").len();
        println!(
            "fleet: {:>5.0} s  {}/{poles} poles connected  {produced} events produced  {} records undelivered",
            started.elapsed().as_secs_f64(),
            fleet.connected(),
            fleet.undelivered()
        );
    };
    while started.elapsed() < duration && !shutdown.sleep_async(Duration::from_secs(10)).await {
        report(&fleet);
    }
    fleet.stop_producing().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while fleet.undelivered() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    report(&fleet);
    fleet.stop().await;
    Ok(())
}

struct SimPole {
    device: String,
    writer: OutboxWriter,
    recording: Arc<Recording>,
    mean_gap: Duration,
    burst: f64,
    produced: Arc<Mutex<Vec<Produced>>>,
    stop: Shutdown,
    rng: rand::rngs::SmallRng,
}

impl SimPole {
    async fn run(mut self) {
        // Real cameras are not phase-locked: each pole starts somewhere in its first pause.
        let first = self.mean_gap.mul_f64(self.rng.random::<f64>());
        if self.stop.sleep_async(first).await {
            return;
        }
        loop {
            let n = if self.rng.random::<f64>() < self.burst {
                3
            } else {
                1
            };
            let picks: Vec<usize> = (0..n)
                .map(|_| self.rng.random_range(0..self.recording.incidents.len()))
                .collect();
            // A burst: its incidents' events interleaved, as several cameras of one pole would send them.
            let mut lifecycles: Vec<(String, SystemTime, std::slice::Iter<IncidentEvent>)> = picks
                .iter()
                .map(|&k| {
                    let id = uuid::Uuid::now_v7().to_string();
                    (id, SystemTime::now(), self.recording.incidents[k].iter())
                })
                .collect();
            let recorded = self.recording.clone();
            while !lifecycles.is_empty() {
                let mut still = Vec::new();
                for (id, since, mut events) in lifecycles {
                    if let Some(e) = events.next() {
                        let p = self.replay(e, &id, since, &recorded);
                        if !self.commit(p).await {
                            return;
                        }
                        still.push((id, since, events));
                    }
                }
                lifecycles = still;
                // Updates follow a few seconds apart (the recording's own gaps are minutes; a load test
                // wants the lifecycle, not the wait).
                let gap = Duration::from_millis(self.rng.random_range(500..3000));
                if self.stop.sleep_async(gap).await {
                    return;
                }
            }
            let pause = self
                .mean_gap
                .mul_f64(-(1.0 - self.rng.random::<f64>()).ln());
            if self.stop.sleep_async(pause).await {
                return;
            }
        }
    }

    /// The recorded event `e` as this pole's, of incident `id` that started at `since`, now.
    fn replay(
        &self,
        e: &IncidentEvent,
        id: &str,
        since: SystemTime,
        recording: &Recording,
    ) -> Publication {
        let now = SystemTime::now();
        let stamp =
            |t: SystemTime| DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut event = e.clone();
        event.event_id = uuid::Uuid::now_v7().to_string();
        event.incident_id = id.to_string();
        event.device.id = self.device.clone();
        event.time = stamp(now);
        event.first_seen = stamp(since);
        event.last_seen = stamp(now);
        event.dwell_s = now.duration_since(since).unwrap_or_default().as_secs_f64();
        let mut evidence = Vec::new();
        event
            .evidence
            .retain(|r| recording.pictures.contains_key(&r.sha256));
        for r in &mut event.evidence {
            r.topic = match r.kind.as_str() {
                "annotated" => format!("evidence/{}", event.event_id),
                kind => format!("evidence/{}/{kind}", event.event_id),
            };
            evidence.push(recording.pictures[&r.sha256].clone());
        }
        Publication {
            event,
            evidence,
            case: None,
        }
    }

    /// Commit `p` to the outbox (a blocking SQLite transaction, off the async threads); false on a
    /// failure (logged) or shutdown.
    async fn commit(&self, p: Publication) -> bool {
        let writer = self.writer.clone();
        let row = Produced {
            device: self.device.clone(),
            incident_id: p.event.incident_id.clone(),
            event_id: p.event.event_id.clone(),
            phase: p.event.phase,
            at: SystemTime::now(),
        };
        match tokio::task::spawn_blocking(move || writer.append(&p)).await {
            Ok(Ok(())) => {
                self.produced.lock().expect("produced").push(row);
                true
            }
            Ok(Err(error)) => {
                tracing::error!(device = %self.device, %error, "Simulated pole could not store an event.");
                false
            }
            Err(_) => false,
        }
    }
}
