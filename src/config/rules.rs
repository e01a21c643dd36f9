//! Rule configuration: one table array per rule type on a camera (`[[camera.street_vending]]`, …), so every
//! key is checked against that type's parameters, plus the pieces all rules share: an active `schedule` and
//! the `incident` timing (clear, cooldown, update interval).
//!
//! Defaults are named functions; docs/rules.md explains each parameter with an example.

use serde::Deserialize;
use toml::Spanned;

/// When a rule is active, in the device's time zone. Omitted: always.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Days, e.g. `["mon-fri", "sat"]`; empty: every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// Local time windows, e.g. `["07:00-22:00"]` or overnight `["22:00-06:00"]`; empty: all day.
    #[serde(default)]
    pub hours: Vec<String>,
}

/// How a rule's condition becomes one case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentConfig {
    /// The condition must be absent this long before the incident resolves (a rule-specific default).
    #[serde(default)]
    pub clear_s: Option<f64>,
    /// After resolving, a return within this time re-opens the *same* incident.
    #[serde(default = "default_cooldown_s")]
    pub cooldown_s: f64,
    /// At most one `updated` event per this many seconds, and only on a meaningful change.
    #[serde(default = "default_update_interval_s")]
    pub update_interval_s: f64,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        Self {
            clear_s: None,
            cooldown_s: default_cooldown_s(),
            update_interval_s: default_update_interval_s(),
        }
    }
}

/// Street vending (占道经营): vendor cues stationary in a no-vending zone longer than a dwell time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendingRuleConfig {
    /// Zone id on the same camera.
    pub zone: Spanned<String>,
    #[serde(default = "default_vending_category")]
    pub category: String,
    /// Model classes that are a vendor by themselves (a city model's `vendor`, `stall`, `cart`).
    #[serde(default = "default_vendor_labels")]
    pub vendor_labels: Vec<String>,
    /// Classes that are a vendor cue only with a person beside them (COCO: umbrella, dining table, …).
    /// Omitted: the labels the model's manifest maps to this rule's category, else the COCO cues.
    #[serde(default)]
    pub cue_labels: Option<Vec<String>>,
    /// Classes that count as people.
    #[serde(default = "default_person_labels")]
    pub person_labels: Vec<String>,
    #[serde(default = "default_object_score")]
    pub min_score: Spanned<f32>,
    /// A cue must stand still in the zone this long (5 minutes by default: brief stops do not count).
    #[serde(default = "default_vending_dwell_s")]
    pub dwell_s: f64,
    /// A person is "beside" a cue when their box comes within this many cue-box sizes of it.
    #[serde(default = "default_person_radius")]
    pub person_radius: f32,
    /// Share of the cue's stationary samples with a person beside it (a parked bicycle alone has ~0).
    #[serde(default = "default_min_person_share")]
    pub min_person_share: f32,
    #[serde(default)]
    pub schedule: Option<Spanned<ScheduleConfig>>,
    #[serde(default)]
    pub incident: IncidentConfig,
}

/// K of the last N samples: hanging laundry (沿街晾挂) and bin overflow (垃圾满溢) from a model's classes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistenceRuleConfig {
    pub zone: Spanned<String>,
    /// Category (defaults per rule type: `hanging_laundry`, `bin_overflow`).
    #[serde(default)]
    pub category: Option<String>,
    /// Model classes that show the condition. Omitted: the labels the model's manifest maps to this rule's
    /// category, else the rule type's defaults.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    #[serde(default = "default_object_score")]
    pub min_score: Spanned<f32>,
    /// Seconds between samples (frames in between are not counted).
    #[serde(default)]
    pub sample_every_s: Option<f64>,
    /// N: samples in the window.
    #[serde(default)]
    pub window: Option<Spanned<u32>>,
    /// K: present in at least K of N samples opens; absent in at least K of N clears.
    #[serde(default)]
    pub min_present: Option<Spanned<u32>>,
    #[serde(default)]
    pub schedule: Option<Spanned<ScheduleConfig>>,
    #[serde(default)]
    pub incident: IncidentConfig,
}

/// Generic presence in a zone: any configured class for N seconds → an incident of a configured category
/// (乱堆杂物, 非机动车乱停放, 违规户外广告 … need configuration, not code).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceRuleConfig {
    pub zone: Spanned<String>,
    pub category: Spanned<String>,
    pub labels: Spanned<Vec<String>>,
    #[serde(default = "default_object_score")]
    pub min_score: Spanned<f32>,
    /// Seconds an object must be in the zone (or stand still there, with `stationary`).
    #[serde(default = "default_presence_dwell_s")]
    pub dwell_s: f64,
    /// Count time standing still rather than time in the zone.
    #[serde(default)]
    pub stationary: bool,
    /// Objects needed at once.
    #[serde(default = "default_min_count")]
    pub min_count: usize,
    #[serde(default)]
    pub schedule: Option<Spanned<ScheduleConfig>>,
    #[serde(default)]
    pub incident: IncidentConfig,
}

