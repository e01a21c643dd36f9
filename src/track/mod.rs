//! Tracking: gives each detected object a stable id across *sampled* frames (1–5 fps), and says how long it
//! has stood still. Pure state: `Tracker::update(detections, now)` changes only the tracker; no I/O, no clock.
//!
//! At 1–5 samples per second a walker moves 10–40 px between samples at 768x576, so a small box often has IoU 0
//! with its previous self. Each update therefore (ByteTrack's two passes, plus a centre-distance gate):
//! 1. drops tracks unseen for `max_age` (tentative ones after `tentative_max_age`);
//! 2. matches detections scoring ≥ `high_score` with every live track of the same class: a pair is admissible
//!    when the detection overlaps the track's *predicted* box (constant velocity, damped) by `match_iou`, or
//!    its centre lies within `max_centre_jump` box diagonals; the pairs of least total centre distance win
//!    (see `associate`);
//! 3. matches detections scoring in [`low_score`, `high_score`) with the tracks still unmatched: a partly
//!    hidden person scores low and should keep their track, but a low score alone is too weak to start one;
//! 4. starts a track for each high-score detection left over.
//!
//! Velocity is per second of `now`, not per frame, because samples arrive irregularly.

mod associate;
#[cfg(test)]
mod tests;

use crate::base::{BBox, Detection};
use associate::{Candidate, Gates, assign, centre, diagonal};
use std::time::{Duration, Instant};

/// Time constant of the velocity's decay while a track goes unseen: a prediction never runs further than
/// `velocity × 2 s` from the last matched box, so a track whose object stopped (or whose velocity came from
/// one bad match) does not drift away from where it will be seen again.
const VELOCITY_TIME_CONSTANT: f32 = 2.0;

/// Least weight of a new velocity measurement against the previous estimate.
const VELOCITY_GAIN: f32 = 0.5;

/// Matches closer in time than this do not update the velocity: a displacement over a few milliseconds is
/// mostly box jitter divided by almost nothing.
const MIN_VELOCITY_INTERVAL: f32 = 0.01;

/// Tuning of a [`Tracker`]. Fractions are of normalised (0..1) image coordinates unless said otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerParams {
    /// Detections scoring at least this start tracks and extend them in the first pass.
    pub high_score: f32,
    /// Detections scoring in `[low_score, high_score)` only extend existing tracks (second pass); lower ones
    /// are ignored.
    pub low_score: f32,
    /// Least IoU between a track's predicted box and a detection for the pair to be admissible by overlap
    /// (whatever the sizes).
    pub match_iou: f32,
    /// Below `match_iou`: the most a detection's centre may lie from the predicted centre, in mean box
    /// diagonals, for the pair to be admissible (boxes whose diagonals differ more than 2× never are).
    pub max_centre_jump: f32,
    /// A confirmed track unseen this long is dropped.
    pub max_age: Duration,
    /// A track not yet confirmed and unseen this long is dropped: one-off false detections should not linger
    /// for `max_age` and compete for matches.
    pub tentative_max_age: Duration,
    /// Matches (including the first detection) before a track counts as confirmed.
    pub min_hits: u32,
    /// How far the centre may wander from where the track settled, in fractions of the box's diagonal, and the
    /// track still count as stationary.
    pub stationary_radius: f32,
}

impl Default for TrackerParams {
    fn default() -> Self {
        Self {
            high_score: 0.5,
            low_score: 0.25,
            match_iou: 0.2,
            max_centre_jump: 1.0,
            // Long, because the detector misses a stall (a static, cluttered object) for several seconds at a
            // time; a walker leaves the frame long before 15 s and its stale track then matches nothing.
            max_age: Duration::from_secs(15),
            tentative_max_age: Duration::from_secs(3),
            min_hits: 2,
            stationary_radius: 0.3,
        }
    }
}

