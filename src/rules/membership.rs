//! Zone membership of tracked objects: which point of a box decides (the foot point for people, the share of
//! the box inside for objects) and inertia (consecutive samples inside before an object counts), plus masks
//! that drop detections before anything else sees them.

use super::zone::Polygon;
use crate::base::{BBox, Detection};
use std::collections::HashMap;
use std::time::Instant;

/// How a zone decides whether an object is in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Anchor {
    /// People by their foot point (bottom-centre), objects by box overlap.
    #[default]
    Auto,
    /// Bottom-centre of the box (where it touches the ground).
    BottomCentre,
    /// Share of the box inside the zone ≥ `min_overlap`.
    Overlap,
}

/// How one zone decides membership.
#[derive(Debug, Clone)]
pub struct ZoneSpec {
    pub id: String,
    pub polygon: Polygon,
    pub anchor: Anchor,
    pub min_overlap: f32,
    pub inertia: u32,
}

impl ZoneSpec {
    /// Is this box in the zone on this sample (before inertia)?
    pub fn contains_box(&self, b: &BBox, is_person: bool) -> bool {
        let by_foot = match self.anchor {
            Anchor::Auto => is_person,
            Anchor::BottomCentre => true,
            Anchor::Overlap => false,
        };
        if by_foot {
            // A person cut off by the picture's bottom edge stands on it: lifted a hair inside, so a
            // zone drawn to the edge holds them (on the boundary itself ray casting may say outside).
            let (x, y) = b.bottom_centre();
            self.polygon.contains(x, y.min(1.0 - 1e-4))
        } else {
            overlap_share(&self.polygon, b) >= self.min_overlap
        }
    }
}

/// Share of the box inside the polygon, estimated on a 6×6 grid of cell centres (exact enough for a
/// threshold of "about half", and a few dozen point tests per box).
pub fn overlap_share(polygon: &Polygon, b: &BBox) -> f32 {
    const N: usize = 6;
    let (w, h) = (b.x2 - b.x1, b.y2 - b.y1);
    if w <= 0.0 || h <= 0.0 {
        return if polygon.contains(b.x1, b.y1) {
            1.0
        } else {
            0.0
        };
    }
    let mut inside = 0;
    for i in 0..N {
        for j in 0..N {
            let x = b.x1 + w * (i as f32 + 0.5) / N as f32;
            let y = b.y1 + h * (j as f32 + 0.5) / N as f32;
            inside += usize::from(polygon.contains(x, y));
        }
    }
    inside as f32 / (N * N) as f32
}

#[derive(Debug, Clone, Copy)]
struct Streak {
    inside: u32,
    /// When the object became a member (after inertia).
    entered: Option<Instant>,
}

/// Per-track membership of one zone with inertia.
#[derive(Debug, Default, Clone)]
pub struct Membership {
    streaks: HashMap<u64, Streak>,
}

/// A track as the membership needs to see it.
#[derive(Debug, Clone, Copy)]
pub struct Placed {
    pub id: u64,
    pub bbox: BBox,
    pub is_person: bool,
    /// Matched a detection on this sample (a missed track keeps its membership until it is dropped).
    pub seen_now: bool,
}

impl Membership {
    /// Update with the live tracks of this sample; tracks not listed are forgotten.
    pub fn update(&mut self, zone: &ZoneSpec, tracks: &[Placed], now: Instant) {
        self.streaks
            .retain(|id, _| tracks.iter().any(|t| t.id == *id));
        for t in tracks.iter().filter(|t| t.seen_now) {
            let s = self.streaks.entry(t.id).or_insert(Streak {
                inside: 0,
                entered: None,
            });
            if zone.contains_box(&t.bbox, t.is_person) {
                s.inside = s.inside.saturating_add(1);
                if s.inside >= zone.inertia.max(1) {
                    s.entered.get_or_insert(now);
                }
            } else {
                *s = Streak {
                    inside: 0,
                    entered: None,
                };
            }
        }
    }

    /// Since when the track has been a member, if it is one.
    pub fn entered(&self, id: u64) -> Option<Instant> {
        self.streaks.get(&id).and_then(|s| s.entered)
    }

    pub fn clear(&mut self) {
        self.streaks.clear();
    }
}

/// A mask: detections of `classes` (all when empty) whose anchor lies inside are ignored.
#[derive(Debug, Clone)]
pub struct Mask {
    pub polygon: Polygon,
    pub classes: Vec<usize>,
}

