//! The evidence and publish part of a camera's incidents: a [`Draft`] that the analysis produced becomes an
//! [`IncidentEvent`] with its evidence images (heads obscured, annotated and clean JPEGs, sha256 of each),
//! its event id and its time. This is the expensive and I/O-facing half (JPEG encoding, the clock, scene
//! reference files), so the daemon runs it on an evidence thread as an [`EvidenceJob`], not on the
//! inference thread; the analysis (`Analyser::step`) stays pure.

use super::caption::{self, CaptionFont, Subject};
use super::event::{
    AgentRef, CameraRef, CrowdInfo, DeviceRef, EvidenceRef, IncidentEvent, ModelRef, ObjectRef,
    Phase, SCHEMA, Verification, ZoneRef,
};
use super::evidence::{self, Annotation, Evidence, render};
use super::lifecycle::{CaseRef, Transition};
use super::model::ModelInfo;
use super::privacy::{PrivacyParams, blur_heads};
use crate::base::{BBox, CategoryCodes, Detection, Frame};
use crate::rules::{Hit, Polygon};
use chrono::{DateTime, SecondsFormat, Utc};
use image::RgbImage;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// How evidence is made.
#[derive(Debug, Clone)]
pub struct EvidenceSettings {
    /// JPEG quality, 1–100.
    pub quality: u8,
    /// Send the frame without drawings beside the annotated one.
    pub clean_frame: bool,
    pub privacy: PrivacyParams,
    /// The font `zh-CN` captions are drawn with, read once and shared by the cameras; none: captions are in
    /// English, in the built-in font.
    pub caption_font: Option<Arc<CaptionFont>>,
}

/// One transition of one incident, as the analysis saw it: everything its event says except the evidence,
/// the event id and the time it is published.
#[derive(Debug, Clone)]
pub struct Draft {
    pub transition: Transition,
    pub case: CaseRef,
    pub category: String,
    pub codes: CategoryCodes,
    pub zone: ZoneRef,
    /// The zone's outline, drawn on the evidence.
    pub polygon: Polygon,
    /// What the rule counted.
    pub hits: Vec<Hit>,
    pub crowd: Option<CrowdInfo>,
    /// A zone-state rule's reading of the sample behind this transition.
    pub zone_state: Option<super::event::ZoneStateInfo>,
    /// Capture time of the frame the transition was seen on; none when no frame was at hand (a resolve on
    /// reload or after a verify), and then the event has no evidence either.
    pub seen_at: Option<SystemTime>,
    /// The command this event answers (verify).
    pub request_id: Option<String>,
    /// How serious what holds is (crowd levels), kept with the case.
    pub severity: u32,
    /// How long after resolving a return re-opens the same case, kept with the case.
    pub cooldown: std::time::Duration,
    /// A camera-health case: the report it was made from.
    pub health: Option<crate::health::HealthReport>,
    /// A camera-health case: the reference view's JPEG, the "before" image of its evidence.
    pub reference_view: Option<PathBuf>,
    /// The zone's city-specific fields (none: the camera's).
    pub extensions: Option<Extensions>,
}

/// City-specific fields carried as they are (`extensions` in the configuration), shared by every draft of
/// a zone.
pub type Extensions = Arc<serde_json::Map<String, serde_json::Value>>;

/// A camera's identity and evidence settings: what turns drafts into events. Shared (read-only) between
/// the analyser and the evidence thread.
#[derive(Debug)]
pub struct Publisher {
    pub device: DeviceRef,
    pub camera: CameraRef,
    pub model: ModelInfo,
    pub wording: super::Wording,
    /// The camera's city-specific fields, for drafts that carry none of their own.
    pub extensions: Option<Extensions>,
    pub evidence: EvidenceSettings,
    /// Classes whose heads are obscured.
    pub person_classes: Vec<usize>,
}

fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Publisher {
    /// The event for `draft`, with evidence from `picture` (the frame it was seen on) when the draft has a
    /// frame time and a picture is given.
    pub fn publish(
        &self,
        draft: Draft,
        picture: Option<&RgbImage>,
        detections: &[Detection],
    ) -> super::Publication {
        let (phase, reopened, reason, verification) = match draft.transition {
            Transition::Opened { reopened } => (Phase::Opened, reopened, None, None),
            Transition::Updated => (Phase::Updated, false, None, None),
            Transition::Resolved(r) => (Phase::Resolved, false, Some(r), None),
            Transition::Verified { still_present } => (
                Phase::Verified,
                false,
                None,
                Some(if still_present {
                    Verification::StillPresent
                } else {
                    Verification::Cleared
                }),
            ),
        };
        let now = SystemTime::now();
        let seen_at = draft.seen_at.unwrap_or(now);
        let event_id = uuid::Uuid::now_v7().to_string();
        let address = (draft.zone.address.as_ref())
            .or(self.camera.address.as_ref())
            .or(self.device.address.as_ref())
            .cloned();
        let subject = Subject {
            category: &draft.category,
            name: draft.codes.name.as_deref(),
            phase,
            reopened,
            verification,
            health: draft.health.as_ref(),
            zone: &draft.zone,
            camera: &self.camera,
            address: address.as_deref(),
            at: DateTime::<Utc>::from(seen_at).with_timezone(&self.wording.tz),
        };
        let font = self.evidence.caption_font.as_deref();
        let (caption, font) = caption::choose(&subject, self.wording.language, font);
        let mut evidence: Vec<(&str, Evidence)> = match (draft.seen_at, picture) {
            (Some(_), Some(picture)) => ["annotated", "clean"]
                .into_iter()
                .zip(self.render_evidence(&draft, picture, detections, &caption, font))
                .collect(),
            _ => Vec::new(),
        };
        if !evidence.is_empty()
            && let Some(before) = draft.reference_view.as_deref().and_then(read_jpeg)
        {
            evidence.push(("reference", before));
        }
        let refs = evidence
            .iter()
            .map(|(kind, e)| EvidenceRef {
                kind: (*kind).into(),
                topic: match *kind {
                    "annotated" => format!("evidence/{event_id}"),
                    _ => format!("evidence/{event_id}/{kind}"),
                },
                content_type: "image/jpeg".into(),
                bytes: e.jpeg.len(),
                sha256: e.sha256.clone(),
                width: e.width,
                height: e.height,
            })
            .collect();
        let evidence: Vec<Evidence> = evidence.into_iter().map(|(_, e)| e).collect();
        let hits = &draft.hits;
        let confidence = if hits.is_empty() {
            0.0
        } else {
            hits.iter().map(|h| h.score).sum::<f32>() / hits.len() as f32
        };
        let extensions = draft.extensions.as_ref().or(self.extensions.as_ref());
        let mut event = IncidentEvent {
            schema: SCHEMA.into(),
            event_id,
            incident_id: draft.case.id.clone(),
            phase,
            reopened,
            reason,
            verification,
            request_id: draft.request_id.clone(),
            time: rfc3339(now),
            local_time: None,
            address,
            description: None,
            category: draft.category.clone(),
            codes: draft.codes.clone(),
            device: self.device.clone(),
            camera: self.camera.clone(),
            zone: draft.zone.clone(),
            first_seen: rfc3339(draft.case.first_seen),
            last_seen: rfc3339(seen_at),
            dwell_s: seen_at
                .duration_since(draft.case.first_seen)
                .unwrap_or_default()
                .as_secs_f64(),
            confidence,
            crowd: draft.crowd.clone(),
            zone_state: draft.zone_state.clone(),
            health: draft.health.as_ref().map(Into::into),
            objects: hits
                .iter()
                .map(|h| ObjectRef {
                    label: h.class.map_or_else(
                        || {
                            draft
                                .zone_state
                                .as_ref()
                                .map_or_else(|| "scene_change".into(), |z| z.state.clone())
                        },
                        |c| self.model.labels.get(c).cloned().unwrap_or_default(),
                    ),
                    score: h.score,
                    bbox: [h.bbox.x1, h.bbox.y1, h.bbox.x2, h.bbox.y2],
                    track_id: h.track_id,
                })
                .collect(),
            evidence: refs,
            model: ModelRef {
                name: self.model.name.clone(),
                version: self.model.version.clone(),
                sha256: self.model.sha256.clone(),
            },
            agent: AgentRef::this(),
            extensions: extensions.map(|e| (**e).clone()),
        };
        self.wording.describe(&mut event, now);
        let case = super::continuity::change(&draft, &event, now);
        super::Publication {
            event,
            evidence,
            case,
        }
    }

    /// The annotated image and, if configured, the clean one; heads obscured in both before encoding.
    fn render_evidence(
        &self,
        draft: &Draft,
        picture: &RgbImage,
        detections: &[Detection],
        caption: &str,
        font: Option<&CaptionFont>,
    ) -> Vec<Evidence> {
        let mut img = picture.clone();
        let people: Vec<BBox> = detections
            .iter()
            .filter(|d| self.person_classes.contains(&d.class))
            .map(|d| d.bbox)
            .collect();
        blur_heads(&mut img, &people, &self.evidence.privacy);
        let clean = self.evidence.clean_frame.then(|| img.clone());
        let counted: Vec<BBox> = draft.hits.iter().map(|h| h.bbox).collect();
        let ann = Annotation {
            zone: &draft.polygon.points,
            others: detections
                .iter()
                .map(|d| d.bbox)
                .filter(|b| !counted.contains(b))
                .collect(),
            counted,
            caption,
            font,
        };
        let q = self.evidence.quality;
        let mut out = Vec::new();
        for result in [render(img, &ann, q)]
            .into_iter()
            .chain(clean.map(|c| evidence::encode(&c, q)))
        {
            match result {
                Ok(e) => out.push(e),
                Err(error) => {
                    tracing::error!(camera = %self.camera.id, %error, "Evidence image could not be encoded; event sent without it.");
                    break;
                }
            }
        }
        out
    }
}

