//! Two rule shapes that need only a model class and configuration:
//! - *presence in zone*: tracked objects of configured classes in a zone (or standing still there) for a
//!   dwell time — 乱堆杂物, 非机动车乱停放, 违规户外广告 and the like;
//! - *K of N samples*: a class seen in the zone in at least K of the last N samples opens, absent in at least
//!   K of N clears — hanging laundry (flaps, hidden by passers-by) and bin overflow (one bad frame must not
//!   flip it). Samples are spaced `sample_every` apart, so N × spacing is the window.

use super::kofn::KofN;
use super::membership::{Membership, Placed, ZoneSpec};
use super::{Hit, TrackView, Verdict};
use crate::base::Detection;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct PresenceParams {
    pub classes: Vec<usize>,
    pub min_score: f32,
    pub dwell: Duration,
    pub stationary: bool,
    pub min_count: usize,
}

#[derive(Debug, Clone)]
pub struct PresenceRule {
    pub params: PresenceParams,
    pub zone: ZoneSpec,
    membership: Membership,
}

impl PresenceRule {
    pub fn new(params: PresenceParams, zone: ZoneSpec) -> Self {
        Self {
            params,
            zone,
            membership: Membership::default(),
        }
    }

    pub fn reset(&mut self) {
        self.membership.clear();
    }

