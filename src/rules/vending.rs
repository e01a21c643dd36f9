//! Street vending (占道经营 / 无照经营游商 / 店外经营): vendor cues standing still inside a no-vending zone for
//! longer than a dwell time.
//!
//! A cue is either a class that is a vendor by itself (a city model's `vendor`, `stall`, `cart`) or a COCO
//! object that goes with street trading (umbrella, dining table, chair, bench, bicycle, motorcycle, truck)
//! *with a person beside it* for at least `min_person_share` of the samples since it settled. So passing
//! pedestrians (never cues), a parked bicycle (no one beside it), and brief stops (shorter than the dwell)
//! open nothing.

use super::membership::{Membership, Placed, ZoneSpec};
use super::{TrackView, Verdict};
use crate::base::BBox;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct VendingParams {
    pub vendor_classes: Vec<usize>,
    pub cue_classes: Vec<usize>,
    pub person_classes: Vec<usize>,
    pub min_score: f32,
    pub dwell: Duration,
    pub person_radius: f32,
    pub min_person_share: f32,
}

/// Samples of one cue since it settled where it is.
#[derive(Debug, Clone, Copy)]
struct CueState {
    settled: Instant,
    samples: u32,
    with_person: u32,
}

#[derive(Debug, Clone)]
pub struct VendingRule {
    pub params: VendingParams,
    pub zone: ZoneSpec,
    membership: Membership,
    cues: HashMap<u64, CueState>,
}

/// Does a person box come within `radius` cue sizes of the cue box?
fn beside(cue: &BBox, person: &BBox, radius: f32) -> bool {
    let pad = radius * (cue.x2 - cue.x1).max(cue.y2 - cue.y1);
    person.x2 >= cue.x1 - pad
        && person.x1 <= cue.x2 + pad
        && person.y2 >= cue.y1 - pad
        && person.y1 <= cue.y2 + pad
}

impl VendingRule {
    pub fn new(params: VendingParams, zone: ZoneSpec) -> Self {
        Self {
            params,
            zone,
            membership: Membership::default(),
            cues: HashMap::new(),
        }
    }

    pub fn reset(&mut self) {
        self.membership.clear();
        self.cues.clear();
    }

    fn is_cue(&self, t: &TrackView) -> bool {
        t.score >= self.params.min_score
            && (self.params.vendor_classes.contains(&t.class)
                || self.params.cue_classes.contains(&t.class))
    }

