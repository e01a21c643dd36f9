//! Association of predicted track boxes with detections: which pairs are admissible, what each costs, and
//! the one-to-one assignment of least total cost.
//!
//! A pair is admissible when the detection overlaps the track's predicted box by `match_iou`, or, failing
//! that, when its centre lies within `max_centre_jump` mean box diagonals and the sizes agree: at 1–5 samples
//! per second a small box often has IoU 0 with its previous self. Every admissible pair then costs its
//! centre distance in mean diagonals, a continuous measure whatever the overlap. (A tiered cost, `1 − IoU`
//! for overlapping pairs and `1 + distance` for the rest, let one overlapping pair outweigh two close
//! non-overlapping ones; on the real clip sampled at 1 fps it gave about 25% more identity changes.)
//!
//! Least total cost (Hungarian method) rather than best-pair-first: when two people walk side by side and
//! turn, both predictions overshoot toward the same person; best-pair-first gives that person to one track
//! and pushes the other track onto the far person, swapping their ids
//! (`assignment_minimises_the_total_cost_where_best_pair_first_would_not`). Leaving a track and a detection
//! unmatched costs [`Gates::unmatched_cost`], so a far-fetched pairing is not forced just to match more.

use crate::base::BBox;

/// A centre-distance match is refused when one box's diagonal is more than this many times the other's: at
/// IoU 0 the size is the only other hint that two boxes are the same object (a child passing a parked van).
const MAX_FALLBACK_SIZE_RATIO: f32 = 2.0;

/// The gates of one association pass.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gates {
    pub match_iou: f32,
    pub max_centre_jump: f32,
}

impl Gates {
    /// The most an admissible pair costs.
    fn max_cost(&self) -> f32 {
        // Bounded so that odd parameters (NaN, infinite) cannot poison the sums.
        if self.max_centre_jump.is_nan() {
            1.0
        } else {
            self.max_centre_jump.clamp(1.0, 100.0)
        }
    }

    /// The price of leaving one track and one detection unmatched: just above the dearest admissible pair,
    /// so that any pair within the gates beats no match, but two far-fetched pairs do not beat one good
    /// pair and one miss.
    pub fn unmatched_cost(&self) -> f64 {
        f64::from(self.max_cost()) + 0.01
    }
}

/// One admissible (track, detection) pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Candidate {
    pub cost: f32,
    pub track: usize,
    pub det: usize,
}

/// The cost of matching a track whose predicted box is `pred` with a detection at `det` (their centre
/// distance in mean box diagonals), or `None` when the pair is inadmissible. Lower is better.
pub(super) fn cost(pred: &BBox, det: &BBox, gates: Gates) -> Option<f32> {
    let (dp, dd) = (diagonal(pred), diagonal(det));
    let (px, py) = centre(pred);
    let (dx, dy) = centre(det);
    let jump = (px - dx).hypot(py - dy) / ((dp + dd) / 2.0);
    let iou = pred.iou(det);
    if iou > 0.0 && iou >= gates.match_iou {
        // Overlapping boxes have centres within about a diagonal; the bound only guards odd shapes.
        return Some(jump.min(gates.max_cost()));
    }
    // Written so that NaN coordinates fail every comparison and fall through to `None`.
    let sizes_agree = dp > 0.0
        && dd > 0.0
        && dp <= dd * MAX_FALLBACK_SIZE_RATIO
        && dd <= dp * MAX_FALLBACK_SIZE_RATIO;
    (sizes_agree && jump <= gates.max_centre_jump).then_some(jump)
}

