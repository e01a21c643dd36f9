//! Ground-plane homography: the map from normalised image points (0..1, origin top-left) to metres on the
//! ground, fitted from four or more surveyed image↔ground point pairs. It turns a zone drawn on the image
//! into a real area (for densities) and a foot point into a ground position. Pure numerics, no I/O.
//!
//! The fit is the normalised DLT (Hartley): each point set is moved to its centroid and scaled to a mean
//! distance of √2, the eight unknowns (h33 = 1) are solved by least squares, and the result is
//! de-normalised. Fixing h33 = 1 is safe in the normalised frame: the image origin there is the centroid of
//! the calibration points, and since w is affine in the image point, w at the centroid is the mean of the
//! calibration points' w, which all lie on the visible side of the horizon and so cannot be 0.
//! The least squares uses Householder QR rather than the normal equations, which would square the
//! condition number of an already perspective-stretched system.

use thiserror::Error;

/// Fewest point pairs that determine a homography.
pub const MIN_POINTS: usize = 4;

/// After fitting, H is scaled so that w averages 1 over the calibration points. A point whose w falls
/// below this is treated as beyond the horizon: there one image unit spans over 1000× the ground it spans
/// at the calibration points, so any position or area derived from it is noise.
const HORIZON_W: f64 = 1e-3;

/// Three points count as collinear when the middle one strays from the line through the others by less
/// than this fraction of their spread (1 px on a 1000 px image).
const COLLINEAR_TOL: f64 = 1e-3;

/// A Householder pivot below this fraction of the largest column norm means the pairs leave a direction
/// of the eight unknowns undetermined.
const RANK_TOL: f64 = 1e-9;

/// |det H| / ‖H‖³ (normalised frame) below this means the fit squashes the plane onto a line.
const SINGULAR_TOL: f64 = 1e-9;

/// Which of the two point lists a problem was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointSet {
    Image,
    Ground,
}

impl std::fmt::Display for PointSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PointSet::Image => "image",
            PointSet::Ground => "ground",
        })
    }
}

/// Why a set of pairs does not determine a usable mapping.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Degeneracy {
    #[error("{set} points #{} #{} #{} (counting from 1) lie on one line", .a + 1, .b + 1, .c + 1)]
    ThreeCollinear {
        set: PointSet,
        a: usize,
        b: usize,
        c: usize,
    },
    #[error("all {set} points lie on (nearly) one line or one spot")]
    AllCollinear { set: PointSet },
    #[error(
        "the pairs leave the mapping undetermined (too many points on one line or on one spot)"
    )]
    RankDeficient,
    #[error(
        "the only mapping that fits squashes the ground onto a line (image and ground shapes disagree)"
    )]
    Singular,
}

/// A calibration that cannot be turned into a ground homography.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum HomographyError {
    #[error(
        "{image} image points but {ground} ground points; list the ground point of every image point, in the same order"
    )]
    LengthMismatch { image: usize, ground: usize },
    #[error(
        "{found} point pair(s); a ground homography needs at least 4, spread over the area with no 3 on one line"
    )]
    TooFewPoints { found: usize },
    #[error("{set} point #{} (counting from 1) is not a finite number", .index + 1)]
    NonFinite { set: PointSet, index: usize },
    #[error(
        "degenerate calibration: {reason}; use at least 4 points spread over the ground, no 3 of them on one line"
    )]
    Degenerate { reason: Degeneracy },
    #[error(
        "the fitted mapping puts the horizon between calibration points, which no camera can see; check that the image and ground points are listed in the same order"
    )]
    HorizonBetweenPoints,
}

/// Image → ground mapping. `h` is scaled so that w averages 1 over the calibration points and is positive
/// on the visible side of the horizon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Homography {
    h: [[f64; 3]; 3],
}

type Mat3 = [[f64; 3]; 3];

