use super::*;
use proptest::prelude::*;

const W: usize = 320;
const H: usize = 240;
const SECOND: Duration = Duration::from_secs(1);

/// A textured street: 4-px blocks of pseudo-random grey, so cells have structure like paving does.
fn street() -> Vec<u8> {
    let mut img = vec![0u8; W * H * 3];
    for y in 0..H {
        for x in 0..W {
            let h = ((x / 4) as u32).wrapping_mul(2_654_435_761)
                ^ ((y / 4) as u32).wrapping_mul(40_503);
            let v = 90 + (h >> 7) % 80;
            img[(y * W + x) * 3..][..3].copy_from_slice(&[v as u8, v as u8, (v + 5) as u8]);
        }
    }
    img
}

fn paint(img: &mut [u8], (x0, y0, w, h): (usize, usize, usize, usize), v: u8) {
    for y in y0..(y0 + h).min(H) {
        for x in x0..(x0 + w).min(W) {
            img[(y * W + x) * 3..][..3].copy_from_slice(&[v, v, v]);
        }
    }
}

fn scaled(img: &[u8], k: f32) -> Vec<u8> {
    img.iter()
        .map(|v| (*v as f32 * k).round().clamp(0.0, 255.0) as u8)
        .collect()
}

fn view(img: &[u8]) -> ImageView<'_> {
    ImageView::new(W, H, W * 3, img).unwrap()
}

