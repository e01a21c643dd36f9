//! Where the view went: the shift, rotation and zoom that carry the reference thumbnail onto the current
//! one, by Fourier–Mellin registration. The magnitude of a picture's spectrum ignores translation; in
//! log-polar coordinates a rotation or zoom of the picture becomes a plain shift of that magnitude, which
//! phase correlation finds. The current picture is then turned back and phase-correlated with the reference
//! for the translation. Phase correlation whitens the spectrum, so every structure of the scene votes for
//! one shift: people and cars walking through move their own few votes, not the peak, and a change of
//! brightness (dusk, the IR switch) changes nothing.

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use std::f32::consts::PI;
use std::sync::Arc;

/// Side of the square FFT grid; the thumbnail (at most this wide and high) sits in its middle.
pub(super) const GRID: usize = 128;
/// Angle bins of the log-polar magnitude over half a turn (a magnitude spectrum is symmetric): 1° each.
const ANGLES: usize = 180;
/// Radius bins of the log-polar magnitude.
const RADII: usize = 64;
/// Radii below this many frequency bins carry the windowing's own shape, not the scene's.
const MIN_RADIUS: f32 = 3.0;

/// The transform carrying the reference onto the current view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Registration {
    /// Shift of the picture's content, in thumbnail pixels (right and down are positive).
    pub dx: f32,
    pub dy: f32,
    /// Rotation of the content in degrees, counter-clockwise positive.
    pub degrees: f32,
    /// Zoom factor (above 1: the content looks larger).
    pub scale: f32,
    /// Height of the translation peak, 0..1: 1 is a perfect match, unrelated pictures give ≈ 0.01–0.03.
    pub confidence: f32,
}

/// Reusable FFT plans and buffers; one per camera.
pub(super) struct Registrar {
    fwd: Arc<dyn Fft<f32>>,
    inv: Arc<dyn Fft<f32>>,
    lp_fwd_row: Arc<dyn Fft<f32>>,
    lp_inv_row: Arc<dyn Fft<f32>>,
    lp_fwd_col: Arc<dyn Fft<f32>>,
    lp_inv_col: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    highpass: Vec<f32>,
    scratch: Vec<Complex32>,
    column: Vec<Complex32>,
}

/// What the registration keeps of a reference: its spectrum and its log-polar magnitude spectrum.
#[derive(Clone)]
pub(super) struct Prepared {
    spectrum: Vec<Complex32>,
    log_polar: Vec<Complex32>,
}

impl Registrar {
    pub(super) fn new() -> Self {
        let mut planner = FftPlanner::new();
        let window: Vec<f32> = (0..GRID)
            .map(|i| 0.5 - 0.5 * (2.0 * PI * (i as f32 + 0.5) / GRID as f32).cos())
            .collect();
        // The usual Fourier–Mellin high-pass: (1 − X)(2 − X) with X = cos(πξ)cos(πη), ξ and η in −½..½.
        let mut highpass = vec![0.0; GRID * GRID];
        for y in 0..GRID {
            for x in 0..GRID {
                let (fx, fy) = (
                    centred(x) as f32 / GRID as f32,
                    centred(y) as f32 / GRID as f32,
                );
                let c = (PI * fx).cos() * (PI * fy).cos();
                highpass[y * GRID + x] = (1.0 - c) * (2.0 - c);
            }
        }
        Registrar {
            fwd: planner.plan_fft_forward(GRID),
            inv: planner.plan_fft_inverse(GRID),
            lp_fwd_row: planner.plan_fft_forward(RADII),
            lp_inv_row: planner.plan_fft_inverse(RADII),
            lp_fwd_col: planner.plan_fft_forward(ANGLES),
            lp_inv_col: planner.plan_fft_inverse(ANGLES),
            window,
            highpass,
            scratch: Vec::new(),
            column: Vec::new(),
        }
    }

    /// The spectra of a `w × h` grey thumbnail (row-major).
    pub(super) fn prepare(&mut self, grey: &[f32], w: usize, h: usize) -> Prepared {
        let spectrum = self.spectrum(grey, w, h);
        let log_polar = self.log_polar(&spectrum);
        Prepared {
            spectrum,
            log_polar,
        }
    }

