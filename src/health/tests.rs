//! Each check against synthetic street-like pictures with known shifts, rotations, blurs and coverings.

use super::*;
use crate::base::ImageView;

const W: usize = 768;
const H: usize = 576;

/// A street-like scene: blocks of facade with windows, a kerb line and fine texture; `at(x, y)` in pixels
/// of the untransformed picture. Deterministic.
fn scene(x: f32, y: f32) -> f32 {
    let mut v = 90.0 + 25.0 * ((x * 0.013).sin() * (y * 0.021).cos());
    for k in 0..24u32 {
        // Pseudo-random rectangles (xorshift of k).
        let mut s = k.wrapping_mul(2_654_435_761) ^ 0x9e37_79b9;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let (rx, ry) = ((next() % W as u32) as f32, (next() % H as u32) as f32);
        let (rw, rh) = (40.0 + (next() % 160) as f32, 30.0 + (next() % 120) as f32);
        let level = (next() % 120) as f32 - 60.0;
        if x >= rx && x < rx + rw && y >= ry && y < ry + rh {
            v += level;
        }
    }
    v += 12.0 * ((x * 0.31).sin() + (y * 0.27).cos());
    v.clamp(0.0, 255.0)
}

/// Render the scene rotated by `degrees` about the centre (counter-clockwise as seen), then shifted by
/// (`dx`, `dy`) pixels; outside the original picture is black. `pixel` post-processes each (r, g, b).
fn render(dx: f32, dy: f32, degrees: f32, pixel: impl Fn(usize, usize, f32) -> [u8; 3]) -> Vec<u8> {
    let (s, c) = degrees.to_radians().sin_cos();
    let (cx, cy) = (W as f32 / 2.0, H as f32 / 2.0);
    let mut out = vec![0u8; W * H * 3];
    for y in 0..H {
        for x in 0..W {
            // Undo the shift, then the rotation (y points down, so "as seen" counter-clockwise is −angle).
            let (u, v) = (x as f32 - dx - cx, y as f32 - dy - cy);
            let (sx, sy) = (c * u - s * v + cx, s * u + c * v + cy);
            let l = if sx >= 0.0 && sy >= 0.0 && sx < W as f32 && sy < H as f32 {
                scene(sx, sy)
            } else {
                0.0
            };
            out[(y * W + x) * 3..][..3].copy_from_slice(&pixel(x, y, l));
        }
    }
    out
}

fn grey(_: usize, _: usize, l: f32) -> [u8; 3] {
    let v = l.round() as u8;
    [v, v, v]
}

fn picture(data: &[u8]) -> Picture {
    Picture::read(ImageView::packed(W, H, data).unwrap())
}

/// Feed `frames` pictures one second apart starting at `t0 + start_s`; returns the last report.
fn feed(m: &mut Monitor, p: &Picture, t0: Instant, start_s: u64, frames: u64) -> HealthReport {
    let mut last = HealthReport::default();
    for i in 0..frames {
        last = m.observe(p, t0 + Duration::from_secs(start_s + i)).report;
    }
    last
}

/// The clean picture with a little per-frame noise, so it is never "frozen".
fn live(seed: u64) -> Picture {
    picture(&render(0.0, 0.0, 0.0, |x, y, l| {
        let n = ((x as u64 * 31 + y as u64 * 17 + seed * 7) % 5) as f32 - 2.0;
        grey(x, y, l + n)
    }))
}

fn monitor_with_reference() -> (Monitor, Instant) {
    let mut m = Monitor::new(HealthParams::default());
    let t0 = Instant::now();
    assert!(m.observe(&live(0), t0).reference_taken);
    (m, t0)
}

#[test]
fn the_first_textured_frame_becomes_the_reference_and_a_black_one_does_not() {
    let mut m = Monitor::new(HealthParams::default());
    let black = picture(&vec![0u8; W * H * 3]);
    assert!(!m.observe(&black, Instant::now()).reference_taken);
    assert!(m.reference().is_none());
    assert!(m.observe(&live(0), Instant::now()).reference_taken);
}

