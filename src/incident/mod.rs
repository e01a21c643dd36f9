//! Incidents: one case per violation. A rule's level changes become `opened → updated → resolved` events,
//! each with an annotated evidence image.

mod event;
mod evidence;

pub use event::{
    AgentRef, CameraRef, CrowdInfo, DeviceRef, EvidenceRef, IncidentEvent, ModelRef, ObjectRef,
    Phase, SCHEMA, ZoneRef,
};
pub use evidence::{Annotation, Evidence, render};

use crate::config::{CameraConfig, CategoryCodes, Config, ZoneConfig};
use crate::detect::Detection;
use crate::ingest::Frame;
use crate::rules::{CrowdChange, CrowdLevel, CrowdParams, CrowdRule, Polygon};
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// An event ready to publish, with its evidence.
#[derive(Debug, Clone)]
pub struct Publication {
    pub event: IncidentEvent,
    pub evidence: Evidence,
}

/// What the analyser needs to know about the model it receives detections from.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub labels: Vec<String>,
}

/// What one rule change contributes to an event.
struct Draft<'a> {
    phase: Phase,
    incident_id: String,
    first_seen: SystemTime,
    now: SystemTime,
    crowd: CrowdInfo,
    members: &'a [&'a Detection],
    evidence: &'a Evidence,
}

struct OpenIncident {
    id: String,
    first_seen: SystemTime,
}

struct CrowdSlot {
    rule: CrowdRule,
    zone: ZoneConfig,
    category: String,
    codes: CategoryCodes,
    open: Option<OpenIncident>,
}

/// Rules and open incidents of one camera.
pub struct Analyser {
    device: DeviceRef,
    camera: CameraRef,
    model: ModelInfo,
    jpeg_quality: u8,
    crowds: Vec<CrowdSlot>,
}

fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Analyser {
    /// Build from a validated configuration (labels are resolved against the model).
    pub fn new(config: &Config, cam: &CameraConfig, model: ModelInfo) -> Self {
        let mut categories = crate::config::default_categories();
        for (k, v) in &config.categories {
            categories.insert(k.clone(), v.get_ref().clone());
        }
        let zones: BTreeMap<&str, &ZoneConfig> = cam
            .zones
            .iter()
            .map(|z| (z.get_ref().id.as_str(), z.get_ref()))
            .collect();
        let crowds = cam
            .crowd_density
            .iter()
            .map(|r| r.get_ref())
            .filter_map(|c| {
                let zone = *zones.get(c.zone.get_ref().as_str())?;
                let classes = c
                    .labels
                    .iter()
                    .filter_map(|l| model.labels.iter().position(|m| m == l))
                    .collect();
                let levels = c
                    .levels
                    .get_ref()
                    .iter()
                    .map(|l| CrowdLevel {
                        name: l.name.clone(),
                        min_density: l.min_density,
                    })
                    .collect();
                let area = zone.area_m2.as_ref().map(|a| *a.get_ref())?;
                let rule = CrowdRule::new(CrowdParams {
                    zone: Polygon::new(zone.points.get_ref()),
                    area_m2: area,
                    classes,
                    min_score: *c.min_score.get_ref(),
                    levels,
                    hysteresis: *c.hysteresis.get_ref(),
                    sustain: Duration::from_secs_f64(c.sustain_s),
                    clear: Duration::from_secs_f64(c.clear_s),
                });
                let codes = categories.get(&c.category).cloned().unwrap_or_default();
                Some(CrowdSlot {
                    rule,
                    zone: zone.clone(),
                    category: c.category.clone(),
                    codes,
                    open: None,
                })
            })
            .collect();
        Analyser {
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
            model,
            jpeg_quality: config.storage.jpeg_quality,
            crowds,
        }
    }

    /// Run every rule on one analysed frame; returns the events to publish.
    pub fn analyse(&mut self, frame: &Frame, detections: &[Detection]) -> Vec<Publication> {
        let mut out = Vec::new();
        for i in 0..self.crowds.len() {
            let slot = &mut self.crowds[i];
            let obs = slot.rule.count(detections);
            let Some(change) = slot.rule.update(obs.density, frame.captured_mono) else {
                continue;
            };
            let levels = &slot.rule.params.levels;
            let (phase, level, previous) = match change {
                CrowdChange::Opened { to } => (Phase::Opened, to, None),
                CrowdChange::LevelChanged { from, to } => (Phase::Updated, to, Some(from)),
                CrowdChange::Cleared { from } => (Phase::Resolved, from, None),
            };
            let crowd = CrowdInfo {
                count: obs.count,
                density: obs.density,
                level: levels[level].name.clone(),
                previous_level: previous.map(|p| levels[p].name.clone()),
            };
            let open = slot.open.get_or_insert_with(|| OpenIncident {
                id: uuid::Uuid::now_v7().to_string(),
                first_seen: frame.captured_at,
            });
            let incident_id = open.id.clone();
            let first_seen = open.first_seen;
            if phase == Phase::Resolved {
                slot.open = None;
            }
            let members: Vec<&Detection> = obs.members.iter().map(|&m| &detections[m]).collect();
            let ann = Annotation {
                zone: &self.crowds[i].rule.params.zone.points,
                counted: members.iter().map(|d| d.bbox).collect(),
                others: detections
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| !obs.members.contains(k))
                    .map(|(_, d)| d.bbox)
                    .collect(),
            };
            let evidence = match render(frame.to_rgb_image(), &ann, self.jpeg_quality) {
                Ok(e) => e,
                Err(error) => {
                    tracing::error!(camera = %self.camera.id, %error, "Evidence image could not be encoded; event sent without it.");
                    Evidence {
                        jpeg: Vec::new(),
                        sha256: String::new(),
                        width: 0,
                        height: 0,
                    }
                }
            };
            let slot = &self.crowds[i];
            let draft = Draft {
                phase,
                incident_id,
                first_seen,
                now: frame.captured_at,
                crowd,
                members: &members,
                evidence: &evidence,
            };
            let event = self.event(slot, draft);
            out.push(Publication { event, evidence });
        }
        out
    }

    fn event(&self, slot: &CrowdSlot, d: Draft) -> IncidentEvent {
        let Draft {
            phase,
            incident_id,
            first_seen,
            now,
            crowd,
            members,
            evidence,
        } = d;
        let event_id = uuid::Uuid::now_v7().to_string();
        let confidence = if members.is_empty() {
            0.0
        } else {
            members.iter().map(|d| d.score).sum::<f32>() / members.len() as f32
        };
        let evidence_refs = if evidence.jpeg.is_empty() {
            Vec::new()
        } else {
            vec![EvidenceRef {
                kind: "annotated".into(),
                topic: format!("evidence/{event_id}"),
                content_type: "image/jpeg".into(),
                bytes: evidence.jpeg.len(),
                sha256: evidence.sha256.clone(),
                width: evidence.width,
                height: evidence.height,
            }]
        };
        IncidentEvent {
            schema: SCHEMA.into(),
            event_id,
            incident_id,
            phase,
            time: rfc3339(SystemTime::now()),
            category: slot.category.clone(),
            codes: slot.codes.clone(),
            device: self.device.clone(),
            camera: self.camera.clone(),
            zone: ZoneRef {
                id: slot.zone.id.clone(),
                name: slot.zone.name.clone(),
                grid_code: slot.zone.grid_code.as_ref().map(|g| g.get_ref().clone()),
                lat: slot.zone.lat,
                lon: slot.zone.lon,
                area_m2: slot.zone.area_m2.as_ref().map(|a| *a.get_ref()),
            },
            first_seen: rfc3339(first_seen),
            last_seen: rfc3339(now),
            dwell_s: now
                .duration_since(first_seen)
                .unwrap_or_default()
                .as_secs_f64(),
            confidence,
            crowd: Some(crowd),
            objects: members
                .iter()
                .map(|d| ObjectRef {
                    label: self.model.labels.get(d.class).cloned().unwrap_or_default(),
                    score: d.score,
                    bbox: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
                    track_id: None,
                })
                .collect(),
            evidence: evidence_refs,
            model: ModelRef {
                name: self.model.name.clone(),
                version: self.model.version.clone(),
                sha256: self.model.sha256.clone(),
            },
            agent: AgentRef::this(),
        }
    }
}
