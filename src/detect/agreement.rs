//! How far two models agree on the same frames (a candidate in shadow beside the active one): per class,
//! how often they count the same number of objects, how far the counts differ, and how well their boxes
//! coincide (greedy one-to-one matching at IoU ≥ 0.5, highest IoU first). Classes are matched by label
//! name, so the two models may have different label sets. Pure.

use crate::base::Detection;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Boxes of one class match when their IoU is at least this.
pub const MATCH_IOU: f32 = 0.5;

#[derive(Debug, Clone, Default, PartialEq)]
struct Tally {
    frames: u64,
    equal_counts: u64,
    abs_diff: u64,
    active: u64,
    shadow: u64,
    matched: u64,
    iou_sum: f64,
}

/// Agreement accumulated over frames.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Agreement {
    frames: u64,
    classes: BTreeMap<String, Tally>,
}

/// One class's agreement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassAgreement {
    pub class: String,
    /// Frames on which either model saw the class.
    pub frames: u64,
    /// Share of those frames on which both counted the same number.
    pub count_agreement: f64,
    /// Mean absolute count difference per such frame.
    pub count_mae: f64,
    pub active_boxes: u64,
    pub shadow_boxes: u64,
    /// Boxes matched one-to-one (IoU ≥ 0.5), and their mean IoU.
    pub matched: u64,
    pub mean_iou: f64,
}

impl Agreement {
    /// One frame: the active model's detections and labels, the candidate's and its labels.
    pub fn observe(
        &mut self,
        active: &[Detection],
        active_labels: &[String],
        shadow: &[Detection],
        shadow_labels: &[String],
    ) {
        self.frames += 1;
        let named = |ds: &[Detection], labels: &[String]| {
            let mut by: BTreeMap<String, Vec<crate::base::BBox>> = BTreeMap::new();
            for d in ds {
                if let Some(l) = labels.get(d.class) {
                    by.entry(l.clone()).or_default().push(d.bbox);
                }
            }
            by
        };
        let (a, s) = (named(active, active_labels), named(shadow, shadow_labels));
        let empty = Vec::new();
        let classes: std::collections::BTreeSet<&String> = a.keys().chain(s.keys()).collect();
        for class in classes {
            let (ab, sb) = (
                a.get(class).unwrap_or(&empty),
                s.get(class).unwrap_or(&empty),
            );
            let t = self.classes.entry(class.clone()).or_default();
            t.frames += 1;
            t.equal_counts += u64::from(ab.len() == sb.len());
            t.abs_diff += ab.len().abs_diff(sb.len()) as u64;
            t.active += ab.len() as u64;
            t.shadow += sb.len() as u64;
            for iou in match_boxes(ab, sb) {
                t.matched += 1;
                t.iou_sum += f64::from(iou);
            }
        }
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn classes(&self) -> Vec<ClassAgreement> {
        self.classes
            .iter()
            .map(|(class, t)| ClassAgreement {
                class: class.clone(),
                frames: t.frames,
                count_agreement: ratio(t.equal_counts as f64, t.frames as f64),
                count_mae: ratio(t.abs_diff as f64, t.frames as f64),
                active_boxes: t.active,
                shadow_boxes: t.shadow,
                matched: t.matched,
                mean_iou: ratio(t.iou_sum, t.matched as f64),
            })
            .collect()
    }

    /// Mean IoU of every matched pair, all classes together.
    pub fn mean_iou(&self) -> f64 {
        let (sum, n) = self
            .classes
            .values()
            .fold((0.0, 0), |(s, n), t| (s + t.iou_sum, n + t.matched));
        ratio(sum, n as f64)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// IoUs of a greedy one-to-one matching, best pairs first, at IoU ≥ `MATCH_IOU`.
fn match_boxes(a: &[crate::base::BBox], b: &[crate::base::BBox]) -> Vec<f32> {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            let v = x.iou(y);
            if v >= MATCH_IOU {
                pairs.push((v, i, j));
            }
        }
    }
    pairs.sort_by(|p, q| q.0.total_cmp(&p.0));
    let (mut used_a, mut used_b) = (vec![false; a.len()], vec![false; b.len()]);
    let mut out = Vec::new();
    for (v, i, j) in pairs {
        if !used_a[i] && !used_b[j] {
            used_a[i] = true;
            used_b[j] = true;
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::BBox;

    fn d(class: usize, x: f32) -> Detection {
        Detection {
            class,
            score: 0.9,
            bbox: BBox {
                x1: x,
                y1: 0.1,
                x2: x + 0.1,
                y2: 0.5,
            },
        }
    }

    #[test]
    fn the_same_boxes_agree_fully_and_a_missed_person_shows() {
        let active_labels = vec!["person".to_string(), "car".to_string()];
        // The candidate names its classes differently ordered: matched by name.
        let shadow_labels = vec!["car".to_string(), "person".to_string()];
        let mut a = Agreement::default();
        a.observe(
            &[d(0, 0.1), d(0, 0.5)],
            &active_labels,
            &[d(1, 0.1), d(1, 0.5)],
            &shadow_labels,
        );
        a.observe(
            &[d(0, 0.1), d(0, 0.5)],
            &active_labels,
            &[d(1, 0.1)],
            &shadow_labels,
        );
        let c = &a.classes()[0];
        assert_eq!(c.class, "person");
        assert_eq!(
            (c.frames, c.active_boxes, c.shadow_boxes, c.matched),
            (2, 4, 3, 3)
        );
        assert!((c.count_agreement - 0.5).abs() < 1e-12);
        assert!((c.count_mae - 0.5).abs() < 1e-12);
        assert!((c.mean_iou - 1.0).abs() < 1e-6);
        assert_eq!(a.frames(), 2);
    }

    #[test]
    fn a_shifted_box_matches_with_its_iou_and_a_far_one_does_not() {
        let labels = vec!["person".to_string()];
        let mut a = Agreement::default();
        // Shifted by a fifth of its width: IoU = 0.08 / 0.12 = 2/3.
        a.observe(&[d(0, 0.1)], &labels, &[d(0, 0.12)], &labels);
        assert!((a.mean_iou() - 2.0 / 3.0).abs() < 1e-5, "{}", a.mean_iou());
        let mut far = Agreement::default();
        far.observe(&[d(0, 0.1)], &labels, &[d(0, 0.7)], &labels);
        assert_eq!(far.classes()[0].matched, 0);
        assert_eq!(
            far.classes()[0].count_agreement,
            1.0,
            "one each: the counts agree, the boxes do not"
        );
    }
}
