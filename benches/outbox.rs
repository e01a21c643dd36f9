//! The durable outbox: how fast events can be committed (each append is an fsync'd SQLite transaction), and
//! how long a 10,000-event backlog takes to replay to a real mosquitto after an outage (every record
//! published with QoS 1 and deleted on its PUBACK). Results are recorded in docs/benchmarks.md.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use streetsight::uplink::{Bounds, Kind, Store, Uplink};

const EVENT: &[u8] = &[b'x'; 1500]; // a typical incident event's JSON is 1–2 KB

fn bounds() -> Bounds {
    Bounds {
        max_bytes: u64::MAX,
        max_age: Duration::from_secs(86_400),
    }
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("outbox.sqlite"), bounds()).unwrap();
    c.bench_function(
        "outbox append 1.5 KB event (committed, synchronous=FULL)",
        |b| b.iter(|| black_box(store.append(&[(Kind::Event, "t/events", EVENT)]).unwrap())),
    );
    let jpeg = vec![7u8; 100_000];
    c.bench_function(
        "outbox append event + 100 KB evidence in one transaction",
        |b| {
            b.iter(|| {
                black_box(
                    store
                        .append(&[
                            (Kind::Evidence, "t/evidence/x", &jpeg),
                            (Kind::Event, "t/events", EVENT),
                        ])
                        .unwrap(),
                )
            })
        },
    );
}

fn replay(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let broker = streetsight::cli::demo::Mosquitto::start(0).unwrap();
    let mut group = c.benchmark_group("outbox replay");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(60));
    group.bench_function("10,000-event backlog to mosquitto (QoS 1, delete on PUBACK)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let text = format!("[device]\nid = \"bench\"\n[uplink]\nbroker = \"{}\"\n[storage]\nstate_dir = \"{}\"\n", broker.url(), dir.path().display());
                let path = dir.path().join("streetsight.toml");
                std::fs::write(&path, &text).unwrap();
                let loaded = streetsight::plan::load_str(&path, &text).unwrap();
                {
                    let mut store = Store::open(&dir.path().join("outbox.sqlite"), bounds()).unwrap();
                    let batch: Vec<(Kind, &str, &[u8])> = (0..100).map(|_| (Kind::Event, "streetsight/v1/bench/events", EVENT)).collect();
                    for _ in 0..100 {
                        store.append(&batch).unwrap();
                    }
                }
                let status: streetsight::uplink::StatusSource = std::sync::Arc::new(|s: &str| serde_json::json!({ "state": s }));
                let (uplink, _writer) = Uplink::new(&streetsight::plan::uplink_settings(&loaded), status).unwrap();
                let stats = uplink.stats.clone();
                let shutdown = streetsight::base::Shutdown::new();
                let started = Instant::now();
                let task = runtime.spawn(uplink.run(shutdown.clone(), Duration::from_secs(1)));
                // 10,000 records and the status message.
                while stats.delivered.load(Ordering::Relaxed) < 10_001 {
                    std::thread::sleep(Duration::from_millis(5));
                }
                total += started.elapsed();
                shutdown.trigger();
                runtime.block_on(task).unwrap();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, append, replay);
criterion_main!(benches);
