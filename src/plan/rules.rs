//! One place per rule type: its checks and its construction together. Each function below pushes every
//! problem of its table to one list (with its line and the fix) and, from the same values, builds the rule's
//! slot — the rule's initial state with labels resolved to the model's classes, its schedule, its incident
//! timing, its zone and work-order codes. At load the slots are thrown away and the errors reported; when a
//! camera starts, the same code builds what the analyser runs, so checking and building cannot drift apart.
//! Masks, ground calibration and zone areas are in `geometry.rs`, the time zone and evidence in `device.rs`.

use super::check::{Check, MAX_SECONDS};
use super::geometry::{scene_reference_file, zone_area};
use crate::config::{
    self, CameraConfig, Config, CrowdRuleConfig, IncidentConfig, PersistenceDefaults,
    PersistenceRuleConfig, PresenceRuleConfig, SceneRuleConfig, ScheduleConfig, VendingRuleConfig,
    ZoneConfig, categories,
};
use crate::incident::{LifecycleParams, ModelInfo, SlotSpec, ZoneRef};
use crate::rules::{
    Anchor, CrowdLevel, CrowdParams, CrowdRule, PersistenceParams, PersistenceRule, Polygon,
    PresenceParams, PresenceRule, Rule, SceneChange, SceneParams, SceneRule, Schedule,
    VendingParams, VendingRule, ZoneSpec,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// What every rule type has.
pub(super) struct Common<'a, T> {
    pub(super) at: &'a Spanned<T>,
    pub(super) kind: &'static str,
    pub(super) zone: &'a Spanned<String>,
    pub(super) category: &'a str,
    /// Where the category is written, when it is (otherwise the rule's own line).
    pub(super) category_at: Option<&'a Spanned<String>>,
    pub(super) min_score: Option<&'a Spanned<f32>>,
    pub(super) schedule: &'a Option<Spanned<ScheduleConfig>>,
    pub(super) incident: &'a IncidentConfig,
    /// `incident.clear_s` when the table does not set it.
    pub(super) default_clear_s: f64,
}

/// What a rule's common part builds.
pub(super) struct Built<'a> {
    pub(super) zone: &'a ZoneConfig,
    pub(super) schedule: Schedule,
    pub(super) lifecycle: LifecycleParams,
}

/// The rules of one camera.
pub(crate) struct CameraRules<'a> {
    pub config: &'a Config,
    pub cam: &'a CameraConfig,
    pub zones: &'a BTreeMap<&'a str, &'a ZoneConfig>,
    /// The camera's model; none when its bundle could not be read (that is reported on its own, and the
    /// label checks are skipped).
    pub model: Option<&'a ModelInfo>,
    /// Where scene-change zones keep their reference images.
    pub state_dir: &'a Path,
}

/// Seconds as a duration. Checked values are finite and at most 30 days; this never panics on others.
pub(super) fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.clamp(0.0, MAX_SECONDS)).unwrap_or_default()
}

