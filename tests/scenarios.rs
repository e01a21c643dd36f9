//! Scenario tests: the real street clip, decoded and run through NanoDet on ONNX Runtime once, then
//! replayed as a recorded detection sequence through each rule type's analyser with a fake clock (one
//! sample per second, the clip looped where a rule needs longer than its 80 s). The counts asserted are the
//! exact outcomes of the whole stack — tracker, zones, rules, lifecycle — on real detections.

mod support;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use streetsight::base::Detection;
use streetsight::base::{Frame, FrameMeta, Pixels};
use streetsight::detect::{Detector, Manifest};
use streetsight::incident::{
    Analyser, IncidentEvent, ModelInfo, Phase, ResolveReason, Suppression, Verification,
};
use support::*;

/// One sample of the clip: its pixels and what NanoDet found.
struct Recorded {
    width: usize,
    height: usize,
    rgb: Arc<Vec<u8>>,
    detections: Vec<Detection>,
}

struct Clip {
    model: ModelInfo,
    samples: Vec<Recorded>,
}

/// Every 10th frame (1 per second of the 10 fps clip, as keyframe sampling gives), detected once.
fn clip() -> &'static Clip {
    static CLIP: OnceLock<Clip> = OnceLock::new();
    CLIP.get_or_init(|| {
        let mut det = Detector::load(Manifest::load(&model_dir()).unwrap(), 2).unwrap();
        let samples = decode_clip(10)
            .into_iter()
            .map(|(width, height, rgb)| {
                let view =
                    streetsight::base::ImageView::new(width, height, width * 3, &rgb).unwrap();
                let detections = det.detect(view).unwrap();
                Recorded {
                    width,
                    height,
                    rgb: Arc::new(rgb),
                    detections,
                }
            })
            .collect();
        let m = &det.manifest;
        Clip {
            model: ModelInfo::new(m, &det.sha256),
            samples,
        }
    })
}

/// A configuration with one camera whose zones and rules are `rules` (TOML). The replay's empty street
/// repeats one frame exactly — a frozen camera to the health checks — so `frozen` is off here (it is
/// tested in `tests/camera_health.rs`); the other health checks run as configured by default.
fn analyser(rules: &str, state: &std::path::Path) -> Analyser {
    let text = format!(
        r#"
[device]
id = "scenario"
[uplink]
broker = "mqtt://127.0.0.1:1"
[storage]
state_dir = "{}"
[models.nanodet]
path = "{}"
[[camera]]
id = "walkway"
url = "rtsp://127.0.0.1:1/clip"
model = "nanodet"
[camera.health]
frozen = false
{rules}
"#,
        state.display(),
        model_dir().display()
    );
    let loaded = load_config(state, &text);
    let cam = loaded.config.cameras[0].get_ref().clone();
    streetsight::plan::analyser(&loaded.config, &cam, clip().model.clone())
}

/// Replay the clip `loops` times at one sample per second, then `empty` samples of the last frame with
/// nothing detected (the street emptied); `edit` may change a sample's pixels.
fn replay(
    a: &mut Analyser,
    loops: usize,
    empty: usize,
    edit: impl Fn(usize, &mut [u8], usize),
) -> Vec<IncidentEvent> {
    let t0 = Instant::now();
    let mut events = Vec::new();
    let samples = &clip().samples;
    let played = loops * samples.len();
    for k in 0..played + empty {
        let (frame, detections) = sample_frame(t0, k, played, &edit);
        events.extend(a.analyse(&frame, detections).into_iter().map(|p| {
            for (r, e) in p.event.evidence.iter().zip(&p.evidence) {
                assert_eq!(r.sha256, streetsight::base::sha256_hex(&e.jpeg));
                if let Ok(dir) = std::env::var("SCENARIO_EVIDENCE_DIR") {
                    let name = format!(
                        "{}-{}-{:?}-{}.jpg",
                        p.event.category, k, p.event.phase, r.kind
                    );
                    std::fs::write(std::path::Path::new(&dir).join(name), &e.jpeg).unwrap();
                }
            }
            p.event
        }));
    }
    events
}

