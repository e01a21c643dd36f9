//! Class-wise non-maximum suppression.

use super::Detection;

/// Keep, per class, the highest-scoring boxes that overlap no kept box by more than `iou`. The result is
/// sorted by descending score. Candidates are sorted once; each class is compared only within itself.
pub fn nms_per_class(mut candidates: Vec<Detection>, iou: f32) -> Vec<Detection> {
    candidates.sort_by(|a, b| a.class.cmp(&b.class).then(b.score.total_cmp(&a.score)));
    let mut kept: Vec<Detection> = Vec::with_capacity(candidates.len().min(256));
    let mut class_start = 0;
    for d in candidates {
        if kept.last().is_none_or(|k| k.class != d.class) {
            class_start = kept.len();
        }
        if kept[class_start..]
            .iter()
            .all(|k| k.bbox.iou(&d.bbox) <= iou)
        {
            kept.push(d);
        }
    }
    kept.sort_by(|a, b| b.score.total_cmp(&a.score));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::BBox;
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
