//! Crowd density (人群聚集): people whose bottom-centre (foot point) lies in the zone, divided by the zone's
//! real area, classified into levels with hysteresis and a sustain time.
//!
//! Level logic, per observation:
//! - a level is *held* while the density stays ≥ its threshold, or, once held, ≥ threshold − hysteresis;
//! - the reported level rises to the highest level held for `sustain`;
//! - it falls once the reported level has not been held for `sustain`, to the highest level still held;
//! - it clears (incident resolves) once no level has been held for `clear`.
//!
//! With a density-map model the zone's count is the map's sum over the cells whose centre lies in the zone
//! (rounded for the head count; the density uses the unrounded sum).
//!
//! An absolute head-count limit (`max_count`) adds a top level, `over_limit`, held while the count is at or
//! above the limit, with the same sustain.

use super::zone::Polygon;
use super::{CrowdReading, Hit, Verdict};
use crate::base::Detection;
use crate::detect::DensityMap;
use std::time::{Duration, Instant};

/// One level: name and the density at which it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct CrowdLevel {
    pub name: String,
    pub min_density: f64,
}

/// What one frame showed in the zone.
#[derive(Debug, Clone, PartialEq)]
pub struct CrowdObservation {
    pub count: usize,
    /// Persons per m².
    pub density: f64,
    /// Indices (into the frame's detections) of the people counted.
    pub members: Vec<usize>,
}

/// A change of the reported level.
#[derive(Debug, Clone, PartialEq)]
pub enum CrowdChange {
    /// From no level to `to`: an incident opens.
    Opened { to: usize },
    /// Between levels: the incident updates.
    LevelChanged { from: usize, to: usize },
    /// Below every level for the clear time: the incident resolves.
    Cleared { from: usize },
}

/// Parameters of one crowd rule (from the configuration, labels resolved to class indices).
#[derive(Debug, Clone)]
pub struct CrowdParams {
    pub zone: Polygon,
    pub area_m2: f64,
    /// Class indices that count as people.
    pub classes: Vec<usize>,
    pub min_score: f32,
    /// Ascending by `min_density`.
    pub levels: Vec<CrowdLevel>,
    pub hysteresis: f64,
    pub sustain: Duration,
    pub clear: Duration,
    /// Absolute head-count limit of the zone.
    pub max_count: Option<usize>,
}

/// Name of the level the head-count limit raises.
pub const OVER_LIMIT: &str = "over_limit";

/// The rule and its state for one zone of one camera.
#[derive(Debug, Clone)]
pub struct CrowdRule {
    pub params: CrowdParams,
    /// Since when each level has been held (`None`: not held now).
    held_since: Vec<Option<Instant>>,
    /// Since when the reported level has not been held.
    lost_since: Option<Instant>,
    /// Since when no level has been held.
    clear_since: Option<Instant>,
    reported: Option<usize>,
}

impl CrowdRule {
    pub fn new(mut params: CrowdParams) -> Self {
        if params.max_count.is_some() {
            params.levels.push(CrowdLevel {
                name: OVER_LIMIT.into(),
                min_density: f64::INFINITY,
            });
        }
        let n = params.levels.len();
        Self {
            params,
            held_since: vec![None; n],
            lost_since: None,
            clear_since: None,
            reported: None,
        }
    }

    /// The level currently reported, if any.
    pub fn reported(&self) -> Option<usize> {
        self.reported
    }

