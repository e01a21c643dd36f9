//! Scenario tests with a fake clock, in pixels of a 768x576 frame, and property tests of the invariants.

use super::*;
use proptest::prelude::*;

const W: f32 = 768.0;
const H: f32 = 576.0;
const PERSON: usize = 0;
const STALL: usize = 1;

/// A box of `w`x`h` px centred at (`cx`, `cy`) px.
fn px(cx: f32, cy: f32, w: f32, h: f32) -> BBox {
    BBox {
        x1: (cx - w / 2.0) / W,
        y1: (cy - h / 2.0) / H,
        x2: (cx + w / 2.0) / W,
        y2: (cy + h / 2.0) / H,
    }
}

fn det(class: usize, score: f32, bbox: BBox) -> Detection {
    Detection { class, score, bbox }
}

fn secs(t0: Instant, s: f64) -> Instant {
    t0 + Duration::from_secs_f64(s)
}

fn tracker() -> Tracker {
    Tracker::new(TrackerParams::default())
}

/// Deterministic noise in [-1, 1] (a small LCG), so that jitter tests need no RNG crate.
struct Jitter(u64);
impl Jitter {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    }
}

/// Feed one walker; returns the id assigned at each sample.
fn walk(tr: &mut Tracker, t0: Instant, samples: &[(f64, BBox)]) -> Vec<Option<u64>> {
    samples
        .iter()
        .map(|&(t, b)| tr.update(&[det(PERSON, 0.8, b)], secs(t0, t))[0])
        .collect()
}

#[test]
fn walker_moving_30_px_per_sample_at_1_fps_keeps_one_id_over_20_samples() {
    let (mut tr, t0) = (tracker(), Instant::now());
    // 40x100 px: after 30 px sideways the IoU with the previous box is only 0.14, below `match_iou`.
    let samples: Vec<_> = (0..20)
        .map(|k| (k as f64, px(50.0 + 30.0 * k as f32, 300.0, 40.0, 100.0)))
        .collect();
    assert!(samples[0].1.iou(&samples[1].1) < 0.2);
    let ids = walk(&mut tr, t0, &samples);
    assert!(ids.iter().all(|&id| id == Some(1)), "{ids:?}");
    let t = tr.get(1).unwrap();
    assert_eq!((t.hits, tr.tracks().count()), (20, 1));
    // 30 px/s = 0.039 of the width per second.
    assert!(
        (t.velocity().0 - 30.0 / W).abs() < 1e-3,
        "{:?}",
        t.velocity()
    );
}

#[test]
fn small_walker_whose_boxes_never_overlap_keeps_one_id() {
    let (mut tr, t0) = (tracker(), Instant::now());
    // A distant person, 15x35 px, walking diagonally 40 px per sample: consecutive boxes are disjoint.
    let samples: Vec<_> = (0..15)
        .map(|k| {
            let k = k as f32;
            (k as f64, px(100.0 + 32.0 * k, 100.0 + 24.0 * k, 15.0, 35.0))
        })
        .collect();
    assert_eq!(samples[0].1.iou(&samples[1].1), 0.0);
    let ids = walk(&mut tr, t0, &samples);
    assert!(ids.iter().all(|&id| id == Some(1)), "{ids:?}");
}

#[test]
fn walker_sampled_at_irregular_intervals_keeps_one_id() {
    let (mut tr, t0) = (tracker(), Instant::now());
    // 30 px/s, sampled at 0.2..1.4 s gaps: velocity is per second, so the prediction follows.
    let gaps = [0.2, 1.0, 0.5, 1.4, 0.2, 0.2, 1.3, 0.7, 1.0, 0.4, 1.2, 0.3];
    let mut t = 0.0;
    let mut samples = vec![(0.0, px(60.0, 300.0, 20.0, 50.0))];
    for g in gaps {
        t += g;
        samples.push((t, px(60.0 + 30.0 * t as f32, 300.0, 20.0, 50.0)));
    }
    let ids = walk(&mut tr, t0, &samples);
    assert!(ids.iter().all(|&id| id == Some(1)), "{ids:?}");
}