/// Sample `k` of the replay (the clip at one sample per second; after `played` samples, the last frame
/// with nothing detected) as a frame captured `k` seconds after `t0`, with its detections.
fn sample_frame(
    t0: Instant,
    k: usize,
    played: usize,
    edit: &impl Fn(usize, &mut [u8], usize),
) -> (Frame, &'static [Detection]) {
    let samples = &clip().samples;
    let s = &samples[k.min(played - 1) % samples.len()];
    let detections = if k < played { &s.detections[..] } else { &[] };
    let mut rgb = (*s.rgb).clone();
    edit(k, &mut rgb, s.width);
    let at = Duration::from_secs(k as u64);
    let meta = FrameMeta {
        camera: "walkway".into(),
        seq: k as u64,
        captured_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000) + at,
        captured_mono: t0 + at,
    };
    let frame = Frame::new(meta, s.width, s.height, s.width * 3, Pixels::Owned(rgb))
        .expect("a sample's pixels match its size");
    (frame, detections)
}

fn phases(events: &[IncidentEvent]) -> Vec<(Phase, String)> {
    events
        .iter()
        .map(|e| (e.phase, e.incident_id[..8].to_string()))
        .collect()
}

const WALKWAY: &str = r#"
[[camera.zone]]
id = "walkway"
points = [[0.0, 0.35], [1.0, 0.35], [1.0, 1.0], [0.0, 1.0]]
area_m2 = 6.0
"#;

#[test]
fn crowd_on_the_real_clip_opens_one_incident_that_resolves_when_the_street_empties() {
    let state = tempfile::tempdir().unwrap();
    let rules = format!(
        r#"{WALKWAY}
[[camera.crowd_density]]
zone = "walkway"
levels = [{{ name = "attention", min_density = 1.0 }}, {{ name = "warning", min_density = 1.3 }}]
hysteresis = 0.0
sustain_s = 5
clear_s = 10
incident = {{ update_interval_s = 0 }}
"#
    );
    let mut a = analyser(&rules, state.path());
    let events = replay(&mut a, 1, 30, |_, _, _| {});
    let opened: Vec<_> = events.iter().filter(|e| e.phase == Phase::Opened).collect();
    assert_eq!(opened.len(), 1, "{:?}", phases(&events));
    // Its first sighting is when the crowd began, not when the 5 s sustain confirmed it.
    assert!(
        opened[0].dwell_s >= 5.0 && opened[0].first_seen < opened[0].last_seen,
        "opened with dwell {} s, first seen {}, last seen {}",
        opened[0].dwell_s,
        opened[0].first_seen,
        opened[0].last_seen
    );
    assert!(
        events
            .iter()
            .all(|e| e.incident_id == opened[0].incident_id)
    );
    // Six people on the walkway at 62 s hold `attention` (1 person/m²) for the 5 s sustain; the street
    // empties after the clip and the incident resolves after the 10 s clear time.
    let seq: Vec<Phase> = events.iter().map(|e| e.phase).collect();
    assert_eq!(
        seq,
        [Phase::Opened, Phase::Resolved],
        "{:?}",
        phases(&events)
    );
    let (open, resolved) = (&events[0], &events[1]);
    let c = open.crowd.as_ref().unwrap();
    assert_eq!((c.count, c.level.as_str()), (6, "attention"));
    assert!(
        open.objects
            .iter()
            .all(|o| o.label == "person" && o.track_id.is_some())
    );
    assert_eq!(open.objects.len(), 6);
    let c = resolved.crowd.as_ref().unwrap();
    assert_eq!(
        (c.count, c.level.as_str(), resolved.reason),
        (0, "attention", Some(ResolveReason::Cleared))
    );
    for e in &events {
        assert_eq!(e.evidence.len(), 2, "annotated and clean");
    }
}

#[test]
fn street_vending_rule_opens_nothing_on_a_street_of_pedestrians() {
    let state = tempfile::tempdir().unwrap();
    let rules = format!("{WALKWAY}\n[[camera.street_vending]]\nzone = \"walkway\"\ndwell_s = 60\n");
    let mut a = analyser(&rules, state.path());
    let events = replay(&mut a, 5, 0, |_, _, _| {});
    assert_eq!(phases(&events), vec![], "400 s of walkers, no stall");
}

