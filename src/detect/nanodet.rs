//! NanoDet (GFL) output decoding: per stride, the best class of each grid cell and its box from the
//! per-side distributions (softmax over `reg_max + 1` bins, expectation × stride).

use crate::base::{BBox, Detection};

/// One stride's outputs, borrowed from the session.
pub struct StrideOutput<'a> {
    pub stride: usize,
    /// `[cells, classes]`, sigmoid already applied.
    pub scores: &'a [f32],
    /// `[cells, 4 × (reg_max + 1)]`: left, top, right, bottom distributions.
    pub boxes: &'a [f32],
}

/// Decode all strides into candidate detections (before NMS) in normalised coordinates.
/// `input` is the model's input size (width, height) in pixels.
pub fn decode_nanodet(
    outputs: &[StrideOutput],
    classes: usize,
    reg_max: usize,
    input: (usize, usize),
    min_score: f32,
    out: &mut Vec<Detection>,
) {
    let bins = reg_max + 1;
    let (iw, ih) = (input.0 as f32, input.1 as f32);
    for o in outputs {
        let cols = input.0.div_ceil(o.stride);
        let cells = o.scores.len() / classes;
        for cell in 0..cells {
            let row = &o.scores[cell * classes..(cell + 1) * classes];
            let (class, &score) = row.iter().enumerate().fold((0, &f32::MIN), |best, cur| {
                if cur.1 > best.1 { cur } else { best }
            });
            if score < min_score {
                continue;
            }
            let dist = &o.boxes[cell * 4 * bins..(cell + 1) * 4 * bins];
            let side = |k: usize| expectation(&dist[k * bins..(k + 1) * bins]) * o.stride as f32;
            let s = o.stride as f32;
            let cx = ((cell % cols) as f32 + 0.5) * s;
            let cy = ((cell / cols) as f32 + 0.5) * s;
            let bbox = BBox {
                x1: (cx - side(0)) / iw,
                y1: (cy - side(1)) / ih,
                x2: (cx + side(2)) / iw,
                y2: (cy + side(3)) / ih,
            }
            .clamped();
            out.push(Detection { class, score, bbox });
        }
    }
}

/// Softmax expectation of bin indices.
fn expectation(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let (mut sum, mut weighted) = (0.0, 0.0);
    for (i, &l) in logits.iter().enumerate() {
        let e = (l - max).exp();
        sum += e;
        weighted += e * i as f32;
    }
    weighted / sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode one stride-8 output of a 16×16 input (a 2×2 grid) with reg_max 3 at score 0.5.
    fn decode_one_stride(scores: &[f32], boxes: &[f32], classes: usize) -> Vec<Detection> {
        let mut out = Vec::new();
        decode_nanodet(
            &[StrideOutput {
                stride: 8,
                scores,
                boxes,
            }],
            classes,
            3,
            (16, 16),
            0.5,
            &mut out,
        );
        out
    }

    #[test]
    fn a_peaked_distribution_decodes_to_its_bin() {
        // One stride-8 cell grid of 2×2 on a 16×16 input, 2 classes, reg_max 3 (4 bins).
        let mut scores = vec![0.0f32; 4 * 2];
        scores[3 * 2 + 1] = 0.9; // cell 3 (row 1, col 1), class 1
        let mut boxes = vec![-20.0f32; 4 * 4 * 4];
        for side in 0..4 {
            boxes[3 * 16 + side * 4 + 1] = 20.0; // every side one bin = 1 × stride
        }
        let out = decode_one_stride(&scores, &boxes, 2);
        assert_eq!(out.len(), 1);
        let d = &out[0];
        assert_eq!(d.class, 1);
        // centre (12, 12), each side 8 px → (4, 4, 20→clamped 16, 16) / 16
        assert!(
            (d.bbox.x1 - 0.25).abs() < 1e-4 && (d.bbox.y1 - 0.25).abs() < 1e-4,
            "{d:?}"
        );
        assert!((d.bbox.x2 - 1.0).abs() < 1e-4 && (d.bbox.y2 - 1.0).abs() < 1e-4);
    }

    #[test]
    fn cells_below_the_score_are_skipped() {
        let scores = vec![0.1f32; 4];
        let boxes = vec![0.0f32; 4 * 4 * 4];
        let out = decode_one_stride(&scores, &boxes, 1);
        assert!(out.is_empty());
    }
}
