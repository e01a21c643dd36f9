//! One telemetry reading as Prometheus metric families, written in the text exposition format (0.0.4) by
//! the `prometheus` crate's encoder. The series are the contract listed in docs/configuration.md; labels are
//! low-cardinality (`camera`, `kind`, `quantile`), never a track or an event.

use crate::uplink::Telemetry;
use prometheus::proto::{
    Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary,
};
use prometheus::{Encoder, TextEncoder};

/// The text `/metrics` serves for `t`.
pub fn exposition(t: &Telemetry) -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&families(t), &mut out)
        .expect("families are never empty and the encoder writes to memory");
    String::from_utf8(out).expect("the text format is UTF-8")
}

/// Every family that has at least one series (per-camera families need a camera).
pub fn families(t: &Telemetry) -> Vec<MetricFamily> {
    let per_camera = |f: &dyn Fn(&crate::uplink::CameraTelemetry) -> Metric| {
        t.cameras
            .iter()
            .map(|c| labelled(f(c), &[("camera", &c.id)]))
            .collect::<Vec<_>>()
    };
    let up = |c: &crate::uplink::CameraTelemetry| {
        gauge(f64::from(u8::from(
            c.state == crate::ingest::CameraState::Streaming,
        )))
    };
    let (o, u, p) = (&t.outbox, &t.uplink, &t.process);
    let all = vec![
        family(
            "streetsight_camera_up",
            "1 while the camera streams.",
            MetricType::GAUGE,
            per_camera(&up),
        ),
        family(
            "streetsight_camera_frames_total",
            "Frames received from the camera after sampling.",
            MetricType::COUNTER,
            per_camera(&|c| counter(c.frames_in as f64)),
        ),
        family(
            "streetsight_camera_frames_analysed_total",
            "Frames the detector analysed.",
            MetricType::COUNTER,
            per_camera(&|c| counter(c.frames_analysed as f64)),
        ),
        family(
            "streetsight_camera_frames_dropped_total",
            "Frames dropped (oldest first) because analysis was busy.",
            MetricType::COUNTER,
            per_camera(&|c| counter(c.frames_dropped as f64)),
        ),
        family(
            "streetsight_camera_frames_skipped_total",
            "Frames not decoded or converted because the camera's previous frame was still being analysed.",
            MetricType::COUNTER,
            per_camera(&|c| counter(c.frames_skipped as f64)),
        ),
        family(
            "streetsight_camera_reconnects_total",
            "Times the camera's stream was lost.",
            MetricType::COUNTER,
            per_camera(&|c| counter(c.reconnects as f64)),
        ),
        family(
            "streetsight_camera_health",
            "1 while the camera's picture has the condition (moved, covered, blurred, frozen, brightness, colour, signal_lost).",
            MetricType::GAUGE,
            t.cameras
                .iter()
                .flat_map(|c| {
                    crate::health::Condition::ALL.iter().map(move |k| {
                        labelled(
                            gauge(f64::from(u8::from(c.health.conditions.contains(k)))),
                            &[("camera", &c.id), ("condition", k.as_str())],
                        )
                    })
                })
                .collect(),
        ),
        family(
            "streetsight_camera_view_shift_ratio",
            "How far the view moved from its reference, as a fraction of the picture (the larger of across and down).",
            MetricType::GAUGE,
            t.cameras
                .iter()
                .filter_map(|c| {
                    let s = c.health.shift?;
                    Some(labelled(
                        gauge(f64::from(s.x.abs().max(s.y.abs()))),
                        &[("camera", &c.id)],
                    ))
                })
                .collect(),
        ),
        family(
            "streetsight_camera_sharpness_ratio",
            "The picture's sharpness over the camera's own baseline (well below 1: blurred).",
            MetricType::GAUGE,
            t.cameras
                .iter()
                .filter(|c| c.health.reference)
                .map(|c| labelled(gauge(f64::from(c.health.sharpness)), &[("camera", &c.id)]))
                .collect(),
        ),
        family(
            "streetsight_analysis_seconds",
            "Detection time per frame: quantiles over the last 256 frames, sum and count since start.",
            MetricType::SUMMARY,
            per_camera(&|c| {
                let q = [(0.5, c.analysis_ms_p50), (0.95, c.analysis_ms_p95)];
                summary(
                    q.iter()
                        .filter_map(|&(q, ms)| ms.map(|ms| (q, f64::from(ms) / 1000.0))),
                    c.analysis_seconds_total,
                    c.frames_analysed,
                )
            }),
        ),
        family(
            "streetsight_uplink_connected",
            "1 while connected to the broker.",
            MetricType::GAUGE,
            vec![gauge(f64::from(u8::from(u.connected)))],
        ),
        family(
            "streetsight_outbox_records",
            "Records waiting in the outbox.",
            MetricType::GAUGE,
            vec![gauge(o.depth as f64)],
        ),
        family(
            "streetsight_outbox_delivered_total",
            "Records acknowledged by the broker.",
            MetricType::COUNTER,
            vec![counter(o.delivered as f64)],
        ),
        family(
            "streetsight_event_latency_seconds",
            "From an event's frame leaving the decoder to the broker's PUBACK: quantiles over the last 256 events, sum and count since start.",
            MetricType::SUMMARY,
            vec![summary(
                [(0.5, u.event_latency_s_p50), (0.99, u.event_latency_s_p99)]
                    .into_iter()
                    .filter_map(|(q, s)| s.map(|s| (q, s))),
                u.event_latency_seconds_total,
                u.event_latency_count,
            )],
        ),
        family(
            "streetsight_events_delivered_total",
            "Incident events acknowledged by the broker.",
            MetricType::COUNTER,
            vec![counter(u.events_delivered as f64)],
        ),
        family(
            "streetsight_outbox_dropped_total",
            "Records the outbox bounds dropped.",
            MetricType::COUNTER,
            vec![
                labelled(counter(o.dropped_events as f64), &[("kind", "event")]),
                labelled(counter(o.dropped_evidence as f64), &[("kind", "evidence")]),
            ],
        ),
        family(
            "streetsight_process_resident_memory_bytes",
            "Resident set size.",
            MetricType::GAUGE,
            vec![gauge(p.rss_bytes.unwrap_or(0) as f64)],
        ),
        family(
            "streetsight_process_cpu_seconds_total",
            "CPU time used by the process.",
            MetricType::COUNTER,
            vec![counter(p.cpu_seconds.unwrap_or(0.0))],
        ),
        family(
            "streetsight_disk_free_bytes",
            "Free bytes on the state directory's disk.",
            MetricType::GAUGE,
            t.disk_free_bytes
                .map(|f| gauge(f as f64))
                .into_iter()
                .collect(),
        ),
        family(
            "streetsight_disk_reserve_bytes",
            "Bytes kept free for events; evidence is not written into them.",
            MetricType::GAUGE,
            t.disk
                .iter()
                .map(|d| gauge(d.reserve_bytes as f64))
                .collect(),
        ),
        family(
            "streetsight_disk_short",
            "1 while free space is under the reserve: evidence is dropped so events can be stored.",
            MetricType::GAUGE,
            t.disk
                .iter()
                .map(|d| gauge(f64::from(u8::from(d.short))))
                .collect(),
        ),
        family(
            "streetsight_evidence_dropped_disk_total",
            "Evidence images not written (queued or kept) for lack of disk space.",
            MetricType::COUNTER,
            t.disk
                .iter()
                .map(|d| counter(d.evidence_dropped as f64))
                .collect(),
        ),
    ];
    all.into_iter()
        .chain(shadow_families(t))
        .filter(|f| !f.get_metric().is_empty())
        .collect()
}