#[test]
fn shift_and_rotation_are_measured_within_a_percent_and_a_degree() {
    for (dx, dy, deg) in [
        (0.08, 0.0, 3.0),
        (-0.05, 0.04, -2.0),
        (0.0, 0.0, 5.0),
        (0.1, -0.06, 0.0),
    ] {
        let (mut m, t0) = monitor_with_reference();
        let moved = picture(&render(dx * W as f32, dy * H as f32, deg, grey));
        let r = m.observe(&moved, t0 + Duration::from_secs(1)).report;
        let s = r.shift.unwrap();
        assert!(
            (s.x - dx).abs() < 0.01 && (s.y - dy).abs() < 0.01 && (s.degrees - deg).abs() < 1.0,
            "truth ({dx}, {dy}, {deg}°), measured {s:?}"
        );
        assert!((s.scale - 1.0).abs() < 0.03, "{s:?}");
    }
}

#[test]
fn a_moved_view_is_raised_after_raise_after_and_clears_when_it_comes_back() {
    let (mut m, t0) = monitor_with_reference();
    let moved = picture(&render(0.08 * W as f32, 0.0, 3.0, grey));
    let r = feed(&mut m, &moved, t0, 1, 5);
    assert!(r.conditions.is_empty(), "not yet: {r:?}");
    let r = feed(&mut m, &moved, t0, 6, 10);
    assert_eq!(r.conditions, vec![Condition::Moved]);
    assert!(r.pauses_rules());
    let mut r = HealthReport::default();
    for i in 0..12 {
        r = m.observe(&live(i), t0 + Duration::from_secs(16 + i)).report;
    }
    assert!(r.conditions.is_empty(), "{r:?}");
}

#[test]
fn small_drift_is_reported_and_not_raised() {
    let (mut m, t0) = monitor_with_reference();
    let drifted = picture(&render(0.015 * W as f32, 0.0, 0.5, grey));
    let r = feed(&mut m, &drifted, t0, 1, 20);
    assert!((r.shift.unwrap().x - 0.015).abs() < 0.005, "{r:?}");
    assert!(!r.conditions.contains(&Condition::Moved), "{r:?}");
}

#[test]
fn a_flat_patch_over_most_of_the_picture_is_covered_and_pauses_rules() {
    let (mut m, t0) = monitor_with_reference();
    let covered = picture(&render(0.0, 0.0, 0.0, |x, y, l| {
        if x < W * 7 / 10 {
            [40, 40, 40]
        } else {
            grey(x, y, l)
        }
    }));
    let r = feed(&mut m, &covered, t0, 1, 12);
    assert!(r.covered > 0.6, "{r:?}");
    assert!(r.conditions.contains(&Condition::Covered), "{r:?}");
    assert!(
        !r.conditions.contains(&Condition::Moved),
        "covered is not moved: {r:?}"
    );
    assert!(r.pauses_rules());
}

#[test]
fn a_strong_blur_is_blurred_and_not_covered() {
    let (mut m, t0) = monitor_with_reference();
    // A box blur of 15 × 15 pixels over the clean picture.
    let sharp = render(0.0, 0.0, 0.0, grey);
    let mut blurred = sharp.clone();
    let k = 7isize;
    for y in 0..H as isize {
        for x in 0..W as isize {
            let (mut sum, mut n) = (0u32, 0u32);
            for yy in (y - k).max(0)..(y + k + 1).min(H as isize) {
                for xx in ((x - k).max(0)..(x + k + 1).min(W as isize)).step_by(3) {
                    sum += sharp[(yy as usize * W + xx as usize) * 3] as u32;
                    n += 1;
                }
            }
            let v = (sum / n) as u8;
            blurred[(y as usize * W + x as usize) * 3..][..3].copy_from_slice(&[v, v, v]);
        }
    }
    let r = feed(&mut m, &picture(&blurred), t0, 1, 12);
    assert!(r.sharpness < 0.5, "{r:?}");
    assert_eq!(r.conditions, vec![Condition::Blurred], "{r:?}");
    assert!(!r.pauses_rules());
}

