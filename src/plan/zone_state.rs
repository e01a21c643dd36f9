//! The zone-state rule's checks and construction (`[[camera.zone_state]]`), beside the other rule types in
//! `rules.rs`: states and alarms named, K of N, margin, occlusion share and the example cap in range, the
//! exclusion labels known to the camera's detector, and the embedder a configured bundle of task `embed`.
//! Also where a zone keeps its labelled examples.

use super::check::{Check, MAX_SECONDS};
use super::rules::{CameraRules, Common, secs};
use crate::config::{self, CameraConfig, ZoneStateRuleConfig};
use crate::detect::{Manifest, Task};
use crate::incident::{ExampleSpec, SlotSpec};
use crate::rules::{Polygon, Rule, ZoneStateParams, ZoneStateRule};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Most states a zone may have (each needs examples; a zone with more is several zones).
const MAX_STATES: usize = 16;

/// Where zone `zone` of camera `camera` keeps its labelled examples.
pub fn examples_dir(state_dir: &Path, camera: &str, zone: &str) -> PathBuf {
    state_dir.join("examples").join(camera).join(zone)
}

/// A state's name: short, plain, usable in a file name.
fn plain_state(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl CameraRules<'_> {
    pub(super) fn zone_state(
        &self,
        c: &mut Check,
        at: &Spanned<ZoneStateRuleConfig>,
    ) -> Option<SlotSpec> {
        let (cam, r) = (&self.cam.id, at.get_ref());
        let kind = "zone_state";
        let built = self.common(
            c,
            Common {
                at,
                kind,
                zone: &r.zone,
                category: r.category.get_ref(),
                category_at: Some(&r.category),
                min_score: None,
                schedule: &r.schedule,
                incident: &r.incident,
                default_clear_s: config::ZONE_STATE_CLEAR_S,
            },
        );
        let states = r.states.get_ref();
        let mut seen = std::collections::HashSet::new();
        if !(2..=MAX_STATES).contains(&states.len())
            || states.iter().any(|s| !plain_state(s) || !seen.insert(s))
        {
            c.push(&r.states, format!("camera `{cam}`: {kind} states = {states:?} must be 2–{MAX_STATES} different names of 1–32 letters, digits, `-` or `_`, e.g. [\"clear\", \"stall\"]"));
        }
        let alarm = r.alarm.get_ref();
        if alarm.is_empty() || alarm.iter().any(|a| !states.contains(a)) {
            c.push(&r.alarm, format!("camera `{cam}`: {kind} alarm = {alarm:?} must name one or more of the states {states:?}: those that raise `{}`", r.category.get_ref()));
        } else if states.iter().all(|s| alarm.contains(s)) {
            c.push(&r.alarm, format!("camera `{cam}`: {kind} alarm = {alarm:?} names every state; leave at least one (e.g. \"clear\") that raises nothing"));
        }
        let (n, k) = (*r.window.get_ref(), *r.min_present.get_ref());
        if !(1..=1000).contains(&n) || k > n || 2 * k <= n {
            c.push(at, format!("camera `{cam}`: {kind}: min_present = {k} of window = {n} must be more than half of the window and at most all of it (e.g. 3 of 5)"));
        }
        let every = *r.sample_every_s.get_ref();
        if !(every.is_finite() && (0.1..=MAX_SECONDS).contains(&every)) {
            c.push(&r.sample_every_s, format!("camera `{cam}`: {kind} sample_every_s = {every} is out of range 0.1–{MAX_SECONDS} seconds (30 days)"));
        }
        for (value, field, range) in [
            (&r.margin, "margin", 0.0..=1.0),
            (&r.max_occluded, "max_occluded", 0.0..=1.0),
        ] {
            let v = *value.get_ref();
            if !range.contains(&v) {
                c.push(
                    value,
                    format!("camera `{cam}`: {kind} {field} = {v} must be within 0–1"),
                );
            }
        }
        let cap = *r.max_examples.get_ref();
        if !(1..=200).contains(&cap) {
            c.push(
                &r.max_examples,
                format!(
                    "camera `{cam}`: {kind} max_examples = {cap} is out of range 1–200 (per state)"
                ),
            );
        }
        self.labels(
            c,
            at,
            kind,
            &r.exclude_labels,
            false,
            "; exclude_labels must be classes of the camera's model",
        );
        if !self.config.models.contains_key(r.embedder.get_ref()) {
            let known: Vec<&str> = self.config.models.keys().map(String::as_str).collect();
            c.push(&r.embedder, format!("camera `{cam}`: {kind} embedder `{}` is not defined; add [models.{}] with path to an embedder bundle (task \"embed\", e.g. models/efficientnet-lite0); defined models: [{}]", r.embedder.get_ref(), r.embedder.get_ref(), known.join(", ")));
        }
        let built = built?;
        let params = ZoneStateParams {
            alarm: states.iter().map(|s| alarm.contains(s)).collect(),
            states: states.clone(),
            sample_every: secs(every),
            window: n as usize,
            min_present: k as usize,
            margin: *r.margin.get_ref(),
            exclude: self.classes(&r.exclude_labels),
            max_occluded: *r.max_occluded.get_ref(),
        };
        let zone = Polygon::new(built.zone.points.get_ref());
        let dir = examples_dir(self.state_dir, cam, &built.zone.id);
        let rule = Rule::ZoneState(ZoneStateRule::new(params, zone));
        let mut slot = self.slot(rule, r.category.get_ref(), built);
        slot.examples = Some(ExampleSpec {
            dir,
            embedder: r.embedder.get_ref().clone(),
            max_per_state: cap as usize,
        });
        Some(slot)
    }
}

/// A camera's model must detect (or count) and a zone-state rule's embedder must embed: each refused
/// with the bundle it found.
pub(super) fn verify_model_tasks(
    c: &mut Check,
    cam: &Spanned<CameraConfig>,
    manifests: &BTreeMap<String, Manifest>,
) {
    let v = cam.get_ref();
    if let Some(m) = manifests.get(v.model.get_ref())
        && m.task == Task::Embed
    {
        c.push(&v.model, format!("camera `{}`: model `{}` is an embedder (task \"embed\"); a camera needs a detector — name the embedder in a [[camera.zone_state]] rule's `embedder` instead", v.id, v.model.get_ref()));
    }
    for r in &v.zone_state {
        let name = r.get_ref().embedder.get_ref();
        if let Some(m) = manifests.get(name)
            && m.task != Task::Embed
        {
            c.push(&r.get_ref().embedder, format!("camera `{}`: zone_state embedder `{name}` is bundle `{}`, whose task is not \"embed\"; name a [models.*] entry whose bundle embeds pictures (e.g. models/efficientnet-lite0)", v.id, m.name));
        }
    }
}