impl Homography {
    /// Fits the mapping from `image[i]` (normalised 0..1) to `ground[i]` (metres, any planar frame);
    /// exact for 4 pairs, least squares (algebraic error) for more.
    pub fn fit(image: &[[f64; 2]], ground: &[[f64; 2]]) -> Result<Self, HomographyError> {
        check_input(image, ground)?;
        for (set, pts) in [(PointSet::Image, image), (PointSet::Ground, ground)] {
            check_spread(set, pts)?;
        }
        let degenerate = |reason| HomographyError::Degenerate { reason };
        let ti = hartley(image).ok_or(degenerate(Degeneracy::AllCollinear {
            set: PointSet::Image,
        }))?;
        let tg = hartley(ground).ok_or(degenerate(Degeneracy::AllCollinear {
            set: PointSet::Ground,
        }))?;

        let mut a = Vec::with_capacity(2 * image.len());
        let mut b = Vec::with_capacity(2 * image.len());
        for (p, q) in image.iter().zip(ground) {
            let [x, y] = ti.apply(*p);
            let [gx, gy] = tg.apply(*q);
            a.push([x, y, 1.0, 0.0, 0.0, 0.0, -x * gx, -y * gx]);
            b.push(gx);
            a.push([0.0, 0.0, 0.0, x, y, 1.0, -x * gy, -y * gy]);
            b.push(gy);
        }
        let s = least_squares(&mut a, &mut b).ok_or(degenerate(Degeneracy::RankDeficient))?;
        let hn = [[s[0], s[1], s[2]], [s[3], s[4], s[5]], [s[6], s[7], 1.0]];
        let frob = hn.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
        if det3(&hn).abs() < SINGULAR_TOL * frob.powi(3) {
            return Err(degenerate(Degeneracy::Singular));
        }

        let h = mul3(&mul3(&tg.inverse(), &hn), &ti.matrix());
        Self::oriented(h, image)
    }

    /// Flips and scales `h` so that w is positive and averages 1 over the calibration points.
    fn oriented(mut h: Mat3, image: &[[f64; 2]]) -> Result<Self, HomographyError> {
        let ws: Vec<f64> = image
            .iter()
            .map(|&[x, y]| h[2][0] * x + h[2][1] * y + h[2][2])
            .collect();
        let positive = ws.iter().filter(|w| **w > 0.0).count();
        if positive != 0 && positive != ws.len() {
            return Err(HomographyError::HorizonBetweenPoints);
        }
        let mean_w = ws.iter().sum::<f64>() / ws.len() as f64;
        if !mean_w.is_normal() {
            return Err(HomographyError::Degenerate {
                reason: Degeneracy::Singular,
            });
        }
        h.iter_mut().flatten().for_each(|v| *v /= mean_w);
        Ok(Self { h })
    }

    /// The 3×3 matrix (row-major) mapping homogeneous image points to homogeneous ground points.
    pub fn matrix(&self) -> [[f64; 3]; 3] {
        self.h
    }

    /// Ground position in metres of image point (`x`, `y`); `None` beyond (or within a hair of) the horizon.
    pub fn project(&self, x: f64, y: f64) -> Option<[f64; 2]> {
        let h = &self.h;
        let w = h[2][0] * x + h[2][1] * y + h[2][2];
        if w.is_nan() || w <= HORIZON_W {
            return None;
        }
        let gx = (h[0][0] * x + h[0][1] * y + h[0][2]) / w;
        let gy = (h[1][0] * x + h[1][1] * y + h[1][2]) / w;
        Some([gx, gy])
    }

    /// Distance in metres between where each image point projects and its surveyed ground point;
    /// infinite where one projects beyond the horizon. Pairs past the shorter list are ignored. With
    /// exactly 4 pairs the fit is exact and these are all ~0, so only extra pairs can expose a typo; and
    /// since least squares spreads one bad pair's error over all, the worst pair need not be the bad one.
    pub fn residuals_m(&self, image: &[[f64; 2]], ground: &[[f64; 2]]) -> Vec<f64> {
        image
            .iter()
            .zip(ground)
            .map(|(p, q)| match self.project(p[0], p[1]) {
                Some(g) => (g[0] - q[0]).hypot(g[1] - q[1]),
                None => f64::INFINITY,
            })
            .collect()
    }