    /// How the view moved from `reference` to the `w × h` thumbnail `grey`.
    pub(super) fn register(
        &mut self,
        reference: &Prepared,
        grey: &[f32],
        w: usize,
        h: usize,
    ) -> Registration {
        let current = self.prepare(grey, w, h);
        let (lp_r, lp_a, _) = self.correlate_log_polar(&reference.log_polar, &current.log_polar);
        let degrees = lp_a * 180.0 / ANGLES as f32;
        let scale = (-lp_r * log_step()).exp();
        // Turn the current picture back (rotation and zoom about the centre), then find the translation.
        let undone = warp(grey, w, h, -degrees, 1.0 / scale);
        let back = self.spectrum(&undone, w, h);
        let (tx, ty, confidence) = self.correlate(&reference.spectrum, &back);
        // The translation was measured in the turned-back frame: carry it into the picture's own.
        let (s, c) = (degrees.to_radians().sin(), degrees.to_radians().cos());
        let (tx, ty) = (tx * scale, ty * scale);
        Registration {
            dx: c * tx + s * ty,
            dy: -s * tx + c * ty,
            degrees,
            scale,
            confidence,
        }
    }

    /// Windowed, mean-free thumbnail on the grid → its 2-D spectrum.
    fn spectrum(&mut self, grey: &[f32], w: usize, h: usize) -> Vec<Complex32> {
        let mut buf = vec![Complex32::default(); GRID * GRID];
        let mean = grey.iter().sum::<f32>() / grey.len().max(1) as f32;
        let (ox, oy) = ((GRID - w) / 2, (GRID - h) / 2);
        for y in 0..h {
            let wy = self.window[(y * GRID) / h];
            for x in 0..w {
                let wx = self.window[(x * GRID) / w];
                buf[(y + oy) * GRID + x + ox].re = (grey[y * w + x] - mean) * wx * wy;
            }
        }
        let (row, col) = (self.fwd.clone(), self.fwd.clone());
        self.fft2(&mut buf, GRID, GRID, &*row, &*col);
        buf
    }

    /// The high-passed magnitude of `spectrum` sampled on log-polar axes, as a spectrum itself.
    fn log_polar(&mut self, spectrum: &[Complex32]) -> Vec<Complex32> {
        let mag: Vec<f32> = spectrum
            .iter()
            .zip(&self.highpass)
            .map(|(v, hp)| v.norm() * hp)
            .collect();
        let mut lp = vec![Complex32::default(); ANGLES * RADII];
        for a in 0..ANGLES {
            let theta = PI * a as f32 / ANGLES as f32;
            let (s, c) = theta.sin_cos();
            for r in 0..RADII {
                let radius = MIN_RADIUS * (r as f32 * log_step()).exp();
                lp[a * RADII + r].re = sample_centred(&mag, radius * c, -radius * s);
            }
        }
        let (row, col) = (self.lp_fwd_row.clone(), self.lp_fwd_col.clone());
        self.fft2(&mut lp, RADII, ANGLES, &*row, &*col);
        lp
    }

    /// Phase correlation of two spectra on the grid: the shift of `b` against `a` and the peak's height.
    fn correlate(&mut self, a: &[Complex32], b: &[Complex32]) -> (f32, f32, f32) {
        let mut r = cross_power(a, b);
        let (row, col) = (self.inv.clone(), self.inv.clone());
        self.fft2(&mut r, GRID, GRID, &*row, &*col);
        peak(&r, GRID, GRID)
    }

    /// Phase correlation of two log-polar spectra: (radius shift, angle shift, peak height).
    fn correlate_log_polar(&mut self, a: &[Complex32], b: &[Complex32]) -> (f32, f32, f32) {
        let mut r = cross_power(a, b);
        let (row, col) = (self.lp_inv_row.clone(), self.lp_inv_col.clone());
        self.fft2(&mut r, RADII, ANGLES, &*row, &*col);
        peak(&r, RADII, ANGLES)
    }

    /// In-place 2-D transform of a `w × h` row-major buffer: rows with `row`, then columns with `col`.
    fn fft2(
        &mut self,
        buf: &mut [Complex32],
        w: usize,
        h: usize,
        row: &dyn Fft<f32>,
        col: &dyn Fft<f32>,
    ) {
        let need = row
            .get_inplace_scratch_len()
            .max(col.get_inplace_scratch_len());
        self.scratch.resize(need, Complex32::default());
        for r in buf.chunks_exact_mut(w) {
            row.process_with_scratch(r, &mut self.scratch);
        }
        self.column.resize(h, Complex32::default());
        for x in 0..w {
            for y in 0..h {
                self.column[y] = buf[y * w + x];
            }
            col.process_with_scratch(&mut self.column, &mut self.scratch);
            for y in 0..h {
                buf[y * w + x] = self.column[y];
            }
        }
    }
}

/// Natural-log radius step of the log-polar axes: `RADII` bins from `MIN_RADIUS` to just inside the grid's
/// Nyquist circle.
fn log_step() -> f32 {
    ((GRID as f32 / 2.0 - 1.0) / MIN_RADIUS).ln() / RADII as f32
}