/// Two walkers of the same class on one line, 30 px per sample toward each other, `dy` px apart vertically;
/// at the samples in `hidden` only the front walker (A) is detected. Returns the ids given to A and B.
fn crossing(dy: f32, hidden: &[usize]) -> (Vec<Option<u64>>, Vec<Option<u64>>) {
    let (mut tr, t0) = (tracker(), Instant::now());
    let (mut a_ids, mut b_ids) = (Vec::new(), Vec::new());
    for k in 0..20 {
        let a = px(100.0 + 30.0 * k as f32, 300.0, 40.0, 100.0);
        let b = px(670.0 - 30.0 * k as f32, 300.0 + dy, 40.0, 100.0);
        let mut dets = vec![det(PERSON, 0.8, a)];
        if !hidden.contains(&k) {
            dets.push(det(PERSON, 0.8, b));
        }
        let ids = tr.update(&dets, secs(t0, k as f64));
        a_ids.push(ids[0]);
        b_ids.push(ids.get(1).copied().flatten());
    }
    (a_ids, b_ids)
}

#[test]
fn two_walkers_crossing_paths_keep_their_ids() {
    // They pass through each other at samples 9–10 (centres 15 px apart at sample 9 and 10).
    for dy in [0.0, 10.0, 40.0] {
        let (a, b) = crossing(dy, &[]);
        assert!(a.iter().all(|&id| id == Some(1)), "dy {dy}: A {a:?}");
        assert!(b.iter().all(|&id| id == Some(2)), "dy {dy}: B {b:?}");
    }
}

#[test]
fn walker_hidden_behind_another_for_two_samples_keeps_its_id() {
    // B is occluded by A at samples 9 and 10, right where they overlap; its prediction carries it through.
    let (a, b) = crossing(0.0, &[9, 10]);
    assert!(a.iter().all(|&id| id == Some(1)), "A {a:?}");
    let seen: Vec<_> = b.iter().flatten().collect();
    assert!(seen.iter().all(|&&id| id == 2), "B {b:?}");
}

#[test]
fn jittered_walkers_crossing_swap_ids_only_while_their_boxes_coincide() {
    // Box edges jitter ±4 px; 10–40 px per sample; 0–30 px apart vertically; 50 seeds each. Where the two
    // boxes coincide (IoU > 0.5) nothing tells them apart and the labels of that one sample are a coin toss;
    // the velocities survive it, so the ids are right again on the next sample and at the end.
    for dy in [0.0f32, 10.0, 30.0] {
        for speed in [10.0f32, 20.0, 30.0, 40.0] {
            for seed in 0..50 {
                let (mut tr, t0) = (tracker(), Instant::now());
                let mut j = Jitter(seed);
                let mut noisy = |cx: f32, cy: f32| {
                    let b = px(cx, cy, 40.0, 100.0);
                    BBox {
                        x1: b.x1 + 4.0 * j.next() / W,
                        y1: b.y1 + 4.0 * j.next() / H,
                        x2: b.x2 + 4.0 * j.next() / W,
                        y2: b.y2 + 4.0 * j.next() / H,
                    }
                };
                let steps = (600.0 / speed) as usize;
                let mut ids = vec![];
                for k in 0..steps {
                    let x = speed * k as f32;
                    let (a, b) = (noisy(80.0 + x, 300.0), noisy(680.0 - x, 300.0 + dy));
                    ids = tr.update(
                        &[det(PERSON, 0.8, a), det(PERSON, 0.8, b)],
                        secs(t0, k as f64),
                    );
                    let at = format!(
                        "dy {dy} speed {speed} seed {seed} sample {k}: {ids:?} IoU {}",
                        a.iou(&b)
                    );
                    assert!(ids == [Some(1), Some(2)] || a.iou(&b) > 0.5, "{at}");
                }
                assert_eq!(ids, [Some(1), Some(2)], "dy {dy} speed {speed} seed {seed}");
            }
        }
    }
}