    /// The worst of [`Self::residuals_m`]: what configuration validation compares with its tolerance.
    pub fn max_residual_m(&self, image: &[[f64; 2]], ground: &[[f64; 2]]) -> f64 {
        self.residuals_m(image, ground)
            .into_iter()
            .fold(0.0, f64::max)
    }

    /// Ground area in m² of an image polygon; `None` if any vertex is beyond the horizon.
    ///
    /// Exact, not an approximation: a homography maps straight edges to straight edges, and when every
    /// vertex is on the visible side so is every edge (w is affine, hence positive on the convex hull).
    /// Fewer than 3 vertices enclose nothing: `Some(0.0)`.
    pub fn area_m2(&self, polygon: &[(f32, f32)]) -> Option<f64> {
        let ground = polygon
            .iter()
            .map(|&(x, y)| self.project(f64::from(x), f64::from(y)))
            .collect::<Option<Vec<_>>>()?;
        let Some(&[ox, oy]) = ground.first() else {
            return Some(0.0);
        };
        // Relative to the first vertex: ground frames such as UTM carry offsets of millions of metres
        // that would otherwise cancel away the area's digits.
        let twice: f64 = (0..ground.len())
            .map(|i| {
                let [ax, ay] = ground[i];
                let [bx, by] = ground[(i + 1) % ground.len()];
                (ax - ox) * (by - oy) - (bx - ox) * (ay - oy)
            })
            .sum();
        Some(twice.abs() / 2.0)
    }
}

fn check_input(image: &[[f64; 2]], ground: &[[f64; 2]]) -> Result<(), HomographyError> {
    if image.len() != ground.len() {
        return Err(HomographyError::LengthMismatch {
            image: image.len(),
            ground: ground.len(),
        });
    }
    if image.len() < MIN_POINTS {
        return Err(HomographyError::TooFewPoints { found: image.len() });
    }
    for (set, pts) in [(PointSet::Image, image), (PointSet::Ground, ground)] {
        if let Some(index) = pts
            .iter()
            .position(|p| !(p[0].is_finite() && p[1].is_finite()))
        {
            return Err(HomographyError::NonFinite { set, index });
        }
    }
    Ok(())
}

/// With exactly 4 pairs every point matters, so any collinear triple is fatal and worth naming; with more,
/// only all-on-one-line is certain here and subtler cases are left to the rank test.
fn check_spread(set: PointSet, pts: &[[f64; 2]]) -> Result<(), HomographyError> {
    let reason = if pts.len() == MIN_POINTS {
        const TRIPLES: [[usize; 3]; 4] = [[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]];
        TRIPLES
            .iter()
            .find(|t| collinear(pts[t[0]], pts[t[1]], pts[t[2]]))
            .map(|&[a, b, c]| Degeneracy::ThreeCollinear { set, a, b, c })
    } else {
        all_collinear(pts).then_some(Degeneracy::AllCollinear { set })
    };
    match reason {
        Some(reason) => Err(HomographyError::Degenerate { reason }),
        None => Ok(()),
    }
}

fn collinear(a: [f64; 2], b: [f64; 2], c: [f64; 2]) -> bool {
    let d = |p: [f64; 2], q: [f64; 2]| [q[0] - p[0], q[1] - p[1]];
    let (ab, ac, bc) = (d(a, b), d(a, c), d(b, c));
    let len2 = |v: [f64; 2]| v[0] * v[0] + v[1] * v[1];
    let longest2 = len2(ab).max(len2(ac)).max(len2(bc));
    let cross = ab[0] * ac[1] - ab[1] * ac[0];
    // |cross| / longest = distance of the third point from the longest side's line.
    cross.abs() <= COLLINEAR_TOL * longest2
}

