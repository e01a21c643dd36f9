//! Fits against a simulated pole camera, degenerate calibrations, and a property test over random maps.

use super::*;
use crate::rules::Polygon;
use proptest::prelude::*;

/// Ground → image (normalised) of a pinhole camera `height` m up a pole at the ground origin, looking
/// along +Y, tilted down by `tilt_deg`, with focal length `focal` image widths (1.0 ≈ 53° field of view).
fn pole_camera(height: f64, tilt_deg: f64, focal: f64) -> Mat3 {
    let (s, c) = tilt_deg.to_radians().sin_cos();
    [
        [focal, 0.5 * c, 0.5 * height * s],
        [0.0, 0.5 * c - focal * s, height * (focal * c + 0.5 * s)],
        [0.0, c, height * s],
    ]
}

fn apply(m: &Mat3, p: [f64; 2]) -> [f64; 2] {
    let w = m[2][0] * p[0] + m[2][1] * p[1] + m[2][2];
    [
        (m[0][0] * p[0] + m[0][1] * p[1] + m[0][2]) / w,
        (m[1][0] * p[0] + m[1][1] * p[1] + m[1][2]) / w,
    ]
}

fn inverse(m: &Mat3) -> Mat3 {
    let d = det3(m);
    let c = |i: usize, j: usize| {
        let (r0, r1) = ((i + 1) % 3, (i + 2) % 3);
        let (c0, c1) = ((j + 1) % 3, (j + 2) % 3);
        m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0]
    };
    let mut inv = [[0.0; 3]; 3];
    for (i, row) in inv.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = c(j, i) / d;
        }
    }
    inv
}

fn distance(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}

/// A 6 m pole camera tilted 30° down, and image points of a 12 m × 20 m patch of ground in front of it.
fn surveyed(ground: &[[f64; 2]]) -> (Mat3, Vec<[f64; 2]>) {
    let cam = pole_camera(6.0, 30.0, 1.0);
    (cam, ground.iter().map(|&g| apply(&cam, g)).collect())
}

const FOUR: [[f64; 2]; 4] = [[-6.0, 6.0], [6.0, 6.0], [6.0, 26.0], [-6.0, 26.0]];

#[test]
fn four_pairs_recover_a_known_homography_exactly() {
    let (cam, image) = surveyed(&FOUR);
    let h = Homography::fit(&image, &FOUR).unwrap();
    assert!(h.max_residual_m(&image, &FOUR) < 1e-9);
    let truth = inverse(&cam);
    for x in [0.05, 0.3, 0.5, 0.8, 0.95] {
        for y in [0.2, 0.5, 0.9] {
            let got = h.project(x, y).unwrap();
            assert!(
                distance(got, apply(&truth, [x, y])) < 1e-8,
                "({x}, {y}) -> {got:?}"
            );
        }
    }
}

#[test]
fn eight_noisy_pairs_fit_within_the_noise() {
    let ground = [
        [-6.0, 6.0],
        [0.0, 7.0],
        [6.0, 6.0],
        [7.0, 15.0],
        [6.0, 26.0],
        [0.0, 24.0],
        [-6.0, 26.0],
        [-7.0, 15.0],
    ];
    let (cam, image) = surveyed(&ground);
    // ±2 cm of survey error, as a tape or RTK receiver would leave.
    let noise = [
        [0.02, -0.01],
        [-0.015, 0.02],
        [0.01, 0.01],
        [-0.02, -0.02],
        [0.0, 0.015],
        [0.02, 0.0],
        [-0.01, -0.015],
        [0.015, -0.02],
    ];
    let noisy: Vec<[f64; 2]> = ground
        .iter()
        .zip(noise)
        .map(|(g, n)| [g[0] + n[0], g[1] + n[1]])
        .collect();
    let h = Homography::fit(&image, &noisy).unwrap();
    let residual = h.max_residual_m(&image, &noisy);
    assert!(residual < 0.05, "residual {residual} m");
    let truth = inverse(&cam);
    for p in [[0.5, 0.5], [0.2, 0.8], [0.7, 0.3]] {
        assert!(distance(h.project(p[0], p[1]).unwrap(), apply(&truth, p)) < 0.05);
    }
}

