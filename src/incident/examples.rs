//! A zone's labelled examples, kept on the pole: what a zone-state rule compares each sample with.
//!
//! `{state_dir}/examples/{camera}/{zone}/` holds per example the crop it was made from (`{id}.jpg`, the
//! picture an installer can look at, and what is embedded again when the embedder changes) and its record
//! (`{id}.json`: state, where it came from, when, which embedder made its vector, and the vector). The record
//! is written last, whole-or-nothing: an example exists once its record does. Every zone-state rule of the
//! zone takes the examples of its own states; adding or removing one refits them at once.

use super::Analyser;
use crate::base::{Detection, ImageView, SharedEmbedder, unit, write_atomic};
use crate::rules::{CropPicture, Example, Rule, ZoneStateRule};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

mod store;
use store::{crop_jpeg, keep};
pub use store::{load_examples, remove_example, store_example};

/// Where a zone-state rule's examples live and which embedder it wants.
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleSpec {
    pub dir: PathBuf,
    /// The `[models.*]` entry of the embedder.
    pub embedder: String,
    /// Examples kept per state; over it, the older of the two most alike goes (`redundant`).
    pub max_per_state: usize,
}

/// Which state a new example is of.
#[derive(Debug, Clone, PartialEq)]
pub enum Wanted {
    Named(String),
    /// The zone's first state that raises nothing (a cleared case, a false positive).
    Normal,
    /// The alarm state the rule sees in the picture, else the zone's first alarm state (a confirmed event).
    Alarm,
}

/// One example as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredExample {
    pub id: String,
    pub state: String,
    /// `label`, `feedback:<event id>`, `verify:<incident id>`, `import:<file>`.
    pub source: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// Id of the embedder that made `vector`.
    pub embedder: String,
    pub vector: Vec<f32>,
}

/// What lists show of an example (the vector stays on the pole).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExampleInfo {
    pub id: String,
    pub state: String,
    pub source: String,
    pub created: String,
}

impl From<&StoredExample> for ExampleInfo {
    fn from(e: &StoredExample) -> Self {
        ExampleInfo {
            id: e.id.clone(),
            state: e.state.clone(),
            source: e.source.clone(),
            created: e.created.clone(),
        }
    }
}

/// Why an example was not taken.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExampleError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// People or vehicles cover the zone: try another frame.
    #[error("people or vehicles cover the zone `{0}` on this frame")]
    Occluded(String),
    #[error(
        "people or vehicles covered the zone `{0}` on every frame within uplink.command_wait_s; label it again when it is clear"
    )]
    NeverClear(String),
    #[error("{0}")]
    Failed(String),
}

impl ExampleError {
    /// The reply's error code.
    pub fn code(&self) -> &'static str {
        match self {
            ExampleError::NotFound(_) => "not_found",
            ExampleError::Invalid(_) => "invalid_argument",
            ExampleError::Occluded(_) | ExampleError::NeverClear(_) => "occluded",
            ExampleError::Failed(_) => "failed",
        }
    }
}

/// One state's leave-one-out figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateScore {
    pub state: String,
    pub examples: usize,
    /// Of the examples voted this state, the share that are (none voted: `None`).
    pub precision: Option<f64>,
    /// Of this state's examples, the share voted right.
    pub recall: Option<f64>,
}

