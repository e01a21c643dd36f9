//! Camera health (视频质量诊断): is the picture the one the zones were drawn on? On the frames a camera
//! already sends for analysis, [`Monitor::observe`] tells whether the view moved (移位), is covered (遮挡),
//! blurred (模糊), frozen (画面冻结), abnormally bright or dark (亮度异常) or off-colour (偏色), against a
//! reference view kept per camera and the camera's own learned normal. Pure: time is an argument, and the
//! reference comes in and goes out as bytes.
//!
//! - **moved**: Fourier–Mellin registration of a 128-px grey thumbnail against the reference's
//!   ([`register`]): shift, rotation and zoom; drift within the tolerances is reported, not raised. A view
//!   that no longer matches the reference at all (the camera turned to another street) is moved too.
//! - **covered**: of the reference's textured cells (8 × 6 over the thumbnail), the share that lost most of
//!   their texture (dark, uniform or very close: a bag, a banner, a hand).
//! - **blurred**: full-resolution sharpness (gradient energy over brightness) against the camera's own
//!   baseline, which starts from the reference and follows slow change while the camera is healthy.
//! - **frozen**: a sparse set of raw pixels has not changed at all for `frozen_after`: a live sensor's noise
//!   always changes some.
//! - **brightness / colour**: beyond fixed limits (black, blown out, one colour dominant) *and* unlike what
//!   the camera normally shows ([`normal`]): dusk, the IR switch's grey and sodium-lit nights are normal.
//!
//! A condition is raised once it has held for `raise_after` and cleared once it has been absent for
//! `clear_after`. Moved or covered pause the camera's zone rules (the analyser's business).

mod normal;
mod picture;
mod reference;
mod register;
#[cfg(test)]
mod tests;

pub use picture::Picture;
pub use reference::{HealthError, Reference};
pub use register::Registration;

use normal::Normal;
use register::{Prepared, Registrar};
use std::time::{Duration, Instant};

/// A health condition, in the vocabulary of the city platforms' video-quality diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Moved,
    Covered,
    Blurred,
    Frozen,
    Brightness,
    Colour,
    /// Known to ingest (the stream is down); reported in the same words.
    SignalLost,
}

impl Condition {
    pub const ALL: [Condition; 7] = [
        Condition::Moved,
        Condition::Covered,
        Condition::Blurred,
        Condition::Frozen,
        Condition::Brightness,
        Condition::Colour,
        Condition::SignalLost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Moved => "moved",
            Condition::Covered => "covered",
            Condition::Blurred => "blurred",
            Condition::Frozen => "frozen",
            Condition::Brightness => "brightness",
            Condition::Colour => "colour",
            Condition::SignalLost => "signal_lost",
        }
    }

    /// The name Chinese city platforms use.
    pub fn chinese(self) -> &'static str {
        match self {
            Condition::Moved => "移位",
            Condition::Covered => "遮挡",
            Condition::Blurred => "模糊",
            Condition::Frozen => "画面冻结",
            Condition::Brightness => "亮度异常",
            Condition::Colour => "偏色",
            Condition::SignalLost => "信号丢失",
        }
    }

    /// While raised, the camera's zone rules look at the wrong or no street: they pause.
    pub fn pauses_rules(self) -> bool {
        matches!(self, Condition::Moved | Condition::Covered)
    }
}

/// Below this mean luma a picture is black, whatever the scene.
const DARK_LIMIT: f32 = 12.0;
/// Above this share of blown-out thumbnail pixels a picture is overexposed.
const CLIPPED_LIMIT: f32 = 0.5;
/// Above this colour spread (over brightness) one colour dominates: a lost channel, a stuck IR-cut filter.
const CAST_LIMIT: f32 = 0.5;
/// A registration peak below this means the view matches the reference nowhere: turned to another scene.
const UNRECOGNISED: f32 = 0.025;
/// A reference cell with less texture than this is sky or a wall: losing texture there means nothing.
const TEXTURED: f32 = 0.02;
/// A cell with less than this share of its reference texture has lost it.
const LOST_TEXTURE: f32 = 0.25;
/// A picture whose raw samples differ in less than this share is a repeat of the last one.
const STILL_CHANGE: f32 = 0.002;
/// The sharpness baseline follows a healthy camera with this time constant.
const BASELINE_TAU_S: f32 = 3600.0;

/// How the checks decide; every check on by default.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthParams {
    pub moved: bool,
    pub covered: bool,
    pub blurred: bool,
    pub frozen: bool,
    pub brightness: bool,
    pub colour: bool,
    /// Shift (fraction of the picture's width or height) above which the view has moved.
    pub shift_tolerance: f32,
    /// Rotation in degrees above which the view has moved.
    pub rotation_tolerance: f32,
    /// Zoom change (fraction) above which the view has moved.
    pub zoom_tolerance: f32,
    /// Share of the reference's textured cells that must lose their texture for `covered`.
    pub covered_fraction: f32,
    /// Sharpness below this share of the baseline is `blurred`.
    pub blur_ratio: f32,
    /// The picture has not changed at all for this long: `frozen`.
    pub frozen_after: Duration,
    /// A condition must hold this long to be raised.
    pub raise_after: Duration,
    /// A raised condition clears after being absent this long.
    pub clear_after: Duration,
}