#[test]
fn projected_unit_square_has_its_true_area() {
    let (cam, image) = surveyed(&FOUR);
    let h = Homography::fit(&image, &FOUR).unwrap();
    for corner in [[-0.5, 7.0], [3.0, 12.0], [-4.0, 22.0]] {
        let [x, y] = corner;
        let square = [[x, y], [x + 1.0, y], [x + 1.0, y + 1.0], [x, y + 1.0]];
        let zone = Polygon::new(&square.map(|g| apply(&cam, g)));
        let area = h.area_m2(&zone.points).unwrap();
        // The zone's vertices are f32, which limits the agreement.
        assert!((area - 1.0).abs() < 1e-4, "square at {corner:?}: {area} m²");
    }
}

#[test]
fn the_whole_calibration_patch_has_its_surveyed_area() {
    let (_, image) = surveyed(&FOUR);
    let h = Homography::fit(&image, &FOUR).unwrap();
    let zone = Polygon::new(&image);
    assert!((h.area_m2(&zone.points).unwrap() - 240.0).abs() < 0.01);
}

#[test]
fn utm_sized_offsets_cost_no_precision() {
    let offset: Vec<[f64; 2]> = FOUR
        .iter()
        .map(|g| [g[0] + 500_000.0, g[1] + 4_400_000.0])
        .collect();
    let (cam, image) = surveyed(&FOUR);
    let h = Homography::fit(&image, &offset).unwrap();
    assert!(h.max_residual_m(&image, &offset) < 1e-6);
    let square = [[1.0, 10.0], [2.0, 10.0], [2.0, 11.0], [1.0, 11.0]];
    let zone = Polygon::new(&square.map(|g| apply(&cam, g)));
    assert!((h.area_m2(&zone.points).unwrap() - 1.0).abs() < 1e-4);
}

#[test]
fn a_point_above_the_horizon_projects_to_nothing() {
    // Tilted only 10° down, the horizon crosses the image at y = 0.5 - tan 10° ≈ 0.324.
    let cam = pole_camera(6.0, 10.0, 1.0);
    let image: Vec<[f64; 2]> = FOUR.iter().map(|&g| apply(&cam, g)).collect();
    let h = Homography::fit(&image, &FOUR).unwrap();
    assert!(h.project(0.5, 0.2).is_none(), "sky");
    assert!(
        h.project(0.5, 0.3239).is_none(),
        "a hair below the horizon is still too far to mean anything"
    );
    assert!(h.project(0.5, 0.9).is_some());
    let reaching_into_the_sky = [(0.4, 0.9), (0.6, 0.9), (0.6, 0.2), (0.4, 0.2)];
    assert_eq!(h.area_m2(&reaching_into_the_sky), None);
}

#[test]
fn three_collinear_image_points_of_four_are_degenerate() {
    let image = [[0.1, 0.5], [0.5, 0.5], [0.9, 0.5], [0.5, 0.9]];
    let err = Homography::fit(&image, &FOUR).unwrap_err();
    let reason = Degeneracy::ThreeCollinear {
        set: PointSet::Image,
        a: 0,
        b: 1,
        c: 2,
    };
    assert_eq!(err, HomographyError::Degenerate { reason });
    assert!(
        err.to_string()
            .contains("image points #1 #2 #3 (counting from 1) lie on one line"),
        "{err}"
    );
}

#[test]
fn three_collinear_ground_points_of_four_are_degenerate() {
    let (_, image) = surveyed(&FOUR);
    let ground = [[-6.0, 6.0], [6.0, 6.0], [6.0, 26.0], [6.0, 16.0]];
    let err = Homography::fit(&image, &ground).unwrap_err();
    assert!(
        matches!(
            err,
            HomographyError::Degenerate {
                reason: Degeneracy::ThreeCollinear {
                    set: PointSet::Ground,
                    ..
                }
            }
        ),
        "{err}"
    );
}

#[test]
fn points_all_on_one_line_are_degenerate() {
    let image: Vec<[f64; 2]> = (0..6)
        .map(|i| [0.1 + 0.1 * f64::from(i), 0.2 + 0.1 * f64::from(i)])
        .collect();
    let ground: Vec<[f64; 2]> = (0..6).map(|i| [f64::from(i), f64::from(i * i)]).collect();
    let err = Homography::fit(&image, &ground).unwrap_err();
    assert_eq!(
        err,
        HomographyError::Degenerate {
            reason: Degeneracy::AllCollinear {
                set: PointSet::Image
            }
        }
    );
}

