//! Class-wise non-maximum suppression.
//!
//! Cost stays linear in the candidates: the decoders drop candidates below the score threshold first, one
//! sort orders the rest by class and score, each candidate is compared only with the boxes kept in its own
//! class, and a class keeps at most [`MAX_PER_CLASS`] boxes (YOLO's `max_det`), so 8,400 candidates of
//! one class cost at most 8,400 × 300 overlap tests, not 8,400².

use crate::base::Detection;

/// Most boxes one class keeps from a frame.
pub const MAX_PER_CLASS: usize = 300;

/// Keep, per class, the highest-scoring boxes that overlap no kept box by more than `iou`. The result is
/// sorted by descending score. Candidates are sorted once; each class is compared only within itself.
pub fn nms_per_class(mut candidates: Vec<Detection>, iou: f32) -> Vec<Detection> {
    nms_in_place(&mut candidates, iou);
    candidates
}

/// [`nms_per_class`] in the candidates' own buffer: the kept boxes are moved to its front and the rest cut
/// off, so a buffer reused across frames keeps its capacity.
pub fn nms_in_place(candidates: &mut Vec<Detection>, iou: f32) {
    candidates.sort_unstable_by(|a, b| a.class.cmp(&b.class).then(b.score.total_cmp(&a.score)));
    // candidates[..kept] are the boxes kept so far; those of the current class start at `class_start`.
    let (mut kept, mut class_start) = (0, 0);
    for i in 0..candidates.len() {
        let d = candidates[i].clone();
        if kept == 0 || candidates[kept - 1].class != d.class {
            class_start = kept;
        }
        let class_kept = &candidates[class_start..kept];
        if class_kept.len() < MAX_PER_CLASS && class_kept.iter().all(|k| k.bbox.iou(&d.bbox) <= iou)
        {
            candidates[kept] = d;
            kept += 1;
        }
    }
    candidates.truncate(kept);
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::BBox;
    use proptest::prelude::*;

    fn det(class: usize, score: f32, x: f32) -> Detection {
        Detection {
            class,
            score,
            bbox: BBox {
                x1: x,
                y1: 0.0,
                x2: x + 0.2,
                y2: 0.2,
            },
        }
    }

    #[test]
    fn overlapping_same_class_boxes_keep_the_best() {
        let out = nms_per_class(
            vec![det(0, 0.6, 0.0), det(0, 0.9, 0.01), det(0, 0.5, 0.5)],
            0.45,
        );
        assert_eq!(
            out.iter().map(|d| d.score).collect::<Vec<_>>(),
            vec![0.9, 0.5]
        );
    }

    #[test]
    fn a_class_keeps_at_most_max_per_class_boxes() {
        // 1,000 disjoint boxes of one class (a 40 × 25 grid), 10 of another.
        let grid = |class: usize, i: usize| Detection {
            class,
            score: 1.0 - i as f32 / 2000.0,
            bbox: BBox {
                x1: (i % 40) as f32 / 40.0,
                y1: (i / 40) as f32 / 40.0,
                x2: (i % 40) as f32 / 40.0 + 0.02,
                y2: (i / 40) as f32 / 40.0 + 0.02,
            },
        };
        let mut dets: Vec<_> = (0..1000).map(|i| grid(0, i)).collect();
        dets.extend((0..10).map(|i| grid(1, i)));
        let out = nms_per_class(dets, 0.45);
        assert_eq!(out.iter().filter(|d| d.class == 0).count(), MAX_PER_CLASS);
        assert_eq!(out.iter().filter(|d| d.class == 1).count(), 10);
        // The best-scoring ones are the ones kept.
        assert!(
            out.iter()
                .filter(|d| d.class == 0)
                .all(|d| d.score > 1.0 - 300.0 / 2000.0)
        );
    }

    #[test]
    fn overlapping_boxes_of_different_classes_both_survive() {
        let out = nms_per_class(vec![det(0, 0.6, 0.0), det(1, 0.9, 0.0)], 0.45);
        assert_eq!(out.len(), 2);
    }

    proptest! {
        #[test]
        fn kept_boxes_of_one_class_never_overlap_beyond_the_threshold(
            boxes in proptest::collection::vec((0usize..3, 0.0f32..1.0, 0.0f32..0.8, 0.0f32..0.8, 0.05f32..0.2), 0..200)
        ) {
            let dets: Vec<_> = boxes.iter().map(|&(c, s, x, y, w)| Detection { class: c, score: s, bbox: BBox { x1: x, y1: y, x2: x + w, y2: y + w } }).collect();
            let n = dets.len();
            let out = nms_per_class(dets, 0.45);
            prop_assert!(out.len() <= n);
            prop_assert!(n == 0 || !out.is_empty());
            for (i, a) in out.iter().enumerate() {
                for b in &out[i + 1..] {
                    prop_assert!(a.class != b.class || a.bbox.iou(&b.bbox) <= 0.45);
                }
            }
            prop_assert!(out.windows(2).all(|w| w[0].score >= w[1].score));
        }
    }
}
