//! The incident event as it goes over the wire (`{prefix}/{device}/events`), schema
//! `docs/schema/event.v1.json`. Field names are the contract with the work-order bridge: change them only
//! with a new schema version.

use super::ResolveReason;
use crate::base::CategoryCodes;
use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "streetsight.event/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Opened,
    Updated,
    Resolved,
    /// The answer to a dispatcher's verify command.
    Verified,
}

/// A verify's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    StillPresent,
    Cleared,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentEvent {
    pub schema: String,
    /// Unique per message; consumers deduplicate redeliveries by it.
    pub event_id: String,
    /// Stable for the life of one violation (one case).
    pub incident_id: String,
    pub phase: Phase,
    /// `opened` again for the same incident: it came back within the cooldown after resolving.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reopened: bool,
    /// Why a `resolved` incident ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ResolveReason>,
    /// For `verified`: what the fresh look found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// The command that asked for this event (verify), so the requester can match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// When this event was produced (RFC 3339, UTC).
    pub time: String,
    /// The same instant in the pole's time zone, with its offset (`2026-12-05T20:01:02+08:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_time: Option<String>,
    /// Where, in words: the zone's `address`, else the camera's, else the device's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// One sentence a dispatcher can file as is, in the pole's `device.language` (Chinese by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub category: String,
    pub codes: CategoryCodes,
    pub device: DeviceRef,
    pub camera: CameraRef,
    pub zone: ZoneRef,
    pub first_seen: String,
    pub last_seen: String,
    pub dwell_s: f64,
    /// Mean detector score of the objects behind this event (0 when there are none).
    pub confidence: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crowd: Option<CrowdInfo>,
    /// A zone-state rule's reading: the state, how sure, and the labelled example it looks most like.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_state: Option<ZoneStateInfo>,
    /// A `camera_health` case: what is wrong with the picture, and the measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthInfo>,
    pub objects: Vec<ObjectRef>,
    pub evidence: Vec<EvidenceRef>,
    pub model: ModelRef,
    pub agent: AgentRef,
    /// City-specific fields from the configuration (`extensions` of the device, camera and zone, the most
    /// specific winning); never used by streetsight itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gb28181_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The camera's GB/T 28181 channel id (20 digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gb28181_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area_m2: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrowdInfo {
    pub count: usize,
    /// Persons per m².
    pub density: f64,
    /// The level now reported (for `resolved`, the last level before the crowd cleared).
    pub level: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_level: Option<String>,
}

/// What a zone-state event reports about the sample behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneStateInfo {
    pub state: String,
    /// How sure the vote over the labelled examples is (0–1).
    pub confidence: f32,
    /// Cosine similarity to the nearest example (−1–1).
    pub similarity: f32,
    /// That example's id (`examples` lists them).
    pub nearest_example: String,
}

impl From<&crate::rules::StateReading> for ZoneStateInfo {
    fn from(r: &crate::rules::StateReading) -> Self {
        ZoneStateInfo {
            state: r.state.clone(),
            confidence: r.confidence,
            similarity: r.similarity,
            nearest_example: r.nearest.clone(),
        }
    }
}

/// What a camera-health event reports (all figures against the camera's reference view and baseline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthInfo {
    /// Raised conditions: `moved`, `covered`, `blurred`, `frozen`, `brightness`, `colour` (none when resolved).
    pub conditions: Vec<String>,
    /// The same in the city platforms' words (移位, 遮挡, 模糊, 画面冻结, 亮度异常, 偏色).
    pub names: Vec<String>,
    /// The view's shift (fractions of width and height), rotation (degrees), zoom and match confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<crate::health::ViewShift>,
    /// Share of the reference's textured picture without texture now.
    pub covered: f32,
    /// Sharpness over the camera's baseline.
    pub sharpness: f32,
    /// Mean luma 0..255.
    pub brightness: f32,
    /// Colour spread over brightness (0: neutral).
    pub cast: f32,
    /// Seconds the picture has not changed at all.
    pub still_s: f32,
}

impl From<&crate::health::HealthReport> for HealthInfo {
    fn from(r: &crate::health::HealthReport) -> Self {
        HealthInfo {
            conditions: r.conditions.iter().map(|c| c.as_str().into()).collect(),
            names: r.conditions.iter().map(|c| c.chinese().into()).collect(),
            shift: r.shift,
            covered: r.covered,
            sharpness: r.sharpness,
            brightness: r.brightness,
            cast: r.cast,
            still_s: r.still_s,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub label: String,
    pub score: f32,
    /// `[x1, y1, x2, y2]`, normalised 0..1, origin top-left.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceRef {
    /// `annotated` (boxes, zone and caption drawn) or `clean` (the frame alone); faces obscured in both
    /// unless the pole is configured otherwise.
    pub kind: String,
    pub topic: String,
    pub content_type: String,
    pub bytes: usize,
    pub sha256: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRef {
    pub name: String,
    pub version: String,
}

impl AgentRef {
    pub fn this() -> Self {
        AgentRef {
            name: "streetsight".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}
