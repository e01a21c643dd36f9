//! A zone's state learned from a few labelled examples: bins, laundry and stalls with no detector for them.
//!
//! Each sample crops the zone (its bounding box grown by `margin`), a frozen embedder turns the crop into a
//! vector, and the vector is compared with the zone's labelled examples: the state of the most similar
//! example wins (cosine similarity; per state its nearest example counts). Nearest-example rather than a
//! fitted boundary because it is deterministic, needs no training step, explains itself ("looks most like
//! example X, labelled S") and takes a dispatcher's correction at once: a picture marked `false_positive`
//! becomes its own nearest example. The states the installer marks as alarms feed a K-of-N window like the
//! laundry and bin rules. People and vehicles over the crop make the sample skipped: they move, they are not
//! the zone's state, and they would pull the vector towards whatever example had people in it.

use super::kofn::KofN;
use super::zone::Polygon;
use super::{Hit, Sample, Verdict};
use crate::base::{BBox, Detection, ImageView, SharedEmbedder, dot, unit};
use std::time::{Duration, Instant};

/// Similarities are turned into a confidence by a softmax at this temperature: the embeddings of one
/// zone's states differ by a few hundredths of cosine similarity, so a plain softmax would say 50/50.
const TEMPERATURE: f32 = 0.02;

/// Parameters of one zone-state rule (from the configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneStateParams {
    /// The states the installer named, in the configuration's order.
    pub states: Vec<String>,
    /// Per state: it is the rule's condition (raises the rule's category).
    pub alarm: Vec<bool>,
    pub sample_every: Duration,
    /// N
    pub window: usize,
    /// K
    pub min_present: usize,
    /// The crop is the zone's bounding box grown on each side by this fraction of its width (height).
    pub margin: f32,
    /// Classes whose boxes over the crop make the sample skipped.
    pub exclude: Vec<usize>,
    /// Share of the crop those boxes (each grown by 10 %) may cover before the sample is skipped.
    pub max_occluded: f32,
}

/// One labelled example as the rule holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub id: String,
    /// Index into `states`.
    pub state: usize,
    /// Unit length.
    pub vector: Vec<f32>,
}

/// What one sample looked like.
#[derive(Debug, Clone, PartialEq)]
pub struct StateReading {
    pub state: String,
    /// Softmax over the states' best similarities: how sure the nearest-example vote is.
    pub confidence: f32,
    /// Cosine similarity to the nearest example.
    pub similarity: f32,
    /// That example's id.
    pub nearest: String,
    pub alarm: bool,
}

/// A crop-sized packed RGB picture of the zone (its look when clear, or a sample as it was judged).
#[derive(Debug, Clone, PartialEq)]
pub struct CropPicture {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

/// A sample judged an alarm, kept until a dispatcher says whether it was right.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSample {
    /// The crop as it was judged (passers-by painted over).
    pub picture: CropPicture,
    /// Unit length.
    pub vector: Vec<f32>,
}

/// The rule with its examples, its embedder and its K-of-N window.
#[derive(Clone)]
pub struct ZoneStateRule {
    pub params: ZoneStateParams,
    pub zone: Polygon,
    region: BBox,
    examples: Vec<Example>,
    /// The mean of the examples' vectors: what every picture of this zone shares (the pavement, the
    /// light), taken off before comparing.
    centre: Vec<f32>,
    /// The examples' vectors with the centre taken off, unit length.
    centred: Vec<Vec<f32>>,
    embedder: Option<SharedEmbedder>,
    /// The zone as it looks clear (the per-pixel median of its normal examples' crops): what a passer-by
    /// is painted over with.
    background: Option<CropPicture>,
    window: KofN,
    last_sample: Option<Instant>,
    last: Option<StateReading>,
    /// The last `window` samples judged an alarm: the pictures a `false_positive` says were misjudged.
    alarms: std::collections::VecDeque<AlarmSample>,
    /// Samples judged so far (a log line per sample tells them apart).
    judged: u64,
    /// Why samples are not being judged (no embedder, a state without examples, the embedder failed).
    pub problem: Option<String>,
}

impl std::fmt::Debug for ZoneStateRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneStateRule")
            .field("states", &self.params.states)
            .field("examples", &self.examples.len())
            .field("embedder", &self.embedder.is_some())
            .finish()
    }
}

