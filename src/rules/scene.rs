//! Scene change against a clean reference: the fallback for categories no public detector finds (bin
//! overflow, exposed garbage, piled debris, hanging laundry). A zone keeps a small luma thumbnail of the scene
//! when it was clean and raises when a large part of the zone has stayed different from it for a while.
//!
//! Per observation:
//! - the frame is area-averaged into a luma thumbnail `thumb_width` px wide, split into `cell_px`-square
//!   cells; only cells whose centre lies in the zone polygon take part;
//! - the current thumbnail is brightness-normalised to the reference by one gain, the median over compared
//!   cells of their luma ratios, so a cloud or the camera's exposure does not count;
//! - a cell is *changed* when the mean absolute luma difference reaches `cell_threshold`; it *returns* to the
//!   reference only below `RETURN_FRACTION` of it (between the two it keeps its state), which restarts its
//!   clock; a cell changed for `persist` is *persistent*;
//! - cells touched by a (padded) exclusion box — people and vehicles — are not looked at: they count neither
//!   as changed nor as persistent-by-new-evidence, and their state is frozen, so a person standing in front of
//!   a pile neither resets its clock nor drops a cell that was already persistent;
//! - the rule holds while persistent cells make up `min_changed_fraction` of the zone's cells.
//!
//! Without a reference, the first *quiet* frame (exclusion boxes on less than `quiet_max_excluded` of the
//! zone) becomes it; cells under its exclusion boxes are marked unknown and filled in the first time they are
//! seen uncovered. A frame whose thumbnail has another size than the reference's (the camera's resolution or
//! aspect changed) makes the reference stale: the next quiet frame replaces it (`reference_taken`).

mod thumbnail;

use super::zone::Polygon;
use crate::base::{BBox, ImageView};
use std::time::{Duration, Instant};
use thumbnail::{Grid, cell_pixel_count, cell_rect, for_cell_pixels};

/// A changed cell counts as back to the reference only below this fraction of `cell_threshold`: compression
/// noise around the threshold would otherwise keep restarting the clock of a real object's edge cells.
const RETURN_FRACTION: f32 = 0.6;
/// Added to both lumas of the brightness ratio so near-black cells (noise over a tiny mean) carry no weight.
const DARK_OFFSET: f32 = 4.0;
/// Leading bytes of a persisted reference.
const MAGIC: &[u8; 4] = b"SSRF";
const FORMAT_VERSION: u8 = 1;
/// Magic, version, cell size, thumbnail width and height (u16 little-endian each).
const HEADER_LEN: usize = 4 + 1 + 2 + 2 + 2;
/// The normalisation gain is clamped: a thumbnail gone flat (lens covered, night) must not be blown up.
const MAX_GAIN: f32 = 4.0;

/// Parameters of one scene-change rule (from the configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct SceneParams {
    /// Width of the luma thumbnail in pixels (height follows the frame's aspect).
    pub thumb_width: usize,
    /// Cell size in thumbnail pixels.
    pub cell_px: usize,
    /// Mean absolute luma difference (0..255), after brightness normalisation, at which a cell is changed.
    pub cell_threshold: f32,
    /// Fraction of the zone's cells that must be persistent for the rule to hold.
    pub min_changed_fraction: f32,
    /// How long a cell must stay changed to be persistent.
    pub persist: Duration,
    /// Exclusion boxes grow on each side by this fraction of their width (resp. height).
    pub exclude_pad: f32,
    /// A frame may become the reference only while exclusion boxes cover less than this fraction of the zone.
    pub quiet_max_excluded: f32,
}

impl Default for SceneParams {
    /// 160-px thumbnail in 8-px cells (20 × 15 cells for 4:3): a cell is ~38 px of a 768-px frame, about a
    /// bin's width at pole distance. Threshold and fraction are from the measurements in the notes.
    fn default() -> Self {
        Self {
            thumb_width: 160,
            cell_px: 8,
            cell_threshold: 14.0,
            min_changed_fraction: 0.05,
            persist: Duration::from_secs(60),
            exclude_pad: 0.1,
            quiet_max_excluded: 0.05,
        }
    }
}