/// Drop masked detections. A box is masked when its bottom-centre lies in the mask (people) or at least
/// half of it does (objects) — the same anchors zones use.
pub fn apply_masks(
    masks: &[Mask],
    detections: &mut Vec<Detection>,
    is_person: impl Fn(usize) -> bool,
) {
    if masks.is_empty() {
        return;
    }
    detections.retain(|d| {
        !masks.iter().any(|m| {
            (m.classes.is_empty() || m.classes.contains(&d.class))
                && if is_person(d.class) {
                    let (x, y) = d.bbox.bottom_centre();
                    m.polygon.contains(x, y)
                } else {
                    overlap_share(&m.polygon, &d.bbox) >= 0.5
                }
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn zone(anchor: Anchor, inertia: u32) -> ZoneSpec {
        ZoneSpec {
            id: "z".into(),
            polygon: Polygon::new(&[[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]),
            anchor,
            min_overlap: 0.5,
            inertia,
        }
    }

    fn b(x1: f32, y1: f32, x2: f32, y2: f32) -> BBox {
        BBox { x1, y1, x2, y2 }
    }

    #[test]
    fn a_person_counts_by_the_feet_an_object_by_overlap() {
        let z = zone(Anchor::Auto, 1);
        // Feet inside, most of the body above the zone.
        let tall = b(0.4, 0.1, 0.5, 0.6);
        assert!(z.contains_box(&tall, true));
        assert!(!z.contains_box(&tall, false), "only 20% overlaps");
        assert!(z.contains_box(&b(0.4, 0.45, 0.5, 0.9), false));
    }

    #[test]
    fn feet_cut_off_by_the_bottom_edge_are_in_a_zone_drawn_to_the_edge() {
        let z = zone(Anchor::Auto, 1);
        assert!(z.contains_box(&b(0.4, 0.7, 0.5, 1.0), true));
    }

    #[test]
    fn overlap_share_of_a_half_covered_box_is_a_half() {
        let z = zone(Anchor::Overlap, 1);
        let s = overlap_share(&z.polygon, &b(0.2, 0.3, 0.4, 0.7));
        assert!((s - 0.5).abs() < 0.01, "{s}");
    }

    #[test]
    fn inertia_needs_consecutive_samples_inside() {
        let z = zone(Anchor::Auto, 2);
        let mut m = Membership::default();
        let t0 = Instant::now();
        let at = |y2: f32| Placed {
            id: 7,
            bbox: b(0.4, y2 - 0.2, 0.5, y2),
            is_person: true,
            seen_now: true,
        };
        m.update(&z, &[at(0.8)], t0);
        assert_eq!(m.entered(7), None, "one sample is not enough");
        m.update(&z, &[at(0.3)], t0 + Duration::from_secs(1));
        m.update(&z, &[at(0.8)], t0 + Duration::from_secs(2));
        assert_eq!(m.entered(7), None, "the streak restarted");
        m.update(&z, &[at(0.8)], t0 + Duration::from_secs(3));
        assert_eq!(m.entered(7), Some(t0 + Duration::from_secs(3)));
        // Missed on a sample: membership kept.
        m.update(
            &z,
            &[Placed {
                seen_now: false,
                ..at(0.2)
            }],
            t0 + Duration::from_secs(4),
        );
        assert!(m.entered(7).is_some());
        m.update(&z, &[], t0 + Duration::from_secs(5));
        assert_eq!(m.entered(7), None, "a dropped track is forgotten");
    }

    #[test]
    fn masked_detections_are_dropped_for_their_classes_only() {
        let mask = Mask {
            polygon: Polygon::new(&[[0.0, 0.0], [0.3, 0.0], [0.3, 0.3], [0.0, 0.3]]),
            classes: vec![0],
        };
        let det = |class, bbox| Detection {
            class,
            score: 0.9,
            bbox,
        };
        let mut dets = vec![
            det(0, b(0.1, 0.05, 0.15, 0.25)), // person on a poster: masked
            det(0, b(0.5, 0.5, 0.6, 0.8)),    // person elsewhere
            det(25, b(0.1, 0.05, 0.2, 0.2)),  // umbrella in the mask: other class
        ];
        apply_masks(&[mask], &mut dets, |c| c == 0);
        assert_eq!(dets.len(), 2);
        assert!(dets.iter().all(|d| d.bbox.x1 > 0.4 || d.class == 25));
    }
}