/// Choose the pairs of least total cost among `candidates` (tracks and detections already taken are
/// skipped), where leaving a track and a detection unmatched costs `unmatched`. Each pair made is marked
/// taken and pushed to `matches` as `(track, det)`.
pub(super) fn assign(
    candidates: &[Candidate],
    unmatched: f64,
    track_taken: &mut [bool],
    det_taken: &mut [bool],
    matches: &mut Vec<(usize, usize)>,
) {
    let open = candidates
        .iter()
        .filter(|c| !track_taken[c.track] && !det_taken[c.det]);
    let mut rows: Vec<usize> = open.clone().map(|c| c.track).collect();
    let mut cols: Vec<usize> = open.clone().map(|c| c.det).collect();
    for v in [&mut rows, &mut cols] {
        v.sort_unstable();
        v.dedup();
    }
    if rows.is_empty() {
        return;
    }
    // Minimising Σ(cost − unmatched) over the pairs made is minimising Σcost + unmatched × (pairs not made);
    // an inadmissible pair costs 0, the same as leaving both unmatched, and is dropped afterwards.
    let transpose = rows.len() > cols.len();
    let (n, m) = if transpose {
        (cols.len(), rows.len())
    } else {
        (rows.len(), cols.len())
    };
    let mut cost = vec![0.0f64; n * m];
    for c in open {
        let (Ok(r), Ok(k)) = (rows.binary_search(&c.track), cols.binary_search(&c.det)) else {
            continue;
        };
        let (i, j) = if transpose { (k, r) } else { (r, k) };
        let relative = f64::from(c.cost) - unmatched;
        // Duplicate candidates for one pair keep the cheaper.
        cost[i * m + j] = cost[i * m + j].min(relative);
    }
    for (i, j) in hungarian(&cost, n, m).into_iter().enumerate() {
        if cost[i * m + j] >= 0.0 {
            continue;
        }
        let (r, k) = if transpose { (j, i) } else { (i, j) };
        let (t, d) = (rows[r], cols[k]);
        track_taken[t] = true;
        det_taken[d] = true;
        matches.push((t, d));
    }
}

