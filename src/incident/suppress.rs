//! A dispatcher's "false alarm" mutes: which are in force, shared by every camera's analyser and the
//! command side, and kept across reloads (the daemon also keeps them on disk across restarts).
//!
//! Suppressions combine: each (camera or every camera, category, zone) scope holds its own end time, a
//! second suppress of the same scope keeps the later end, and a category in a zone is muted while any scope
//! covers it — so a short mute for every camera never cuts a longer one for one camera.

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// No incident of `category` in `zone` (of `camera`, or of every camera when `None`) until `until`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Suppression {
    #[serde(default)]
    pub camera: Option<String>,
    pub category: String,
    pub zone: String,
    pub until: SystemTime,
}

impl Suppression {
    fn same_scope(&self, other: &Suppression) -> bool {
        self.camera == other.camera && self.category == other.category && self.zone == other.zone
    }

    /// Does this one mute `category` in `zone` of `camera` at `wall`?
    pub fn covers(&self, camera: &str, category: &str, zone: &str, wall: SystemTime) -> bool {
        wall < self.until
            && self.category == category
            && self.zone == zone
            && self.camera.as_deref().is_none_or(|c| c == camera)
    }
}

/// The suppressions in force, shared (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Suppressions(Arc<RwLock<Vec<Suppression>>>);

impl Suppressions {
    /// Start from `list` (e.g. read back after a restart); expired ones are dropped.
    pub fn new(list: Vec<Suppression>, now: SystemTime) -> Self {
        let s = Suppressions::default();
        s.replace(list.into_iter().filter(|x| now < x.until).collect());
        s
    }

    /// Every suppression in force at `now`, in the order they were made.
    pub fn active(&self, now: SystemTime) -> Vec<Suppression> {
        let list = self.0.read().expect("suppressions lock");
        list.iter().filter(|s| now < s.until).cloned().collect()
    }

    /// Replace the whole list (to undo a change that could not be kept on disk).
    pub fn replace(&self, list: Vec<Suppression>) {
        *self.0.write().expect("suppressions lock") = list;
    }

    /// Add `s`; a suppression of the same scope keeps the later end. Returns the list before the change
    /// (to undo it) and the scope's end time now.
    pub fn add(&self, s: Suppression, now: SystemTime) -> (Vec<Suppression>, SystemTime) {
        let mut list = self.0.write().expect("suppressions lock");
        let before = list.clone();
        list.retain(|x| now < x.until);
        let until = match list.iter_mut().find(|x| x.same_scope(&s)) {
            Some(x) => {
                x.until = x.until.max(s.until);
                x.until
            }
            None => {
                let until = s.until;
                list.push(s);
                until
            }
        };
        (before, until)
    }

    /// Lift the suppressions of `category` in `zone`: with a camera, those made for that camera; without,
    /// every one of that category and zone. Returns the list before the change and what was lifted.
    pub fn lift(
        &self,
        camera: Option<&str>,
        category: &str,
        zone: &str,
        now: SystemTime,
    ) -> (Vec<Suppression>, Vec<Suppression>) {
        let mut list = self.0.write().expect("suppressions lock");
        let before = list.clone();
        let (lifted, kept): (Vec<_>, Vec<_>) =
            list.drain(..).filter(|x| now < x.until).partition(|x| {
                x.category == category
                    && x.zone == zone
                    && camera.is_none_or(|c| x.camera.as_deref() == Some(c))
            });
        *list = kept;
        (before, lifted)
    }

    /// Is `category` in `zone` of `camera` muted at `wall`?
    pub fn covers(&self, camera: &str, category: &str, zone: &str, wall: SystemTime) -> bool {
        let list = self.0.read().expect("suppressions lock");
        list.iter().any(|s| s.covers(camera, category, zone, wall))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn s(camera: Option<&str>, until: SystemTime) -> Suppression {
        Suppression {
            camera: camera.map(String::from),
            category: "crowd_density".into(),
            zone: "plaza".into(),
            until,
        }
    }

    #[test]
    fn a_shorter_mute_for_every_camera_never_cuts_a_longer_one_for_one_camera() {
        let t0 = SystemTime::now();
        let board = Suppressions::default();
        board.add(s(Some("north"), t0 + Duration::from_secs(900)), t0);
        board.add(s(None, t0 + Duration::from_secs(60)), t0);
        let later = t0 + Duration::from_secs(120);
        assert!(board.covers("north", "crowd_density", "plaza", later));
        assert!(!board.covers("south", "crowd_density", "plaza", later));
        assert!(board.covers("south", "crowd_density", "plaza", t0));
        assert!(!board.covers("north", "street_vending", "plaza", t0));
    }

    #[test]
    fn the_same_scope_keeps_the_later_end() {
        let t0 = SystemTime::now();
        let board = Suppressions::default();
        let (_, u) = board.add(s(None, t0 + Duration::from_secs(900)), t0);
        assert_eq!(u, t0 + Duration::from_secs(900));
        let (_, u) = board.add(s(None, t0 + Duration::from_secs(60)), t0);
        assert_eq!(u, t0 + Duration::from_secs(900), "the longest cover wins");
        assert_eq!(board.active(t0).len(), 1);
    }

    #[test]
    fn lifting_for_one_camera_leaves_the_mute_for_every_camera() {
        let t0 = SystemTime::now();
        let board = Suppressions::default();
        board.add(s(Some("north"), t0 + Duration::from_secs(900)), t0);
        board.add(s(None, t0 + Duration::from_secs(60)), t0);
        let (_, lifted) = board.lift(Some("north"), "crowd_density", "plaza", t0);
        assert_eq!(lifted.len(), 1);
        assert!(board.covers("north", "crowd_density", "plaza", t0));
        let (_, lifted) = board.lift(None, "crowd_density", "plaza", t0);
        assert_eq!(lifted.len(), 1);
        assert!(!board.covers("north", "crowd_density", "plaza", t0));
        assert!(board.active(t0).is_empty());
    }

    #[test]
    fn expired_ones_are_not_read_back() {
        let t0 = SystemTime::now();
        let board = Suppressions::new(vec![s(None, t0 - Duration::from_secs(1))], t0);
        assert!(board.active(t0).is_empty());
    }
}