/// Signed frequency of FFT bin `i`.
fn centred(i: usize) -> isize {
    if i < GRID / 2 {
        i as isize
    } else {
        i as isize - GRID as isize
    }
}

/// Bilinear sample of an unshifted FFT-ordered grid at signed frequency (`fx`, `fy`).
fn sample_centred(mag: &[f32], fx: f32, fy: f32) -> f32 {
    let (x0, y0) = (fx.floor(), fy.floor());
    let (ax, ay) = (fx - x0, fy - y0);
    let at = |x: f32, y: f32| {
        let xi = (x as isize).rem_euclid(GRID as isize) as usize;
        let yi = (y as isize).rem_euclid(GRID as isize) as usize;
        mag[yi * GRID + xi]
    };
    at(x0, y0) * (1.0 - ax) * (1.0 - ay)
        + at(x0 + 1.0, y0) * ax * (1.0 - ay)
        + at(x0, y0 + 1.0) * (1.0 - ax) * ay
        + at(x0 + 1.0, y0 + 1.0) * ax * ay
}

/// The normalised cross-power spectrum conj(A)·B / |conj(A)·B|.
fn cross_power(a: &[Complex32], b: &[Complex32]) -> Vec<Complex32> {
    a.iter()
        .zip(b)
        .map(|(a, b)| {
            let p = a.conj() * b;
            let n = p.norm();
            if n > 1e-12 {
                p / n
            } else {
                Complex32::default()
            }
        })
        .collect()
}

/// The highest cell of a correlation surface, refined to a fraction of a cell by a parabola through its
/// neighbours; shifts past half the size wrap to negative. The height is normalised to 0..1.
fn peak(r: &[Complex32], w: usize, h: usize) -> (f32, f32, f32) {
    let (mut best, mut at) = (f32::MIN, 0);
    for (i, v) in r.iter().enumerate() {
        if v.re > best {
            best = v.re;
            at = i;
        }
    }
    let (px, py) = (at % w, at / w);
    let get = |x: isize, y: isize| {
        r[(y.rem_euclid(h as isize) as usize) * w + x.rem_euclid(w as isize) as usize].re
    };
    let refine = |m: f32, c: f32, p: f32| {
        let d = m - 2.0 * c + p;
        if d.abs() > 1e-9 {
            (0.5 * (m - p) / d).clamp(-0.5, 0.5)
        } else {
            0.0
        }
    };
    let (x, y) = (px as isize, py as isize);
    let fx = px as f32 + refine(get(x - 1, y), best, get(x + 1, y));
    let fy = py as f32 + refine(get(x, y - 1), best, get(x, y + 1));
    let wrap = |v: f32, n: usize| if v > n as f32 / 2.0 { v - n as f32 } else { v };
    (wrap(fx, w), wrap(fy, h), best / (w * h) as f32)
}

/// Rotate a `w × h` thumbnail by `degrees` (counter-clockwise) and zoom it by `scale` about its centre;
/// outside the picture is the picture's mean (so the border adds no edge).
pub(super) fn warp(grey: &[f32], w: usize, h: usize, degrees: f32, scale: f32) -> Vec<f32> {
    let mean = grey.iter().sum::<f32>() / grey.len().max(1) as f32;
    let (s, c) = degrees.to_radians().sin_cos();
    let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
    let mut out = vec![mean; w * h];
    for y in 0..h {
        for x in 0..w {
            // The source of output (x, y): undo the zoom, then the rotation (image y points down).
            let (u, v) = ((x as f32 - cx) / scale, (y as f32 - cy) / scale);
            let (sx, sy) = (c * u - s * v + cx, s * u + c * v + cy);
            if let Some(value) = bilinear(grey, w, h, sx, sy) {
                out[y * w + x] = value;
            }
        }
    }
    out
}

/// Bilinear sample of a `w × h` grid; `None` outside it.
pub(super) fn bilinear(grey: &[f32], w: usize, h: usize, x: f32, y: f32) -> Option<f32> {
    if x < 0.0 || y < 0.0 || x > (w - 1) as f32 || y > (h - 1) as f32 {
        return None;
    }
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (ax, ay) = (x - x0 as f32, y - y0 as f32);
    let at = |x: usize, y: usize| grey[y * w + x];
    Some(
        at(x0, y0) * (1.0 - ax) * (1.0 - ay)
            + at(x1, y0) * ax * (1.0 - ay)
            + at(x0, y1) * (1.0 - ax) * ay
            + at(x1, y1) * ax * ay,
    )
}