#[test]
fn the_same_picture_for_frozen_after_is_frozen_and_a_live_sensor_never_is() {
    let (mut m, t0) = monitor_with_reference();
    let mut r = HealthReport::default();
    for i in 1..60 {
        r = m.observe(&live(i), t0 + Duration::from_secs(i)).report;
    }
    assert!(r.conditions.is_empty(), "live: {r:?}");
    let still = live(100);
    let r = feed(&mut m, &still, t0, 60, 29);
    assert!(r.conditions.is_empty(), "29 s: {r:?}");
    let r = feed(&mut m, &still, t0, 89, 3);
    assert_eq!(r.conditions, vec![Condition::Frozen], "{r:?}");
}

#[test]
fn dusk_and_the_ir_switch_raise_nothing() {
    let (mut m, t0) = monitor_with_reference();
    let mut r = HealthReport::default();
    // Brightness falls to 30 % over two minutes, then the IR switch: grey, brighter, noisier.
    let clean = render(0.0, 0.0, 0.0, grey);
    let tinted = |f: &dyn Fn(usize, f32) -> [u8; 3]| {
        let mut out = clean.clone();
        for (i, px) in out.chunks_exact_mut(3).enumerate() {
            px.copy_from_slice(&f(i, px[0] as f32));
        }
        picture(&out)
    };
    for i in 1..=120u64 {
        let k = 1.0 - 0.7 * i as f32 / 120.0;
        let p = tinted(&|at, l| {
            let n = ((at * 7 + i as usize) % 3) as f32;
            [
                (l * k + n) as u8,
                (l * k * 0.95 + n) as u8,
                (l * k * 0.85 + n) as u8,
            ]
        });
        r = m.observe(&p, t0 + Duration::from_secs(i)).report;
        assert!(r.conditions.is_empty(), "dusk at {i} s: {r:?}");
    }
    for i in 121..=150u64 {
        let p = tinted(&|at, l| {
            let v = (l * 0.7 + ((at * 11 + i as usize) % 9) as f32) as u8;
            [v, v, v]
        });
        r = m.observe(&p, t0 + Duration::from_secs(i)).report;
    }
    assert!(r.conditions.is_empty(), "IR: {r:?}");
}

#[test]
fn a_lost_colour_channel_is_colour_and_a_blown_out_picture_is_brightness() {
    let (mut m, t0) = monitor_with_reference();
    let green = picture(&render(0.0, 0.0, 0.0, |_, _, l| [0, l as u8, 0]));
    let r = feed(&mut m, &green, t0, 1, 12);
    assert!(r.conditions.contains(&Condition::Colour), "{r:?}");
    let (mut m, t0) = monitor_with_reference();
    let blown = picture(&render(0.0, 0.0, 0.0, |_, _, l| {
        let v = (l * 4.0).min(255.0) as u8;
        [v, v, v]
    }));
    let r = feed(&mut m, &blown, t0, 1, 12);
    assert!(r.conditions.contains(&Condition::Brightness), "{r:?}");
}

#[test]
fn a_reference_survives_its_bytes_and_garbage_is_refused() {
    let (m, _) = monitor_with_reference();
    let r = m.reference().unwrap();
    assert_eq!(&Reference::from_bytes(&r.to_bytes()).unwrap(), r);
    let mut short = r.to_bytes();
    short.truncate(short.len() - 1);
    assert!(matches!(
        Reference::from_bytes(&short),
        Err(HealthError::Length { .. })
    ));
    assert!(matches!(
        Reference::from_bytes(b"not a reference"),
        Err(HealthError::NotAReference { .. })
    ));
}

#[test]
fn retake_forgets_the_reference_and_the_raised_conditions() {
    let (mut m, t0) = monitor_with_reference();
    let moved = picture(&render(0.08 * W as f32, 0.0, 3.0, grey));
    assert_eq!(
        feed(&mut m, &moved, t0, 1, 12).conditions,
        vec![Condition::Moved]
    );
    m.retake();
    assert!(
        m.observe(&moved, t0 + Duration::from_secs(13))
            .reference_taken
    );
    assert!(feed(&mut m, &moved, t0, 14, 12).conditions.is_empty());
}