#[test]
fn side_by_side_pair_that_stops_and_turns_keeps_its_ids_at_1_fps() {
    // Two people 30 px apart from the real clip (vtest, 1 fps): walking left-up at 25–55 px/s, then turning
    // right-up at sample 3, so both predictions overshoot to the left by about a person's width there.
    let left = [
        (522.0, 261.0),
        (484.0, 247.0),
        (460.0, 230.0),
        (459.0, 212.0),
        (475.0, 198.0),
        (506.0, 184.0),
        (539.0, 173.0),
    ];
    let right = [
        (570.0, 259.0),
        (516.0, 243.0),
        (492.0, 230.0),
        (487.0, 212.0),
        (502.0, 198.0),
        (526.0, 185.0),
        (562.0, 175.0),
    ];
    let (mut tr, t0) = (tracker(), Instant::now());
    for (k, (l, r)) in left.iter().zip(&right).enumerate() {
        let dets = [
            det(PERSON, 0.8, px(l.0, l.1, 32.0, 78.0)),
            det(PERSON, 0.8, px(r.0, r.1, 32.0, 78.0)),
        ];
        assert_eq!(
            tr.update(&dets, secs(t0, k as f64)),
            vec![Some(1), Some(2)],
            "sample {k}"
        );
    }
}

#[test]
fn stall_standing_still_for_10_minutes_is_one_track_stationary_for_10_minutes() {
    let (mut tr, t0) = (tracker(), Instant::now());
    let mut j = Jitter(7);
    // 90x70 px stall, each edge jittering ±1% of the frame (±7.7 px horizontally, ±5.8 px vertically).
    for s in 0..=600 {
        let b = px(400.0, 450.0, 90.0, 70.0);
        let b = BBox {
            x1: b.x1 + 0.01 * j.next(),
            y1: b.y1 + 0.01 * j.next(),
            x2: b.x2 + 0.01 * j.next(),
            y2: b.y2 + 0.01 * j.next(),
        };
        let ids = tr.update(&[det(STALL, 0.6, b)], secs(t0, s as f64));
        assert_eq!(ids, vec![Some(1)], "sample {s}");
    }
    let now = secs(t0, 600.0);
    let t = tr.get(1).unwrap();
    assert_eq!((tr.tracks().count(), t.hits), (1, 601));
    assert_eq!(t.stationary_for(now), Duration::from_secs(600));
}

#[test]
fn stall_missed_by_the_detector_for_10_s_then_seen_again_keeps_its_id() {
    let (mut tr, t0) = (tracker(), Instant::now());
    let stall = px(400.0, 450.0, 90.0, 70.0);
    for s in 0..5 {
        tr.update(&[det(STALL, 0.6, stall)], secs(t0, s as f64));
    }
    for s in 5..15 {
        assert_eq!(tr.update(&[], secs(t0, s as f64)), vec![]);
    }
    assert_eq!(
        tr.update(&[det(STALL, 0.6, stall)], secs(t0, 15.0)),
        vec![Some(1)]
    );
    assert_eq!(
        tr.get(1).unwrap().stationary_for(secs(t0, 15.0)),
        Duration::from_secs(15)
    );
}

#[test]
fn track_unseen_for_longer_than_max_age_is_dropped_and_a_new_detection_there_gets_a_new_id() {
    let (mut tr, t0) = (tracker(), Instant::now());
    let stall = px(400.0, 450.0, 90.0, 70.0);
    for s in 0..3 {
        tr.update(&[det(STALL, 0.6, stall)], secs(t0, s as f64));
    }
    // Last seen at 2 s; max_age 15 s: still live at 16.9 s, gone at 17 s.
    tr.update(&[], secs(t0, 16.9));
    assert!(tr.get(1).is_some());
    tr.update(&[], secs(t0, 17.0));
    assert_eq!(tr.tracks().count(), 0);
    assert_eq!(
        tr.update(&[det(STALL, 0.6, stall)], secs(t0, 18.0)),
        vec![Some(2)]
    );
}

#[test]
fn tentative_track_not_seen_again_is_dropped_after_tentative_max_age() {
    let (mut tr, t0) = (tracker(), Instant::now());
    tr.update(&[det(PERSON, 0.9, px(300.0, 300.0, 40.0, 100.0))], t0);
    tr.update(&[], secs(t0, 2.9));
    assert!(tr.get(1).is_some_and(|t| !t.confirmed(2)));
    tr.update(&[], secs(t0, 3.0));
    assert!(tr.get(1).is_none());
}