impl Default for HealthParams {
    fn default() -> Self {
        HealthParams {
            moved: true,
            covered: true,
            blurred: true,
            frozen: true,
            brightness: true,
            colour: true,
            shift_tolerance: 0.03,
            rotation_tolerance: 2.0,
            zoom_tolerance: 0.05,
            covered_fraction: 0.6,
            blur_ratio: 0.5,
            frozen_after: Duration::from_secs(30),
            raise_after: Duration::from_secs(10),
            clear_after: Duration::from_secs(10),
        }
    }
}

/// The measured view against the reference, as fractions of the picture.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ViewShift {
    /// Content shift right (fraction of the width) and down (fraction of the height).
    pub x: f32,
    pub y: f32,
    pub degrees: f32,
    pub scale: f32,
    /// How well the views match, 0..1 (below ≈ 0.03: not the same scene).
    pub confidence: f32,
}

/// The camera's health after one frame.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct HealthReport {
    /// Raised conditions, in [`Condition::ALL`] order.
    pub conditions: Vec<Condition>,
    /// The view against the reference (none without a reference).
    pub shift: Option<ViewShift>,
    /// Share of the reference's textured cells without texture now.
    pub covered: f32,
    /// Sharpness over the camera's baseline.
    pub sharpness: f32,
    pub brightness: f32,
    pub cast: f32,
    /// How long the picture has not changed at all, in seconds.
    pub still_s: f32,
    /// Whether a reference view exists.
    pub reference: bool,
}

impl HealthReport {
    pub fn pauses_rules(&self) -> bool {
        self.conditions.iter().any(|c| c.pauses_rules())
    }

    /// A camera's health as shown to people: its monitor's last report (if it has one) and `signal_lost`
    /// while the stream is down.
    pub fn shown(report: Option<&HealthReport>, streaming: bool) -> HealthReport {
        let mut shown = report.cloned().unwrap_or_default();
        if !streaming {
            shown.conditions.push(Condition::SignalLost);
        }
        shown
    }
}

/// What one frame did to the camera's health.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub report: HealthReport,
    /// This frame became the reference view (nothing was compared).
    pub reference_taken: bool,
}

/// A condition's clock: raised after holding for a while, cleared after being absent for a while.
#[derive(Debug, Clone, Copy, Default)]
struct Timer {
    holding_since: Option<Instant>,
    absent_since: Option<Instant>,
    raised: bool,
}

impl Timer {
    fn step(&mut self, holds: bool, now: Instant, raise_after: Duration, clear_after: Duration) {
        if holds {
            self.absent_since = None;
            let since = *self.holding_since.get_or_insert(now);
            self.raised |= now.saturating_duration_since(since) >= raise_after;
        } else {
            self.holding_since = None;
            let since = *self.absent_since.get_or_insert(now);
            self.raised &= now.saturating_duration_since(since) < clear_after;
        }
    }
}

/// One camera's health checks.
pub struct Monitor {
    params: HealthParams,
    registrar: Registrar,
    reference: Option<(Reference, Prepared)>,
    /// Sharpness a healthy picture of this camera has.
    baseline: f32,
    last_seen: Option<Instant>,
    last_samples: Vec<u8>,
    still_since: Option<Instant>,
    timers: [Timer; 6],
    brightness: Normal,
    cast: Normal,
    last: HealthReport,
}

impl Monitor {
    pub fn new(params: HealthParams) -> Self {
        Monitor {
            params,
            registrar: Registrar::new(),
            reference: None,
            baseline: 0.0,
            last_seen: None,
            last_samples: Vec::new(),
            still_since: None,
            timers: [Timer::default(); 6],
            brightness: Normal::new(256.0),
            cast: Normal::new(2.0),
            last: HealthReport::default(),
        }
    }

    pub fn params(&self) -> &HealthParams {
        &self.params
    }

    /// Use a stored reference view.
    pub fn load_reference(&mut self, bytes: &[u8]) -> Result<(), HealthError> {
        let reference = Reference::from_bytes(bytes)?;
        self.set_reference(reference);
        Ok(())
    }

    fn set_reference(&mut self, reference: Reference) {
        let prepared = self
            .registrar
            .prepare(&reference.grey_f32(), reference.tw, reference.th);
        self.baseline = reference.sharpness;
        self.reference = Some((reference, prepared));
    }

    /// The reference view to store (none until one was taken).
    pub fn reference(&self) -> Option<&Reference> {
        self.reference.as_ref().map(|(r, _)| r)
    }

    /// Forget the reference: the next usable frame becomes the new one (the installer confirmed the view),
    /// and every raised condition clears.
    pub fn retake(&mut self) {
        self.reference = None;
        self.timers = [Timer::default(); 6];
        self.still_since = None;
        self.last = HealthReport::default();
    }