#[test]
fn a_person_present_for_30_seconds_opens_one_incident_and_suppression_mutes_it() {
    let state = tempfile::tempdir().unwrap();
    let rules = format!(
        "{WALKWAY}\n[[camera.presence]]\nzone = \"walkway\"\ncategory = \"piled_debris\"\nlabels = [\"person\"]\ndwell_s = 30\nincident = {{ clear_s = 5 }}\n"
    );
    let mut a = analyser(&rules, state.path());
    let events = replay(&mut a, 1, 0, |_, _, _| {});
    // A walker in red stays near the left edge for over 30 s (sample 61 shows her); she leaves at 70 s.
    let seq: Vec<Phase> = events.iter().map(|e| e.phase).collect();
    assert_eq!(
        seq,
        [Phase::Opened, Phase::Resolved],
        "{:?}",
        phases(&events)
    );
    let first = &events[0];
    assert_eq!(first.codes.gbt47678.as_deref(), Some("06036"));
    assert!(first.objects.iter().all(|o| o.track_id.is_some()));

    let mut a = analyser(&rules, state.path());
    a.suppress(Suppression {
        camera: None,
        category: "piled_debris".into(),
        zone: "walkway".into(),
        until: SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000 + 3600),
    });
    assert_eq!(phases(&replay(&mut a, 1, 0, |_, _, _| {})), vec![]);
}

/// A dark 60×60 px box "left on the street" from sample 20 on, at the zone's edge where few walk.
fn pile(k: usize, rgb: &mut [u8], width: usize) {
    if k < 20 {
        return;
    }
    for y in 480..540 {
        for x in 660..720 {
            let i = (y * width + x) * 3;
            rgb[i..i + 3].copy_from_slice(&[40, 32, 28]);
        }
    }
}

#[test]
fn scene_change_ignores_the_walkers_and_finds_a_pile_left_in_the_zone() {
    let state = tempfile::tempdir().unwrap();
    let rules = format!(
        "{WALKWAY}\n[[camera.scene_change]]\nzone = \"walkway\"\ncategory = \"piled_debris\"\npersist_s = 20\nmin_changed_fraction = 0.01\n"
    );
    let mut a = analyser(&rules, state.path());
    let waiting = a.scene_states();
    assert_eq!(waiting.len(), 1);
    assert!(!waiting[0].reference, "no reference before the first frame");
    let quiet = replay(&mut a, 3, 0, |_, _, _| {});
    assert!(
        a.scene_states()[0].reference,
        "a quiet frame became the reference"
    );
    assert_eq!(phases(&quiet), vec![], "240 s of walkers: no false alarm");
    assert!(
        state.path().join("scene/walkway--walkway.ref").is_file(),
        "the reference is kept for restarts"
    );

    let mut a = analyser(&rules, state.path());
    let events = replay(&mut a, 1, 0, pile);
    let seq: Vec<Phase> = events.iter().map(|e| e.phase).collect();
    assert_eq!(seq, [Phase::Opened], "{:?}", phases(&events));
    let opened = &events[0];
    assert_eq!(
        opened.last_seen, "2026-09-21T14:14:00.000Z",
        "left at sample 20, raised after the 20 s persist time"
    );
    assert_eq!(opened.objects[0].label, "scene_change");
    let b = opened.objects[0].bbox;
    let (cx, cy) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
    assert!(
        (cx - 690.0 / 768.0).abs() < 0.08 && (cy - 510.0 / 576.0).abs() < 0.08,
        "{b:?}"
    );
}

