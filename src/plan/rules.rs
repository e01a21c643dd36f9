//! Cross-field checks of the rule tables, masks, ground calibration and evidence settings. Like
//! `validate`, every problem is pushed to one list with its line and the fix.

use super::check::Check;
use crate::config::{
    CameraConfig, Config, IncidentConfig, PersistenceDefaults, PersistenceRuleConfig,
    ScheduleConfig, ZoneConfig, categories,
};
use crate::detect::Manifest;
use crate::rules::{Homography, Schedule};
use std::collections::BTreeMap;
use toml::Spanned;

/// What every rule type has.
struct Common<'a, T> {
    at: &'a Spanned<T>,
    kind: &'static str,
    zone: &'a Spanned<String>,
    category: &'a str,
    /// Where the category is written, when it is (otherwise the rule's own line).
    category_at: Option<&'a Spanned<String>>,
    min_score: Option<&'a Spanned<f32>>,
    schedule: &'a Option<Spanned<ScheduleConfig>>,
    incident: &'a IncidentConfig,
}

pub(crate) struct RuleCheck<'a> {
    pub config: &'a Config,
    pub cam: &'a CameraConfig,
    pub zones: &'a BTreeMap<&'a str, &'a ZoneConfig>,
    pub manifest: Option<&'a Manifest>,
}

impl RuleCheck<'_> {
    fn common<T>(&self, c: &mut Check, r: Common<T>) {
        let cam = &self.cam.id;
        if !self.zones.contains_key(r.zone.get_ref().as_str()) {
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
        if let Some(s) = r.schedule
            && let Err(e) = Schedule::parse(&s.get_ref().days, &s.get_ref().hours)
        {
            c.push(s, format!("camera `{cam}`: {} schedule: {e}", r.kind));
        }
        let i = r.incident;
        if [i.clear_s.unwrap_or(0.0), i.cooldown_s, i.update_interval_s]
            .iter()
            .any(|v| !(*v >= 0.0 && v.is_finite()))
        {
            c.push(r.at, format!("camera `{cam}`: {} incident clear_s, cooldown_s and update_interval_s must be ≥ 0 seconds", r.kind));
        }
    }

    /// The model's labels for `category` (manifest `[categories]`), for rules that name none.
    fn mapped(&self, category: &str) -> Vec<String> {
        self.manifest
            .map(|m| m.labels_for(category))
            .unwrap_or_default()
    }

    /// Labels the model lacks; with `need_one`, an error only when none of them exists.
    fn labels<T>(
        &self,
        c: &mut Check,
        at: &Spanned<T>,
        kind: &str,
        labels: &[String],
        need_one: bool,
        hint: &str,
    ) {
        let Some(m) = self.manifest else { return };
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

    fn persistence(
        &self,
        c: &mut Check,
        at: &Spanned<PersistenceRuleConfig>,
        kind: &'static str,
        d: &PersistenceDefaults,
    ) {
        let r = at.get_ref();
        self.common(
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
            },
        );
        let mapped = self.mapped(r.category_or(d));
        self.labels(c, at, kind, &r.labels_or(d, mapped), true, "; a city model with such a class is needed — or use [[camera.scene_change]] (no model) for this zone");
        let (n, k) = (r.window_or(d), r.min_present_or(d));
        if !(1..=1000).contains(&n) || k > n || 2 * k <= n {
            c.push(at, format!("camera `{}`: {kind}: min_present = {k} of window = {n} must be more than half of the window and at most all of it (e.g. 7 of 10)", self.cam.id));
        }
        if r.sample_every_s
            .is_some_and(|s| !(s >= 0.0 && s.is_finite()))
        {
            c.push(
                at,
                format!(
                    "camera `{}`: {kind}: sample_every_s must be ≥ 0 seconds",
                    self.cam.id
                ),
            );
        }
    }

    pub fn run(&self, c: &mut Check) {
        let cam = self.cam;
        for at in &cam.crowd_density {
            let r = at.get_ref();
            self.common(
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
                },
            );
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
            }
        }
        for at in &cam.street_vending {
            let r = at.get_ref();
            self.common(
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
                },
            );
            let cues: Vec<String> = r
                .vendor_labels
                .iter()
                .cloned()
                .chain(r.cue_labels_or(self.mapped(&r.category)))
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
            if !(r.dwell_s >= 0.0
                && r.person_radius >= 0.0
                && (0.0..=1.0).contains(&r.min_person_share))
            {
                c.push(at, format!("camera `{}`: street_vending needs dwell_s ≥ 0, person_radius ≥ 0 and min_person_share in 0..1", cam.id));
            }
        }
        for at in &cam.hanging_laundry {
            self.persistence(c, at, "hanging_laundry", &crate::config::LAUNDRY);
        }
        for at in &cam.bin_overflow {
            self.persistence(c, at, "bin_overflow", &crate::config::BIN_OVERFLOW);
        }
        for at in &cam.presence {
            let r = at.get_ref();
            self.common(
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
            if r.labels.get_ref().is_empty()
                || r.min_count == 0
                || r.dwell_s.is_nan()
                || r.dwell_s < 0.0
            {
                c.push(at, format!("camera `{}`: presence needs at least one label, min_count ≥ 1 and dwell_s ≥ 0", cam.id));
            }
        }
        for at in &cam.scene_change {
            let r = at.get_ref();
            self.common(
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
            if !(r.persist_s > 0.0 && r.persist_s.is_finite()) {
                c.push(
                    at,
                    format!(
                        "camera `{}`: scene_change persist_s must be > 0 seconds",
                        cam.id
                    ),
                );
            }
        }
    }
}