#[test]
fn low_score_detection_extends_an_existing_track_but_never_starts_one() {
    let (mut tr, t0) = (tracker(), Instant::now());
    let b = |k: f32| px(200.0 + 20.0 * k, 300.0, 40.0, 100.0);
    // Low-score alone: nothing starts.
    assert_eq!(tr.update(&[det(PERSON, 0.3, b(0.0))], t0), vec![None]);
    assert_eq!(tr.tracks().count(), 0);
    // Started by a high score, then carried by low scores (a person walking behind a parked car).
    assert_eq!(
        tr.update(&[det(PERSON, 0.7, b(1.0))], secs(t0, 1.0)),
        vec![Some(1)]
    );
    for k in 2..6 {
        let ids = tr.update(&[det(PERSON, 0.3, b(k as f32))], secs(t0, k as f64));
        assert_eq!(ids, vec![Some(1)], "sample {k}");
    }
    assert_eq!(tr.get(1).unwrap().hits, 5);
    // Below `low_score`: ignored even though it overlaps.
    assert_eq!(
        tr.update(&[det(PERSON, 0.2, b(6.0))], secs(t0, 6.0)),
        vec![None]
    );
    // A low-score detection away from every track starts nothing.
    let far = px(600.0, 100.0, 40.0, 100.0);
    assert_eq!(
        tr.update(&[det(PERSON, 0.3, far)], secs(t0, 7.0)),
        vec![None]
    );
    assert_eq!(tr.tracks().count(), 1);
}

#[test]
fn high_score_detections_take_tracks_before_low_score_ones() {
    let (mut tr, t0) = (tracker(), Instant::now());
    let b = px(300.0, 300.0, 40.0, 100.0);
    tr.update(&[det(PERSON, 0.9, b)], t0);
    // A low-score duplicate fits better, but the high-score detection is matched first.
    let moved = px(310.0, 300.0, 40.0, 100.0);
    let ids = tr.update(
        &[det(PERSON, 0.3, b), det(PERSON, 0.6, moved)],
        secs(t0, 1.0),
    );
    assert_eq!(ids, vec![None, Some(1)]);
}

#[test]
fn different_classes_never_match() {
    let (mut tr, t0) = (tracker(), Instant::now());
    let b = px(300.0, 400.0, 60.0, 60.0);
    assert_eq!(tr.update(&[det(PERSON, 0.9, b)], t0), vec![Some(1)]);
    assert_eq!(
        tr.update(&[det(STALL, 0.9, b)], secs(t0, 1.0)),
        vec![Some(2)]
    );
    // Low scores of another class do not extend either.
    assert_eq!(tr.update(&[det(2, 0.4, b)], secs(t0, 2.0)), vec![None]);
    let classes: Vec<_> = tr.tracks().map(|t| (t.id, t.class, t.hits)).collect();
    assert_eq!(classes, vec![(1, PERSON, 1), (2, STALL, 1)]);
}

#[test]
fn stationary_since_resets_when_the_centre_leaves_the_radius() {
    let (mut tr, t0) = (tracker(), Instant::now());
    // 60x60 px box: normalised diagonal 0.13, so the radius is 0.039 of the width (30 px) sideways.
    tr.update(&[det(PERSON, 0.9, px(300.0, 300.0, 60.0, 60.0))], t0);
    tr.update(
        &[det(PERSON, 0.9, px(310.0, 300.0, 60.0, 60.0))],
        secs(t0, 2.0),
    );
    assert_eq!(tr.get(1).unwrap().stationary_since, t0);
    tr.update(
        &[det(PERSON, 0.9, px(340.0, 300.0, 60.0, 60.0))],
        secs(t0, 4.0),
    );
    let t = tr.get(1).unwrap();
    assert_eq!(t.stationary_since, secs(t0, 4.0));
    assert_eq!(t.stationary_for(secs(t0, 6.0)), Duration::from_secs(2));
}