/// All points on one line: the smaller principal spread is negligible next to the larger.
fn all_collinear(pts: &[[f64; 2]]) -> bool {
    let n = pts.len() as f64;
    let cx = pts.iter().map(|p| p[0]).sum::<f64>() / n;
    let cy = pts.iter().map(|p| p[1]).sum::<f64>() / n;
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for p in pts {
        let (dx, dy) = (p[0] - cx, p[1] - cy);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    let half_trace = (sxx + syy) / 2.0;
    let gap = (((sxx - syy) / 2.0).powi(2) + sxy * sxy).sqrt();
    let (small, large) = (half_trace - gap, half_trace + gap);
    small <= COLLINEAR_TOL * COLLINEAR_TOL * large
}

/// Similarity that moves points to their centroid and scales them to mean distance √2.
struct Normaliser {
    s: f64,
    cx: f64,
    cy: f64,
}

impl Normaliser {
    fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        [self.s * (p[0] - self.cx), self.s * (p[1] - self.cy)]
    }
    fn matrix(&self) -> Mat3 {
        let s = self.s;
        [
            [s, 0.0, -s * self.cx],
            [0.0, s, -s * self.cy],
            [0.0, 0.0, 1.0],
        ]
    }
    fn inverse(&self) -> Mat3 {
        let r = 1.0 / self.s;
        [[r, 0.0, self.cx], [0.0, r, self.cy], [0.0, 0.0, 1.0]]
    }
}

/// `None` when all points coincide.
fn hartley(pts: &[[f64; 2]]) -> Option<Normaliser> {
    let n = pts.len() as f64;
    let cx = pts.iter().map(|p| p[0]).sum::<f64>() / n;
    let cy = pts.iter().map(|p| p[1]).sum::<f64>() / n;
    let mean = pts
        .iter()
        .map(|p| (p[0] - cx).hypot(p[1] - cy))
        .sum::<f64>()
        / n;
    let s = std::f64::consts::SQRT_2 / mean;
    s.is_finite().then_some(Normaliser { s, cx, cy })
}

/// Least-squares solution of `a x = b` (a is m×8, m ≥ 8) by Householder QR; `None` if rank < 8.
/// Overwrites `a` and `b`.
fn least_squares(a: &mut [[f64; 8]], b: &mut [f64]) -> Option<[f64; 8]> {
    let col_norm = |a: &[[f64; 8]], j: usize, from: usize| {
        a[from..].iter().map(|r| r[j] * r[j]).sum::<f64>().sqrt()
    };
    let scale = (0..8).map(|j| col_norm(a, j, 0)).fold(0.0, f64::max);
    for k in 0..8 {
        let norm = col_norm(a, k, k);
        if norm.is_nan() || norm <= RANK_TOL * scale {
            return None;
        }
        // Reflect column k onto ±norm·e_k, choosing the sign that avoids cancellation.
        let alpha = if a[k][k] > 0.0 { -norm } else { norm };
        let rows = &mut a[k..];
        let mut v: Vec<f64> = rows.iter().map(|r| r[k]).collect();
        v[0] -= alpha;
        let vv: f64 = v.iter().map(|x| x * x).sum();
        for j in k..8 {
            let f = 2.0 * rows.iter().zip(&v).map(|(r, vi)| vi * r[j]).sum::<f64>() / vv;
            rows.iter_mut().zip(&v).for_each(|(r, vi)| r[j] -= f * vi);
        }
        let rhs = &mut b[k..];
        let f = 2.0 * rhs.iter().zip(&v).map(|(bi, vi)| vi * bi).sum::<f64>() / vv;
        rhs.iter_mut().zip(&v).for_each(|(bi, vi)| *bi -= f * vi);
    }
    let mut x = [0.0; 8];
    for k in (0..8).rev() {
        let tail: f64 = (k + 1..8).map(|j| a[k][j] * x[j]).sum();
        x[k] = (b[k] - tail) / a[k][k];
    }
    Some(x)
}

fn mul3(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut c = [[0.0; 3]; 3];
    for (i, row) in c.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

fn det3(m: &Mat3) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

#[cfg(test)]
mod tests;