    pub fn evaluate(&mut self, tracks: &[TrackView], now: Instant) -> Verdict {
        let p = &self.params;
        let relevant: Vec<&TrackView> = tracks
            .iter()
            .filter(|t| t.score >= p.min_score && p.classes.contains(&t.class))
            .collect();
        let placed: Vec<Placed> = relevant.iter().map(|t| t.placed(false)).collect();
        self.membership.update(&self.zone, &placed, now);
        // Seen on this sample: a track the detector missed keeps its place in the zone (its dwell goes on
        // when it is seen again) but does not hold the rule by itself.
        let dwelling: Vec<(&&TrackView, Instant)> = relevant
            .iter()
            .filter(|t| t.seen_now)
            .filter_map(|t| {
                let entered = self.membership.entered(t.id)?;
                let since = if p.stationary {
                    t.stationary_since.max(entered)
                } else {
                    entered
                };
                (now.saturating_duration_since(since) >= p.dwell).then_some((t, since))
            })
            .collect();
        let holds = dwelling.len() >= p.min_count.max(1);
        let hits: Vec<Hit> = dwelling.iter().map(|(t, _)| t.hit()).collect();
        Verdict {
            state: None,
            holds,
            present: holds,
            key: hits.len() as u64,
            hits,
            severity: 0,
            crowd: None,
            // With several objects needed, the condition began when the last of them settled.
            since: holds
                .then(|| {
                    let mut s: Vec<Instant> = dwelling.iter().map(|(_, s)| *s).collect();
                    s.sort_unstable();
                    s.get(p.min_count.max(1) - 1).copied()
                })
                .flatten(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PersistenceParams {
    pub classes: Vec<usize>,
    pub min_score: f32,
    pub sample_every: Duration,
    /// N
    pub window: usize,
    /// K (more than half of N, so the two thresholds cannot both be met).
    pub min_present: usize,
}

#[derive(Debug, Clone)]
pub struct PersistenceRule {
    pub params: PersistenceParams,
    pub zone: ZoneSpec,
    last_sample: Option<Instant>,
    window: KofN,
    hits: Vec<Hit>,
}

impl PersistenceRule {
    pub fn new(params: PersistenceParams, zone: ZoneSpec) -> Self {
        Self {
            window: KofN::new(params.window, params.min_present),
            params,
            zone,
            last_sample: None,
            hits: Vec::new(),
        }
    }

    pub fn reset(&mut self) {
        self.last_sample = None;
        self.window.reset();
        self.hits.clear();
    }

    pub fn evaluate(&mut self, detections: &[Detection], now: Instant) -> Verdict {
        let p = &self.params;
        let due = self
            .last_sample
            .is_none_or(|last| now.saturating_duration_since(last) >= p.sample_every);
        if due {
            self.last_sample = Some(now);
            let hits: Vec<Hit> = detections
                .iter()
                .filter(|d| d.score >= p.min_score && p.classes.contains(&d.class))
                .filter(|d| self.zone.contains_box(&d.bbox, false))
                .map(Hit::from_detection)
                .collect();
            self.window.push(now, !hits.is_empty());
            if !hits.is_empty() {
                self.hits = hits;
            }
        }
        let holding = self.window.holds();
        Verdict {
            holds: holding,
            present: self.window.last_seen(),
            hits: if holding {
                self.hits.clone()
            } else {
                Vec::new()
            },
            severity: 0,
            key: 0,
            crowd: None,
            since: self.window.since(),
            state: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::BBox;
    use crate::rules::Anchor;
    use crate::rules::Polygon;

    fn zone() -> ZoneSpec {
        ZoneSpec {
            id: "z".into(),
            polygon: Polygon::new(&[[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5]]),
            anchor: Anchor::Auto,
            min_overlap: 0.5,
            inertia: 2,
        }
    }

    const INSIDE: BBox = BBox {
        x1: 0.1,
        y1: 0.1,
        x2: 0.3,
        y2: 0.3,
    };

    fn bin_rule() -> PersistenceRule {
        PersistenceRule::new(
            PersistenceParams {
                classes: vec![3],
                min_score: 0.4,
                sample_every: Duration::from_secs(10),
                window: 3,
                min_present: 3,
            },
            zone(),
        )
    }

    fn det(present: bool) -> Vec<Detection> {
        if present {
            vec![Detection {
                class: 3,
                score: 0.9,
                bbox: INSIDE,
            }]
        } else {
            vec![]
        }
    }

    /// Feed one sample every 10 s; return the holding state after each.
    fn feed(r: &mut PersistenceRule, t0: Instant, seq: &[bool]) -> Vec<bool> {
        seq.iter()
            .enumerate()
            .map(|(i, &p)| {
                r.evaluate(&det(p), t0 + Duration::from_secs(10 * i as u64))
                    .holds
            })
            .collect()
    }

    #[test]
    fn one_bad_frame_does_not_flip_bin_overflow() {
        let (mut r, t0) = (bin_rule(), Instant::now());
        let held = feed(
            &mut r,
            t0,
            &[true, true, false, true, true, true, false, true, true],
        );
        assert_eq!(
            held,
            [false, false, false, false, false, true, true, true, true],
            "opens after 3 in a row; one miss does not clear it"
        );
        let held = feed(
            &mut r,
            t0 + Duration::from_secs(100),
            &[false, false, true, false, false, false],
        );
        assert_eq!(held, [true, true, true, true, true, false]);
    }

    #[test]
    fn frames_between_samples_are_not_counted() {
        let (mut r, t0) = (bin_rule(), Instant::now());
        for s in 0..25 {
            r.evaluate(&det(true), t0 + Duration::from_secs(s));
        }
        // Samples at 0, 10, 20 s: three.
        assert!(r.evaluate(&det(true), t0 + Duration::from_secs(25)).holds);
        let mut r = bin_rule();
        for s in 0..19 {
            assert!(!r.evaluate(&det(true), t0 + Duration::from_secs(s)).holds);
        }
    }

    #[test]
    fn laundry_present_in_7_of_10_samples_opens() {
        let mut r = PersistenceRule::new(
            PersistenceParams {
                classes: vec![3],
                min_score: 0.4,
                sample_every: Duration::from_secs(10),
                window: 10,
                min_present: 7,
            },
            zone(),
        );
        let t0 = Instant::now();
        // Hidden by passers-by now and then.
        let seq = [
            true, false, true, true, false, true, true, true, false, true,
        ];
        let held = feed(&mut r, t0, &seq);
        assert_eq!(held.iter().position(|&h| h), Some(9), "7th present sample");
    }

    #[test]
    fn presence_for_the_dwell_time_holds_and_a_short_visit_does_not() {
        let mut r = PresenceRule::new(
            PresenceParams {
                classes: vec![1],
                min_score: 0.4,
                dwell: Duration::from_secs(60),
                stationary: false,
                min_count: 1,
            },
            zone(),
        );
        let t0 = Instant::now();
        let bike = |id, seen_now| TrackView {
            id,
            class: 1,
            score: 0.7,
            bbox: INSIDE,
            seen_now,
            stationary_since: t0,
        };
        let mut first = None;
        for s in 0..200u64 {
            let now = t0 + Duration::from_secs(s);
            // Track 1 visits for 30 s; track 2 arrives at 100 s and stays.
            let mut v = Vec::new();
            if s < 30 {
                v.push(bike(1, true));
            }
            if s >= 100 {
                v.push(bike(2, s % 5 != 0));
            }
            if r.evaluate(&v, now).holds && first.is_none() {
                first = Some(s);
            }
        }
        assert_eq!(
            first,
            Some(162),
            "missed at 100, inside at 101 and 102 (inertia 2), then 60 s"
        );
    }
}