/// Masks, ground calibration and zone membership parameters of one camera.
pub(crate) fn verify_camera_geometry(
    c: &mut Check,
    cam: &CameraConfig,
    manifest: Option<&Manifest>,
) {
    for m in &cam.masks {
        let points = m.get_ref().points.get_ref();
        if points.len() < 3 || points.iter().flatten().any(|v| !(0.0..=1.0).contains(v)) {
            c.push(
                &m.get_ref().points,
                format!(
                    "camera `{}`: a mask needs at least 3 points, each within 0..1",
                    cam.id
                ),
            );
        }
        if let Some(man) = manifest {
            for l in m
                .get_ref()
                .labels
                .iter()
                .filter(|l| !man.labels.contains(l))
            {
                c.push(
                    m,
                    format!(
                        "camera `{}`: mask label `{l}` is not a class of model `{}`",
                        cam.id,
                        cam.model.get_ref()
                    ),
                );
            }
        }
    }
    if let Some(g) = &cam.ground {
        let v = g.get_ref();
        if v.image.len() != v.ground.len() {
            c.push(g, format!("camera `{}`: ground has {} image points and {} ground points; list them in pairs", cam.id, v.image.len(), v.ground.len()));
        } else {
            match Homography::fit(&v.image, &v.ground) {
                Err(e) => c.push(g, format!("camera `{}`: ground calibration: {e}", cam.id)),
                Ok(h) => {
                    let r = h.max_residual_m(&v.image, &v.ground);
                    if r > 1.0 {
                        c.push(g, format!("camera `{}`: ground calibration is inconsistent: a point lands {r:.2} m from where it was measured; re-measure the pairs (they must lie on one flat ground plane)", cam.id));
                    }
                }
            }
        }
    }
    for z in &cam.zones {
        let z = z.get_ref();
        let o = *z.min_overlap.get_ref();
        if !(o > 0.0 && o <= 1.0) {
            c.push(
                &z.min_overlap,
                format!(
                    "camera `{}`: zone `{}`: min_overlap = {o} must be in (0, 1]",
                    cam.id, z.id
                ),
            );
        }
    }
}

/// The device time zone and the evidence settings.
pub(crate) fn verify_device_extras(c: &mut Check, config: &Config) {
    let tz = &config.device.timezone;
    if tz.get_ref().parse::<chrono_tz::Tz>().is_err() {
        c.push(
            tz,
            format!(
                "timezone `{}` is not an IANA time zone; write e.g. \"Asia/Shanghai\"",
                tz.get_ref()
            ),
        );
    }
    let h = &config.evidence.head_fraction;
    if !(*h.get_ref() > 0.0 && *h.get_ref() <= 1.0) {
        c.push(
            h,
            format!("evidence.head_fraction = {} must be in (0, 1]", h.get_ref()),
        );
    }
}