impl ZoneStateRule {
    pub fn new(params: ZoneStateParams, zone: Polygon) -> Self {
        let region = crop_region(&zone, params.margin);
        Self {
            window: KofN::new(params.window, params.min_present),
            params,
            zone,
            region,
            examples: Vec::new(),
            centre: Vec::new(),
            centred: Vec::new(),
            embedder: None,
            background: None,
            last_sample: None,
            last: None,
            alarms: std::collections::VecDeque::new(),
            judged: 0,
            problem: None,
        }
    }

    /// The crop, normalised to the frame.
    pub fn region(&self) -> BBox {
        self.region
    }

    pub fn attach(&mut self, embedder: SharedEmbedder) {
        self.embedder = Some(embedder);
    }

    /// The embedder's id (vectors from another embedder are not comparable), once one is attached.
    pub fn embedder_id(&self) -> Option<String> {
        let e = self.embedder.as_ref()?;
        Some(e.lock().ok()?.id())
    }

    pub fn set_examples(&mut self, examples: Vec<Example>) {
        let dim = examples.first().map_or(0, |e| e.vector.len());
        let mut centre = vec![0f32; dim];
        for e in examples.iter().filter(|e| e.vector.len() == dim) {
            centre.iter_mut().zip(&e.vector).for_each(|(c, v)| *c += v);
        }
        centre
            .iter_mut()
            .for_each(|c| *c /= examples.len().max(1) as f32);
        self.centred = examples
            .iter()
            .map(|e| self.centre_of(&e.vector, &centre))
            .collect();
        self.centre = centre;
        self.examples = examples;
    }

    /// `v` with `centre` taken off, unit length.
    fn centre_of(&self, v: &[f32], centre: &[f32]) -> Vec<f32> {
        if v.len() != centre.len() {
            return v.to_vec();
        }
        unit(v.iter().zip(centre).map(|(a, c)| a - c).collect())
    }

    /// What masked passers-by are painted over with (a crop of another size is painted in its mean colour).
    pub fn set_background(&mut self, background: Option<CropPicture>) {
        self.background = background;
    }

    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    /// Index of state `name`.
    pub fn state_index(&self, name: &str) -> Option<usize> {
        self.params.states.iter().position(|s| s == name)
    }

    /// The first state that is not an alarm (what a cleared case or a false positive shows).
    pub fn normal_state(&self) -> Option<&str> {
        let i = self.params.alarm.iter().position(|a| !a)?;
        Some(&self.params.states[i])
    }

    /// The first state that is an alarm.
    pub fn alarm_state(&self) -> Option<&str> {
        let i = self.params.alarm.iter().position(|a| *a)?;
        Some(&self.params.states[i])
    }

    /// The last sample's reading.
    pub fn reading(&self) -> Option<&StateReading> {
        self.last.as_ref()
    }

    /// How many samples have been judged since the rule was built.
    pub fn judged(&self) -> u64 {
        self.judged
    }

    /// The boxes of excluded classes (people, vehicles), each grown by 10 %, clipped to the crop:
    /// normalised to the frame.
    fn excluded(&self, detections: &[Detection]) -> Vec<BBox> {
        let r = self.region;
        detections
            .iter()
            .filter(|d| self.params.exclude.contains(&d.class))
            .map(|d| {
                let (w, h) = (d.bbox.x2 - d.bbox.x1, d.bbox.y2 - d.bbox.y1);
                BBox {
                    x1: (d.bbox.x1 - 0.1 * w).max(r.x1),
                    y1: (d.bbox.y1 - 0.1 * h).max(r.y1),
                    x2: (d.bbox.x2 + 0.1 * w).min(r.x2),
                    y2: (d.bbox.y2 + 0.1 * h).min(r.y2),
                }
            })
            .filter(|b| b.x2 > b.x1 && b.y2 > b.y1)
            .collect()
    }

    /// People or vehicles cover more of the crop than allowed.
    pub fn occluded(&self, detections: &[Detection]) -> bool {
        let covered: f32 = self.excluded(detections).iter().map(BBox::area).sum();
        covered > self.params.max_occluded * self.region.area()
    }