/// A stored JPEG as evidence (none when it is missing or unreadable: the event goes without it).
fn read_jpeg(path: &std::path::Path) -> Option<Evidence> {
    let jpeg = std::fs::read(path).ok()?;
    let (width, height) =
        image::ImageReader::with_format(std::io::Cursor::new(&jpeg), image::ImageFormat::Jpeg)
            .into_dimensions()
            .ok()?;
    Some(Evidence {
        sha256: crate::base::sha256_hex(&jpeg),
        jpeg,
        width,
        height,
    })
}

/// A scene-change reference the analysis took, to be kept across restarts.
#[derive(Debug, Clone)]
pub struct ReferenceImage {
    pub file: PathBuf,
    pub bytes: Vec<u8>,
}

impl ReferenceImage {
    /// Write the file (whole or not at all); a failure only costs a new reference next start.
    pub fn save(&self, camera: &str) {
        let file = &self.file;
        let result = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| crate::base::write_atomic(file, &self.bytes));
        match result {
            Ok(()) => {
                tracing::info!(camera = %camera, file = %file.display(), "Reference image kept.")
            }
            Err(error) => {
                tracing::warn!(camera = %camera, file = %file.display(), %error, "Reference image could not be saved; a new one is taken after a restart.")
            }
        }
    }
}

/// What one analysed frame (or a command's conclusion) leaves for the evidence thread: the drafts in order,
/// the frame's picture (copied, so the frame and its camera's analysis slot are released at once), the
/// detections drawn on it, and reference images to keep.
pub struct EvidenceJob {
    pub publisher: Arc<Publisher>,
    pub drafts: Vec<Draft>,
    /// The frame's pixels as the decoder made them (a detached copy): converted to RGB here, on the
    /// evidence thread, not on the model worker.
    pub picture: Option<Frame>,
    pub detections: Vec<Detection>,
    pub references: Vec<ReferenceImage>,
    /// Keep the picture here as a JPEG (the camera's reference view, for the "before" of health cases).
    pub view_picture: Option<PathBuf>,
}

impl EvidenceJob {
    /// Keep the reference view as a JPEG at most 640 px wide (faces obscured like all evidence).
    fn save_view(&self, file: &std::path::Path, picture: &RgbImage) {
        let mut img = picture.clone();
        let people: Vec<BBox> = self
            .detections
            .iter()
            .filter(|d| self.publisher.person_classes.contains(&d.class))
            .map(|d| d.bbox)
            .collect();
        blur_heads(&mut img, &people, &self.publisher.evidence.privacy);
        if img.width() > 640 {
            let h = (img.height() * 640 / img.width()).max(1);
            img = image::imageops::resize(&img, 640, h, image::imageops::FilterType::Triangle);
        }
        match evidence::encode(&img, self.publisher.evidence.quality) {
            Ok(e) => ReferenceImage {
                file: file.to_path_buf(),
                bytes: e.jpeg,
            }
            .save(&self.publisher.camera.id),
            Err(error) => {
                tracing::warn!(camera = %self.publisher.camera.id, %error, "Reference view picture could not be encoded.")
            }
        }
    }

    /// Render the evidence and make the events, in the drafts' order.
    pub fn run(self) -> Vec<super::Publication> {
        for r in &self.references {
            r.save(&self.publisher.camera.id);
        }
        let picture = self.picture.as_ref().map(Frame::to_rgb_image);
        if let (Some(file), Some(picture)) = (&self.view_picture, &picture) {
            self.save_view(file, picture);
        }
        let (publisher, detections) = (&self.publisher, &self.detections);
        self.drafts
            .into_iter()
            .map(|d| publisher.publish(d, picture.as_ref(), detections))
            .collect()
    }
}