/// Minimum-cost assignment of each of `n` rows to a distinct one of `m ≥ n` columns of the row-major
/// `cost` matrix (shortest augmenting paths with potentials, O(n²m)); returns each row's column.
fn hungarian(cost: &[f64], n: usize, m: usize) -> Vec<usize> {
    // 1-based, with row/column 0 as the virtual start of each augmenting path.
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; m + 1];
    let mut row_of = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    let mut min_to = vec![0.0f64; m + 1];
    let mut used = vec![false; m + 1];
    for i in 1..=n {
        row_of[0] = i;
        let mut j0 = 0;
        min_to.fill(f64::INFINITY);
        used.fill(false);
        loop {
            used[j0] = true;
            let i0 = row_of[j0];
            let (mut delta, mut j1) = (f64::INFINITY, 0);
            for j in 1..=m {
                if used[j] {
                    continue;
                }
                let reduced = cost[(i0 - 1) * m + (j - 1)] - u[i0] - v[j];
                if reduced < min_to[j] {
                    min_to[j] = reduced;
                    way[j] = j0;
                }
                if min_to[j] < delta {
                    delta = min_to[j];
                    j1 = j;
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[row_of[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_to[j] -= delta;
                }
            }
            j0 = j1;
            if row_of[j0] == 0 {
                break;
            }
        }
        while j0 != 0 {
            let j1 = way[j0];
            row_of[j0] = row_of[j1];
            j0 = j1;
        }
    }
    let mut col_of = vec![0usize; n];
    for j in 1..=m {
        if row_of[j] != 0 {
            col_of[row_of[j] - 1] = j - 1;
        }
    }
    col_of
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

    const UNMATCHED: f64 = 1.01;

    fn run(cands: &[Candidate], tracks: usize, dets: usize) -> Vec<(usize, usize)> {
        let (mut tt, mut dt, mut m) = (vec![false; tracks], vec![false; dets], Vec::new());
        assign(cands, UNMATCHED, &mut tt, &mut dt, &mut m);
        m
    }

    /// Σ(cost − unmatched) of a set of pairs: what `assign` minimises.
    fn objective(cands: &[Candidate], pairs: &[(usize, usize)]) -> f64 {
        pairs
            .iter()
            .map(|&(t, d)| {
                let c = cands.iter().filter(|c| (c.track, c.det) == (t, d));
                c.map(|c| f64::from(c.cost)).fold(f64::INFINITY, f64::min) - UNMATCHED
            })
            .sum()
    }

    /// The least objective over every partial one-to-one matching, by exhaustive search.
    fn brute_force(cands: &[Candidate], t: usize, tracks: usize, used: &mut Vec<bool>) -> f64 {
        if t == tracks {
            return 0.0;
        }
        let mut best = brute_force(cands, t + 1, tracks, used);
        for c in cands.iter().filter(|c| c.track == t) {
            if !used[c.det] {
                used[c.det] = true;
                let v = f64::from(c.cost) - UNMATCHED + brute_force(cands, t + 1, tracks, used);
                used[c.det] = false;
                best = best.min(v);
            }
        }
        best
    }

    fn cand(cost: f32, track: usize, det: usize) -> Candidate {
        Candidate { cost, track, det }
    }

    #[test]
    fn identical_boxes_cost_nothing() {
        let a = bx(0.0, 0.0, 0.2, 0.2);
        assert_eq!(cost(&a, &a, GATES), Some(0.0));
    }

    #[test]
    fn disjoint_nearby_pair_of_similar_size_costs_its_centre_distance_in_diagonals() {
        // Moved one box width to the right: IoU 0, centre jump = 0.1 / diag(0.1 x 0.3) ≈ 0.32.
        let a = bx(0.1, 0.1, 0.2, 0.4);
        let b = bx(0.2, 0.1, 0.3, 0.4);
        let c = cost(&a, &b, GATES).unwrap();
        assert!((c - 0.1 / 0.1f32.hypot(0.3)).abs() < 1e-5, "cost {c}");
    }

    #[test]
    fn nearer_centre_costs_less_whether_or_not_the_boxes_overlap() {
        let a = bx(0.1, 0.1, 0.2, 0.4);
        let overlapping = bx(0.14, 0.1, 0.24, 0.4);
        let disjoint = bx(0.2, 0.1, 0.3, 0.4);
        assert!(cost(&a, &overlapping, GATES).unwrap() < cost(&a, &disjoint, GATES).unwrap());
    }

    #[test]
    fn overlap_admits_a_pair_whose_sizes_differ() {
        // A person whose legs become hidden: half the height, same top.
        let a = bx(0.1, 0.1, 0.2, 0.5);
        let upper = bx(0.1, 0.1, 0.2, 0.25);
        assert!(cost(&a, &upper, GATES).is_some());
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
    fn assignment_minimises_the_total_cost_where_best_pair_first_would_not() {
        // Best pair first would take 0–0 (0.1) and leave track 1 without a detection.
        let m = run(&[cand(0.1, 0, 0), cand(0.3, 0, 1), cand(0.2, 1, 0)], 2, 2);
        assert_eq!(m, vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn one_good_pair_beats_two_far_fetched_ones() {
        let m = run(&[cand(0.1, 0, 0), cand(0.9, 0, 1), cand(0.8, 1, 0)], 2, 2);
        assert_eq!(m, vec![(0, 0)]);
    }

    #[test]
    fn a_lone_pair_at_the_edge_of_the_gates_still_matches() {
        assert_eq!(run(&[cand(1.0, 0, 0)], 1, 1), vec![(0, 0)]);
    }

    #[test]
    fn more_tracks_than_detections_each_detection_goes_to_its_cheapest_track() {
        let m = run(&[cand(0.5, 0, 0), cand(0.2, 1, 0), cand(0.9, 2, 0)], 3, 1);
        assert_eq!(m, vec![(1, 0)]);
    }

    #[test]
    fn taken_tracks_and_detections_are_skipped() {
        let cands = [cand(0.1, 0, 0), cand(0.5, 1, 0), cand(0.5, 0, 1)];
        let (mut tt, mut dt, mut m) = (vec![true, false], vec![false, false], Vec::new());
        assign(&cands, UNMATCHED, &mut tt, &mut dt, &mut m);
        assert_eq!(
            (m, tt, dt),
            (vec![(1, 0)], vec![true, true], vec![true, false])
        );
    }

    proptest::proptest! {
        #[test]
        fn assignment_is_one_to_one_and_as_cheap_as_exhaustive_search(
            tracks in 1usize..5,
            dets in 1usize..5,
            raw in proptest::collection::vec((0usize..5, 0usize..5, 0.0f32..1.0), 0..16),
        ) {
            let cands: Vec<Candidate> = raw
                .into_iter()
                .filter(|&(t, d, _)| t < tracks && d < dets)
                .map(|(t, d, c)| cand(c, t, d))
                .collect();
            let m = run(&cands, tracks, dets);
            let mut ts: Vec<_> = m.iter().map(|p| p.0).collect();
            let mut ds: Vec<_> = m.iter().map(|p| p.1).collect();
            ts.sort_unstable();
            ts.dedup();
            ds.sort_unstable();
            ds.dedup();
            proptest::prop_assert_eq!((ts.len(), ds.len()), (m.len(), m.len()));
            proptest::prop_assert!(m.iter().all(|p| cands.iter().any(|c| (c.track, c.det) == *p)));
            let best = brute_force(&cands, 0, tracks, &mut vec![false; dets]);
            proptest::prop_assert!((objective(&cands, &m) - best).abs() < 1e-6);
        }
    }
}