    /// The crop of `image` as a unit vector, with the people and vehicles of `detections` masked: painted
    /// in the mean colour of the rest of the crop, so a passer-by neither looks like an object nor hides
    /// that the pavement is clear.
    pub fn embed(&self, image: &ImageView, detections: &[Detection]) -> Result<Vec<f32>, String> {
        let embedder = self
            .embedder
            .as_ref()
            .ok_or("no embedder is loaded for this rule")?;
        let crop = image
            .crop(self.region)
            .ok_or("the zone's crop is empty on this picture")?;
        let masks = self.excluded(detections);
        let masked;
        let picture = if masks.is_empty() {
            crop
        } else {
            masked = mask(&crop, self.region, &masks, self.background.as_ref());
            ImageView::packed(crop.width(), crop.height(), &masked).map_err(|e| e.to_string())?
        };
        let v = embedder
            .lock()
            .map_err(|_| "the embedder failed earlier (poisoned)".to_string())?
            .embed(&picture)?;
        Ok(unit(v))
    }

    /// The nearest example's state for `vector`; `None` until every state has an example. Vectors are
    /// compared with the examples' mean taken off (centred, then unit length: "SimpleShot", Wang et al.
    /// 2019): what all pictures of the zone share says nothing about its state, and left in it makes a
    /// small object's difference vanish.
    pub fn classify(&self, vector: &[f32]) -> Option<StateReading> {
        let n = self.params.states.len();
        let query = self.centre_of(vector, &self.centre);
        let mut best: Vec<Option<(f32, &Example)>> = vec![None; n];
        for (e, c) in self.examples.iter().zip(&self.centred) {
            let s = dot(&query, c);
            let slot = best.get_mut(e.state)?;
            if slot.is_none_or(|(b, _)| s > b) {
                *slot = Some((s, e));
            }
        }
        let best: Vec<(f32, &Example)> = best.into_iter().collect::<Option<_>>()?;
        let (i, &(similarity, nearest)) = best
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.0.total_cmp(&b.1.0))?;
        let weights: Vec<f32> = best
            .iter()
            .map(|(s, _)| ((s - similarity) / TEMPERATURE).exp())
            .collect();
        Some(StateReading {
            state: self.params.states[i].clone(),
            confidence: 1.0 / weights.iter().sum::<f32>(),
            similarity,
            nearest: nearest.id.clone(),
            alarm: self.params.alarm[i],
        })
    }

    /// Each example judged by the others (leave-one-out): its state and the state the rest vote for
    /// (`None` when, without it, a state has no example left).
    pub fn leave_one_out(&self) -> Vec<(usize, Option<usize>)> {
        let mut rest = self.clone();
        (0..self.examples.len())
            .map(|i| {
                let mut others = self.examples.clone();
                let held = others.remove(i);
                rest.set_examples(others);
                let voted = rest
                    .classify(&held.vector)
                    .and_then(|r| self.state_index(&r.state));
                (held.state, voted)
            })
            .collect()
    }

    /// What is missing before samples can be judged.
    fn missing(&self) -> Option<String> {
        if self.embedder.is_none() {
            return Some("no embedder is loaded for this rule".into());
        }
        let empty: Vec<&str> = (0..self.params.states.len())
            .filter(|&i| !self.examples.iter().any(|e| e.state == i))
            .map(|i| self.params.states[i].as_str())
            .collect();
        (!empty.is_empty()).then(|| {
            format!(
                "no labelled example of state [{}] yet; label some (command `label`, or `streetsight examples import`)",
                empty.join(", ")
            )
        })
    }

    /// The samples lately judged an alarm, oldest first, handed over once (a `false_positive` makes them
    /// normal examples: they are the very pictures the rule got wrong).
    pub fn take_alarms(&mut self) -> Vec<AlarmSample> {
        self.alarms.drain(..).collect()
    }

    /// The crop of `image` packed, the people and vehicles of `detections` painted over as for `embed`.
    pub fn picture(&self, image: &ImageView, detections: &[Detection]) -> Option<CropPicture> {
        let crop = image.crop(self.region)?;
        let masks = self.excluded(detections);
        let rgb = if masks.is_empty() {
            crop.to_packed()
        } else {
            mask(&crop, self.region, &masks, self.background.as_ref())
        };
        Some(CropPicture {
            width: crop.width(),
            height: crop.height(),
            rgb,
        })
    }

    pub fn reset(&mut self) {
        self.window.reset();
        self.alarms.clear();
        self.last_sample = None;
        self.last = None;
    }

    pub(super) fn evaluate(&mut self, s: &Sample) -> Verdict {
        let due = self
            .last_sample
            .is_none_or(|t| s.now.saturating_duration_since(t) >= self.params.sample_every);
        if due && !self.occluded(s.detections) {
            self.last_sample = Some(s.now);
            self.problem = self.missing();
            if self.problem.is_none() {
                match self.embed(&(s.image)(), s.detections) {
                    Ok(v) => {
                        self.last = self.classify(&v);
                        self.judged += 1;
                        let alarm = self.last.as_ref().is_some_and(|r| r.alarm);
                        if let Some(picture) = alarm
                            .then(|| self.picture(&(s.image)(), s.detections))
                            .flatten()
                        {
                            if self.alarms.len() >= self.params.window {
                                self.alarms.pop_front();
                            }
                            self.alarms.push_back(AlarmSample { picture, vector: v });
                        }
                        self.window.push(s.now, alarm);
                    }
                    Err(e) => self.problem = Some(e),
                }
            }
        }
        let holds = self.window.holds();
        let reading = self.last.clone();
        Verdict {
            holds,
            present: self.window.last_seen(),
            hits: match (&reading, holds) {
                (Some(r), true) => vec![Hit {
                    class: None,
                    score: r.confidence,
                    bbox: self.region,
                    track_id: None,
                }],
                _ => Vec::new(),
            },
            severity: 0,
            key: reading
                .as_ref()
                .and_then(|r| self.state_index(&r.state))
                .unwrap_or(0) as u64,
            crowd: None,
            since: self.window.since(),
            state: reading,
        }
    }
}

