//! The luma thumbnail of a frame and its grid of cells: sampling tables per source size, the zone mask, and
//! cell geometry. Area averaging straight from the packed RGB frame, so no full-size copy is ever made.

use super::SceneParams;
use crate::base::ImageView;
use crate::rules::Polygon;

/// Sampling tables and zone mask for one source frame size.
#[derive(Debug, Clone, Default)]
pub(super) struct Grid {
    pub(super) src: (usize, usize),
    pub(super) tw: usize,
    pub(super) th: usize,
    pub(super) cols: usize,
    pub(super) rows: usize,
    /// Source columns per thumbnail column: `col_start[tx]..col_start[tx + 1]`.
    pub(super) col_start: Vec<usize>,
    /// Source rows per thumbnail row: `row_start[ty]..row_start[ty + 1]`.
    pub(super) row_start: Vec<usize>,
    pub(super) in_zone: Vec<bool>,
    pub(super) zone_cells: usize,
}

impl Grid {
    pub(super) fn new(zone: &Polygon, p: &SceneParams, width: usize, height: usize) -> Self {
        let tw = p.thumb_width.clamp(1, width);
        let th = ((tw * height + width / 2) / width).clamp(1, height);
        let cell = p.cell_px.max(1);
        let (cols, rows) = (tw.div_ceil(cell), th.div_ceil(cell));
        let col_start = (0..=tw).map(|tx| (tx * width).div_ceil(tw)).collect();
        let row_start = (0..=th).map(|ty| (ty * height).div_ceil(th)).collect();
        let mut in_zone = vec![false; cols * rows];
        for (i, z) in in_zone.iter_mut().enumerate() {
            let (x0, y0, x1, y1) = cell_rect(i % cols, i / cols, cell, tw, th);
            *z = zone.contains((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        }
        let zone_cells = in_zone.iter().filter(|z| **z).count();
        Self {
            src: (width, height),
            tw,
            th,
            cols,
            rows,
            col_start,
            row_start,
            in_zone,
            zone_cells,
        }
    }

    /// Area-average the frame's luma into `out` (`tw × th`), reusing `acc` for per-column channel sums.
    pub(super) fn thumbnail(&self, frame: &ImageView, acc: &mut Vec<u32>, out: &mut Vec<u8>) {
        out.resize(self.tw * self.th, 0);
        acc.resize(self.tw * 3, 0);
        for ty in 0..self.th {
            acc.fill(0);
            let (y0, y1) = (self.row_start[ty], self.row_start[ty + 1]);
            for y in y0..y1 {
                let row = frame.row(y);
                // Channel sums over each column's contiguous run; luma weights are applied once per cell of
                // the thumbnail rather than per source pixel.
                for (sums, span) in acc.chunks_exact_mut(3).zip(self.col_start.windows(2)) {
                    for px in row[span[0] * 3..span[1] * 3].chunks_exact(3) {
                        sums[0] += px[0] as u32;
                        sums[1] += px[1] as u32;
                        sums[2] += px[2] as u32;
                    }
                }
            }
            let rows_here = (y1 - y0) as u32;
            for (tx, sums) in acc.chunks_exact(3).enumerate() {
                let cols_here = (self.col_start[tx + 1] - self.col_start[tx]) as u32;
                let n = (rows_here * cols_here).max(1) as u64 * 256;
                // BT.601 luma in 8.8 fixed point; u64 so any frame size is safe.
                let luma = 77 * sums[0] as u64 + 150 * sums[1] as u64 + 29 * sums[2] as u64;
                out[ty * self.tw + tx] = ((luma + n / 2) / n) as u8;
            }
        }
    }
}

/// Normalised rectangle of cell (`cx`, `cy`).
pub(super) fn cell_rect(
    cx: usize,
    cy: usize,
    cell: usize,
    tw: usize,
    th: usize,
) -> (f32, f32, f32, f32) {
    (
        (cx * cell) as f32 / tw as f32,
        (cy * cell) as f32 / th as f32,
        ((cx + 1) * cell).min(tw) as f32 / tw as f32,
        ((cy + 1) * cell).min(th) as f32 / th as f32,
    )
}

/// Call `f` with the thumbnail index of every pixel of cell `i`.
pub(super) fn for_cell_pixels(g: &Grid, cell: usize, i: usize, mut f: impl FnMut(usize)) {
    let (cx, cy) = (i % g.cols, i / g.cols);
    for y in cy * cell..((cy + 1) * cell).min(g.th) {
        for x in cx * cell..((cx + 1) * cell).min(g.tw) {
            f(y * g.tw + x);
        }
    }
}

/// Number of thumbnail pixels in cell `i` (edge cells may be partial).
pub(super) fn cell_pixel_count(g: &Grid, cell: usize, i: usize) -> usize {
    let (cx, cy) = (i % g.cols, i / g.cols);
    (((cx + 1) * cell).min(g.tw) - cx * cell) * (((cy + 1) * cell).min(g.th) - cy * cell)
}