/// One tracked object.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Unique within its tracker; starts at 1, never reused.
    pub id: u64,
    pub class: usize,
    /// The last matched detection's box.
    pub bbox: BBox,
    /// The last matched detection's score.
    pub score: f32,
    pub first_seen: Instant,
    pub last_seen: Instant,
    /// Detections matched, including the one that started the track.
    pub hits: u32,
    /// When the centre last left `stationary_radius` of the point where it had settled.
    pub stationary_since: Instant,
    /// Centre velocity in normalised units per second, as of `last_seen`.
    velocity: (f32, f32),
    /// Where the centre settled at `stationary_since`.
    anchor: (f32, f32),
}

impl Track {
    fn start(id: u64, det: &Detection, now: Instant) -> Self {
        Self {
            id,
            class: det.class,
            bbox: det.bbox,
            score: det.score,
            first_seen: now,
            last_seen: now,
            hits: 1,
            stationary_since: now,
            velocity: (0.0, 0.0),
            anchor: centre(&det.bbox),
        }
    }

    /// Whether the track has been matched at least `min_hits` times.
    pub fn confirmed(&self, min_hits: u32) -> bool {
        self.hits >= min_hits
    }

    /// How long the track has stayed within its stationary radius, up to `now`. The time since `last_seen`
    /// counts too: a stall the detector misses for a while is assumed to still be there; check `last_seen`
    /// where that matters.
    pub fn stationary_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stationary_since)
    }

    /// Estimated centre velocity, in normalised units per second, as of `last_seen`.
    pub fn velocity(&self) -> (f32, f32) {
        self.velocity
    }

    /// Where the box is expected at `now`: the last box moved at the estimated velocity, which decays toward 0
    /// from `last_seen` on (so the shift is bounded), with the centre clamped into the image and the box
    /// clipped to it.
    pub fn predicted(&self, now: Instant) -> BBox {
        let dt = now.saturating_duration_since(self.last_seen).as_secs_f32();
        // ∫₀^dt v·e^(−s/τ) ds
        let travel = VELOCITY_TIME_CONSTANT * (1.0 - (-dt / VELOCITY_TIME_CONSTANT).exp());
        let (cx, cy) = centre(&self.bbox);
        let nx = (cx + self.velocity.0 * travel).clamp(0.0, 1.0);
        let ny = (cy + self.velocity.1 * travel).clamp(0.0, 1.0);
        let (sx, sy) = (nx - cx, ny - cy);
        BBox {
            x1: self.bbox.x1 + sx,
            y1: self.bbox.y1 + sy,
            x2: self.bbox.x2 + sx,
            y2: self.bbox.y2 + sy,
        }
        .clamped()
    }

    /// Fold in a matched detection.
    fn observe(&mut self, det: &Detection, now: Instant, stationary_radius: f32) {
        let dt = now.saturating_duration_since(self.last_seen).as_secs_f32();
        let (px, py) = centre(&self.bbox);
        let (cx, cy) = centre(&det.bbox);
        if dt >= MIN_VELOCITY_INTERVAL {
            let measured = ((cx - px) / dt, (cy - py) / dt);
            self.velocity = if self.hits == 1 {
                measured
            } else {
                // After a long gap the old estimate says little and the measurement (an average over the
                // gap) much: trust it more. The old estimate is not decayed here, which would bias a steady
                // walker's velocity low; decay belongs to the prediction only.
                let gain = VELOCITY_GAIN.max(1.0 - (-dt / VELOCITY_TIME_CONSTANT).exp());
                let blend = |old: f32, new: f32| gain * new + (1.0 - gain) * old;
                (
                    blend(self.velocity.0, measured.0),
                    blend(self.velocity.1, measured.1),
                )
            };
        }
        let wander = (cx - self.anchor.0).hypot(cy - self.anchor.1);
        let settled = wander <= stationary_radius * diagonal(&det.bbox);
        // A NaN box (or anchor) compares false, so it restarts the anchor instead of freezing it.
        if !settled {
            self.anchor = (cx, cy);
            self.stationary_since = now;
        }
        self.bbox = det.bbox;
        self.score = det.score;
        self.last_seen = now;
        self.hits = self.hits.saturating_add(1);
    }
}