/// Model-free fallback: a persistent change against a clean reference image of the zone that is not a
/// person or vehicle (bins, piles, laundry where no model exists).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneRuleConfig {
    pub zone: Spanned<String>,
    pub category: Spanned<String>,
    /// Classes whose boxes are ignored (they move; they are not the condition).
    #[serde(default = "default_scene_exclude")]
    pub exclude_labels: Vec<String>,
    /// A changed area must persist this long.
    #[serde(default = "default_scene_persist_s")]
    pub persist_s: f64,
    /// Share of the zone that must be persistently changed.
    #[serde(default = "default_scene_min_changed")]
    pub min_changed_fraction: Spanned<f32>,
    /// Mean brightness-normalised luma difference (0–255) at which a cell counts as changed.
    #[serde(default = "default_scene_cell_threshold")]
    pub cell_threshold: Spanned<f32>,
    #[serde(default)]
    pub schedule: Option<Spanned<ScheduleConfig>>,
    #[serde(default)]
    pub incident: IncidentConfig,
}

/// A zone's state learned from labelled examples: the zone's crop through a frozen embedder bundle (task
/// `embed`) and the nearest example's state, K of N samples (docs/rules.md, "Zone state").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneStateRuleConfig {
    pub zone: Spanned<String>,
    pub category: Spanned<String>,
    /// The `[models.*]` entry of the embedder bundle.
    pub embedder: Spanned<String>,
    /// The zone's states, e.g. `["clear", "stall"]`: 2–16 short names.
    pub states: Spanned<Vec<String>>,
    /// The states that raise `category` (at least one state must not).
    pub alarm: Spanned<Vec<String>>,
    /// Seconds between samples.
    #[serde(default = "default_zone_state_every_s")]
    pub sample_every_s: Spanned<f64>,
    /// N: samples in the window.
    #[serde(default = "default_zone_state_window")]
    pub window: Spanned<u32>,
    /// K: an alarm state in at least K of N samples opens; another state in at least K clears.
    #[serde(default = "default_zone_state_min_present")]
    pub min_present: Spanned<u32>,
    /// The crop is the zone's bounding box grown by this fraction of its size on each side (context).
    #[serde(default = "default_zone_state_margin")]
    pub margin: Spanned<f32>,
    /// Classes of the camera's detector whose boxes over the crop make a sample skipped.
    #[serde(default = "default_zone_state_exclude")]
    pub exclude_labels: Vec<String>,
    /// Share of the crop those boxes may cover before the sample is skipped; below it they are masked
    /// (painted in the crop's mean colour), so a passer-by neither looks like an object nor hides the zone.
    #[serde(default = "default_zone_state_max_occluded")]
    pub max_occluded: Spanned<f32>,
    /// Examples kept per state (over it, the older of the two most alike goes).
    #[serde(default = "default_zone_state_max_examples")]
    pub max_examples: Spanned<u32>,
    #[serde(default)]
    pub schedule: Option<Spanned<ScheduleConfig>>,
    #[serde(default)]
    pub incident: IncidentConfig,
}

fn default_zone_state_every_s() -> Spanned<f64> {
    Spanned::new(0..0, 2.0)
}
fn default_zone_state_window() -> Spanned<u32> {
    Spanned::new(0..0, 5)
}
fn default_zone_state_min_present() -> Spanned<u32> {
    Spanned::new(0..0, 3)
}
fn default_zone_state_margin() -> Spanned<f32> {
    Spanned::new(0..0, 0.1)
}
fn default_zone_state_max_occluded() -> Spanned<f32> {
    Spanned::new(0..0, 0.3)
}
fn default_zone_state_max_examples() -> Spanned<u32> {
    Spanned::new(0..0, 20)
}
fn default_zone_state_exclude() -> Vec<String> {
    ["person", "bicycle", "car", "motorcycle", "bus", "truck"]
        .map(Into::into)
        .into()
}

/// How a zone decides whether an object is in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// People by their foot point (bottom-centre), objects by box overlap.
    #[default]
    Auto,
    /// Bottom-centre of the box (where it touches the ground).
    BottomCentre,
    /// Share of the box inside the zone ≥ `min_overlap`.
    Overlap,
}