#[test]
fn verify_answers_from_fresh_frames_and_a_cleared_verify_resolves_the_incident() {
    let state = tempfile::tempdir().unwrap();
    let rules = format!(
        "{WALKWAY}\n[[camera.scene_change]]\nzone = \"walkway\"\ncategory = \"piled_debris\"\npersist_s = 20\nmin_changed_fraction = 0.01\n"
    );
    // A quiet pass takes the clean reference (kept on disk), as in the scene-change scenario.
    replay(&mut analyser(&rules, state.path()), 1, 0, |_, _, _| {});
    let mut a = analyser(&rules, state.path());
    let t0 = Instant::now();
    let played = clip().samples.len();
    let step = |a: &mut Analyser, k: usize, piled: bool| {
        let (frame, dets) = sample_frame(t0, k, played, &|k, rgb: &mut [u8], w| {
            if piled {
                pile(k, rgb, w)
            }
        });
        let events = a.analyse(&frame, dets);
        (frame, dets, events)
    };
    let mut opened = None;
    for k in 0..45 {
        let (_, _, events) = step(&mut a, k, true);
        opened = opened.or(events.into_iter().find(|p| p.event.phase == Phase::Opened));
    }
    let id = opened
        .expect("the pile opened an incident")
        .event
        .incident_id;

    // The pile is still there: three fresh samples all show it.
    let mut last = None;
    for k in 45..48 {
        let (frame, dets, events) = step(&mut a, k, true);
        assert!(events.is_empty());
        assert_eq!(a.presence_of(&id), Some(true), "sample {k}");
        last = Some((frame, dets));
    }
    let (frame, dets) = last.take().unwrap();
    let answer = a.conclude_verify(&id, true, "req-1", &frame, dets);
    assert_eq!(answer.len(), 1);
    let v = &answer[0].event;
    assert_eq!(
        (v.phase, v.verification),
        (Phase::Verified, Some(Verification::StillPresent))
    );
    assert_eq!(
        (v.incident_id.as_str(), v.request_id.as_deref()),
        (id.as_str(), Some("req-1"))
    );
    assert_eq!(answer[0].evidence.len(), v.evidence.len());
    assert!(!v.evidence.is_empty(), "fresh evidence with the answer");
    assert!(
        a.has_open_incident(&id),
        "still present: the incident stays open"
    );

    // A crew took the pile away: the fresh samples no longer show it, and the answer resolves the case.
    for k in 48..51 {
        let (frame, dets, _) = step(&mut a, k, false);
        assert_eq!(a.presence_of(&id), Some(false), "sample {k}");
        last = Some((frame, dets));
    }
    let (frame, dets) = last.unwrap();
    let answer = a.conclude_verify(&id, false, "req-2", &frame, dets);
    let got: Vec<_> = answer
        .iter()
        .map(|p| (p.event.phase, p.event.verification, p.event.reason))
        .collect();
    assert_eq!(
        got,
        [
            (Phase::Verified, Some(Verification::Cleared), None),
            (Phase::Resolved, None, Some(ResolveReason::VerifiedCleared)),
        ]
    );
    assert!(answer.iter().all(|p| p.event.incident_id == id));
    assert_eq!(a.presence_of(&id), None, "no longer open");
}

#[test]
fn overlapping_zones_of_one_category_report_one_incident() {
    let state = tempfile::tempdir().unwrap();
    let presence = |zone: &str| {
        format!(
            "[[camera.presence]]\nzone = \"{zone}\"\ncategory = \"piled_debris\"\nlabels = [\"person\"]\ndwell_s = 30\nincident = {{ clear_s = 5 }}\n"
        )
    };
    // The walkway and a copy of it: the lingering walker is in both.
    let rules = format!(
        "{WALKWAY}\n{}\n[[camera.zone]]\nid = \"walkway-copy\"\npoints = [[0.0, 0.35], [1.0, 0.35], [1.0, 1.0], [0.0, 1.0]]\n{}",
        presence("walkway"),
        presence("walkway-copy")
    );
    let mut a = analyser(&rules, state.path());
    let events = replay(&mut a, 1, 0, |_, _, _| {});
    let seq: Vec<(Phase, &str)> = events
        .iter()
        .map(|e| (e.phase, e.zone.id.as_str()))
        .collect();
    assert_eq!(
        seq,
        [(Phase::Opened, "walkway"), (Phase::Resolved, "walkway")]
    );
}

#[test]
fn k_of_n_rules_run_from_configuration_on_real_detections() {
    // NanoDet has no laundry or overflow class; `person` stands in so the configured K-of-N path runs on
    // real detections: people are on the walkway in every sample, so the rule opens at the K-th sample.
    let state = tempfile::tempdir().unwrap();
    let rules = format!(
        "{WALKWAY}\n[[camera.bin_overflow]]\nzone = \"walkway\"\nlabels = [\"person\"]\nmin_score = 0.5\n\n[[camera.hanging_laundry]]\nzone = \"walkway\"\nlabels = [\"person\"]\nsample_every_s = 5\nmin_score = 0.5\n"
    );
    let mut a = analyser(&rules, state.path());
    let events = replay(&mut a, 1, 60, |_, _, _| {});
    let seq: Vec<(Phase, &str, &str)> = events
        .iter()
        .map(|e| (e.phase, e.category.as_str(), &e.last_seen[14..19]))
        .collect();
    assert_eq!(
        seq,
        [
            // 3 samples 10 s apart: 0, 10, 20 s.
            (Phase::Opened, "bin_overflow", "13:40"),
            // 7 of 10 samples 5 s apart: 0 … 30 s.
            (Phase::Opened, "hanging_laundry", "13:50"),
            // The street empties at 80 s: 3 absent samples (80, 90, 100 s) clear the bin.
            (Phase::Resolved, "bin_overflow", "15:00"),
            // 7 absent samples of 5 s (80 … 110 s) clear the laundry.
            (Phase::Resolved, "hanging_laundry", "15:10"),
        ],
        "{:?}",
        phases(&events)
    );
}