    /// The report of the last frame.
    pub fn last(&self) -> &HealthReport {
        &self.last
    }

    /// Judge one frame.
    pub fn observe(&mut self, picture: &Picture, now: Instant) -> Observation {
        let changed = picture::changed_fraction(&self.last_samples, &picture.samples);
        if changed >= STILL_CHANGE || self.still_since.is_none() {
            self.still_since = Some(now);
        }
        self.last_samples.clone_from(&picture.samples);
        let still = now.saturating_duration_since(self.still_since.unwrap_or(now));

        let usable = picture.brightness >= DARK_LIMIT
            && picture.texture.iter().sum::<f32>() / picture.texture.len().max(1) as f32
                >= TEXTURED;
        let Some((reference, prepared)) = &self.reference else {
            if usable {
                self.set_reference(Reference::of(picture));
                self.last = HealthReport {
                    reference: true,
                    sharpness: 1.0,
                    brightness: picture.brightness,
                    cast: picture.cast,
                    ..HealthReport::default()
                };
                return Observation {
                    report: self.last.clone(),
                    reference_taken: true,
                };
            }
            self.last = HealthReport {
                brightness: picture.brightness,
                cast: picture.cast,
                still_s: still.as_secs_f32(),
                ..HealthReport::default()
            };
            return Observation {
                report: self.last.clone(),
                reference_taken: false,
            };
        };

        let p = &self.params;
        let covered = covered_share(&reference.texture, &picture.texture);
        let same_size = (reference.tw, reference.th) == (picture.tw, picture.th);
        let shift = same_size.then(|| {
            let r = self
                .registrar
                .register(prepared, &picture.grey, picture.tw, picture.th);
            ViewShift {
                x: r.dx / picture.tw as f32,
                y: r.dy / picture.th as f32,
                degrees: r.degrees,
                scale: r.scale,
                confidence: r.confidence,
            }
        });
        let is_covered = covered >= p.covered_fraction;
        let moved = !is_covered
            && match shift {
                // Another resolution: the camera was replaced or reconfigured; its view must be confirmed.
                None => true,
                Some(s) => {
                    s.confidence < UNRECOGNISED
                        || s.x.abs() > p.shift_tolerance
                        || s.y.abs() > p.shift_tolerance
                        || s.degrees.abs() > p.rotation_tolerance
                        || (s.scale - 1.0).abs() > p.zoom_tolerance
                }
            };
        let sharpness = picture.sharpness / self.baseline.max(1e-6);
        let frozen = still >= p.frozen_after;
        let dark_or_blown = picture.brightness < DARK_LIMIT || picture.clipped > CLIPPED_LIMIT;
        let holds = [
            p.moved && moved,
            p.covered && is_covered,
            p.blurred && !is_covered && sharpness < p.blur_ratio,
            p.frozen && frozen,
            p.brightness && dark_or_blown && !self.brightness.usual(picture.brightness),
            p.colour && picture.cast > CAST_LIMIT && !self.cast.usual(picture.cast),
        ];
        for (i, (timer, holds)) in self.timers.iter_mut().zip(holds).enumerate() {
            // Frozen already waited `frozen_after` before it held.
            let raise = if Condition::ALL[i] == Condition::Frozen {
                Duration::ZERO
            } else {
                p.raise_after
            };
            timer.step(holds, now, raise, p.clear_after);
        }
        let conditions: Vec<Condition> = Condition::ALL
            .iter()
            .zip(&self.timers)
            .filter(|(_, t)| t.raised)
            .map(|(c, _)| *c)
            .collect();

        // Learning: what the camera shows while it is not covered, frozen or moved is its normal.
        if !is_covered && !frozen && !moved {
            self.brightness.learn(picture.brightness, now);
            self.cast.learn(picture.cast, now);
        }
        if conditions.is_empty() && !holds.iter().any(|h| *h) {
            let dt = self
                .last_seen
                .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f32());
            let k = (dt / BASELINE_TAU_S).min(1.0);
            self.baseline += (picture.sharpness - self.baseline) * k;
        }
        self.last_seen = Some(now);
        self.last = HealthReport {
            conditions,
            shift,
            covered,
            sharpness,
            brightness: picture.brightness,
            cast: picture.cast,
            still_s: still.as_secs_f32(),
            reference: true,
        };
        Observation {
            report: self.last.clone(),
            reference_taken: false,
        }
    }
}

/// Share of the reference's textured cells that lost most of their texture.
fn covered_share(reference: &[f32], current: &[f32]) -> f32 {
    let textured: Vec<(f32, f32)> = reference
        .iter()
        .zip(current)
        .filter(|(r, _)| **r >= TEXTURED)
        .map(|(r, c)| (*r, *c))
        .collect();
    if textured.is_empty() || reference.len() != current.len() {
        return 0.0;
    }
    textured
        .iter()
        .filter(|(r, c)| *c < LOST_TEXTURE * r)
        .count() as f32
        / textured.len() as f32
}
