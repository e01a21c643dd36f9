//! Detection accuracy the way COCO's evaluation computes it, for one class over a set of pictures: greedy
//! matching by score at each IoU threshold, precision made monotone, 101-point interpolated AP. Two
//! deliberate simplifications, both stated in the report: no area ranges and no cap on detections per
//! picture, and an ignored box matches with ordinary IoU (our ignored boxes are people, not crowd regions).
//! Pure.

use serde::{Deserialize, Serialize};

/// IoU thresholds of AP@0.5:0.95.
pub const IOU_THRESHOLDS: [f64; 10] = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];

/// x1, y1, x2, y2 in pixels.
pub type Corners = [f64; 4];

pub fn iou(a: &Corners, b: &Corners) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |c: &Corners| (c[2] - c[0]).max(0.0) * (c[3] - c[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// One picture's labelled boxes of the class (`true` = ignore) and detections of it (score, box).
#[derive(Debug, Clone, Default)]
pub struct Picture {
    pub truth: Vec<(Corners, bool)>,
    pub detections: Vec<(f64, Corners)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Hit,
    Miss,
    Ignored,
}

/// Greedy matching of one picture at IoU `t`: detections by score (highest first) take the best free
/// labelled box with IoU ≥ t; a box to ignore can absorb any number of detections.
fn match_picture(p: &Picture, order: &[usize], t: f64) -> Vec<Outcome> {
    // Boxes that count come before boxes to ignore, as COCO sorts them.
    let mut truth: Vec<usize> = (0..p.truth.len()).collect();
    truth.sort_by_key(|&g| p.truth[g].1);
    let mut taken = vec![false; p.truth.len()];
    order
        .iter()
        .map(|&d| {
            let det = &p.detections[d].1;
            let mut best: Option<usize> = None;
            let mut best_iou = t.min(1.0 - 1e-10);
            for &g in &truth {
                let (gt, ignore) = &p.truth[g];
                if taken[g] && !ignore {
                    continue;
                }
                if best.is_some_and(|b| !p.truth[b].1) && *ignore {
                    break;
                }
                let v = iou(det, gt);
                if v < best_iou {
                    continue;
                }
                best_iou = v;
                best = Some(g);
            }
            match best {
                Some(g) if p.truth[g].1 => Outcome::Ignored,
                Some(g) => {
                    taken[g] = true;
                    Outcome::Hit
                }
                None => Outcome::Miss,
            }
        })
        .collect()
}

/// Precision, recall and F1 of the detections at or above one score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub score: f64,
    pub tp: usize,
    pub fp: usize,
    #[serde(rename = "fn")]
    pub missed: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// One class over all pictures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: String,
    /// Labelled boxes that count, and boxes to ignore.
    pub labelled: usize,
    pub ignored: usize,
    /// AP at each of `IOU_THRESHOLDS`.
    pub ap: Vec<f64>,
    pub ap50: f64,
    pub ap50_95: f64,
    /// Interpolated precision at recall 0, 0.01, … 1 (IoU 0.5): the PR curve.
    pub pr_curve: Vec<f64>,
    /// At the model's own score threshold (what the pole uses), IoU 0.5.
    pub operating: OperatingPoint,
}

/// Evaluate one class: `pictures` in picture order, `operating` the score threshold the pole works at.
pub fn evaluate(class: &str, pictures: &[Picture], operating: f64) -> ClassMetrics {
    // Per picture, detections by score (stable), as COCO sorts them.
    let orders: Vec<Vec<usize>> = pictures
        .iter()
        .map(|p| {
            let mut o: Vec<usize> = (0..p.detections.len()).collect();
            o.sort_by(|&a, &b| p.detections[b].0.total_cmp(&p.detections[a].0));
            o
        })
        .collect();
    let labelled = pictures
        .iter()
        .flat_map(|p| &p.truth)
        .filter(|t| !t.1)
        .count();
    let ignored = pictures
        .iter()
        .flat_map(|p| &p.truth)
        .filter(|t| t.1)
        .count();
    let mut m = ClassMetrics {
        class: class.to_string(),
        labelled,
        ignored,
        ..Default::default()
    };
    for (i, &t) in IOU_THRESHOLDS.iter().enumerate() {
        // All pictures' outcomes, concatenated in picture order, then by score (stable).
        let mut scored: Vec<(f64, Outcome)> = Vec::new();
        for (p, order) in pictures.iter().zip(&orders) {
            let outcomes = match_picture(p, order, t);
            scored.extend(
                order
                    .iter()
                    .zip(outcomes)
                    .map(|(&d, o)| (p.detections[d].0, o)),
            );
        }
        scored.retain(|s| s.1 != Outcome::Ignored);
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let curve = interpolated_precision(&scored, labelled);
        let ap = curve.iter().sum::<f64>() / curve.len() as f64;
        m.ap.push(ap);
        if i == 0 {
            m.pr_curve = curve;
            let tp = scored
                .iter()
                .filter(|s| s.0 >= operating && s.1 == Outcome::Hit)
                .count();
            let fp = scored
                .iter()
                .filter(|s| s.0 >= operating && s.1 == Outcome::Miss)
                .count();
            m.operating = operating_point(operating, tp, fp, labelled);
        }
    }
    m.ap50 = m.ap[0];
    m.ap50_95 = m.ap.iter().sum::<f64>() / m.ap.len() as f64;
    m
}

fn operating_point(score: f64, tp: usize, fp: usize, labelled: usize) -> OperatingPoint {
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, labelled);
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    OperatingPoint {
        score,
        tp,
        fp,
        missed: labelled - tp,
        precision,
        recall,
        f1,
    }
}

