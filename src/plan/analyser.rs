//! A camera's analyser from the checked configuration: labels resolved to the model's class indices, zones
//! with their anchors and areas (configured, or from the ground homography), schedules, and each rule
//! type's parameters with their defaults.

use crate::config::{
    self, BIN_OVERFLOW, CameraConfig, Config, IncidentConfig, LAUNDRY, PersistenceDefaults,
    PersistenceRuleConfig, ScheduleConfig, ZoneConfig,
};
use crate::incident::{
    Analyser, AnalyserSpec, CameraRef, DeviceRef, EvidenceSettings, LifecycleParams, ModelInfo,
    PrivacyParams, SlotSpec, ZoneRef,
};
use crate::rules::{
    Anchor, CrowdLevel, CrowdParams, CrowdRule, Homography, Mask, PersistenceParams,
    PersistenceRule, Polygon, PresenceParams, PresenceRule, Rule, SceneChange, SceneParams,
    SceneRule, Schedule, VendingParams, VendingRule, ZoneSpec,
};
use crate::track::TrackerParams;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn lifecycle(c: &IncidentConfig, default_clear_s: f64) -> LifecycleParams {
    LifecycleParams {
        clear: secs(c.clear_s.unwrap_or(default_clear_s)),
        cooldown: secs(c.cooldown_s),
        update_interval: secs(c.update_interval_s),
    }
}

fn anchor(a: config::Anchor) -> Anchor {
    match a {
        config::Anchor::Auto => Anchor::Auto,
        config::Anchor::BottomCentre => Anchor::BottomCentre,
        config::Anchor::Overlap => Anchor::Overlap,
    }
}

fn schedule(s: &Option<Spanned<ScheduleConfig>>) -> Schedule {
    // Validated at load; an unparsable schedule cannot reach here.
    s.as_ref()
        .and_then(|s| Schedule::parse(&s.get_ref().days, &s.get_ref().hours).ok())
        .unwrap_or_else(Schedule::always)
}

/// A zone's area: configured, or projected through the camera's ground homography.
pub fn zone_area(cam: &CameraConfig, z: &ZoneConfig) -> Option<f64> {
    if let Some(a) = &z.area_m2 {
        return Some(*a.get_ref());
    }
    let g = cam.ground.as_ref()?.get_ref();
    let h = Homography::fit(&g.image, &g.ground).ok()?;
    h.area_m2(&Polygon::new(z.points.get_ref()).points)
}

struct Ctx<'a> {
    config: &'a Config,
    cam: &'a CameraConfig,
    model: &'a ModelInfo,
    state_dir: &'a Path,
}