impl CameraRules<'_> {
    /// Every rule's slot, in table order (crowd, vending, laundry, bins, presence, scene, zone state); problems go to `c`.
    pub fn slots(&self, c: &mut Check) -> Vec<SlotSpec> {
        let cam = self.cam;
        let mut slots = Vec::new();
        slots.extend(cam.crowd_density.iter().filter_map(|r| self.crowd(c, r)));
        slots.extend(cam.street_vending.iter().filter_map(|r| self.vending(c, r)));
        for r in &cam.hanging_laundry {
            slots.extend(self.persistence(c, r, "hanging_laundry", &config::LAUNDRY));
        }
        for r in &cam.bin_overflow {
            slots.extend(self.persistence(c, r, "bin_overflow", &config::BIN_OVERFLOW));
        }
        slots.extend(cam.presence.iter().filter_map(|r| self.presence(c, r)));
        slots.extend(cam.scene_change.iter().filter_map(|r| self.scene(c, r)));
        slots.extend(cam.zone_state.iter().filter_map(|r| self.zone_state(c, r)));
        slots
    }

    pub(super) fn common<'z, T>(&'z self, c: &mut Check, r: Common<T>) -> Option<Built<'z>> {
        let cam = &self.cam.id;
        let zone = self.zones.get(r.zone.get_ref().as_str()).copied();
        if zone.is_none() {
            c.push(r.zone, format!("camera `{cam}`: {} zone `{}` is not a zone of this camera; add it as [[camera.zone]] or correct the id", r.kind, r.zone.get_ref()));
        }
        if !self.config.categories.contains_key(r.category)
            && !categories::default_categories().contains_key(r.category)
        {
            let at = r.category_at.map_or(r.at.span(), |a| a.span());
            c.push(&Spanned::new(at, ()), format!("camera `{cam}`: {} category `{}` is neither shipped nor defined; add [categories.{}] with its work-order codes", r.kind, r.category, r.category));
        }
        if let Some(s) = r.min_score {
            let v = *s.get_ref();
            if !(v > 0.0 && v <= 1.0) {
                c.push(
                    s,
                    format!(
                        "camera `{cam}`: {} min_score = {v} must be in (0, 1]",
                        r.kind
                    ),
                );
            }
        }
        let schedule = match r.schedule {
            None => Schedule::always(),
            Some(s) => match Schedule::parse(&s.get_ref().days, &s.get_ref().hours) {
                Ok(schedule) => schedule,
                Err(e) => {
                    c.push(s, format!("camera `{cam}`: {} schedule: {e}", r.kind));
                    Schedule::always()
                }
            },
        };
        let i = r.incident;
        let clear_s = i.clear_s.unwrap_or(r.default_clear_s);
        if [clear_s, i.cooldown_s, i.update_interval_s]
            .iter()
            .any(|v| !(v.is_finite() && (0.0..=MAX_SECONDS).contains(v)))
        {
            c.push(r.at, format!("camera `{cam}`: {} incident clear_s, cooldown_s and update_interval_s must be 0–{MAX_SECONDS} seconds (30 days)", r.kind));
        }
        Some(Built {
            zone: zone?,
            schedule,
            lifecycle: LifecycleParams {
                clear: secs(clear_s),
                cooldown: secs(i.cooldown_s),
                update_interval: secs(i.update_interval_s),
            },
        })
    }

    /// The model's labels for `category` (manifest `[categories]`), for rules that name none.
    fn mapped(&self, category: &str) -> Vec<String> {
        self.model
            .map(|m| m.labels_for(category))
            .unwrap_or_default()
    }

    /// Class indices of `labels` (those the model has).
    pub(super) fn classes(&self, labels: &[String]) -> Vec<usize> {
        self.model.map(|m| m.classes(labels)).unwrap_or_default()
    }

    /// Labels the model lacks; with `need_one`, an error only when none of them exists.
    pub(super) fn labels<T>(
        &self,
        c: &mut Check,
        at: &Spanned<T>,
        kind: &str,
        labels: &[String],
        need_one: bool,
        hint: &str,
    ) {
        let Some(m) = self.model else { return };
        let missing: Vec<&str> = labels
            .iter()
            .filter(|l| !m.labels.contains(l))
            .map(String::as_str)
            .collect();
        let all_missing = missing.len() == labels.len();
        if (need_one && all_missing) || (!need_one && !missing.is_empty()) {
            c.push(
                at,
                format!(
                    "camera `{}`: {kind}: model `{}` has no class [{}]{hint}",
                    self.cam.id,
                    self.cam.model.get_ref(),
                    missing.join(", ")
                ),
            );
        }
    }

    pub(super) fn slot(&self, rule: Rule, category: &str, b: Built) -> SlotSpec {
        let z = b.zone;
        SlotSpec {
            reference_file: matches!(rule, Rule::Scene(_)).then(|| self.reference_file(z)),
            examples: None,
            rule,
            schedule: b.schedule,
            lifecycle: b.lifecycle,
            zone: ZoneRef {
                id: z.id.clone(),
                name: z.name.clone(),
                grid_code: z.grid_code.as_ref().map(|g| g.get_ref().clone()),
                lat: z.lat,
                lon: z.lon,
                area_m2: zone_area(self.cam, z),
                address: z.address.as_ref().map(|a| a.get_ref().clone()),
            },
            extensions: super::place::merged_extensions(self.config, self.cam, Some(z)),
            category: category.into(),
            codes: category_codes(self.config, category),
        }
    }

    /// Where a scene-change zone keeps its reference image.
    fn reference_file(&self, z: &ZoneConfig) -> PathBuf {
        scene_reference_file(self.state_dir, &self.cam.id, &z.id)
    }

    fn crowd(&self, c: &mut Check, at: &Spanned<CrowdRuleConfig>) -> Option<SlotSpec> {
        let (cam, r) = (self.cam, at.get_ref());
        if let Some(z) = self.zones.get(r.zone.get_ref().as_str())
            && z.area_m2.is_none()
            && cam.ground.is_none()
        {
            c.push(&r.zone, format!("camera `{}`: crowd_density needs the real area of zone `{}`; add area_m2 to the zone, or calibrate the ground with [camera.ground]", cam.id, z.id));
        }
        let score = *r.min_score.get_ref();
        if !(score > 0.0 && score <= 1.0) {
            c.push(
                &r.min_score,
                format!(
                    "camera `{}`: min_score = {score} is out of range; it must be in (0, 1]",
                    cam.id
                ),
            );
        }
        let levels = r.levels.get_ref();
        if levels.is_empty() {
            c.push(
                &r.levels,
                format!(
                    "camera `{}`: crowd_density needs at least one level",
                    cam.id
                ),
            );
        }
        for pair in levels.windows(2) {
            if pair[1].min_density <= pair[0].min_density {
                c.push(&r.levels, format!("camera `{}`: level `{}` ({}) must have a higher min_density than `{}` ({}); list levels in ascending order", cam.id, pair[1].name, pair[1].min_density, pair[0].name, pair[0].min_density));
            }
        }
        if levels
            .iter()
            .any(|l| !(l.min_density > 0.0 && l.min_density <= 100.0))
        {
            c.push(
                &r.levels,
                format!(
                    "camera `{}`: every level's min_density must be a positive number of persons/m², at most 100",
                    cam.id
                ),
            );
        }
        let hysteresis = *r.hysteresis.get_ref();
        if !hysteresis.is_finite()
            || hysteresis < 0.0
            || levels.first().is_some_and(|l| hysteresis >= l.min_density)
        {
            c.push(&r.hysteresis, format!("camera `{}`: hysteresis = {hysteresis} must be ≥ 0 and below the lowest level's min_density", cam.id));
        }
        let what = |key: &str| format!("camera `{}`: crowd_density {key}", cam.id);
        c.seconds(at, &what("sustain_s"), r.sustain_s, 0.0);
        c.seconds(at, &what("clear_s"), r.clear_s, 0.0);
        if levels.len() > 16 {
            c.push(
                &r.levels,
                format!("camera `{}`: crowd_density has more than 16 levels", cam.id),
            );
        }
        let labels = r.labels_or(self.mapped(&r.category));
        if let Some(m) = self.model {
            for label in labels.iter().filter(|l| !m.labels.contains(l)) {
                c.push(
                    &r.zone,
                    format!(
                        "camera `{}`: label `{label}` is not a label of model `{}`",
                        cam.id,
                        cam.model.get_ref()
                    ),
                );
            }
        }
        if let Some(n) = &r.max_count
            && *n.get_ref() == 0
        {
            c.push(
                n,
                format!(
                    "camera `{}`: crowd_density max_count must be at least 1 person",
                    cam.id
                ),
            );
        } else if let Some(n) = &r.max_count {
            c.whole(n, &what("max_count"), *n.get_ref() as u64, 1..=100_000);
        }
        let built = self.common(
            c,
            Common {
                at,
                kind: "crowd_density",
                zone: &r.zone,
                category: &r.category,
                category_at: None,
                min_score: None,
                schedule: &r.schedule,
                incident: &r.incident,
                default_clear_s: config::CROWD_INCIDENT_CLEAR_S,
            },
        )?;
        let area_m2 = zone_area(cam, built.zone)?;
        let rule = Rule::Crowd(CrowdRule::new(CrowdParams {
            zone: Polygon::new(built.zone.points.get_ref()),
            area_m2,
            classes: self.classes(&labels),
            min_score: score,
            levels: levels
                .iter()
                .map(|l| CrowdLevel {
                    name: l.name.clone(),
                    min_density: l.min_density,
                })
                .collect(),
            hysteresis,
            sustain: secs(r.sustain_s),
            clear: secs(r.clear_s),
            max_count: r.max_count.as_ref().map(|n| *n.get_ref()),
        }));
        Some(self.slot(rule, &r.category, built))
    }

    fn vending(&self, c: &mut Check, at: &Spanned<VendingRuleConfig>) -> Option<SlotSpec> {
        let (cam, r) = (self.cam, at.get_ref());
        let built = self.common(
            c,
            Common {
                at,
                kind: "street_vending",
                zone: &r.zone,
                category: &r.category,
                category_at: None,
                min_score: Some(&r.min_score),
                schedule: &r.schedule,
                incident: &r.incident,
                default_clear_s: config::VENDING_CLEAR_S,
            },
        );
        let cue_labels = r.cue_labels_or(self.mapped(&r.category));
        let cues: Vec<String> = r
            .vendor_labels
            .iter()
            .cloned()
            .chain(cue_labels.iter().cloned())
            .collect();
        self.labels(
            c,
            at,
            "street_vending",
            &cues,
            true,
            "; list classes the model has in vendor_labels or cue_labels",
        );
        self.labels(
            c,
            at,
            "street_vending",
            &r.person_labels,
            false,
            "; person_labels must be classes of the model",
        );
        if !(r.person_radius >= 0.0
            && r.person_radius <= 10.0
            && (0.0..=1.0).contains(&r.min_person_share))
        {
            c.push(at, format!("camera `{}`: street_vending needs person_radius in 0–10 (box diagonals) and min_person_share in 0..1", cam.id));
        }
        c.seconds(
            at,
            &format!("camera `{}`: street_vending dwell_s", cam.id),
            r.dwell_s,
            0.0,
        );
        let built = built?;
        let rule = Rule::Vending(VendingRule::new(
            VendingParams {
                vendor_classes: self.classes(&r.vendor_labels),
                cue_classes: self.classes(&cue_labels),
                person_classes: self.classes(&r.person_labels),
                min_score: *r.min_score.get_ref(),
                dwell: secs(r.dwell_s),
                person_radius: r.person_radius,
                min_person_share: r.min_person_share,
            },
            zone_spec(built.zone),
        ));
        Some(self.slot(rule, &r.category, built))
    }

    fn persistence(
        &self,
        c: &mut Check,
        at: &Spanned<PersistenceRuleConfig>,
        kind: &'static str,
        d: &PersistenceDefaults,
    ) -> Option<SlotSpec> {
        let r = at.get_ref();
        let built = self.common(
            c,
            Common {
                at,
                kind,
                zone: &r.zone,
                category: r.category_or(d),
                category_at: None,
                min_score: Some(&r.min_score),
                schedule: &r.schedule,
                incident: &r.incident,
                default_clear_s: d.clear_s,
            },
        );
        let labels = r.labels_or(d, self.mapped(r.category_or(d)));
        self.labels(c, at, kind, &labels, true, "; a city model with such a class is needed — or use [[camera.scene_change]] (no model) for this zone");
        let (n, k) = (r.window_or(d), r.min_present_or(d));
        if !(1..=1000).contains(&n) || k > n || 2 * k <= n {
            c.push(at, format!("camera `{}`: {kind}: min_present = {k} of window = {n} must be more than half of the window and at most all of it (e.g. 7 of 10)", self.cam.id));
        }
        let sample_every_s = r.sample_every_s.unwrap_or(d.sample_every_s);
        c.seconds(
            at,
            &format!("camera `{}`: {kind}: sample_every_s", self.cam.id),
            sample_every_s,
            0.0,
        );
        let built = built?;
        let rule = Rule::Persistence(PersistenceRule::new(
            PersistenceParams {
                classes: self.classes(&labels),
                min_score: *r.min_score.get_ref(),
                sample_every: secs(sample_every_s),
                window: n as usize,
                min_present: k as usize,
            },
            zone_spec(built.zone),
        ));
        Some(self.slot(rule, r.category_or(d), built))
    }

    fn presence(&self, c: &mut Check, at: &Spanned<PresenceRuleConfig>) -> Option<SlotSpec> {
        let r = at.get_ref();
        let built = self.common(
            c,
            Common {
                at,
                kind: "presence",
                zone: &r.zone,
                category: r.category.get_ref(),
                category_at: Some(&r.category),
                min_score: Some(&r.min_score),
                schedule: &r.schedule,
                incident: &r.incident,
                default_clear_s: config::PRESENCE_CLEAR_S,
            },
        );
        self.labels(
            c,
            &r.labels,
            "presence",
            r.labels.get_ref(),
            false,
            "; labels must be classes of the model",
        );
        if r.labels.get_ref().is_empty() || !(1..=10_000).contains(&r.min_count) {
            c.push(
                at,
                format!(
                    "camera `{}`: presence needs at least one label and min_count in 1–10000",
                    self.cam.id
                ),
            );
        }
        c.seconds(
            at,
            &format!("camera `{}`: presence dwell_s", self.cam.id),
            r.dwell_s,
            0.0,
        );
        let built = built?;
        let rule = Rule::Presence(PresenceRule::new(
            PresenceParams {
                classes: self.classes(r.labels.get_ref()),
                min_score: *r.min_score.get_ref(),
                dwell: secs(r.dwell_s),
                stationary: r.stationary,
                min_count: r.min_count,
            },
            zone_spec(built.zone),
        ));
        Some(self.slot(rule, r.category.get_ref(), built))
    }

    fn scene(&self, c: &mut Check, at: &Spanned<SceneRuleConfig>) -> Option<SlotSpec> {
        let (cam, r) = (self.cam, at.get_ref());
        let built = self.common(
            c,
            Common {
                at,
                kind: "scene_change",
                zone: &r.zone,
                category: r.category.get_ref(),
                category_at: Some(&r.category),
                min_score: None,
                schedule: &r.schedule,
                incident: &r.incident,
                default_clear_s: config::SCENE_CLEAR_S,
            },
        );
        let f = *r.min_changed_fraction.get_ref();
        if !(f > 0.0 && f <= 1.0) {
            c.push(
                &r.min_changed_fraction,
                format!(
                    "camera `{}`: scene_change min_changed_fraction = {f} must be in (0, 1]",
                    cam.id
                ),
            );
        }
        let t = *r.cell_threshold.get_ref();
        if !(t > 0.0 && t < 255.0) {
            c.push(
                &r.cell_threshold,
                format!(
                    "camera `{}`: scene_change cell_threshold = {t} must be in (0, 255)",
                    cam.id
                ),
            );
        }
        if !(r.persist_s > 0.0 && r.persist_s <= MAX_SECONDS) {
            c.push(
                at,
                format!(
                    "camera `{}`: scene_change persist_s must be above 0 and at most {MAX_SECONDS} seconds (30 days)",
                    cam.id
                ),
            );
        }
        let built = built?;
        let polygon = Polygon::new(built.zone.points.get_ref());
        let params = SceneParams {
            cell_threshold: t,
            min_changed_fraction: f,
            persist: secs(r.persist_s),
            ..SceneParams::default()
        };
        let rule = Rule::Scene(SceneRule {
            change: SceneChange::new(polygon.clone(), params),
            zone: polygon,
            exclude: self.classes(&r.exclude_labels),
            reference_taken: false,
        });
        Some(self.slot(rule, r.category.get_ref(), built))
    }
}

/// The work-order codes of `category`: the configured ones, else the shipped defaults.
pub(super) fn category_codes(config: &Config, category: &str) -> crate::base::CategoryCodes {
    config
        .categories
        .get(category)
        .map(|c| c.get_ref().clone())
        .or_else(|| categories::default_categories().remove(category))
        .unwrap_or_default()
}

/// A configured zone as the rules see it: polygon, anchor, overlap, inertia.
pub fn zone_spec(z: &ZoneConfig) -> ZoneSpec {
    ZoneSpec {
        id: z.id.clone(),
        polygon: Polygon::new(z.points.get_ref()),
        anchor: match z.anchor {
            config::Anchor::Auto => Anchor::Auto,
            config::Anchor::BottomCentre => Anchor::BottomCentre,
            config::Anchor::Overlap => Anchor::Overlap,
        },
        min_overlap: *z.min_overlap.get_ref(),
        inertia: z.inertia,
    }
}
