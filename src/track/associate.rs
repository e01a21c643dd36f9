//! Association of predicted track boxes with detections: the gated cost of one pair, and a greedy one-to-one
//! assignment by ascending cost.
//!
//! Greedy rather than Hungarian: with at most a few dozen objects per camera and gates that rarely let one
//! detection fall within reach of two tracks, taking the globally best pair first gives the same answer almost
//! always, in a few microseconds and without a cost matrix. The case where it differs is pinned down in
//! `greedy_takes_the_best_pair_even_when_that_leaves_another_track_unmatched`.

use crate::detect::BBox;

/// A centre-distance match is refused when one box's diagonal is more than this many times the other's: at
/// IoU 0 the size is the only other hint that two boxes are the same object (a child passing a parked van).
const MAX_FALLBACK_SIZE_RATIO: f32 = 2.0;

/// The gates of one association pass.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gates {
    pub match_iou: f32,
    pub max_centre_jump: f32,
}

/// One admissible (track, detection) pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Candidate {
    pub cost: f32,
    pub track: usize,
    pub det: usize,
}

/// The cost of matching a track whose predicted box is `pred` with a detection at `det`, or `None` when the
/// pair is outside both gates. Lower is better.
///
/// Two tiers, so that any overlap beats any centre-distance match: IoU ≥ `match_iou` costs `1 - IoU`
/// (in `[0, 1)`); otherwise a centre distance of `d` mean box diagonals, `d ≤ max_centre_jump`, costs `1 + d`.
/// The fallback applies below `match_iou`, not only at IoU 0: a small box that moved half its width overlaps
/// a little but is plainly the same object.
pub(super) fn cost(pred: &BBox, det: &BBox, gates: Gates) -> Option<f32> {
    let iou = pred.iou(det);
    if iou > 0.0 && iou >= gates.match_iou {
        return Some(1.0 - iou);
    }
    let (dp, dd) = (diagonal(pred), diagonal(det));
    // Written so that NaN coordinates fail every comparison and fall through to `None`.
    let sizes_agree = dp > 0.0
        && dd > 0.0
        && dp <= dd * MAX_FALLBACK_SIZE_RATIO
        && dd <= dp * MAX_FALLBACK_SIZE_RATIO;
    if !sizes_agree {
        return None;
    }
    let (px, py) = centre(pred);
    let (dx, dy) = centre(det);
    let jump = (px - dx).hypot(py - dy) / ((dp + dd) / 2.0);
    (jump <= gates.max_centre_jump).then_some(1.0 + jump)
}

/// Pair candidates greedily by ascending cost, skipping tracks and detections already taken; each pair made
/// is marked taken and pushed to `matches` as `(track, det)`.
pub(super) fn assign_greedy(
    candidates: &mut [Candidate],
    track_taken: &mut [bool],
    det_taken: &mut [bool],
    matches: &mut Vec<(usize, usize)>,
) {
    // Ties broken by index so that the outcome does not depend on the sort's stability.
    candidates.sort_unstable_by(|a, b| {
        a.cost
            .total_cmp(&b.cost)
            .then(a.track.cmp(&b.track))
            .then(a.det.cmp(&b.det))
    });
    for c in candidates.iter() {
        if track_taken[c.track] || det_taken[c.det] {
            continue;
        }
        track_taken[c.track] = true;
        det_taken[c.det] = true;
        matches.push((c.track, c.det));
    }
}

pub(super) fn centre(b: &BBox) -> (f32, f32) {
    ((b.x1 + b.x2) / 2.0, (b.y1 + b.y2) / 2.0)
}