/// An area whose detections are ignored (a poster of a person, a tree that looks like an umbrella).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// Polygon vertices `[x, y]`, normalised 0..1; at least 3.
    pub points: Spanned<Vec<[f64; 2]>>,
    /// Classes masked here; empty: all.
    #[serde(default)]
    pub labels: Vec<String>,
}

/// Ground-plane calibration: ≥ 4 image points (normalised) and where they lie on the ground (metres).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroundConfig {
    pub image: Vec<[f64; 2]>,
    pub ground: Vec<[f64; 2]>,
}

fn default_cooldown_s() -> f64 {
    300.0
}
fn default_update_interval_s() -> f64 {
    60.0
}
fn default_vending_category() -> String {
    "street_vending".into()
}
fn default_vendor_labels() -> Vec<String> {
    ["vendor", "stall", "cart", "tricycle"]
        .map(Into::into)
        .into()
}
/// COCO classes the shipped detector knows that go with street trading (models.md).
fn default_cue_labels() -> Vec<String> {
    [
        "umbrella",
        "dining table",
        "chair",
        "bench",
        "bicycle",
        "motorcycle",
        "truck",
    ]
    .map(Into::into)
    .into()
}
pub(super) fn default_person_labels() -> Vec<String> {
    vec!["person".into()]
}
fn default_object_score() -> Spanned<f32> {
    Spanned::new(0..0, 0.4)
}
fn default_vending_dwell_s() -> f64 {
    300.0
}
fn default_person_radius() -> f32 {
    1.5
}
fn default_min_person_share() -> f32 {
    0.5
}
fn default_presence_dwell_s() -> f64 {
    60.0
}
fn default_min_count() -> usize {
    1
}
fn default_scene_exclude() -> Vec<String> {
    [
        "person",
        "bicycle",
        "car",
        "motorcycle",
        "bus",
        "truck",
        "umbrella",
    ]
    .map(Into::into)
    .into()
}
fn default_scene_persist_s() -> f64 {
    120.0
}
fn default_scene_min_changed() -> Spanned<f32> {
    Spanned::new(0..0, 0.05)
}
fn default_scene_cell_threshold() -> Spanned<f32> {
    Spanned::new(0..0, 14.0)
}

/// `incident.clear_s` of a crowd rule: 0, because the crowd rule waits its own `clear_s` before it lets go
/// and the incident resolves as soon as it does.
pub const CROWD_INCIDENT_CLEAR_S: f64 = 0.0;
/// `incident.clear_s` of a street-vending rule: two minutes, so a vendor out of view behind a bus or
/// stepping away is still the same case.
pub const VENDING_CLEAR_S: f64 = 120.0;
/// `incident.clear_s` of a presence rule: half a minute.
pub const PRESENCE_CLEAR_S: f64 = 30.0;
/// `incident.clear_s` of a scene-change rule: a minute of the reference view before the case resolves.
pub const SCENE_CLEAR_S: f64 = 60.0;
/// `incident.clear_s` of a zone-state rule: K of N samples already decided the state went back.
pub const ZONE_STATE_CLEAR_S: f64 = 0.0;

/// Defaults of the two K-of-N rule types.
#[derive(Debug, Clone, Copy)]
pub struct PersistenceDefaults {
    pub category: &'static str,
    pub labels: &'static [&'static str],
    pub sample_every_s: f64,
    pub window: u32,
    pub min_present: u32,
    pub clear_s: f64,
}

/// Laundry flaps and is hidden by passers-by: 7 of 10 samples, 30 s apart.
pub const LAUNDRY: PersistenceDefaults = PersistenceDefaults {
    category: "hanging_laundry",
    labels: &["laundry", "clothes"],
    sample_every_s: 30.0,
    window: 10,
    min_present: 7,
    clear_s: 0.0,
};

/// One bad frame must not flip a bin: 3 consecutive samples, 10 s apart, both ways.
pub const BIN_OVERFLOW: PersistenceDefaults = PersistenceDefaults {
    category: "bin_overflow",
    labels: &["overflow", "garbage", "rubbish"],
    sample_every_s: 10.0,
    window: 3,
    min_present: 3,
    clear_s: 0.0,
};

impl PersistenceRuleConfig {
    pub fn category_or<'a>(&'a self, d: &'a PersistenceDefaults) -> &'a str {
        self.category.as_deref().unwrap_or(d.category)
    }
    /// The labels in force; `mapped` are the model's labels for this rule's category.
    pub fn labels_or(&self, d: &PersistenceDefaults, mapped: Vec<String>) -> Vec<String> {
        rule_labels(self.labels.as_deref(), mapped, || {
            d.labels.iter().map(|s| s.to_string()).collect()
        })
    }
    pub fn window_or(&self, d: &PersistenceDefaults) -> u32 {
        self.window.as_ref().map_or(d.window, |w| *w.get_ref())
    }
    pub fn min_present_or(&self, d: &PersistenceDefaults) -> u32 {
        self.min_present
            .as_ref()
            .map_or(d.min_present, |w| *w.get_ref())
    }
}