/// The vectors of `stored` for a rule whose embedder is `embedder` (id): records made by another
/// embedder are embedded again from their crop (and rewritten), those that cannot be are left out.
fn vectors_for(
    dir: &Path,
    stored: Vec<StoredExample>,
    rule: &ZoneStateRule,
    embedder: &SharedEmbedder,
    id: &str,
) -> Vec<Example> {
    stored
        .into_iter()
        .filter_map(|mut e| {
            let state = rule.state_index(&e.state)?;
            if e.embedder != id {
                let jpeg = dir.join(format!("{}.jpg", e.id));
                let again = std::fs::read(&jpeg)
                    .map_err(|e| e.to_string())
                    .and_then(|b| image::load_from_memory(&b).map_err(|e| e.to_string()))
                    .and_then(|img| {
                        let rgb = img.to_rgb8();
                        let view = ImageView::packed(rgb.width() as usize, rgb.height() as usize, rgb.as_raw())
                            .map_err(|e| e.to_string())?;
                        let v = embedder.lock().map_err(|_| "embedder poisoned".to_string())?.embed(&view)?;
                        Ok(unit(v))
                    });
                match again {
                    Ok(v) => {
                        e.vector = v;
                        e.embedder = id.to_string();
                        if let Ok(record) = serde_json::to_vec(&e) {
                            let _ = write_atomic(&dir.join(format!("{}.json", e.id)), &record);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(example = %e.id, %error, "Zone example made by another embedder could not be embedded again; left out.");
                        return None;
                    }
                }
            }
            Some(Example {
                id: e.id,
                state,
                vector: e.vector,
            })
        })
        .collect()
}

/// The zone as it looks in its normal state: the per-pixel median of the crops of `stored`'s examples of a
/// state that raises nothing (those of the most common size), so passers-by in some of them vanish.
fn background(dir: &Path, stored: &[StoredExample], rule: &ZoneStateRule) -> Option<CropPicture> {
    let crops: Vec<image::RgbImage> = stored
        .iter()
        .filter(|e| {
            rule.state_index(&e.state)
                .is_some_and(|i| !rule.params.alarm[i])
        })
        .filter_map(|e| image::open(dir.join(format!("{}.jpg", e.id))).ok())
        .map(|i| i.to_rgb8())
        .collect();
    let mut sizes: Vec<(u32, u32)> = crops.iter().map(|c| c.dimensions()).collect();
    sizes.sort_unstable();
    let size = sizes.chunk_by(|a, b| a == b).max_by_key(|run| run.len())?[0];
    let same: Vec<&image::RgbImage> = crops.iter().filter(|c| c.dimensions() == size).collect();
    let mut values = Vec::with_capacity(same.len());
    let rgb = (0..same[0].as_raw().len())
        .map(|i| {
            values.clear();
            values.extend(same.iter().map(|c| c.as_raw()[i]));
            values.sort_unstable();
            values[values.len() / 2]
        })
        .collect();
    Some(CropPicture {
        width: size.0 as usize,
        height: size.1 as usize,
        rgb,
    })
}

impl Analyser {
    /// The embedders (`[models.*]` names) this camera's zone-state rules still wait for.
    pub fn wanted_embedders(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .slots
            .iter()
            .filter_map(|s| match (&s.rule, &s.examples) {
                (Rule::ZoneState(r), Some(spec)) if r.embedder_id().is_none() => {
                    Some(spec.embedder.clone())
                }
                _ => None,
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Give the zone-state rules that want embedder `name` its session, and their examples.
    pub fn equip(&mut self, name: &str, embedder: &SharedEmbedder) {
        let camera = self.camera_id().to_string();
        for slot in &mut self.slots {
            let (Rule::ZoneState(rule), Some(spec)) = (&mut slot.rule, &slot.examples) else {
                continue;
            };
            if spec.embedder != name || rule.embedder_id().is_some() {
                continue;
            }
            rule.attach(embedder.clone());
            let id = rule.embedder_id().unwrap_or_default();
            let stored = load_examples(&spec.dir);
            rule.set_background(background(&spec.dir, &stored, rule));
            let examples = vectors_for(&spec.dir, stored, rule, embedder, &id);
            tracing::info!(camera = %camera, zone = %slot.zone.id, examples = examples.len(), "Zone-state rule ready.");
            rule.set_examples(examples);
        }
    }

    /// The zone-state rules on `zone` (their slot indices); an error naming the zone when there is none.
    fn zone_state_slots(&self, zone: &str) -> Result<Vec<usize>, ExampleError> {
        let found: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                self.slots[i].zone.id == zone && matches!(self.slots[i].rule, Rule::ZoneState(_))
            })
            .collect();
        if found.is_empty() {
            return Err(ExampleError::NotFound(format!(
                "camera `{}` has no zone_state rule on zone `{zone}`",
                self.camera_id()
            )));
        }
        Ok(found)
    }

    /// Where zone `zone`'s examples are kept.
    fn examples_dir(&self, zone: &str) -> Result<PathBuf, ExampleError> {
        let i = self.zone_state_slots(zone)?[0];
        Ok(self.slots[i]
            .examples
            .as_ref()
            .map(|s| s.dir.clone())
            .unwrap_or_default())
    }

    /// Reload every zone-state rule of `zone` from its stored examples.
    fn refit(&mut self, zone: &str) {
        for i in self.zone_state_slots(zone).unwrap_or_default() {
            let slot = &mut self.slots[i];
            if let (Rule::ZoneState(rule), Some(spec)) = (&mut slot.rule, &slot.examples) {
                let id = rule.embedder_id().unwrap_or_default();
                let stored = load_examples(&spec.dir);
                rule.set_background(background(&spec.dir, &stored, rule));
                let examples: Vec<Example> = stored
                    .into_iter()
                    .filter(|e| e.embedder == id)
                    .filter_map(|e| {
                        Some(Example {
                            state: rule.state_index(&e.state)?,
                            id: e.id,
                            vector: e.vector,
                        })
                    })
                    .collect();
                rule.set_examples(examples);
            }
        }
    }

    /// Make `picture` (a frame of this camera) an example of the `wanted` state of zone `zone`, the people
    /// and vehicles among `detections` masked as the rule masks them. With `refuse_occluded`, a frame in
    /// which they cover more of the zone than a sample may is refused (`Occluded`).
    pub fn add_example(
        &mut self,
        zone: &str,
        wanted: Wanted,
        source: &str,
        picture: &ImageView,
        (detections, refuse_occluded): (&[Detection], bool),
    ) -> Result<ExampleInfo, ExampleError> {
        let slots = self.zone_state_slots(zone)?;
        let mut chosen = None;
        for &i in &slots {
            if let (Rule::ZoneState(r), Some(spec)) = (&self.slots[i].rule, &self.slots[i].examples)
            {
                let state = match &wanted {
                    Wanted::Named(s) => r.state_index(s).map(|_| s.clone()),
                    Wanted::Normal => r.normal_state().map(str::to_string),
                    Wanted::Alarm => r
                        .embed(picture, detections)
                        .ok()
                        .and_then(|v| r.classify(&v))
                        .filter(|reading| reading.alarm)
                        .map(|reading| reading.state)
                        .or_else(|| r.alarm_state().map(str::to_string)),
                };
                if let Some(s) = state {
                    chosen = Some((i, s, spec.clone()));
                    break;
                }
            }
        }
        let Some((i, state, spec)) = chosen else {
            return Err(ExampleError::Invalid(format!(
                "zone `{zone}` has no state {wanted:?} in its zone_state rules"
            )));
        };
        let Rule::ZoneState(rule) = &self.slots[i].rule else {
            unreachable!("chosen among zone-state slots");
        };
        if refuse_occluded && rule.occluded(detections) {
            return Err(ExampleError::Occluded(zone.to_string()));
        }
        let vector = rule
            .embed(picture, detections)
            .map_err(ExampleError::Failed)?;
        let crop = picture
            .crop(rule.region())
            .ok_or_else(|| ExampleError::Failed("the zone's crop is empty".into()))?;
        let jpeg = crop_jpeg(&crop).map_err(ExampleError::Failed)?;
        let embedder = rule.embedder_id().unwrap_or_default();
        let example = keep(&spec, &state, source, (embedder, vector), &jpeg)?;
        self.refit(zone);
        tracing::info!(camera = %self.camera_id(), zone, state = %state, example = %example.id, source, "Zone example added.");
        Ok(ExampleInfo::from(&example))
    }

    /// The samples zone `zone`'s rules lately judged an alarm, made examples of its normal state: a
    /// dispatcher's `false_positive` says these very pictures were misjudged. Returns those still kept
    /// (none is no error: the rules may have judged nothing since).
    pub fn misjudged(
        &mut self,
        zone: &str,
        source: &str,
    ) -> Result<Vec<ExampleInfo>, ExampleError> {
        let mut added = Vec::new();
        let mut dirs = Vec::new();
        for i in self.zone_state_slots(zone)? {
            let slot = &mut self.slots[i];
            let (Rule::ZoneState(rule), Some(spec)) = (&mut slot.rule, &slot.examples) else {
                continue;
            };
            let Some(state) = rule.normal_state().map(str::to_string) else {
                continue;
            };
            let embedder = rule.embedder_id().unwrap_or_default();
            for sample in rule.take_alarms() {
                let p = &sample.picture;
                let view = ImageView::packed(p.width, p.height, &p.rgb)
                    .map_err(|e| ExampleError::Failed(e.to_string()))?;
                let jpeg = crop_jpeg(&view).map_err(ExampleError::Failed)?;
                let kept = keep(
                    spec,
                    &state,
                    source,
                    (embedder.clone(), sample.vector),
                    &jpeg,
                )?;
                added.push(ExampleInfo::from(&kept));
            }
            dirs.push(spec.dir.clone());
        }
        self.refit(zone);
        let present: Vec<String> = dirs
            .iter()
            .flat_map(|d| load_examples(d))
            .map(|e| e.id)
            .collect();
        added.retain(|e| present.contains(&e.id));
        if !added.is_empty() {
            tracing::info!(camera = %self.camera_id(), zone, examples = added.len(), source, "Misjudged samples made normal examples.");
        }
        Ok(added)
    }

    /// The zone of incident `incident_id` when a zone-state rule raised it.
    pub fn zone_state_zone(&self, incident_id: &str) -> Option<String> {
        self.slots
            .iter()
            .find(|s| {
                matches!(s.rule, Rule::ZoneState(_))
                    && s.lifecycle.open_case().is_some_and(|c| c.id == incident_id)
            })
            .map(|s| s.zone.id.clone())
    }

    /// Each of zone `zone`'s examples judged by the others (its first zone-state rule): per state, precision
    /// and recall.
    pub fn leave_one_out(&self, zone: &str) -> Result<Vec<StateScore>, ExampleError> {
        let i = self.zone_state_slots(zone)?[0];
        let Rule::ZoneState(rule) = &self.slots[i].rule else {
            unreachable!("a zone-state slot");
        };
        let judged = rule.leave_one_out();
        Ok((0..rule.params.states.len())
            .map(|k| {
                let truth = judged.iter().filter(|(t, _)| *t == k).count();
                let voted = judged.iter().filter(|(_, v)| *v == Some(k)).count();
                let right = judged
                    .iter()
                    .filter(|(t, v)| *t == k && *v == Some(k))
                    .count();
                let share = |n: usize| (n > 0).then(|| right as f64 / n as f64);
                StateScore {
                    state: rule.params.states[k].clone(),
                    examples: truth,
                    precision: share(voted),
                    recall: share(truth),
                }
            })
            .collect())
    }

    /// Zone `zone`'s examples, oldest first.
    pub fn list_examples(&self, zone: &str) -> Result<Vec<ExampleInfo>, ExampleError> {
        let dir = self.examples_dir(zone)?;
        Ok(load_examples(&dir).iter().map(ExampleInfo::from).collect())
    }

    /// Remove example `id` of zone `zone` and refit its rules.
    pub fn drop_example(&mut self, zone: &str, id: &str) -> Result<(), ExampleError> {
        let dir = self.examples_dir(zone)?;
        match remove_example(&dir, id) {
            Ok(true) => {
                self.refit(zone);
                tracing::info!(camera = %self.camera_id(), zone, example = id, "Zone example removed.");
                Ok(())
            }
            Ok(false) => Err(ExampleError::NotFound(format!(
                "zone `{zone}` has no example `{id}`"
            ))),
            Err(e) => Err(ExampleError::Failed(format!(
                "example `{id}` could not be removed: {e}"
            ))),
        }
    }
}
