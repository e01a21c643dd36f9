//! Rules: zones and the category rules that turn per-frame detections into sustained conditions.
//! Pure state machines: time is an input (`now: Instant`), so dwell and sustain logic is tested with a fake
//! clock.

mod crowd;
mod zone;

pub use crowd::{CrowdChange, CrowdLevel, CrowdObservation, CrowdParams, CrowdRule};
pub use zone::Polygon;