/// A shadow's series: each value with the labels it adds to model, worker and candidate.
type Series = Vec<(Metric, Vec<(&'static str, String)>)>;

/// Candidates in shadow: how much they ran and how far they agree with the active model.
fn shadow_families(t: &Telemetry) -> Vec<MetricFamily> {
    let each = |m: &dyn Fn(&crate::incident::ShadowReport) -> Series| {
        t.shadows
            .iter()
            .flat_map(|s| {
                let worker = s.worker.to_string();
                m(s).into_iter().map(move |(metric, extra)| {
                    let mut labels = vec![
                        ("model", s.model.as_str()),
                        ("worker", worker.as_str()),
                        ("candidate", s.candidate.as_str()),
                    ];
                    labels.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
                    labelled(metric, &labels)
                })
            })
            .collect::<Vec<_>>()
    };
    vec![
        family(
            "streetsight_shadow_frames_total",
            "Frames the candidate in shadow analysed beside the active model.",
            MetricType::COUNTER,
            each(&|s| vec![(counter(s.frames as f64), vec![])]),
        ),
        family(
            "streetsight_shadow_errors_total",
            "Frames the candidate in shadow failed on.",
            MetricType::COUNTER,
            each(&|s| vec![(counter(s.errors as f64), vec![])]),
        ),
        family(
            "streetsight_shadow_count_agreement_ratio",
            "Share of frames on which the candidate counted as many objects of the class as the active model.",
            MetricType::GAUGE,
            each(&|s| {
                s.classes
                    .iter()
                    .map(|c| (gauge(c.count_agreement), vec![("class", c.class.clone())]))
                    .collect()
            }),
        ),
        family(
            "streetsight_shadow_matched_iou",
            "Mean IoU of the boxes both models found (matched one-to-one at IoU 0.5).",
            MetricType::GAUGE,
            each(&|s| vec![(gauge(s.mean_iou), vec![])]),
        ),
        family(
            "streetsight_shadow_incidents_opened",
            "Incidents opened while the shadow ran: by the active model, and by the candidate on its frames.",
            MetricType::GAUGE,
            each(&|s| {
                vec![
                    (
                        gauge(s.active_opened as f64),
                        vec![("side", "active".to_string())],
                    ),
                    (
                        gauge(s.shadow_opened as f64),
                        vec![("side", "shadow".to_string())],
                    ),
                ]
            }),
        ),
        family(
            "streetsight_shadow_incident_differences",
            "Incidents (camera, category, zone) only the candidate would have opened, or that it would have missed.",
            MetricType::GAUGE,
            each(&|s| {
                vec![
                    (
                        gauge(s.would_open.len() as f64),
                        vec![("kind", "would_open".to_string())],
                    ),
                    (
                        gauge(s.would_miss.len() as f64),
                        vec![("kind", "would_miss".to_string())],
                    ),
                ]
            }),
        ),
        family(
            "streetsight_shadow_inference_seconds",
            "The candidate's inference time per frame (median and 95th percentile of its last frames).",
            MetricType::GAUGE,
            each(&|s| {
                vec![
                    (
                        gauge(f64::from(s.ms_p50) / 1000.0),
                        vec![("quantile", "0.5".to_string())],
                    ),
                    (
                        gauge(f64::from(s.ms_p95) / 1000.0),
                        vec![("quantile", "0.95".to_string())],
                    ),
                ]
            }),
        ),
    ]
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.into());
    f.set_help(help.into());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

fn gauge(v: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(v);
    let mut m = Metric::default();
    m.set_gauge(g);
    m
}

fn counter(v: f64) -> Metric {
    let mut c = Counter::default();
    c.set_value(v);
    let mut m = Metric::default();
    m.set_counter(c);
    m
}

fn summary(quantiles: impl Iterator<Item = (f64, f64)>, sum: f64, count: u64) -> Metric {
    let mut s = Summary::default();
    s.set_quantile(
        quantiles
            .map(|(q, v)| {
                let mut x = Quantile::default();
                x.set_quantile(q);
                x.set_value(v);
                x
            })
            .collect(),
    );
    s.set_sample_sum(sum);
    s.set_sample_count(count);
    let mut m = Metric::default();
    m.set_summary(s);
    m
}

fn labelled(mut m: Metric, labels: &[(&str, &str)]) -> Metric {
    m.set_label(
        labels
            .iter()
            .map(|(k, v)| {
                let mut l = LabelPair::default();
                l.set_name((*k).into());
                l.set_value((*v).into());
                l
            })
            .collect(),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uplink::{
        CameraTelemetry, LinkTelemetry, OutboxTelemetry, ProcessTelemetry, Telemetry,
    };

    fn reading(cameras: usize) -> Telemetry {
        Telemetry {
            time: "2026-12-04T00:00:00Z".into(),
            cameras: (0..cameras)
                .map(|i| CameraTelemetry {
                    health: Default::default(),
                    id: format!("cam{i}"),
                    state: crate::ingest::CameraState::Streaming,
                    last_error: None,
                    frames_in: 10,
                    frames_analysed: 4,
                    frames_dropped: 1,
                    frames_skipped: 5,
                    reconnects: 0,
                    analysis_ms_p50: Some(30.0),
                    analysis_ms_p95: (i == 0).then_some(45.0),
                    analysis_seconds_total: 0.125,
                })
                .collect(),
            outbox: OutboxTelemetry {
                depth: 3,
                oldest_age_s: Some(1.5),
                delivered: 7,
                dropped_events: 0,
                dropped_evidence: 2,
            },
            uplink: LinkTelemetry {
                connected: true,
                events_delivered: 2,
                event_latency_s_p50: None,
                event_latency_s_p99: None,
                event_latency_count: 0,
                event_latency_seconds_total: 0.0,
            },
            process: ProcessTelemetry {
                cpu_percent: None,
                cpu_seconds: Some(1.25),
                rss_bytes: Some(1024),
            },
            disk_free_bytes: Some(4096),
            disk: Some(crate::uplink::DiskTelemetry {
                reserve_bytes: 8192,
                short: true,
                evidence_dropped: 3,
            }),
            shadows: Vec::new(),
        }
    }

    #[test]
    fn a_shadow_is_a_set_of_series_labelled_with_model_worker_candidate() {
        let mut t = reading(1);
        t.shadows.push(crate::incident::ShadowReport {
            model: "nanodet".into(),
            candidate: "city-v2".into(),
            frames: 12,
            mean_iou: 0.8,
            classes: vec![crate::detect::ClassAgreement {
                class: "person".into(),
                count_agreement: 0.75,
                ..Default::default()
            }],
            would_miss: vec![Default::default()],
            ..Default::default()
        });
        let text = exposition(&t);
        assert!(text.contains(
            "streetsight_shadow_frames_total{model=\"nanodet\",worker=\"0\",candidate=\"city-v2\"} 12"
        ), "{text}");
        assert!(text.contains("streetsight_shadow_count_agreement_ratio{model=\"nanodet\",worker=\"0\",candidate=\"city-v2\",class=\"person\"} 0.75"));
        assert!(text.contains("kind=\"would_miss\"} 1"));
        assert!(
            !exposition(&reading(1)).contains("shadow"),
            "no shadow, no series"
        );
    }

    #[test]
    fn every_reading_is_a_series_with_its_labels() {
        let text = exposition(&reading(2));
        for line in [
            "# TYPE streetsight_camera_frames_total counter",
            "streetsight_camera_frames_total{camera=\"cam1\"} 10",
            "streetsight_camera_up{camera=\"cam0\"} 1",
            "# TYPE streetsight_analysis_seconds summary",
            "streetsight_analysis_seconds{camera=\"cam0\",quantile=\"0.95\"} 0.045",
            "streetsight_analysis_seconds_sum{camera=\"cam1\"} 0.125",
            "streetsight_analysis_seconds_count{camera=\"cam1\"} 4",
            "streetsight_outbox_dropped_total{kind=\"evidence\"} 2",
            "streetsight_uplink_connected 1",
            "streetsight_process_cpu_seconds_total 1.25",
            "streetsight_event_latency_seconds_count 0",
            "streetsight_disk_free_bytes 4096",
            "streetsight_disk_short 1",
            "streetsight_evidence_dropped_disk_total 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
        }
        assert!(
            !text.contains("cam1\",quantile=\"0.95\""),
            "no quantile without a measurement"
        );
    }

    #[test]
    fn a_gateway_without_cameras_serves_only_its_own_families() {
        let text = exposition(&reading(0));
        assert!(!text.contains("camera="), "{text}");
        assert!(text.contains("# TYPE streetsight_outbox_records gauge"));
    }
}