/// A rule's labels: those its configuration names; else the labels the model's manifest maps to the rule's
/// category (`[categories]`, e.g. `umbrella = ["street_vending"]`); else the rule type's defaults.
pub fn rule_labels(
    configured: Option<&[String]>,
    mapped: Vec<String>,
    defaults: impl FnOnce() -> Vec<String>,
) -> Vec<String> {
    match configured {
        Some(labels) => labels.to_vec(),
        None if !mapped.is_empty() => mapped,
        None => defaults(),
    }
}

impl VendingRuleConfig {
    /// The cue labels in force; `mapped` are the model's labels for this rule's category.
    pub fn cue_labels_or(&self, mapped: Vec<String>) -> Vec<String> {
        rule_labels(self.cue_labels.as_deref(), mapped, default_cue_labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn configured_labels_win_over_the_models_mapping_which_wins_over_defaults() {
        let defaults = || strings(&["person"]);
        let mapped = strings(&["pedestrian", "cyclist"]);
        assert_eq!(
            rule_labels(Some(&strings(&["walker"])), mapped.clone(), defaults),
            strings(&["walker"])
        );
        assert_eq!(rule_labels(None, mapped.clone(), defaults), mapped);
        assert_eq!(
            rule_labels(None, Vec::new(), defaults),
            strings(&["person"])
        );
    }
}

/// Crowd density: persons whose bottom-centre lies in the zone, divided by the zone's area.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrowdRuleConfig {
    /// Zone id on the same camera.
    pub zone: Spanned<String>,
    /// Category this rule reports under (a key of `[categories]` or a shipped default).
    #[serde(default = "default_crowd_category")]
    pub category: String,
    /// Model labels counted as people. Omitted: the labels the model's manifest maps to this rule's
    /// category, else `["person"]`.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Minimum detector score for a box to count (0..1).
    #[serde(default = "default_person_score")]
    pub min_score: Spanned<f32>,
    /// Levels in ascending order of density.
    #[serde(default = "default_crowd_levels")]
    pub levels: Spanned<Vec<CrowdLevelConfig>>,
    /// A level must hold this long before it is reported.
    #[serde(default = "default_sustain_s")]
    pub sustain_s: f64,
    /// The density must fall this far (persons/m²) below a level's threshold before the level is left.
    #[serde(default = "default_hysteresis")]
    pub hysteresis: Spanned<f64>,
    /// The zone must stay below every level this long before the incident resolves.
    #[serde(default = "default_clear_s")]
    pub clear_s: f64,
    /// Absolute head-count limit: this many people in the zone raise the top level `over_limit`.
    #[serde(default)]
    pub max_count: Option<Spanned<usize>>,
    #[serde(default)]
    pub schedule: Option<Spanned<ScheduleConfig>>,
    #[serde(default)]
    pub incident: IncidentConfig,
}

/// One crowd level.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrowdLevelConfig {
    /// Level name carried in events (`attention`, `warning`, `alarm`, …).
    pub name: String,
    /// Persons per m² at or above which the level applies.
    pub min_density: f64,
}

fn default_crowd_category() -> String {
    "crowd_density".into()
}

impl CrowdRuleConfig {
    /// The labels in force; `mapped` are the model's labels for this rule's category.
    pub fn labels_or(&self, mapped: Vec<String>) -> Vec<String> {
        rule_labels(self.labels.as_deref(), mapped, default_person_labels)
    }
}

fn default_person_score() -> Spanned<f32> {
    Spanned::new(0..0, 0.5)
}
/// Fruin/Still-based defaults: attention ≥ 2, warning ≥ 4, alarm ≥ 5 persons/m².
fn default_crowd_levels() -> Spanned<Vec<CrowdLevelConfig>> {
    let level = |name: &str, min_density| CrowdLevelConfig {
        name: name.into(),
        min_density,
    };
    Spanned::new(
        0..0,
        vec![
            level("attention", 2.0),
            level("warning", 4.0),
            level("alarm", 5.0),
        ],
    )
}
fn default_sustain_s() -> f64 {
    10.0
}
fn default_hysteresis() -> Spanned<f64> {
    Spanned::new(0..0, 0.2)
}
fn default_clear_s() -> f64 {
    30.0
}