/// Precision at recall 0, 0.01, … 1: the best precision at any recall at or beyond it (0 past the end).
fn interpolated_precision(scored: &[(f64, Outcome)], labelled: usize) -> Vec<f64> {
    let mut recall = Vec::with_capacity(scored.len());
    let mut precision = Vec::with_capacity(scored.len());
    let (mut tp, mut fp) = (0usize, 0usize);
    for s in scored {
        match s.1 {
            Outcome::Hit => tp += 1,
            _ => fp += 1,
        }
        recall.push(if labelled == 0 {
            0.0
        } else {
            tp as f64 / labelled as f64
        });
        precision.push(tp as f64 / (tp + fp) as f64);
    }
    for i in (1..precision.len()).rev() {
        precision[i - 1] = precision[i - 1].max(precision[i]);
    }
    (0..=100)
        .map(|k| {
            let r = k as f64 / 100.0;
            let at = recall.partition_point(|&x| x < r);
            precision.get(at).copied().unwrap_or(0.0)
        })
        .collect()
}

/// How far counts were off, frame by frame (detected − labelled).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CountError {
    pub frames: usize,
    pub mae: f64,
    /// Mean signed error: negative = the model counts too few.
    pub bias: f64,
    /// Error → frames with it.
    pub histogram: std::collections::BTreeMap<i64, usize>,
}

pub fn count_error(pairs: &[(usize, usize)]) -> CountError {
    let mut e = CountError {
        frames: pairs.len(),
        ..Default::default()
    };
    for &(truth, found) in pairs {
        let d = found as i64 - truth as i64;
        *e.histogram.entry(d).or_default() += 1;
        e.mae += d.unsigned_abs() as f64;
        e.bias += d as f64;
    }
    if !pairs.is_empty() {
        e.mae /= pairs.len() as f64;
        e.bias /= pairs.len() as f64;
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f64, y: f64) -> Corners {
        [x, y, x + 10.0, y + 20.0]
    }

    #[test]
    fn a_perfect_detector_scores_one_and_a_blind_one_zero() {
        let truth = vec![(b(0.0, 0.0), false), (b(50.0, 0.0), false)];
        let perfect = Picture {
            truth: truth.clone(),
            detections: vec![(0.9, b(0.0, 0.0)), (0.8, b(50.0, 0.0))],
        };
        let m = evaluate("person", &[perfect], 0.5);
        assert_eq!((m.ap50, m.ap50_95), (1.0, 1.0));
        assert_eq!(
            (m.operating.tp, m.operating.fp, m.operating.missed),
            (2, 0, 0)
        );
        let blind = Picture {
            truth,
            detections: vec![],
        };
        let m = evaluate("person", &[blind], 0.5);
        assert_eq!(
            (m.ap50, m.operating.recall, m.operating.f1),
            (0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn ap_by_hand_one_false_positive_ranked_first() {
        // Scores: FP 0.9, TP 0.8, TP 0.7 against two boxes. Precision after each: 0, 1/2, 2/3 → monotone:
        // 2/3, 2/3, 2/3; recall 0, .5, 1 → every recall level reads 2/3.
        let p = Picture {
            truth: vec![(b(0.0, 0.0), false), (b(50.0, 0.0), false)],
            detections: vec![
                (0.9, b(200.0, 0.0)),
                (0.8, b(0.0, 0.0)),
                (0.7, b(50.0, 0.0)),
            ],
        };
        let m = evaluate("person", &[p], 0.75);
        assert!((m.ap50 - 2.0 / 3.0).abs() < 1e-12, "{}", m.ap50);
        // At 0.75: the FP and one TP: precision 1/2, recall 1/2.
        assert_eq!(
            (m.operating.tp, m.operating.fp, m.operating.missed),
            (1, 1, 1)
        );
        assert!((m.operating.f1 - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_second_detection_of_one_person_is_false_and_ignored_boxes_absorb() {
        let p = Picture {
            truth: vec![(b(0.0, 0.0), false), (b(100.0, 0.0), true)],
            detections: vec![
                (0.9, b(0.0, 0.0)),
                (0.8, b(1.0, 0.0)),
                (0.7, b(100.0, 0.0)),
                (0.6, b(101.0, 0.0)),
            ],
        };
        let m = evaluate("person", &[p], 0.5);
        assert_eq!((m.operating.tp, m.operating.fp), (1, 1));
        assert_eq!((m.labelled, m.ignored), (1, 1));
    }

    #[test]
    fn a_loose_box_counts_at_half_overlap_but_not_at_strict_thresholds() {
        // Shifted by 3 px on a 10-px-wide box: IoU = 7/13 ≈ 0.54.
        let p = Picture {
            truth: vec![(b(0.0, 0.0), false)],
            detections: vec![(0.9, b(3.0, 0.0))],
        };
        let m = evaluate("person", &[p], 0.5);
        assert_eq!(m.ap[0], 1.0);
        assert!(m.ap[1..].iter().all(|&a| a == 0.0));
        assert!((m.ap50_95 - 0.1).abs() < 1e-12);
    }

    #[test]
    fn count_errors_are_signed_in_the_histogram() {
        let e = count_error(&[(5, 4), (5, 5), (3, 5)]);
        assert_eq!(e.frames, 3);
        assert!((e.mae - 1.0).abs() < 1e-12);
        assert!((e.bias - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(e.histogram.get(&-1), Some(&1));
        assert_eq!(e.histogram.get(&2), Some(&1));
    }
}