fn whole() -> Polygon {
    Polygon::new(&[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
}

fn params() -> SceneParams {
    SceneParams {
        persist: 20 * SECOND,
        ..SceneParams::default()
    }
}

/// A dark 80×80 px pile: 25 of the 300 cells.
const PILE: (usize, usize, usize, usize) = (160, 96, 80, 80);

fn with_pile() -> Vec<u8> {
    let mut img = street();
    paint(&mut img, PILE, 30);
    img
}

fn rule_with_reference() -> SceneChange {
    let mut rule = SceneChange::new(whole(), params());
    rule.set_reference(view(&street()));
    rule
}

fn norm(px: (usize, usize, usize, usize)) -> BBox {
    BBox {
        x1: px.0 as f32 / W as f32,
        y1: px.1 as f32 / H as f32,
        x2: (px.0 + px.2) as f32 / W as f32,
        y2: (px.1 + px.3) as f32 / H as f32,
    }
}

#[test]
fn passing_pedestrians_never_raise() {
    let mut rule = rule_with_reference();
    let t0 = Instant::now();
    // Three people crossing at 1 sample per second for ten minutes, 10 px per sample, wrapping around.
    for s in 0..600usize {
        let mut img = street();
        for (row, speed) in [(40, 10), (110, 7), (170, 12)] {
            paint(&mut img, ((s * speed) % W, row, 16, 48), 25);
        }
        let obs = rule.observe(view(&img), &[], t0 + SECOND * s as u32);
        assert!(
            !obs.holds && obs.persistent_fraction == 0.0,
            "sample {s}: {obs:?}"
        );
    }
}

#[test]
fn a_new_pile_raises_after_the_persist_time() {
    let mut rule = rule_with_reference();
    let t0 = Instant::now();
    let pile = with_pile();
    let early = rule.observe(view(&pile), &[], t0);
    assert!(early.changed_fraction > 0.08 && !early.holds, "{early:?}");
    assert!(!rule.observe(view(&pile), &[], t0 + 19 * SECOND).holds);
    let late = rule.observe(view(&pile), &[], t0 + 20 * SECOND);
    assert!(late.holds, "{late:?}");
    let region = late.region.expect("a region around the pile");
    assert!(region.iou(&norm(PILE)) > 0.9, "{region:?}");
}

#[test]
fn a_removed_pile_clears_at_once() {
    let mut rule = rule_with_reference();
    let t0 = Instant::now();
    rule.observe(view(&with_pile()), &[], t0);
    assert!(
        rule.observe(view(&with_pile()), &[], t0 + 30 * SECOND)
            .holds
    );
    let obs = rule.observe(view(&street()), &[], t0 + 31 * SECOND);
    assert_eq!(
        (obs.holds, obs.persistent_fraction, obs.region),
        (false, 0.0, None)
    );
}

#[test]
fn a_pile_removed_before_the_persist_time_restarts_the_clock() {
    let mut rule = rule_with_reference();
    let t0 = Instant::now();
    rule.observe(view(&with_pile()), &[], t0);
    rule.observe(view(&street()), &[], t0 + 10 * SECOND);
    rule.observe(view(&with_pile()), &[], t0 + 11 * SECOND);
    assert!(
        !rule
            .observe(view(&with_pile()), &[], t0 + 25 * SECOND)
            .holds
    );
    assert!(
        rule.observe(view(&with_pile()), &[], t0 + 31 * SECOND)
            .holds
    );
}

#[test]
fn brightness_change_does_not_raise() {
    for k in [0.75, 1.25] {
        let mut rule = rule_with_reference();
        let t0 = Instant::now();
        let img = scaled(&street(), k);
        for s in 0..60 {
            let obs = rule.observe(view(&img), &[], t0 + SECOND * s);
            assert!(obs.changed_fraction == 0.0 && !obs.holds, "×{k}: {obs:?}");
        }
    }
}

#[test]
fn brightness_change_does_not_hide_a_pile() {
    for k in [0.75, 1.25] {
        let mut rule = rule_with_reference();
        let t0 = Instant::now();
        let img = scaled(&with_pile(), k);
        rule.observe(view(&img), &[], t0);
        let obs = rule.observe(view(&img), &[], t0 + 20 * SECOND);
        assert!(obs.holds, "×{k}: {obs:?}");
        assert!(obs.region.unwrap().iou(&norm(PILE)) > 0.9, "×{k}: {obs:?}");
    }
}

#[test]
fn changes_outside_the_zone_are_ignored() {
    let left_half = Polygon::new(&[[0.0, 0.0], [0.45, 0.0], [0.45, 1.0], [0.0, 1.0]]);
    let mut rule = SceneChange::new(left_half, params());
    rule.set_reference(view(&street()));
    let t0 = Instant::now();
    for s in [0, 30] {
        let obs = rule.observe(view(&with_pile()), &[], t0 + SECOND * s);
        assert_eq!(obs, SceneObservation::default());
    }
}

#[test]
fn a_person_in_front_of_a_pile_keeps_it_raised_and_its_clock_running() {
    let mut rule = rule_with_reference();
    let t0 = Instant::now();
    let person = norm((150, 60, 100, 150));
    rule.observe(view(&with_pile()), &[], t0);
    // Hidden from 10 s to 30 s: no new evidence, but the clock is not reset either.
    let hidden = rule.observe(view(&street()), &[person], t0 + 10 * SECOND);
    assert_eq!(hidden.changed_fraction, 0.0);
    let seen = rule.observe(view(&with_pile()), &[], t0 + 30 * SECOND);
    assert!(seen.holds, "{seen:?}");
    // Already persistent: hiding it again keeps the verdict.
    let hidden_again = rule.observe(view(&street()), &[person], t0 + 31 * SECOND);
    assert!(hidden_again.holds, "{hidden_again:?}");
}

#[test]
fn the_first_quiet_frame_becomes_the_reference() {
    let mut rule = SceneChange::new(whole(), params());
    assert!(!rule.has_reference());
    let t0 = Instant::now();
    let crowd = [norm((0, 0, 200, 200))];
    let busy = rule.observe(view(&street()), &crowd, t0);
    assert!(!busy.reference_taken && !rule.has_reference());
    let quiet = rule.observe(view(&street()), &[], t0 + SECOND);
    assert!(quiet.reference_taken && !quiet.holds && rule.has_reference());
    let next = rule.observe(view(&street()), &[], t0 + 2 * SECOND);
    assert_eq!(next, SceneObservation::default());
}

#[test]
fn cells_under_a_person_in_the_reference_are_learnt_when_uncovered() {
    let mut rule = SceneChange::new(
        whole(),
        SceneParams {
            quiet_max_excluded: 0.1,
            ..params()
        },
    );
    let t0 = Instant::now();
    let person_px = (40, 40, 16, 48);
    let mut with_person = street();
    paint(&mut with_person, person_px, 25);
    let taken = rule.observe(view(&with_person), &[norm(person_px)], t0);
    assert!(taken.reference_taken);
    // The person has left: their spot is learnt, not reported as a lasting change.
    for s in 1..40 {
        let obs = rule.observe(view(&street()), &[], t0 + SECOND * s);
        assert_eq!(obs.changed_fraction, 0.0, "sample {s}");
    }
}

#[test]
fn a_reference_survives_a_round_trip_through_bytes() {
    let bytes = rule_with_reference().reference_bytes();
    assert!(bytes.len() < 20_000, "{} bytes", bytes.len());
    let mut rule = SceneChange::new(whole(), params());
    rule.load_reference(&bytes).unwrap();
    assert!(rule.has_reference());
    assert_eq!(rule.reference_bytes(), bytes);
    let t0 = Instant::now();
    let clean = rule.observe(view(&street()), &[], t0);
    assert!(!clean.reference_taken && clean.changed_fraction == 0.0);
    rule.observe(view(&with_pile()), &[], t0);
    assert!(
        rule.observe(view(&with_pile()), &[], t0 + 20 * SECOND)
            .holds
    );
}

#[test]
fn a_mismatched_or_damaged_reference_is_refused() {
    let bytes = rule_with_reference().reference_bytes();
    let other_cells = SceneParams {
        cell_px: 10,
        ..params()
    };
    let mut rule = SceneChange::new(whole(), other_cells);
    assert!(matches!(
        rule.load_reference(&bytes),
        Err(SceneError::Geometry { .. })
    ));
    let mut rule = SceneChange::new(whole(), params());
    assert!(matches!(
        rule.load_reference(b"hello"),
        Err(SceneError::NotAReference { .. })
    ));
    assert!(matches!(
        rule.load_reference(&bytes[..bytes.len() - 1]),
        Err(SceneError::Length { .. })
    ));
    let mut future = bytes.clone();
    future[4] = 9;
    assert_eq!(
        rule.load_reference(&future),
        Err(SceneError::Version { found: 9 })
    );
    assert!(!rule.has_reference());
    let message = SceneError::Version { found: 9 }.to_string();
    assert!(
        message.contains("expected format version 1, found 9"),
        "{message}"
    );
}

#[test]
fn a_new_frame_size_retakes_the_reference() {
    let mut rule = rule_with_reference();
    let wide = vec![128u8; 640 * 180 * 3];
    let frame = ImageView::new(640, 180, 640 * 3, &wide).unwrap();
    let obs = rule.observe(frame, &[], Instant::now());
    assert!(obs.reference_taken && !obs.holds);
}

#[test]
fn padded_rows_give_the_same_verdict_as_packed_ones() {
    let packed = with_pile();
    let stride = W * 3 + 7;
    let mut padded = vec![255u8; stride * H];
    for y in 0..H {
        padded[y * stride..][..W * 3].copy_from_slice(&packed[y * W * 3..][..W * 3]);
    }
    let t0 = Instant::now();
    let (mut a, mut b) = (rule_with_reference(), rule_with_reference());
    let padded_view = ImageView::new(W, H, stride, &padded).unwrap();
    for s in [0, 25] {
        let now = t0 + SECOND * s;
        assert_eq!(
            a.observe(view(&packed), &[], now),
            b.observe(padded_view, &[], now)
        );
    }
}

proptest! {
    #[test]
    fn fractions_and_region_stay_in_range(
        x in 0usize..W - 8, y in 0usize..H - 8, w in 8usize..200, h in 8usize..200, v in 0u8..=255,
        zx in 0.0f64..0.5, zy in 0.0f64..0.5,
    ) {
        let zone = Polygon::new(&[[zx, zy], [zx + 0.5, zy], [zx + 0.5, zy + 0.5], [zx, zy + 0.5]]);
        let mut rule = SceneChange::new(zone, params());
        rule.set_reference(view(&street()));
        let mut img = street();
        paint(&mut img, (x, y, w, h), v);
        let t0 = Instant::now();
        rule.observe(view(&img), &[], t0);
        let obs = rule.observe(view(&img), &[], t0 + 20 * SECOND);
        prop_assert!((0.0..=1.0).contains(&obs.changed_fraction));
        prop_assert!(obs.persistent_fraction <= obs.changed_fraction + 1e-6);
        prop_assert_eq!(obs.holds, obs.persistent_fraction >= 0.05);
        if let Some(r) = obs.region {
            prop_assert!(r.x1 >= 0.0 && r.y1 >= 0.0 && r.x2 <= 1.0 && r.y2 <= 1.0 && r.area() > 0.0);
        }
    }

    #[test]
    fn a_uniform_frame_of_any_size_matches_itself(w in 1usize..400, h in 1usize..300, pad in 0usize..9, v in 0u8..=255) {
        let stride = w * 3 + pad;
        let data = vec![v; stride * h];
        let frame = ImageView::new(w, h, stride, &data).unwrap();
        let mut rule = SceneChange::new(whole(), params());
        rule.set_reference(frame);
        let obs = rule.observe(frame, &[], Instant::now());
        prop_assert_eq!(obs, SceneObservation::default());
    }
}