#[test]
fn prediction_is_damped_and_stays_in_the_image() {
    let (mut tr, t0) = (tracker(), Instant::now());
    tr.update(&[det(PERSON, 0.9, px(700.0, 300.0, 40.0, 100.0))], t0);
    tr.update(
        &[det(PERSON, 0.9, px(730.0, 300.0, 40.0, 100.0))],
        secs(t0, 1.0),
    );
    let t = tr.get(1).unwrap();
    // One second on: 30 px × 2 s × (1 − e^−½) ≈ 23.6 px, short of the undamped 30 px.
    let p = t.predicted(secs(t0, 2.0));
    let shift = (p.x1 - t.bbox.x1) * W;
    assert!((shift - 23.6).abs() < 0.5 || p.x2 == 1.0, "shift {shift}");
    // Long after: the centre stops at the image edge; the box is clipped to the unit square.
    let far = t.predicted(secs(t0, 1000.0));
    assert!(far.x1 >= 0.0 && far.x2 <= 1.0 && far.x1 < far.x2, "{far:?}");
    // Time before `last_seen` predicts the last box.
    assert_eq!(t.predicted(t0), t.bbox);
}

#[test]
fn ids_start_at_1_and_are_never_reused() {
    let (mut tr, t0) = (tracker(), Instant::now());
    let a = px(100.0, 100.0, 40.0, 100.0);
    let b = px(600.0, 400.0, 40.0, 100.0);
    assert_eq!(
        tr.update(&[det(PERSON, 0.9, a), det(PERSON, 0.9, b)], t0),
        vec![Some(1), Some(2)]
    );
    tr.update(&[], secs(t0, 100.0));
    assert_eq!(
        tr.update(&[det(PERSON, 0.9, b)], secs(t0, 101.0)),
        vec![Some(3)]
    );
}

fn arb_detection() -> impl Strategy<Value = Detection> {
    (
        0usize..3,
        0.0f32..1.0,
        0.0f32..0.95,
        0.0f32..0.95,
        0.0f32..0.3,
        0.0f32..0.3,
    )
        .prop_map(|(class, score, x, y, w, h)| Detection {
            class,
            score,
            bbox: BBox {
                x1: x,
                y1: y,
                x2: x + w,
                y2: y + h,
            },
        })
}

proptest! {
    #[test]
    fn updates_keep_ids_unique_and_each_pairing_one_to_one(
        frames in prop::collection::vec(
            (0u64..20_000, prop::collection::vec(arb_detection(), 0..12)),
            1..40,
        )
    ) {
        let params = TrackerParams::default();
        let mut tr = Tracker::new(params.clone());
        let mut now = Instant::now();
        let mut next_new = 1u64;
        for (dt_ms, dets) in &frames {
            now += Duration::from_millis(*dt_ms);
            let before: Vec<u64> = tr.tracks().map(|t| t.id).collect();
            let ids = tr.update(dets, now);
            prop_assert_eq!(ids.len(), dets.len());
            // Each track takes at most one detection (and each detection one id, by construction).
            let mut given: Vec<u64> = ids.iter().flatten().copied().collect();
            given.sort_unstable();
            let n = given.len();
            given.dedup();
            prop_assert_eq!(given.len(), n);
            for (d, id) in dets.iter().zip(&ids) {
                if d.score >= params.high_score {
                    prop_assert!(id.is_some());
                } else if d.score < params.low_score {
                    prop_assert!(id.is_none());
                }
                if let Some(id) = id {
                    let t = tr.get(*id).expect("assigned id is live");
                    prop_assert_eq!(t.class, d.class);
                    prop_assert_eq!(t.last_seen, now);
                    prop_assert_eq!(t.bbox, d.bbox);
                    // Low-score detections only ever extend tracks that existed before.
                    if d.score < params.high_score {
                        prop_assert!(before.contains(id));
                    }
                    // New ids count up from 1 without reuse.
                    if !before.contains(id) {
                        prop_assert_eq!(*id, next_new);
                        next_new += 1;
                    }
                }
            }
            let live: Vec<u64> = tr.tracks().map(|t| t.id).collect();
            prop_assert!(live.windows(2).all(|w| w[0] < w[1]), "live ids unique and ordered");
            for t in tr.tracks() {
                prop_assert!(now.duration_since(t.last_seen) < params.max_age);
            }
        }
        // Empty updates never panic, and once max_age has passed nothing is left.
        tr.update(&[], now);
        tr.update(&[], now + params.max_age);
        prop_assert_eq!(tr.tracks().count(), 0);
    }
}
