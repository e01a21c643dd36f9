//! Rules: zones and the category rules that turn tracked detections into sustained conditions.
//! Pure state machines: time is an input (`now: Instant`), so dwell and sustain logic is tested with a fake
//! clock. Each rule looks at one sample and says whether its condition holds now ([`Verdict`]); the
//! incident stage turns that into one case.

mod crowd;
mod homography;
mod kofn;
mod membership;
mod presence;
mod scene;
mod schedule;
mod vending;
mod zone;
mod zone_state;

pub use crowd::{CrowdChange, CrowdLevel, CrowdObservation, CrowdParams, CrowdRule};
pub use homography::{Homography, HomographyError};
pub use membership::{Anchor, Mask, Membership, Placed, ZoneSpec, apply_masks, overlap_share};
pub use presence::{PersistenceParams, PersistenceRule, PresenceParams, PresenceRule};
pub use scene::{SceneChange, SceneError, SceneObservation, SceneParams};
pub use schedule::{Schedule, ScheduleError};
pub use vending::{VendingParams, VendingRule};
pub use zone::Polygon;
pub use zone_state::{
    AlarmSample, CropPicture, Example, StateReading, ZoneStateParams, ZoneStateRule,
};

use crate::base::{BBox, Detection, ImageView};
use crate::detect::DensityMap;
use std::time::Instant;

/// A live track as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackView {
    pub id: u64,
    pub class: usize,
    pub score: f32,
    pub bbox: BBox,
    /// Matched a detection on this sample.
    pub seen_now: bool,
    pub stationary_since: Instant,
}

impl TrackView {
    fn placed(&self, is_person: bool) -> Placed {
        Placed {
            id: self.id,
            bbox: self.bbox,
            is_person,
            seen_now: self.seen_now,
        }
    }

    fn hit(&self) -> Hit {
        Hit {
            class: Some(self.class),
            score: self.score,
            bbox: self.bbox,
            track_id: Some(self.id),
        }
    }
}

/// An object (or, for the model-free rule, a changed region) behind a verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Model class; `None` for a changed region.
    pub class: Option<usize>,
    pub score: f32,
    pub bbox: BBox,
    pub track_id: Option<u64>,
}

impl Hit {
    fn from_detection(d: &Detection) -> Self {
        Hit {
            class: Some(d.class),
            score: d.score,
            bbox: d.bbox,
            track_id: None,
        }
    }
}

/// A crowd rule's reading of one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct CrowdReading {
    pub count: usize,
    pub density: f64,
    /// Reported level (name), if any.
    pub level: Option<String>,
    pub previous_level: Option<String>,
}

/// What a rule says about one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The violation holds now (dwell, sustain, K-of-N already applied).
    pub holds: bool,
    /// What the rule looks for is in this very sample, before dwell, sustain or K-of-N: the answer to a
    /// dispatcher's "is it still there?".
    pub present: bool,
    pub hits: Vec<Hit>,
    /// Rises with seriousness (crowd levels); a rise is reported at once.
    pub severity: u32,
    /// Changes when what holds changes meaningfully (other objects, another level).
    pub key: u64,
    pub crowd: Option<CrowdReading>,
    /// While it holds: when the condition began — before the dwell, sustain or K-of-N that confirmed it — so
    /// a case's first sighting is when the stall was set up, not when the rule was sure.
    pub since: Option<Instant>,
    /// A zone-state rule's reading of this sample.
    pub state: Option<StateReading>,
}

impl Verdict {
    pub fn none() -> Self {
        Verdict {
            holds: false,
            present: false,
            hits: Vec::new(),
            severity: 0,
            key: 0,
            crowd: None,
            since: None,
            state: None,
        }
    }
}

/// Everything a rule may look at on one sample.
pub struct Sample<'a> {
    pub now: Instant,
    /// After masks.
    pub detections: &'a [Detection],
    pub tracks: &'a [TrackView],
    /// The frame in RGB, made when a rule first asks (a decoder's 4:2:0 frame is converted then, once):
    /// most frames of most cameras are judged on their detections alone.
    pub image: &'a dyn Fn() -> ImageView<'a>,
    /// The density map, when the camera's model is a density model.
    pub density: Option<&'a DensityMap>,
}

/// One configured rule with its state.
#[derive(Debug, Clone)]
pub enum Rule {
    Crowd(CrowdRule),
    Vending(VendingRule),
    Presence(PresenceRule),
    Persistence(PersistenceRule),
    Scene(SceneRule),
    ZoneState(ZoneStateRule),
}

impl Rule {
    pub fn evaluate(&mut self, s: &Sample) -> Verdict {
        match self {
            Rule::Crowd(r) => r.evaluate(s.detections, s.density, s.now),
            Rule::Vending(r) => r.evaluate(s.tracks, s.now),
            Rule::Presence(r) => r.evaluate(s.tracks, s.now),
            Rule::Persistence(r) => r.evaluate(s.detections, s.now),
            Rule::Scene(r) => r.evaluate(s),
            Rule::ZoneState(r) => r.evaluate(s),
        }
    }

    /// Forget state (the schedule ended: dwell starts again when it begins).
    pub fn reset(&mut self) {
        match self {
            Rule::Crowd(r) => r.reset(),
            Rule::Vending(r) => r.reset(),
            Rule::Presence(r) => r.reset(),
            Rule::Persistence(r) => r.reset(),
            Rule::Scene(r) => r.reset(),
            Rule::ZoneState(r) => r.reset(),
        }
    }

    /// The zone polygon, for evidence.
    pub fn polygon(&self) -> &Polygon {
        match self {
            Rule::Crowd(r) => &r.params.zone,
            Rule::Vending(r) => &r.zone.polygon,
            Rule::Presence(r) => &r.zone.polygon,
            Rule::Persistence(r) => &r.zone.polygon,
            Rule::Scene(r) => &r.zone,
            Rule::ZoneState(r) => &r.zone,
        }
    }
}

/// The model-free rule: a persistent change against the zone's reference image, ignoring boxes of
/// `exclude` classes.
#[derive(Debug, Clone)]
pub struct SceneRule {
    pub change: SceneChange,
    pub zone: Polygon,
    pub exclude: Vec<usize>,
    /// Set when the rule took a new reference on this sample (the caller persists it).
    pub reference_taken: bool,
}

impl SceneRule {
    fn evaluate(&mut self, s: &Sample) -> Verdict {
        let exclude: Vec<BBox> = s
            .detections
            .iter()
            .filter(|d| self.exclude.contains(&d.class))
            .map(|d| d.bbox)
            .collect();
        let obs = self.change.observe((s.image)(), &exclude, s.now);
        self.reference_taken = obs.reference_taken;
        // Cells become persistent after changing for `persist`: the change is at least that old.
        let since = obs
            .holds
            .then(|| s.now.checked_sub(self.change.persist()))
            .flatten();
        Verdict {
            state: None,
            holds: obs.holds,
            present: obs.holds,
            hits: obs
                .region
                .map(|bbox| Hit {
                    class: None,
                    score: obs.persistent_fraction,
                    bbox,
                    track_id: None,
                })
                .into_iter()
                .collect(),
            severity: 0,
            key: 0,
            crowd: None,
            since,
        }
    }

    fn reset(&mut self) {}
}