impl Ctx<'_> {
    fn zone(&self, id: &str) -> Option<&ZoneConfig> {
        self.cam
            .zones
            .iter()
            .map(Spanned::get_ref)
            .find(|z| z.id == id)
    }

    /// Where a scene-change zone keeps its reference image.
    fn reference_file(&self, z: &ZoneConfig) -> std::path::PathBuf {
        self.state_dir
            .join("scene")
            .join(format!("{}--{}.ref", self.cam.id, z.id))
    }

    fn spec(&self, z: &ZoneConfig) -> ZoneSpec {
        ZoneSpec {
            id: z.id.clone(),
            polygon: Polygon::new(z.points.get_ref()),
            anchor: anchor(z.anchor),
            min_overlap: *z.min_overlap.get_ref(),
            inertia: z.inertia,
        }
    }

    fn slot(
        &self,
        rule: Rule,
        z: &ZoneConfig,
        category: &str,
        schedule: Schedule,
        lifecycle: LifecycleParams,
    ) -> SlotSpec {
        SlotSpec {
            reference_file: matches!(rule, Rule::Scene(_)).then(|| self.reference_file(z)),
            rule,
            schedule,
            lifecycle,
            zone: ZoneRef {
                id: z.id.clone(),
                name: z.name.clone(),
                grid_code: z.grid_code.as_ref().map(|g| g.get_ref().clone()),
                lat: z.lat,
                lon: z.lon,
                area_m2: zone_area(self.cam, z),
            },
            category: category.into(),
            codes: self
                .config
                .categories
                .get(category)
                .map(|c| c.get_ref().clone())
                .or_else(|| config::default_categories().remove(category))
                .unwrap_or_default(),
        }
    }

    fn persistence(&self, r: &PersistenceRuleConfig, d: &PersistenceDefaults) -> Option<SlotSpec> {
        let z = self.zone(r.zone.get_ref())?;
        let rule = Rule::Persistence(PersistenceRule::new(
            PersistenceParams {
                classes: self
                    .model
                    .classes(&r.labels_or(d, self.model.labels_for(r.category_or(d)))),
                min_score: *r.min_score.get_ref(),
                sample_every: secs(r.sample_every_s.unwrap_or(d.sample_every_s)),
                window: r.window_or(d) as usize,
                min_present: r.min_present_or(d) as usize,
            },
            self.spec(z),
        ));
        Some(self.slot(
            rule,
            z,
            r.category_or(d),
            schedule(&r.schedule),
            lifecycle(&r.incident, d.clear_s),
        ))
    }

    fn slots(&self) -> Vec<SlotSpec> {
        let (cam, m) = (self.cam, self.model);
        let mut slots = Vec::new();
        for c in cam.crowd_density.iter().map(Spanned::get_ref) {
            let Some(z) = self.zone(c.zone.get_ref()) else {
                continue;
            };
            let Some(area_m2) = zone_area(cam, z) else {
                continue;
            };
            let rule = Rule::Crowd(CrowdRule::new(CrowdParams {
                zone: Polygon::new(z.points.get_ref()),
                area_m2,
                classes: m.classes(&c.labels_or(m.labels_for(&c.category))),
                min_score: *c.min_score.get_ref(),
                levels: c
                    .levels
                    .get_ref()
                    .iter()
                    .map(|l| CrowdLevel {
                        name: l.name.clone(),
                        min_density: l.min_density,
                    })
                    .collect(),
                hysteresis: *c.hysteresis.get_ref(),
                sustain: secs(c.sustain_s),
                clear: secs(c.clear_s),
                max_count: c.max_count.as_ref().map(|n| *n.get_ref()),
            }));
            // The crowd rule waits its own clear time; the lifecycle resolves as soon as it says so.
            let lc = lifecycle(&c.incident, 0.0);
            slots.push(self.slot(rule, z, &c.category, schedule(&c.schedule), lc));
        }
        for v in cam.street_vending.iter().map(Spanned::get_ref) {
            let Some(z) = self.zone(v.zone.get_ref()) else {
                continue;
            };
            let rule = Rule::Vending(VendingRule::new(
                VendingParams {
                    vendor_classes: m.classes(&v.vendor_labels),
                    cue_classes: m.classes(&v.cue_labels_or(m.labels_for(&v.category))),
                    person_classes: m.classes(&v.person_labels),
                    min_score: *v.min_score.get_ref(),
                    dwell: secs(v.dwell_s),
                    person_radius: v.person_radius,
                    min_person_share: v.min_person_share,
                },
                self.spec(z),
            ));
            let lc = lifecycle(&v.incident, 120.0);
            slots.push(self.slot(rule, z, &v.category, schedule(&v.schedule), lc));
        }
        for r in cam.hanging_laundry.iter().map(Spanned::get_ref) {
            slots.extend(self.persistence(r, &LAUNDRY));
        }
        for r in cam.bin_overflow.iter().map(Spanned::get_ref) {
            slots.extend(self.persistence(r, &BIN_OVERFLOW));
        }
        for p in cam.presence.iter().map(Spanned::get_ref) {
            let Some(z) = self.zone(p.zone.get_ref()) else {
                continue;
            };
            let rule = Rule::Presence(PresenceRule::new(
                PresenceParams {
                    classes: m.classes(p.labels.get_ref()),
                    min_score: *p.min_score.get_ref(),
                    dwell: secs(p.dwell_s),
                    stationary: p.stationary,
                    min_count: p.min_count,
                },
                self.spec(z),
            ));
            let lc = lifecycle(&p.incident, 30.0);
            slots.push(self.slot(rule, z, p.category.get_ref(), schedule(&p.schedule), lc));
        }
        for s in cam.scene_change.iter().map(Spanned::get_ref) {
            let Some(z) = self.zone(s.zone.get_ref()) else {
                continue;
            };
            let polygon = Polygon::new(z.points.get_ref());
            let params = SceneParams {
                cell_threshold: *s.cell_threshold.get_ref(),
                min_changed_fraction: *s.min_changed_fraction.get_ref(),
                persist: secs(s.persist_s),
                ..SceneParams::default()
            };
            let change = SceneChange::new(polygon.clone(), params);
            let rule = Rule::Scene(SceneRule {
                change,
                zone: polygon,
                exclude: m.classes(&s.exclude_labels),
                reference_taken: false,
            });
            let lc = lifecycle(&s.incident, 60.0);
            let slot = self.slot(rule, z, s.category.get_ref(), schedule(&s.schedule), lc);
            slots.push(slot);
        }
        slots
    }
}

/// Build camera `cam`'s analyser from a checked configuration (labels are resolved against `model`).
pub fn analyser(config: &Config, cam: &CameraConfig, model: ModelInfo) -> Analyser {
    {
        let ctx = Ctx {
            config,
            cam,
            model: &model,
            state_dir: &config.storage.state_dir,
        };
        let slots = ctx.slots();
        let person_classes = model.classes(&["person".to_string()]);
        let masks = cam
            .masks
            .iter()
            .map(|m| Mask {
                polygon: Polygon::new(m.get_ref().points.get_ref()),
                classes: model.classes(&m.get_ref().labels),
            })
            .collect();
        let spec = AnalyserSpec {
            device: DeviceRef {
                id: config.device.id.get_ref().clone(),
                name: config.device.name.clone(),
                gb28181_id: config
                    .device
                    .gb28181_id
                    .as_ref()
                    .map(|g| g.get_ref().clone()),
            },
            camera: CameraRef {
                id: cam.id.clone(),
                name: cam.name.clone(),
            },
            tz: config
                .device
                .timezone
                .get_ref()
                .parse()
                .unwrap_or(chrono_tz::Asia::Shanghai),
            evidence: EvidenceSettings {
                quality: config.storage.jpeg_quality,
                clean_frame: config.evidence.clean_frame,
                privacy: PrivacyParams {
                    blur_faces: config.evidence.blur_faces,
                    head_fraction: *config.evidence.head_fraction.get_ref(),
                    ..PrivacyParams::default()
                },
            },
            person_classes,
            masks,
            tracker: TrackerParams::default(),
            slots,
        };
        Analyser::new(spec, model)
    }
}
