//! What the installer's console shows of the running pole: each camera's latest analysed frame as a small
//! JPEG with the boxes the model found on it, and the latest incident events.
//!
//! A gateway has no cycles to spare for pictures nobody looks at, so frames are encoded only while the
//! console asks for them (for [`WATCH_FOR`] after its last request), at most one per camera every
//! [`EVERY`], downscaled to at most [`MAX_WIDTH`] pixels wide.

use crate::base::{Detection, Frame};
use crate::incident::IncidentEvent;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a console request keeps the workers encoding frames.
pub const WATCH_FOR: Duration = Duration::from_secs(10);
/// At most one live frame per camera this often.
pub const EVERY: Duration = Duration::from_millis(800);
/// Live frames are downscaled to this width (a laptop's browser shows them at about this size).
pub const MAX_WIDTH: u32 = 960;
/// Incident events kept for the console.
pub const RECENT_EVENTS: usize = 50;

/// One camera's latest analysed frame.
#[derive(Debug, Clone, Serialize)]
pub struct LiveView {
    #[serde(skip)]
    pub jpeg: Arc<Vec<u8>>,
    /// The frame's sequence number on its camera.
    pub seq: u64,
    /// The analysed frame's size (the JPEG may be smaller).
    pub width: usize,
    pub height: usize,
    /// When it was analysed, ms since the Unix epoch.
    pub at_ms: u64,
    pub boxes: Vec<LiveBox>,
}

/// A detection as the console draws it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveBox {
    pub label: String,
    pub score: f32,
    /// `[x1, y1, x2, y2]`, normalised.
    pub bbox: [f32; 4],
}

#[derive(Default)]
struct Inner {
    /// Until when each camera is watched.
    watched_until: BTreeMap<String, Instant>,
    views: BTreeMap<String, (Instant, LiveView)>,
    events: VecDeque<IncidentEvent>,
}

/// Shared by the model workers (which offer frames), the sink (which records events) and the console.
#[derive(Clone, Default)]
pub struct LiveBoard(Arc<Mutex<Inner>>);

impl LiveBoard {
    /// Someone is looking at `camera`: keep encoding its frames for [`WATCH_FOR`].
    pub fn watch(&self, camera: &str) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.watched_until.retain(|_, t| *t > now);
        inner
            .watched_until
            .insert(camera.to_string(), now + WATCH_FOR);
    }

    /// Whether a frame of `camera` would be taken now.
    pub fn wants(&self, camera: &str, now: Instant) -> bool {
        let inner = self.lock();
        inner.watched_until.get(camera).is_some_and(|t| now < *t)
            && inner
                .views
                .get(camera)
                .is_none_or(|(at, _)| now.duration_since(*at) >= EVERY)
    }

    /// Keep `frame` and its detections as `camera`'s live view, if someone is watching and the last one is
    /// older than [`EVERY`]. `labels` names the detections' classes.
    pub fn offer(&self, frame: &Frame, detections: &[Detection], labels: &[String]) {
        let now = Instant::now();
        if !self.wants(&frame.camera, now) {
            return;
        }
        let mut img = frame.to_rgb_image();
        if img.width() > MAX_WIDTH {
            let h = (img.height() as u64 * MAX_WIDTH as u64 / img.width() as u64).max(1) as u32;
            img = image::imageops::thumbnail(&img, MAX_WIDTH, h);
        }
        let Ok(evidence) = super::encode_evidence(&img, 75) else {
            return;
        };
        let view = LiveView {
            jpeg: Arc::new(evidence.jpeg),
            seq: frame.seq,
            width: frame.width(),
            height: frame.height(),
            at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            boxes: detections
                .iter()
                .map(|d| LiveBox {
                    label: labels
                        .get(d.class)
                        .cloned()
                        .unwrap_or_else(|| format!("class {}", d.class)),
                    score: d.score,
                    bbox: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
                })
                .collect(),
        };
        self.lock()
            .views
            .insert(frame.camera.to_string(), (now, view));
    }

    /// `camera`'s latest live view.
    pub fn view(&self, camera: &str) -> Option<LiveView> {
        self.lock().views.get(camera).map(|(_, v)| v.clone())
    }

    /// Record a stored incident event (the newest [`RECENT_EVENTS`] are kept).
    pub fn record(&self, event: &IncidentEvent) {
        let mut inner = self.lock();
        if inner.events.len() == RECENT_EVENTS {
            inner.events.pop_front();
        }
        inner.events.push_back(event.clone());
    }

    /// The kept events, newest first.
    pub fn events(&self) -> Vec<IncidentEvent> {
        self.lock().events.iter().rev().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().expect("live board lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_taken_only_while_watched_and_not_more_often_than_every() {
        let board = LiveBoard::default();
        let now = Instant::now();
        assert!(!board.wants("a", now), "nobody watching");
        board.watch("a");
        assert!(board.wants("a", Instant::now()));
        assert!(
            !board.wants("b", Instant::now()),
            "another camera is not watched"
        );
        board.lock().views.insert(
            "a".into(),
            (
                Instant::now(),
                LiveView {
                    jpeg: Arc::default(),
                    seq: 1,
                    width: 4,
                    height: 4,
                    at_ms: 0,
                    boxes: vec![],
                },
            ),
        );
        assert!(!board.wants("a", Instant::now()), "just taken");
        assert!(board.wants("a", Instant::now() + EVERY));
        assert!(!board.wants("a", Instant::now() + WATCH_FOR + EVERY));
    }
}