    pub fn evaluate(&mut self, tracks: &[TrackView], now: Instant) -> Verdict {
        let placed: Vec<Placed> = tracks
            .iter()
            .filter(|t| self.is_cue(t))
            .map(|t| t.placed(false))
            .collect();
        let p = &self.params;
        self.membership.update(&self.zone, &placed, now);
        let people: Vec<&TrackView> = tracks
            .iter()
            .filter(|t| t.seen_now && p.person_classes.contains(&t.class))
            .collect();
        self.cues.retain(|id, _| placed.iter().any(|t| t.id == *id));

        let mut hits = Vec::new();
        let mut beside_ids = Vec::new();
        let mut qualifying = Vec::new();
        let mut since: Option<Instant> = None;
        let cue_tracks: Vec<&TrackView> = tracks.iter().filter(|t| self.is_cue(t)).collect();
        for t in cue_tracks {
            let Some(entered) = self.membership.entered(t.id) else {
                self.cues.remove(&t.id);
                continue;
            };
            let settled = t.stationary_since.max(entered);
            let state = self.cues.entry(t.id).or_insert(CueState {
                settled,
                samples: 0,
                with_person: 0,
            });
            if state.settled != settled {
                *state = CueState {
                    settled,
                    samples: 0,
                    with_person: 0,
                };
            }
            let near: Vec<&&TrackView> = people
                .iter()
                .filter(|q| beside(&t.bbox, &q.bbox, p.person_radius))
                .collect();
            if t.seen_now {
                state.samples += 1;
                state.with_person += u32::from(!near.is_empty());
            }
            let long_enough = now.saturating_duration_since(settled) >= p.dwell;
            let vendor = p.vendor_classes.contains(&t.class);
            let attended = state.samples > 0
                && state.with_person as f32 >= p.min_person_share * state.samples as f32;
            if t.seen_now && long_enough && (vendor || attended) {
                qualifying.push(t.id);
                since = Some(since.map_or(settled, |s| s.min(settled)));
                hits.push(t.hit());
                for q in near {
                    if !beside_ids.contains(&q.id) {
                        beside_ids.push(q.id);
                        hits.push(q.hit());
                    }
                }
            }
        }
        qualifying.sort_unstable();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        qualifying.hash(&mut h);
        Verdict {
            state: None,
            holds: !qualifying.is_empty(),
            present: !qualifying.is_empty(),
            hits,
            severity: 0,
            key: h.finish(),
            crowd: None,
            since,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Anchor;
    use crate::rules::Polygon;

    const PERSON: usize = 0;
    const UMBRELLA: usize = 25;
    const BICYCLE: usize = 1;
    const STALL: usize = 80;

    fn rule() -> VendingRule {
        VendingRule::new(
            VendingParams {
                vendor_classes: vec![STALL],
                cue_classes: vec![UMBRELLA, BICYCLE],
                person_classes: vec![PERSON],
                min_score: 0.4,
                dwell: Duration::from_secs(300),
                person_radius: 1.5,
                min_person_share: 0.5,
            },
            ZoneSpec {
                id: "no-vending".into(),
                polygon: Polygon::new(&[[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]),
                anchor: Anchor::Auto,
                min_overlap: 0.5,
                inertia: 2,
            },
        )
    }

    fn track(id: u64, class: usize, bbox: BBox, since: Instant) -> TrackView {
        TrackView {
            id,
            class,
            score: 0.8,
            bbox,
            seen_now: true,
            stationary_since: since,
        }
    }

    const UMBRELLA_BOX: BBox = BBox {
        x1: 0.40,
        y1: 0.60,
        x2: 0.50,
        y2: 0.75,
    };
    const VENDOR_BOX: BBox = BBox {
        x1: 0.52,
        y1: 0.55,
        x2: 0.57,
        y2: 0.80,
    };

    /// Run `secs` one-second samples from `t0`; return when the rule first held.
    fn run(
        r: &mut VendingRule,
        t0: Instant,
        secs: u64,
        frame: impl Fn(Instant) -> Vec<TrackView>,
    ) -> Option<u64> {
        let mut first = None;
        for s in 0..secs {
            let now = t0 + Duration::from_secs(s);
            if r.evaluate(&frame(now), now).holds && first.is_none() {
                first = Some(s);
            }
        }
        first
    }

    #[test]
    fn vendor_staying_past_dwell_holds_after_the_dwell_time() {
        let (mut r, t0) = (rule(), Instant::now());
        let first = run(&mut r, t0, 600, |_| {
            vec![
                track(1, UMBRELLA, UMBRELLA_BOX, t0),
                track(2, PERSON, VENDOR_BOX, t0),
            ]
        });
        // Member from the second sample (inertia 2), then 300 s of dwell.
        assert_eq!(first, Some(301));
    }

    #[test]
    fn brief_stop_opens_nothing() {
        let (mut r, t0) = (rule(), Instant::now());
        let first = run(&mut r, t0, 600, |now| {
            if now < t0 + Duration::from_secs(200) {
                vec![
                    track(1, UMBRELLA, UMBRELLA_BOX, t0),
                    track(2, PERSON, VENDOR_BOX, t0),
                ]
            } else {
                vec![]
            }
        });
        assert_eq!(first, None);
    }

    #[test]
    fn parked_bicycle_alone_opens_nothing_even_when_its_owner_returns() {
        let (mut r, t0) = (rule(), Instant::now());
        let first = run(&mut r, t0, 3600, |now| {
            let mut v = vec![track(1, BICYCLE, UMBRELLA_BOX, t0)];
            if now > t0 + Duration::from_secs(3500) {
                v.push(track(2, PERSON, VENDOR_BOX, now));
            }
            v
        });
        assert_eq!(
            first, None,
            "100 of 3600 samples with a person is no vendor"
        );
    }

    #[test]
    fn pedestrians_crossing_the_zone_open_nothing() {
        let (mut r, t0) = (rule(), Instant::now());
        let first = run(&mut r, t0, 900, |now| {
            let s = now.duration_since(t0).as_secs() as f32;
            let x = (s * 0.02) % 1.0;
            vec![track(
                10 + (s as u64 / 50),
                PERSON,
                BBox {
                    x1: x,
                    y1: 0.6,
                    x2: x + 0.05,
                    y2: 0.9,
                },
                now,
            )]
        });
        assert_eq!(first, None);
    }

    #[test]
    fn a_model_stall_needs_no_person() {
        let (mut r, t0) = (rule(), Instant::now());
        let first = run(&mut r, t0, 400, |_| vec![track(5, STALL, UMBRELLA_BOX, t0)]);
        assert_eq!(first, Some(301));
    }

    #[test]
    fn a_cue_that_moves_starts_its_dwell_again() {
        let (mut r, t0) = (rule(), Instant::now());
        let moved = t0 + Duration::from_secs(200);
        let first = run(&mut r, t0, 600, |now| {
            let since = if now >= moved { moved } else { t0 };
            vec![
                track(1, UMBRELLA, UMBRELLA_BOX, since),
                track(2, PERSON, VENDOR_BOX, t0),
            ]
        });
        assert_eq!(first, Some(500));
    }
}