/// `crop` (the part `region` of the frame) packed, with `boxes` (normalised to the frame) painted over
/// with `background` when it has the crop's size, else in the mean colour of the pixels outside them.
fn mask(
    crop: &ImageView,
    region: BBox,
    boxes: &[BBox],
    background: Option<&CropPicture>,
) -> Vec<u8> {
    let (w, h) = (crop.width(), crop.height());
    let (rw, rh) = (region.x2 - region.x1, region.y2 - region.y1);
    let px = |v: f32, from: f32, span: f32, size: usize| {
        (((v - from) / span * size as f32).round().max(0.0) as usize).min(size)
    };
    let rects: Vec<(usize, usize, usize, usize)> = boxes
        .iter()
        .map(|b| {
            (
                px(b.x1, region.x1, rw, w),
                px(b.y1, region.y1, rh, h),
                px(b.x2, region.x1, rw, w),
                px(b.y2, region.y1, rh, h),
            )
        })
        .collect();
    let masked = |x: usize, y: usize| {
        rects
            .iter()
            .any(|&(x1, y1, x2, y2)| (x1..x2).contains(&x) && (y1..y2).contains(&y))
    };
    let mut out = crop.to_packed();
    if let Some(b) =
        background.filter(|b| (b.width, b.height) == (w, h) && b.rgb.len() == out.len())
    {
        for y in 0..h {
            for x in (0..w).filter(|&x| masked(x, y)) {
                let i = (y * w + x) * 3;
                out[i..i + 3].copy_from_slice(&b.rgb[i..i + 3]);
            }
        }
        return out;
    }
    let (mut sum, mut n) = ([0u64; 3], 0u64);
    for y in 0..h {
        for x in (0..w).filter(|&x| !masked(x, y)) {
            let p = &out[(y * w + x) * 3..][..3];
            (0..3).for_each(|c| sum[c] += p[c] as u64);
            n += 1;
        }
    }
    let fill = sum.map(|s| (s / n.max(1)) as u8);
    for y in 0..h {
        for x in (0..w).filter(|&x| masked(x, y)) {
            out[(y * w + x) * 3..][..3].copy_from_slice(&fill);
        }
    }
    out
}

/// The zone's bounding box grown by `margin` of its size on each side, clamped to the frame.
fn crop_region(zone: &Polygon, margin: f32) -> BBox {
    let b = zone.bounds();
    let (w, h) = (b.x2 - b.x1, b.y2 - b.y1);
    BBox {
        x1: b.x1 - margin * w,
        y1: b.y1 - margin * h,
        x2: b.x2 + margin * w,
        y2: b.y2 + margin * h,
    }
    .clamped()
}

#[cfg(test)]
mod tests;