/// What one frame showed in the zone.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SceneObservation {
    /// Fraction of the zone's cells that differ from the reference in this frame.
    pub changed_fraction: f32,
    /// Fraction of the zone's cells that have differed for `persist` (occluded ones keep their last verdict).
    pub persistent_fraction: f32,
    /// `persistent_fraction ≥ min_changed_fraction`.
    pub holds: bool,
    /// Bounding box (normalised) of the persistent cells.
    pub region: Option<BBox>,
    /// This frame became the reference (nothing was compared).
    pub reference_taken: bool,
}

/// Why a persisted reference was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SceneError {
    #[error(
        "scene reference: expected a stored scene reference (at least {HEADER_LEN} bytes starting with \"SSRF\"), found {found} bytes that are not one; take a new reference"
    )]
    NotAReference { found: usize },
    #[error(
        "scene reference: expected format version {FORMAT_VERSION}, found {found}; take a new reference"
    )]
    Version { found: u8 },
    #[error(
        "scene reference: expected {expected_cell}-px cells on a thumbnail at most {expected_width} px wide, found {found_cell}-px cells on {found_width}x{found_height}; take a new reference or restore the cell size and thumbnail width it was made with"
    )]
    Geometry {
        expected_cell: usize,
        expected_width: usize,
        found_cell: usize,
        found_width: usize,
        found_height: usize,
    },
    #[error(
        "scene reference: expected {expected} bytes for its {width}x{height} thumbnail, found {found}; the stored file is truncated or corrupt, take a new reference"
    )]
    Length {
        width: usize,
        height: usize,
        expected: usize,
        found: usize,
    },
}

/// The clean scene: luma thumbnail plus which cells are known (cells under people when it was taken are not).
#[derive(Debug, Clone, PartialEq)]
struct Reference {
    tw: usize,
    th: usize,
    luma: Vec<u8>,
    known: Vec<bool>,
}

/// Per-cell persistence state.
#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    /// Since when the cell has differed from the reference (`None`: it matches).
    since: Option<Instant>,
    /// Last verdict from a frame in which the cell was seen.
    persistent: bool,
}

/// The rule and its state for one zone of one camera.
#[derive(Debug, Clone)]
pub struct SceneChange {
    zone: Polygon,
    params: SceneParams,
    grid: Grid,
    reference: Option<Reference>,
    cells: Vec<Cell>,
    // Per-frame buffers, kept to avoid allocating on every observation.
    thumb: Vec<u8>,
    acc: Vec<u32>,
    excluded: Vec<bool>,
}

impl SceneChange {
    /// How long a cell must stay changed to count.
    pub fn persist(&self) -> std::time::Duration {
        self.params.persist
    }

    pub fn new(zone: Polygon, params: SceneParams) -> Self {
        Self {
            zone,
            params,
            grid: Grid::default(),
            reference: None,
            cells: Vec::new(),
            thumb: Vec::new(),
            acc: Vec::new(),
            excluded: Vec::new(),
        }
    }

    pub fn params(&self) -> &SceneParams {
        &self.params
    }

    pub fn has_reference(&self) -> bool {
        self.reference.is_some()
    }

    /// The installer says the scene is clean now: this frame becomes the reference, every cell known.
    pub fn set_reference(&mut self, frame: ImageView) {
        self.prepare(&frame);
        self.take_reference(&[]);
    }

