//! A camera's own normal for one reading (brightness, colour cast): a histogram of what the camera has
//! shown, fed at most once a minute and forgetting with a one-day half-life. Night, the IR switch and a
//! street lit orange by sodium lamps all come back every day, so they are soon usual; a reading the camera
//! has (almost) never shown is not. Pure: time is an argument.

use std::time::{Duration, Instant};

const BINS: usize = 32;
/// At most one reading per this interval counts (a minute of frames is one observation of the scene).
const LEARN_EVERY: Duration = Duration::from_secs(60);
/// Weight halves over this long.
const HALF_LIFE_S: f32 = 24.0 * 3600.0;
/// Before this much weight (an hour of readings) nothing is usual yet: the fixed limits alone decide.
const TRAINED: f32 = 60.0;
/// A reading is usual when its bin and its two neighbours hold this share of the weight (≈ 2.4 h a day).
const USUAL_SHARE: f32 = 0.1;

#[derive(Debug, Clone)]
pub(super) struct Normal {
    /// Readings map to bins linearly over `0..top`; above `top` they fall in the last bin.
    top: f32,
    bins: [f32; BINS],
    last: Option<Instant>,
}

impl Normal {
    pub(super) fn new(top: f32) -> Self {
        Normal {
            top,
            bins: [0.0; BINS],
            last: None,
        }
    }

    fn bin(&self, v: f32) -> usize {
        ((v.max(0.0) / self.top * BINS as f32) as usize).min(BINS - 1)
    }

    /// Count `v` as seen at `now` (ignored within a minute of the last counted reading).
    pub(super) fn learn(&mut self, v: f32, now: Instant) {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last);
            if dt < LEARN_EVERY {
                return;
            }
            let keep = 0.5f32.powf(dt.as_secs_f32() / HALF_LIFE_S);
            self.bins.iter_mut().for_each(|b| *b *= keep);
        }
        self.last = Some(now);
        let b = self.bin(v);
        self.bins[b] += 1.0;
    }

    /// Has the camera shown readings like `v` often enough for them to be its normal?
    pub(super) fn usual(&self, v: f32) -> bool {
        let total: f32 = self.bins.iter().sum();
        if total < TRAINED {
            return false;
        }
        let b = self.bin(v);
        let near: f32 = self.bins[b.saturating_sub(1)..=(b + 1).min(BINS - 1)]
            .iter()
            .sum();
        near >= USUAL_SHARE * total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_seen_every_night_becomes_usual_and_a_new_one_is_not() {
        let (mut n, t0) = (Normal::new(256.0), Instant::now());
        let minute = Duration::from_secs(60);
        // Two days: 14 h at luma 120 (day), 10 h at luma 9 (a dark street without IR).
        for m in 0..2 * 24 * 60u32 {
            let v = if (m / 60) % 24 < 14 { 120.0 } else { 9.0 };
            n.learn(v, t0 + minute * m);
        }
        assert!(n.usual(120.0) && n.usual(9.0));
        assert!(!n.usual(250.0), "never seen");
    }

    #[test]
    fn nothing_is_usual_before_an_hour_of_readings() {
        let (mut n, t0) = (Normal::new(256.0), Instant::now());
        for s in 0..3000u64 {
            // A frame a second for 50 minutes: one reading a minute counts.
            n.learn(100.0, t0 + Duration::from_secs(s));
        }
        assert!(!n.usual(100.0));
    }
}
