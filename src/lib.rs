//! streetsight — an edge video-analytics agent for street-pole camera gateways.
//!
//! Modules in the order the data flows:
//! - [`config`]   the one TOML file, validated with every problem reported at `file:line`
//! - [`ingest`]   RTSP → GStreamer → sampled RGB frames, one supervised pipeline per camera
//! - [`detect`]   model bundles and ONNX Runtime sessions; pre-processing, decoding, NMS
//! - [`track`]    stable track ids across sampled frames (pure)
//! - [`rules`]    zones, masks, schedules and the category rules as pure state machines
//! - [`incident`] one case per violation: opened → updated → resolved, evidence with faces obscured
//! - [`uplink`]   MQTT with QoS 1, outbox pairing, retained status and last will
//!
//! Beside them: [`daemon`] wires the stages, [`control`] carries out remote commands, [`demo`] is the no-camera demo (RTSP server, broker),
//! [`ops`] holds shutdown, logging and redaction.
#![forbid(unsafe_code)]

pub mod config;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod detect;
pub mod incident;
pub mod ingest;
pub mod ops;
pub mod rules;
pub mod track;
pub mod uplink;