#[test]
fn five_points_with_four_on_a_line_leave_the_mapping_undetermined() {
    let image = [[0.1, 0.5], [0.3, 0.5], [0.6, 0.5], [0.9, 0.5], [0.5, 0.9]];
    let ground = [
        [0.0, 10.0],
        [2.0, 10.0],
        [5.0, 10.0],
        [8.0, 10.0],
        [4.0, 2.0],
    ];
    let err = Homography::fit(&image, &ground).unwrap_err();
    assert!(matches!(err, HomographyError::Degenerate { .. }), "{err}");
}

#[test]
fn a_mistyped_ground_point_shows_in_the_max_residual() {
    let ground = [
        [-6.0, 6.0],
        [0.0, 7.0],
        [6.0, 6.0],
        [7.0, 15.0],
        [6.0, 26.0],
        [0.0, 24.0],
    ];
    let (_, image) = surveyed(&ground);
    let clean = Homography::fit(&image, &ground).unwrap();
    assert!(clean.max_residual_m(&image, &ground) < 1e-9);
    let mut typo = ground;
    typo[3][0] += 2.0;
    let h = Homography::fit(&image, &typo).unwrap();
    let residuals = h.residuals_m(&image, &typo);
    // Least squares spreads the 2 m over every pair; the far point #5 (26 m out) ends up worst, not the
    // culprit #4, so validation should report all residuals rather than blame the worst pair.
    assert!(h.max_residual_m(&image, &typo) > 1.0, "{residuals:?}");
    assert!(residuals[4] > residuals[3], "{residuals:?}");
}

#[test]
fn pairs_listed_in_different_orders_are_caught() {
    let (_, image) = surveyed(&FOUR);
    let swapped = [FOUR[0], FOUR[1], FOUR[3], FOUR[2]];
    assert_eq!(
        Homography::fit(&image, &swapped),
        Err(HomographyError::HorizonBetweenPoints)
    );
}

#[test]
fn bad_counts_and_numbers_are_named() {
    let (_, image) = surveyed(&FOUR);
    assert_eq!(
        Homography::fit(&image[..3], &FOUR[..3]),
        Err(HomographyError::TooFewPoints { found: 3 })
    );
    assert_eq!(
        Homography::fit(&image, &FOUR[..3]),
        Err(HomographyError::LengthMismatch {
            image: 4,
            ground: 3
        })
    );
    let mut nan = FOUR;
    nan[2][1] = f64::NAN;
    let err = Homography::fit(&image, &nan).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ground point #3 (counting from 1) is not a finite number"
    );
}

/// An image→ground map: a gentle perspective and shear, then metres scale and an arbitrary origin.
/// Also returns the metres per image unit, the yardstick for "relative".
fn arb_homography() -> impl Strategy<Value = (Mat3, f64)> {
    (
        prop::array::uniform4(-0.3f64..0.3),
        prop::array::uniform2(-0.4f64..0.4),
        5.0f64..50.0,
        prop::array::uniform2(-1000.0f64..1000.0),
    )
        .prop_map(|(e, p, s, t)| {
            let persp = [
                [1.0 + e[0], e[1], 0.0],
                [e[2], 1.0 + e[3], 0.0],
                [p[0], p[1], 1.0],
            ];
            (
                mul3(&[[s, 0.0, t[0]], [0.0, -s, t[1]], [0.0, 0.0, 1.0]], &persp),
                s,
            )
        })
}

proptest! {
    #[test]
    fn fit_reproduces_the_projection_it_was_given(
        (truth, scale) in arb_homography(),
        jitter in prop::array::uniform8(-0.05f64..0.05),
        extra in prop::collection::vec(prop::array::uniform2(0.0f64..1.0), 0..8),
        probes in prop::collection::vec(prop::array::uniform2(0.0f64..1.0), 1..10),
    ) {
        let mut image: Vec<[f64; 2]> = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
            .iter()
            .enumerate()
            .map(|(i, c)| [c[0] + jitter[2 * i], c[1] + jitter[2 * i + 1]])
            .collect();
        image.extend(extra);
        let ground: Vec<[f64; 2]> = image.iter().map(|&p| apply(&truth, p)).collect();
        let h = Homography::fit(&image, &ground).unwrap();
        for p in probes {
            let err = distance(h.project(p[0], p[1]).unwrap(), apply(&truth, p));
            prop_assert!(err <= 1e-6 * scale, "{p:?}: off by {err} m");
        }
    }
}
