//! The verbs a person runs besides `run`: `check` (the installer's pass/fail table), `snapshot` (one
//! annotated frame to aim a camera), `scene-reference` (a scene-change zone's clean reference from the
//! camera now), `models` (what bundles are installed and whether they hold up) and
//! `demo` (the whole loop on this machine with no camera; its parts — the in-process RTSP camera, the
//! broker launcher, the subscriber — are what the integration tests run against).

pub mod check;
pub mod demo;
pub mod eval;
pub mod examples;
pub mod fleet;
pub mod models;
pub mod scene;
pub mod signing;
pub mod snapshot;
pub mod view;
