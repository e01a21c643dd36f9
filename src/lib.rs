//! streetsight — an edge video-analytics agent for street-pole camera gateways.
//!
//! Layers, bottom up; a module imports only from layers below it (`tests/layers.rs` keeps it so):
//! - [`base`]     the ground floor: boxes, detections, image views, frames, backoff, shutdown, hashing,
//!   redaction, the work-order codes
//! - [`config`]   the one TOML file as serde structs with their spans; parsing, nothing else
//! - the stages, in the order the data flows (each may use the stages before it):
//!   - [`ingest`]   RTSP → GStreamer → sampled RGB frames, one supervised pipeline per camera
//!   - [`health`]   is the picture the one the zones were drawn on: moved, covered, blurred, frozen,
//!     brightness, colour against a reference view (pure)
//!   - [`detect`]   model bundles and ONNX Runtime sessions; pre-processing, decoding, NMS
//!   - [`track`]    stable track ids across sampled frames (pure)
//!   - [`rules`]    zones, masks, schedules and the category rules as pure state machines
//!   - [`incident`] one case per violation: opened → updated → resolved, evidence with faces obscured
//!   - [`uplink`]   MQTT with QoS 1, the durable outbox, retained status and last will
//! - [`plan`]     the configuration checked (every problem at `file:line`) and turned into each stage's own
//!   typed settings; the only reader of [`config`]
//! - [`control`]  remote commands: parse, anti-replay, audit, route to the camera's worker
//! - [`ops`]      logging, process statistics, `/healthz` and `/metrics`, systemd readiness and watchdog
//! - [`daemon`]   the wiring: cameras, model workers, uplink, reload
//! - [`bridge`]   the city side: events from the broker → one case per incident in the work-order system
//! - [`cli`]      the verbs above the daemon: `check`, `snapshot`, `models`, `demo`
#![forbid(unsafe_code)]

pub mod base;
pub mod bridge;
pub mod cli;
pub mod config;
pub mod console;
pub mod control;
pub mod daemon;
pub mod detect;
pub mod eval;
pub mod health;
pub mod incident;
pub mod ingest;
pub mod ops;
pub mod plan;
pub mod rules;
pub mod track;
pub mod uplink;