    /// Count the people in the zone.
    pub fn count(&self, detections: &[Detection]) -> CrowdObservation {
        let members: Vec<usize> = detections
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.score >= self.params.min_score && self.params.classes.contains(&d.class)
            })
            .filter(|(_, d)| {
                let (x, y) = d.bbox.bottom_centre();
                self.params.zone.contains(x, y)
            })
            .map(|(i, _)| i)
            .collect();
        let count = members.len();
        CrowdObservation {
            count,
            density: count as f64 / self.params.area_m2,
            members,
        }
    }

    /// Count the people in the zone from a density map.
    pub fn count_density(&self, map: &DensityMap) -> CrowdObservation {
        let sum = map
            .sum_where(|x, y| self.params.zone.contains(x, y))
            .max(0.0);
        CrowdObservation {
            count: sum.round() as usize,
            density: sum / self.params.area_m2,
            members: Vec::new(),
        }
    }

    pub fn reset(&mut self) {
        self.held_since.iter_mut().for_each(|h| *h = None);
        self.lost_since = None;
        self.clear_since = None;
        self.reported = None;
    }

    /// Count (from the density map when the model gives one), update and say what holds.
    pub fn evaluate(
        &mut self,
        detections: &[Detection],
        density: Option<&DensityMap>,
        now: Instant,
    ) -> Verdict {
        let obs = match density {
            Some(map) => self.count_density(map),
            None => self.count(detections),
        };
        let before = self.reported;
        self.update(&obs, now);
        let name = |k: Option<usize>| k.map(|k| self.params.levels[k].name.clone());
        let lowest = self
            .params
            .levels
            .first()
            .map_or(f64::INFINITY, |l| l.min_density);
        Verdict {
            state: None,
            holds: self.reported.is_some(),
            present: obs.density >= lowest || self.params.max_count.is_some_and(|m| obs.count >= m),
            hits: obs
                .members
                .iter()
                .map(|&i| Hit::from_detection(&detections[i]))
                .collect(),
            severity: self.reported.map_or(0, |k| k as u32 + 1),
            key: self.reported.map_or(0, |k| k as u64 + 1),
            crowd: Some(CrowdReading {
                count: obs.count,
                density: obs.density,
                level: name(self.reported.or(before)),
                previous_level: name(before)
                    .filter(|_| self.reported.is_some() && before != self.reported),
            }),
            // The crowd has been at least at the lowest level it holds since then.
            since: self
                .reported
                .and_then(|k| (0..=k).filter_map(|j| self.held_since[j]).min()),
        }
    }

    /// Feed one observation at `now`; returns a change of the reported level, if any.
    pub fn update(&mut self, obs: &CrowdObservation, now: Instant) -> Option<CrowdChange> {
        let limit_level = self.params.max_count.map(|_| self.params.levels.len() - 1);
        for (k, level) in self.params.levels.iter().enumerate() {
            let threshold = if self.held_since[k].is_some() {
                level.min_density - self.params.hysteresis
            } else {
                level.min_density
            };
            let held = if Some(k) == limit_level {
                obs.count >= self.params.max_count.unwrap_or(usize::MAX)
            } else {
                obs.density >= threshold
            };
            if held {
                self.held_since[k].get_or_insert(now);
            } else {
                self.held_since[k] = None;
            }
        }
        let any_held = self.held_since.iter().any(Option::is_some);
        if any_held {
            self.clear_since = None;
        } else {
            self.clear_since.get_or_insert(now);
        }
        let held_for = |since: Option<Instant>, d: Duration| {
            since.is_some_and(|s| now.saturating_duration_since(s) >= d)
        };
        let sustained = (0..self.params.levels.len())
            .rev()
            .find(|&k| held_for(self.held_since[k], self.params.sustain));
        let still_held = (0..self.params.levels.len())
            .rev()
            .find(|&k| self.held_since[k].is_some());

        let Some(current) = self.reported else {
            let to = sustained?;
            self.reported = Some(to);
            self.lost_since = None;
            return Some(CrowdChange::Opened { to });
        };
        if self.held_since[current].is_some() {
            self.lost_since = None;
        } else {
            self.lost_since.get_or_insert(now);
        }
        if let Some(to) = sustained.filter(|&to| to > current) {
            self.reported = Some(to);
            return Some(CrowdChange::LevelChanged { from: current, to });
        }
        if held_for(self.clear_since, self.params.clear) {
            self.reported = None;
            self.lost_since = None;
            return Some(CrowdChange::Cleared { from: current });
        }
        match still_held {
            Some(to) if to < current && held_for(self.lost_since, self.params.sustain) => {
                self.reported = Some(to);
                self.lost_since = None;
                Some(CrowdChange::LevelChanged { from: current, to })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::BBox;

    fn rule() -> CrowdRule {
        let levels = vec![
            CrowdLevel {
                name: "attention".into(),
                min_density: 2.0,
            },
            CrowdLevel {
                name: "warning".into(),
                min_density: 4.0,
            },
        ];
        let zone = Polygon::new(&[[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]);
        CrowdRule::new(CrowdParams {
            zone,
            area_m2: 1.0,
            classes: vec![0],
            min_score: 0.5,
            levels,
            hysteresis: 0.5,
            sustain: Duration::from_secs(10),
            clear: Duration::from_secs(30),
            max_count: None,
        })
    }

    /// Feed `density` every second for `secs` seconds from `t`; return the changes and the new time.
    fn feed(r: &mut CrowdRule, t: &mut Instant, density: f64, secs: u64) -> Vec<CrowdChange> {
        let mut out = Vec::new();
        for _ in 0..secs {
            *t += Duration::from_secs(1);
            let obs = CrowdObservation {
                count: 0,
                density,
                members: vec![],
            };
            out.extend(r.update(&obs, *t));
        }
        out
    }

    #[test]
    fn an_opened_crowd_began_when_its_density_first_held_not_after_the_sustain() {
        let mut r = rule();
        let t0 = Instant::now();
        let zone_people = |n: usize| -> Vec<Detection> {
            (0..n)
                .map(|k| Detection {
                    class: 0,
                    score: 0.9,
                    bbox: BBox {
                        x1: 0.05 * k as f32,
                        y1: 0.6,
                        x2: 0.05 * k as f32 + 0.04,
                        y2: 0.9,
                    },
                })
                .collect()
        };
        // Three people on 1 m² (above `attention` at 2/m²) from second 1; the 10 s sustain confirms it.
        let mut opened = None;
        for s in 1..=15 {
            let v = r.evaluate(&zone_people(3), None, t0 + Duration::from_secs(s));
            if v.holds && opened.is_none() {
                opened = Some((s, v.since));
            }
        }
        let (at, since) = opened.expect("the crowd opens");
        assert_eq!(at, 11);
        assert_eq!(since, Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn counts_only_people_whose_feet_are_in_the_zone() {
        let person = |x: f32, y2: f32, score: f32| Detection {
            class: 0,
            score,
            bbox: BBox {
                x1: x,
                y1: y2 - 0.2,
                x2: x + 0.1,
                y2,
            },
        };
        let dets = vec![
            person(0.1, 0.9, 0.9),
            person(0.3, 0.4, 0.9),
            person(0.5, 0.9, 0.3),
            Detection {
                class: 2,
                score: 0.9,
                bbox: BBox {
                    x1: 0.6,
                    y1: 0.6,
                    x2: 0.7,
                    y2: 0.9,
                },
            },
        ];
        let obs = rule().count(&dets);
        assert_eq!(
            obs.count, 1,
            "feet above the zone, low score and a non-person are not counted"
        );
        assert_eq!(obs.members, vec![0]);
        assert!((obs.density - 1.0).abs() < 1e-9);
    }

    #[test]
    fn with_a_density_map_the_zone_counts_the_map_inside_it() {
        use crate::detect::{Fit, ResizeMode};
        // 2×4 map (columns × rows) over the frame; the zone is the lower half.
        let map = DensityMap {
            width: 2,
            height: 4,
            values: vec![3.0, 3.0, 0.5, 0.5, 1.0, 0.75, 0.25, 0.5],
            fit: Fit::new(ResizeMode::Stretch, (64, 128), (2, 4)),
        };
        let mut r = rule();
        let obs = r.count_density(&map);
        assert_eq!(obs.count, 3, "1 + 0.75 + 0.25 + 0.5 = 2.5 rounds to 3");
        assert!((obs.density - 2.5).abs() < 1e-9);
        let v = r.evaluate(&[], Some(&map), Instant::now());
        assert_eq!(v.crowd.unwrap().count, 3);
        assert!(v.hits.is_empty());
    }

    #[test]
    fn a_level_must_be_sustained_before_an_incident_opens() {
        let (mut r, mut t) = (rule(), Instant::now());
        assert!(feed(&mut r, &mut t, 2.5, 9).is_empty(), "9 s < sustain");
        assert_eq!(
            feed(&mut r, &mut t, 2.5, 2),
            vec![CrowdChange::Opened { to: 0 }]
        );
    }

    #[test]
    fn a_brief_peak_opens_nothing() {
        let (mut r, mut t) = (rule(), Instant::now());
        let mut changes = feed(&mut r, &mut t, 5.0, 5);
        changes.extend(feed(&mut r, &mut t, 0.0, 60));
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn hysteresis_keeps_the_level_through_small_dips() {
        let (mut r, mut t) = (rule(), Instant::now());
        feed(&mut r, &mut t, 2.2, 11);
        assert_eq!(r.reported(), Some(0));
        // 1.7 is below 2.0 but within the 0.5 hysteresis: the level is still held.
        assert!(feed(&mut r, &mut t, 1.7, 60).is_empty());
        assert_eq!(r.reported(), Some(0));
    }

    #[test]
    fn escalates_then_de_escalates_then_clears_after_the_clear_time() {
        let (mut r, mut t) = (rule(), Instant::now());
        assert_eq!(
            feed(&mut r, &mut t, 4.5, 11),
            vec![CrowdChange::Opened { to: 1 }],
            "straight to the sustained top level"
        );
        assert_eq!(
            feed(&mut r, &mut t, 2.5, 11),
            vec![CrowdChange::LevelChanged { from: 1, to: 0 }]
        );
        assert!(
            feed(&mut r, &mut t, 0.0, 29).is_empty(),
            "not yet clear for 30 s"
        );
        assert_eq!(
            feed(&mut r, &mut t, 0.0, 2),
            vec![CrowdChange::Cleared { from: 0 }]
        );
        assert_eq!(r.reported(), None);
    }

    #[test]
    fn the_head_count_limit_raises_over_limit_whatever_the_density() {
        let mut params = rule().params;
        params.max_count = Some(3);
        let mut r = CrowdRule::new(params);
        let t0 = Instant::now();
        let obs = |count| CrowdObservation {
            count,
            density: 0.5,
            members: vec![],
        };
        let mut changes = Vec::new();
        for s in 0..12 {
            changes.extend(r.update(&obs(4), t0 + Duration::from_secs(s)));
        }
        assert_eq!(changes, vec![CrowdChange::Opened { to: 2 }]);
        assert_eq!(r.params.levels[2].name, OVER_LIMIT);
        for s in 12..50 {
            changes.extend(r.update(&obs(1), t0 + Duration::from_secs(s)));
        }
        assert_eq!(changes.last(), Some(&CrowdChange::Cleared { from: 2 }));
    }

    #[test]
    fn escalation_needs_its_own_sustain() {
        let (mut r, mut t) = (rule(), Instant::now());
        feed(&mut r, &mut t, 2.5, 11);
        assert!(feed(&mut r, &mut t, 4.5, 9).is_empty());
        assert_eq!(
            feed(&mut r, &mut t, 4.5, 2),
            vec![CrowdChange::LevelChanged { from: 0, to: 1 }]
        );
    }
}
