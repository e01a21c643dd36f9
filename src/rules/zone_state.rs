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

/// A crop-sized packed RGB picture of the zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Background {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
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
    background: Option<Background>,
    window: KofN,
    last_sample: Option<Instant>,
    last: Option<StateReading>,
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
    pub fn set_background(&mut self, background: Option<Background>) {
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

    pub fn reset(&mut self) {
        self.window.reset();
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
                match self.embed(&s.image, s.detections) {
                    Ok(v) => {
                        self.last = self.classify(&v);
                        let alarm = self.last.as_ref().is_some_and(|r| r.alarm);
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
    background: Option<&Background>,
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
mod tests {
    use super::*;
    use crate::base::Embed;
    use std::sync::{Arc, Mutex};

    /// The crop's mean red, green and blue: enough to tell a grey pavement from a yellow tarp.
    struct MeanColour;

    impl Embed for MeanColour {
        fn embed(&mut self, picture: &ImageView) -> Result<Vec<f32>, String> {
            let mut sum = [0f32; 3];
            for y in 0..picture.height() {
                for px in picture.row(y).chunks_exact(3) {
                    (0..3).for_each(|c| sum[c] += px[c] as f32);
                }
            }
            Ok(sum.to_vec())
        }
        fn id(&self) -> String {
            "mean-colour".into()
        }
    }

    const W: usize = 40;
    const H: usize = 30;
    const GREY: [u8; 3] = [120, 120, 120];
    const YELLOW: [u8; 3] = [220, 210, 40];

    /// A grey frame with the zone's middle (the whole right half) painted `colour`.
    fn frame(colour: [u8; 3]) -> Vec<u8> {
        let mut data = Vec::with_capacity(W * H * 3);
        for _ in 0..H {
            for x in 0..W {
                data.extend_from_slice(if x >= W / 2 { &colour } else { &GREY });
            }
        }
        data
    }

    fn rule() -> ZoneStateRule {
        let mut r = ZoneStateRule::new(
            ZoneStateParams {
                states: vec!["clear".into(), "tarp".into()],
                alarm: vec![false, true],
                sample_every: Duration::from_secs(1),
                window: 5,
                min_present: 3,
                margin: 0.0,
                exclude: vec![0],
                max_occluded: 0.05,
            },
            Polygon::new(&[[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]),
        );
        r.attach(Arc::new(Mutex::new(MeanColour)));
        r
    }

    fn example(r: &ZoneStateRule, id: &str, state: usize, colour: [u8; 3]) -> Example {
        let data = frame(colour);
        let img = ImageView::packed(W, H, &data).unwrap();
        Example {
            id: id.into(),
            state,
            vector: r.embed(&img, &[]).unwrap(),
        }
    }

    /// Feed one sample a second of `colour` (with `people` in front); the verdict after each.
    fn feed(
        r: &mut ZoneStateRule,
        t0: Instant,
        from: u64,
        colours: &[[u8; 3]],
        people: &[Detection],
    ) -> Vec<Verdict> {
        colours
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let data = frame(*c);
                let sample = Sample {
                    now: t0 + Duration::from_secs(from + i as u64),
                    detections: people,
                    tracks: &[],
                    image: ImageView::packed(W, H, &data).unwrap(),
                    density: None,
                };
                r.evaluate(&sample)
            })
            .collect()
    }

    #[test]
    fn a_rule_without_an_example_of_every_state_judges_nothing_and_says_why() {
        let mut r = rule();
        let e = example(&r, "c1", 0, GREY);
        r.set_examples(vec![e]);
        let v = feed(&mut r, Instant::now(), 0, &[YELLOW; 5], &[]);
        assert!(v.iter().all(|v| !v.holds && v.state.is_none()));
        assert!(r.problem.as_deref().unwrap().contains("[tarp]"));
    }

    #[test]
    fn the_alarm_state_holds_after_k_of_n_samples_and_clears_after_k_without() {
        let mut r = rule();
        let examples = vec![example(&r, "c1", 0, GREY), example(&r, "t1", 1, YELLOW)];
        r.set_examples(examples);
        let t0 = Instant::now();
        let v = feed(&mut r, t0, 0, &[YELLOW, YELLOW, GREY, YELLOW, YELLOW], &[]);
        let holds: Vec<bool> = v.iter().map(|v| v.holds).collect();
        assert_eq!(holds, [false, false, false, true, true]);
        let last = v[4].state.clone().unwrap();
        assert_eq!((last.state.as_str(), last.nearest.as_str()), ("tarp", "t1"));
        assert!(last.confidence > 0.99, "{last:?}");
        assert_eq!(v[4].hits[0].score, last.confidence, "the event carries it");
        assert_eq!(
            v[4].since,
            Some(t0),
            "first sample of the window that saw it"
        );
        let v = feed(&mut r, t0, 5, &[GREY, GREY, GREY], &[]);
        assert_eq!(
            v.iter().map(|v| v.holds).collect::<Vec<_>>(),
            [true, false, false]
        );
    }

    #[test]
    fn people_over_the_crop_skip_the_sample_instead_of_counting_it() {
        let mut r = rule();
        let examples = vec![example(&r, "c", 0, GREY), example(&r, "t", 1, YELLOW)];
        r.set_examples(examples);
        let person = Detection {
            class: 0,
            score: 0.9,
            bbox: BBox {
                x1: 0.6,
                y1: 0.2,
                x2: 0.8,
                y2: 0.9,
            },
        };
        let v = feed(
            &mut r,
            Instant::now(),
            0,
            &[YELLOW; 6],
            std::slice::from_ref(&person),
        );
        assert!(v.iter().all(|v| !v.holds && v.state.is_none()));
        let beside = Detection {
            bbox: BBox {
                x1: 0.1,
                y1: 0.2,
                x2: 0.3,
                y2: 0.9,
            },
            ..person
        };
        let v = feed(&mut r, Instant::now(), 10, &[YELLOW; 3], &[beside]);
        assert!(v[2].holds, "a person outside the crop does not matter");
    }

    #[test]
    fn a_picture_labelled_normal_becomes_its_own_nearest_example() {
        let mut r = rule();
        let orange = [230, 140, 40];
        let mut examples = vec![example(&r, "c", 0, GREY), example(&r, "t", 1, YELLOW)];
        r.set_examples(examples.clone());
        let v = r
            .embed(&ImageView::packed(W, H, &frame(orange)).unwrap(), &[])
            .unwrap();
        assert_eq!(r.classify(&v).unwrap().state, "tarp", "a false positive");
        examples.push(example(&r, "fp", 0, orange));
        r.set_examples(examples);
        let reading = r.classify(&v).unwrap();
        assert_eq!(
            (reading.state.as_str(), reading.nearest.as_str()),
            ("clear", "fp")
        );
        assert_eq!(r.normal_state(), Some("clear"));
    }

    #[test]
    fn leave_one_out_judges_each_example_by_the_others() {
        let mut r = rule();
        let examples = vec![
            example(&r, "c1", 0, GREY),
            example(&r, "c2", 0, [125, 118, 121]),
            example(&r, "t1", 1, YELLOW),
            example(&r, "t2", 1, [210, 200, 60]),
            example(&r, "odd", 1, [118, 121, 119]),
        ];
        r.set_examples(examples);
        let judged = r.leave_one_out();
        assert_eq!(
            judged,
            [
                (0, Some(1)),
                (0, Some(0)),
                (1, Some(1)),
                (1, Some(1)),
                (1, Some(0))
            ],
            "a grey picture labelled tarp is voted clear by the rest — and, nearer to c1 than c2 is, \
             makes c1 look like a tarp: what leave-one-out is for"
        );
    }
}
