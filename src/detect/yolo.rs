//! YOLO output heads. Both give boxes as centre x, centre y, width, height in input pixels and class scores
//! with the sigmoid already applied; they differ in layout and in whether there is an objectness score.
//!
//! - YOLOv5 (and v7): `[1, N, 5 + C]`, one row per candidate: cx, cy, w, h, objectness, C class scores;
//!   score = objectness × best class score.
//! - YOLOv8 and YOLO11: `[1, 4 + C, N]`, one column per candidate, no objectness; score = best class score.
//!   Read row by row (one class over all candidates) so memory is walked in order; the best score per
//!   candidate is kept in a reused buffer.
//!
//! Candidates below the score threshold are dropped here, before NMS sees them. Boxes come out normalised
//! to the input tensor (not yet mapped back to the frame, not clamped).

use crate::base::{BBox, Detection};

fn bbox(cx: f32, cy: f32, w: f32, h: f32, input: (usize, usize)) -> BBox {
    let (iw, ih) = (input.0 as f32, input.1 as f32);
    BBox {
        x1: (cx - w / 2.0) / iw,
        y1: (cy - h / 2.0) / ih,
        x2: (cx + w / 2.0) / iw,
        y2: (cy + h / 2.0) / ih,
    }
}

/// Decode a YOLOv5 `[1, N, 5 + classes]` tensor into `out`.
pub fn decode_yolov5(
    tensor: &[f32],
    classes: usize,
    input: (usize, usize),
    min_score: f32,
    out: &mut Vec<Detection>,
) {
    for row in tensor.chunks_exact(5 + classes) {
        let objectness = row[4];
        // Class scores are at most 1, so a low objectness rules the candidate out before the class scan.
        if objectness < min_score {
            continue;
        }
        let (class, best) = argmax(&row[5..]);
        let score = objectness * best;
        if score >= min_score {
            out.push(Detection {
                class,
                score,
                bbox: bbox(row[0], row[1], row[2], row[3], input),
            });
        }
    }
}

/// Decode a YOLOv8 `[1, 4 + classes, N]` tensor into `out`; `best` is scratch space reused across frames.
pub fn decode_yolov8(
    tensor: &[f32],
    classes: usize,
    input: (usize, usize),
    min_score: f32,
    best: &mut Vec<(f32, u32)>,
    out: &mut Vec<Detection>,
) {
    let n = tensor.len() / (4 + classes);
    best.clear();
    best.resize(n, (f32::NEG_INFINITY, 0));
    for c in 0..classes {
        let row = &tensor[(4 + c) * n..(5 + c) * n];
        for (b, &s) in best.iter_mut().zip(row) {
            if s > b.0 {
                *b = (s, c as u32);
            }
        }
    }
    for (i, &(score, class)) in best.iter().enumerate() {
        if score >= min_score {
            let at = |k: usize| tensor[k * n + i];
            out.push(Detection {
                class: class as usize,
                score,
                bbox: bbox(at(0), at(1), at(2), at(3), input),
            });
        }
    }
}

/// Index and value of the largest score (the first on ties).
fn argmax(scores: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &s) in scores.iter().enumerate() {
        if s > best.1 {
            best = (i, s);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yolov5_score_is_objectness_times_the_best_class() {
        // Two candidates, 2 classes, 100×50 input.
        #[rustfmt::skip]
        let t = [
            50.0, 25.0, 20.0, 10.0, 0.8, 0.1, 0.9, // kept: 0.72, class 1
            10.0, 10.0, 4.0, 4.0, 0.2, 1.0, 0.0,   // objectness below 0.25
        ];
        let mut out = Vec::new();
        decode_yolov5(&t, 2, (100, 50), 0.25, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].class, 1);
        assert!((out[0].score - 0.72).abs() < 1e-6);
        assert_eq!(
            out[0].bbox,
            BBox {
                x1: 0.4,
                y1: 0.4,
                x2: 0.6,
                y2: 0.6
            }
        );
    }

    #[test]
    fn yolov8_reads_candidates_by_column() {
        // 3 candidates, 2 classes: rows cx, cy, w, h, class 0, class 1.
        #[rustfmt::skip]
        let t = [
            10.0, 20.0, 30.0,
            10.0, 20.0, 30.0,
            4.0, 4.0, 8.0,
            4.0, 4.0, 8.0,
            0.9, 0.1, 0.3,
            0.2, 0.5, 0.6,
        ];
        let (mut best, mut out) = (Vec::new(), Vec::new());
        decode_yolov8(&t, 2, (40, 40), 0.55, &mut best, &mut out);
        let got: Vec<(usize, f32, BBox)> = out.iter().map(|d| (d.class, d.score, d.bbox)).collect();
        assert_eq!(
            got,
            vec![
                (
                    0,
                    0.9,
                    BBox {
                        x1: 0.2,
                        y1: 0.2,
                        x2: 0.3,
                        y2: 0.3
                    }
                ),
                (
                    1,
                    0.6,
                    BBox {
                        x1: 0.65,
                        y1: 0.65,
                        x2: 0.85,
                        y2: 0.85
                    }
                ),
            ]
        );
    }
}