/// The tracker of one camera.
#[derive(Debug, Clone)]
pub struct Tracker {
    params: TrackerParams,
    /// Ascending by id (new tracks are pushed with the next id, removal keeps order).
    tracks: Vec<Track>,
    next_id: u64,
    // Buffers reused across updates so that a steady scene allocates only the returned Vec.
    predicted: Vec<BBox>,
    candidates: Vec<Candidate>,
    matches: Vec<(usize, usize)>,
    track_taken: Vec<bool>,
    det_taken: Vec<bool>,
}

impl Tracker {
    pub fn new(params: TrackerParams) -> Self {
        Self {
            params,
            tracks: Vec::new(),
            next_id: 1,
            predicted: Vec::new(),
            candidates: Vec::new(),
            matches: Vec::new(),
            track_taken: Vec::new(),
            det_taken: Vec::new(),
        }
    }

    pub fn params(&self) -> &TrackerParams {
        &self.params
    }

    /// Associate this sample's detections at `now`; returns, aligned with `detections`, the id of the track
    /// each was assigned to (`None` for detections below `low_score` and unmatched low-score ones). Tracks
    /// only match detections of their own class; each track takes at most one detection.
    pub fn update(&mut self, detections: &[Detection], now: Instant) -> Vec<Option<u64>> {
        let p = &self.params;
        self.tracks.retain(|t| {
            let limit = if t.confirmed(p.min_hits) {
                p.max_age
            } else {
                p.tentative_max_age
            };
            now.saturating_duration_since(t.last_seen) < limit
        });

        self.predicted.clear();
        self.predicted
            .extend(self.tracks.iter().map(|t| t.predicted(now)));
        self.track_taken.clear();
        self.track_taken.resize(self.tracks.len(), false);
        self.det_taken.clear();
        self.det_taken.resize(detections.len(), false);
        self.matches.clear();

        let (high, low) = (p.high_score, p.low_score);
        self.pass(detections, |s| s >= high);
        self.pass(detections, |s| s >= low && s < high);

        let mut assigned = vec![None; detections.len()];
        let radius = self.params.stationary_radius;
        for &(t, d) in &self.matches {
            let track = &mut self.tracks[t];
            track.observe(&detections[d], now, radius);
            assigned[d] = Some(track.id);
        }
        for (d, det) in detections.iter().enumerate() {
            if !self.det_taken[d] && det.score >= self.params.high_score {
                let id = self.next_id;
                self.next_id += 1;
                self.tracks.push(Track::start(id, det, now));
                assigned[d] = Some(id);
            }
        }
        assigned
    }

    /// One association pass between the tracks and detections not yet taken whose score passes `admit`.
    fn pass(&mut self, detections: &[Detection], admit: impl Fn(f32) -> bool) {
        let gates = Gates {
            match_iou: self.params.match_iou,
            max_centre_jump: self.params.max_centre_jump,
        };
        self.candidates.clear();
        for (t, track) in self.tracks.iter().enumerate() {
            if self.track_taken[t] {
                continue;
            }
            for (d, det) in detections.iter().enumerate() {
                if self.det_taken[d] || det.class != track.class || !admit(det.score) {
                    continue;
                }
                if let Some(cost) = associate::cost(&self.predicted[t], &det.bbox, gates) {
                    self.candidates.push(Candidate {
                        cost,
                        track: t,
                        det: d,
                    });
                }
            }
        }
        assign(
            &self.candidates,
            gates.unmatched_cost(),
            &mut self.track_taken,
            &mut self.det_taken,
            &mut self.matches,
        );
    }

    /// Live tracks, confirmed or not, including those unseen in the last update but not yet aged out; by id.
    pub fn tracks(&self) -> impl Iterator<Item = &Track> {
        self.tracks.iter()
    }

    pub fn get(&self, id: u64) -> Option<&Track> {
        self.tracks
            .binary_search_by_key(&id, |t| t.id)
            .ok()
            .map(|i| &self.tracks[i])
    }
}