pub(super) fn diagonal(b: &BBox) -> f32 {
    (b.x2 - b.x1).max(0.0).hypot((b.y2 - b.y1).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATES: Gates = Gates {
        match_iou: 0.2,
        max_centre_jump: 1.0,
    };

    fn bx(x1: f32, y1: f32, x2: f32, y2: f32) -> BBox {
        BBox { x1, y1, x2, y2 }
    }

    fn run(cands: &[Candidate], tracks: usize, dets: usize) -> Vec<(usize, usize)> {
        let mut cands = cands.to_vec();
        let (mut tt, mut dt, mut m) = (vec![false; tracks], vec![false; dets], Vec::new());
        assign_greedy(&mut cands, &mut tt, &mut dt, &mut m);
        m
    }

    fn cand(cost: f32, track: usize, det: usize) -> Candidate {
        Candidate { cost, track, det }
    }

    #[test]
    fn overlapping_pair_costs_one_minus_iou() {
        let a = bx(0.0, 0.0, 0.2, 0.2);
        let c = cost(&a, &a, GATES).unwrap();
        assert!(c.abs() < 1e-6);
    }

    #[test]
    fn disjoint_nearby_pair_of_similar_size_falls_back_to_centre_distance() {
        // Moved one box width to the right: IoU 0, centre jump = 0.1 / diag(0.1 x 0.3) ≈ 0.32.
        let a = bx(0.1, 0.1, 0.2, 0.4);
        let b = bx(0.2, 0.1, 0.3, 0.4);
        let c = cost(&a, &b, GATES).unwrap();
        assert!(c > 1.0 && c < 1.4, "cost {c}");
    }

    #[test]
    fn any_overlap_match_beats_any_centre_distance_match() {
        let a = bx(0.1, 0.1, 0.2, 0.4);
        let weak_overlap = bx(0.14, 0.1, 0.24, 0.4); // IoU = 0.6/1.4 ≈ 0.43
        let near_disjoint = bx(0.2, 0.1, 0.3, 0.4);
        assert!(cost(&a, &weak_overlap, GATES).unwrap() < cost(&a, &near_disjoint, GATES).unwrap());
    }

    #[test]
    fn far_or_differently_sized_boxes_do_not_match() {
        let a = bx(0.1, 0.1, 0.2, 0.4);
        assert_eq!(cost(&a, &bx(0.5, 0.1, 0.6, 0.4), GATES), None);
        // Adjacent but five times larger.
        assert_eq!(cost(&a, &bx(0.2, 0.0, 0.7, 1.0), GATES), None);
    }

    #[test]
    fn empty_and_nan_boxes_never_match() {
        let a = bx(0.1, 0.1, 0.2, 0.4);
        assert_eq!(cost(&a, &bx(0.3, 0.3, 0.3, 0.3), GATES), None);
        assert_eq!(cost(&a, &bx(f32::NAN, 0.1, 0.2, 0.4), GATES), None);
    }

    #[test]
    fn greedy_takes_pairs_in_ascending_cost_and_each_side_at_most_once() {
        let m = run(
            &[
                cand(0.5, 0, 0),
                cand(0.1, 0, 1),
                cand(0.2, 1, 1),
                cand(0.3, 1, 0),
            ],
            2,
            2,
        );
        assert_eq!(m, vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn greedy_takes_the_best_pair_even_when_that_leaves_another_track_unmatched() {
        // Track 0 fits detection 0 best (0.1) and detection 1 too (0.3); track 1 fits only detection 0 (0.2).
        // An optimal assignment would pair 0–1 and 1–0 (total 0.5); greedy pairs 0–0 and leaves track 1
        // unmatched for this update. It takes two tracks of one class predicted within a box diagonal of each
        // other, one of them with no detection of its own in reach: the crossing tests show it does not swap
        // ids there, it only delays the unmatched track's update by a sample.
        let m = run(&[cand(0.1, 0, 0), cand(0.3, 0, 1), cand(0.2, 1, 0)], 2, 2);
        assert_eq!(m, vec![(0, 0)]);
    }

    #[test]
    fn equal_costs_are_broken_by_index() {
        let m = run(&[cand(0.2, 1, 0), cand(0.2, 0, 0)], 2, 1);
        assert_eq!(m, vec![(0, 0)]);
    }
}