    /// The reference for storage across restarts; empty when there is none.
    pub fn reference_bytes(&self) -> Vec<u8> {
        let Some(r) = &self.reference else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(HEADER_LEN + r.luma.len() + r.known.len().div_ceil(8));
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        for v in [self.params.cell_px, r.tw, r.th] {
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        out.extend_from_slice(&r.luma);
        out.extend(r.known.chunks(8).map(|bits| {
            bits.iter()
                .enumerate()
                .fold(0u8, |b, (i, k)| b | (u8::from(*k) << i))
        }));
        out
    }

    /// Restore a stored reference; refused when it was made with another cell size or a wider thumbnail.
    pub fn load_reference(&mut self, bytes: &[u8]) -> Result<(), SceneError> {
        if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
            return Err(SceneError::NotAReference { found: bytes.len() });
        }
        if bytes[4] != FORMAT_VERSION {
            return Err(SceneError::Version { found: bytes[4] });
        }
        let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]) as usize;
        let (cell, tw, th) = (u16_at(5), u16_at(7), u16_at(9));
        if cell == 0
            || cell != self.params.cell_px
            || tw > self.params.thumb_width
            || tw == 0
            || th == 0
        {
            return Err(SceneError::Geometry {
                expected_cell: self.params.cell_px,
                expected_width: self.params.thumb_width,
                found_cell: cell,
                found_width: tw,
                found_height: th,
            });
        }
        let n_cells = tw.div_ceil(cell) * th.div_ceil(cell);
        let expected = HEADER_LEN + tw * th + n_cells.div_ceil(8);
        if bytes.len() != expected {
            return Err(SceneError::Length {
                width: tw,
                height: th,
                expected,
                found: bytes.len(),
            });
        }
        let mask = &bytes[HEADER_LEN + tw * th..];
        self.reference = Some(Reference {
            tw,
            th,
            luma: bytes[HEADER_LEN..HEADER_LEN + tw * th].to_vec(),
            known: (0..n_cells)
                .map(|i| mask[i / 8] >> (i % 8) & 1 == 1)
                .collect(),
        });
        self.cells = vec![Cell::default(); n_cells];
        Ok(())
    }

    /// Compare one frame with the reference. `exclude`: boxes (people, vehicles) whose cells are not looked at.
    pub fn observe(
        &mut self,
        frame: ImageView,
        exclude: &[BBox],
        now: Instant,
    ) -> SceneObservation {
        self.prepare(&frame);
        self.mark_excluded(exclude);
        let g = &self.grid;
        let fits = |r: &Reference| r.tw == g.tw && r.th == g.th;
        if !self.reference.as_ref().is_some_and(fits) {
            self.reference = None;
            let covered = self.zone_fraction(|i| self.excluded[i]);
            let quiet = covered == 0.0 || covered < self.params.quiet_max_excluded;
            if quiet {
                let excluded = std::mem::take(&mut self.excluded);
                self.take_reference(&excluded);
                self.excluded = excluded;
            }
            return SceneObservation {
                reference_taken: quiet,
                ..SceneObservation::default()
            };
        }
        self.fill_unknown_cells();
        let scores = self.cell_scores();
        let mut changed = vec![false; scores.len()];
        for (i, score) in scores.into_iter().enumerate() {
            let Some(score) = score else { continue };
            let cell = &mut self.cells[i];
            if score >= self.params.cell_threshold {
                changed[i] = true;
                cell.since.get_or_insert(now);
            } else if score < self.params.cell_threshold * RETURN_FRACTION {
                cell.since = None;
            }
            cell.persistent = cell
                .since
                .is_some_and(|s| now.saturating_duration_since(s) >= self.params.persist);
        }
        let changed_fraction = self.zone_fraction(|i| changed[i]);
        let persistent_fraction = self.zone_fraction(|i| self.cells[i].persistent);
        SceneObservation {
            changed_fraction,
            persistent_fraction,
            holds: persistent_fraction > 0.0
                && persistent_fraction >= self.params.min_changed_fraction,
            region: self.persistent_region(),
            reference_taken: false,
        }
    }

    /// Rebuild the grid when the frame size changed, then make this frame's thumbnail.
    fn prepare(&mut self, frame: &ImageView) {
        if self.grid.src != (frame.width(), frame.height()) {
            self.grid = Grid::new(&self.zone, &self.params, frame.width(), frame.height());
        }
        self.grid.thumbnail(frame, &mut self.acc, &mut self.thumb);
    }

    /// Cells touched by any padded exclusion box.
    fn mark_excluded(&mut self, exclude: &[BBox]) {
        let g = &self.grid;
        let cell = self.params.cell_px.max(1);
        let pad = self.params.exclude_pad;
        self.excluded.clear();
        self.excluded.resize(g.cols * g.rows, false);
        for b in exclude {
            let (px, py) = ((b.x2 - b.x1).max(0.0) * pad, (b.y2 - b.y1).max(0.0) * pad);
            let (bx1, by1, bx2, by2) = (b.x1 - px, b.y1 - py, b.x2 + px, b.y2 + py);
            for (i, e) in self.excluded.iter_mut().enumerate() {
                let (x1, y1, x2, y2) = cell_rect(i % g.cols, i / g.cols, cell, g.tw, g.th);
                if x1 < bx2 && bx1 < x2 && y1 < by2 && by1 < y2 {
                    *e = true;
                }
            }
        }
    }

    /// The current thumbnail becomes the reference; cells in `unknown` are left to be filled later.
    fn take_reference(&mut self, unknown: &[bool]) {
        let n = self.grid.cols * self.grid.rows;
        self.reference = Some(Reference {
            tw: self.grid.tw,
            th: self.grid.th,
            luma: self.thumb.clone(),
            known: (0..n)
                .map(|i| !unknown.get(i).copied().unwrap_or(false))
                .collect(),
        });
        self.cells = vec![Cell::default(); n];
    }

    /// Reference cells unknown because someone stood there when it was taken are copied from the first frame
    /// that shows them uncovered.
    fn fill_unknown_cells(&mut self) {
        let Some(r) = self.reference.as_mut() else {
            return;
        };
        let (g, cell) = (&self.grid, self.params.cell_px.max(1));
        for i in 0..r.known.len() {
            if r.known[i] || self.excluded[i] {
                continue;
            }
            for_cell_pixels(g, cell, i, |p| r.luma[p] = self.thumb[p]);
            r.known[i] = true;
        }
    }

    /// Mean absolute difference per cell after matching the thumbnail's brightness to the reference's;
    /// `None` for cells not compared (outside the zone, excluded, unknown in the reference).
    fn cell_scores(&self) -> Vec<Option<f32>> {
        let (g, cell) = (&self.grid, self.params.cell_px.max(1));
        let r = self
            .reference
            .as_ref()
            .expect("caller checked the reference");
        let compared: Vec<usize> = (0..g.cols * g.rows)
            .filter(|&i| g.in_zone[i] && !self.excluded[i] && r.known[i])
            .collect();
        let gain = self.brightness_gain(&compared);
        let mut out = vec![None; g.cols * g.rows];
        for &i in &compared {
            let (mut sum, mut count) = (0f32, 0u32);
            for_cell_pixels(g, cell, i, |p| {
                sum += (self.thumb[p] as f32 * gain - r.luma[p] as f32).abs();
                count += 1;
            });
            out[i] = Some(sum / count.max(1) as f32);
        }
        out
    }

    /// The factor that brings this frame's brightness to the reference's: the median over compared cells of
    /// the ratio of their mean lumas. Lighting and exposure changes are multiplicative (they stay so through
    /// the camera's gamma), and the median ignores up to half the cells changing for real — matching the
    /// zone's mean and deviation instead let one dark bag in a small zone skew every other cell.
    fn brightness_gain(&self, compared: &[usize]) -> f32 {
        let (g, cell) = (&self.grid, self.params.cell_px.max(1));
        let r = self
            .reference
            .as_ref()
            .expect("caller checked the reference");
        let mut ratios: Vec<f32> = compared
            .iter()
            .map(|&i| {
                let (mut sr, mut sc) = (0f32, 0f32);
                for_cell_pixels(g, cell, i, |p| {
                    sr += r.luma[p] as f32;
                    sc += self.thumb[p] as f32;
                });
                // Sums, not means: the ratio is the same, and the offset keeps black cells from dominating.
                let n = cell_pixel_count(g, cell, i) as f32;
                (sr + DARK_OFFSET * n) / (sc + DARK_OFFSET * n)
            })
            .collect();
        if ratios.is_empty() {
            return 1.0;
        }
        let mid = ratios.len() / 2;
        let median = *ratios.select_nth_unstable_by(mid, f32::total_cmp).1;
        median.clamp(1.0 / MAX_GAIN, MAX_GAIN)
    }

    /// Fraction of the zone's cells for which `pred` holds (0 for a zone smaller than a cell).
    fn zone_fraction(&self, pred: impl Fn(usize) -> bool) -> f32 {
        let g = &self.grid;
        let hits = (0..g.in_zone.len())
            .filter(|&i| g.in_zone[i] && pred(i))
            .count();
        hits as f32 / g.zone_cells.max(1) as f32
    }

    fn persistent_region(&self) -> Option<BBox> {
        let (g, cell) = (&self.grid, self.params.cell_px.max(1));
        let mut region: Option<BBox> = None;
        for i in (0..g.in_zone.len()).filter(|&i| g.in_zone[i] && self.cells[i].persistent) {
            let (x1, y1, x2, y2) = cell_rect(i % g.cols, i / g.cols, cell, g.tw, g.th);
            region = Some(match region {
                None => BBox { x1, y1, x2, y2 },
                Some(b) => BBox {
                    x1: b.x1.min(x1),
                    y1: b.y1.min(y1),
                    x2: b.x2.max(x2),
                    y2: b.y2.max(y2),
                },
            });
        }
        region
    }
}

#[cfg(test)]
mod tests;
