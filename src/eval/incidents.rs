//! Incident-level evaluation: the camera's own rules (from a configuration) run over the whole clip at the
//! camera's sampling, on the bundle's detections at its working threshold, and the incidents they open are
//! matched to labelled ones (category, zone, start, end): incident precision and recall, and how long after
//! a labelled incident began the rules opened it.

use crate::base::{Frame, FrameMeta, Pixels};
use crate::detect::Detector;
use crate::incident::{Analyser, Transition};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// A labelled incident: `category` held in `zone` from `start_s` to `end_s` (seconds from the clip's start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentLabel {
    pub category: String,
    pub zone: String,
    pub start_s: f64,
    pub end_s: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelFile {
    incidents: Vec<IncidentLabel>,
}

/// Read `{"incidents": [{"category", "zone", "start_s", "end_s"}, …]}`.
pub fn load_labels(path: &Path) -> Result<Vec<IncidentLabel>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read incident labels {}", path.display()))?;
    let file: LabelFile = serde_json::from_str(&text)
        .with_context(|| format!("{}: incident labels", path.display()))?;
    for (i, l) in file.incidents.iter().enumerate() {
        if !(l.start_s.is_finite()
            && l.end_s.is_finite()
            && 0.0 <= l.start_s
            && l.start_s <= l.end_s)
        {
            bail!(
                "{}: incident {i} ({} in {}): start_s and end_s must be seconds from the clip's start, start_s ≤ end_s",
                path.display(),
                l.category,
                l.zone
            );
        }
    }
    Ok(file.incidents)
}

/// An incident the rules opened (a case: a return within its cooldown is the same one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Predicted {
    pub incident_id: String,
    pub category: String,
    pub zone: String,
    pub start_s: f64,
    /// When it resolved last (the clip's end if it was still open).
    pub end_s: f64,
    /// The label it matched (index into the labels).
    pub matched: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentEval {
    /// Milliseconds between analysed frames of the pass (the camera's sampling).
    pub every_ms: u64,
    pub labels: Vec<IncidentLabel>,
    pub predictions: Vec<Predicted>,
    pub matched: usize,
    pub precision: f64,
    pub recall: f64,
    /// Per label: seconds from its start to the matching incident's opening (negative: opened before the
    /// label says it began); none when it was missed.
    pub time_to_open_s: Vec<Option<f64>>,
    pub mean_time_to_open_s: Option<f64>,
    pub max_time_to_open_s: Option<f64>,
}

/// Match predictions to labels: each label takes the earliest unmatched prediction of its category and
/// zone whose time overlaps it.
pub fn score(
    labels: &[IncidentLabel],
    mut predictions: Vec<Predicted>,
    every_ms: u64,
) -> IncidentEval {
    predictions.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let mut time_to_open = Vec::with_capacity(labels.len());
    for (i, l) in labels.iter().enumerate() {
        let hit = predictions.iter_mut().find(|p| {
            p.matched.is_none()
                && p.category == l.category
                && p.zone == l.zone
                && p.start_s <= l.end_s
                && p.end_s >= l.start_s
        });
        time_to_open.push(hit.map(|p| {
            p.matched = Some(i);
            p.start_s - l.start_s
        }));
    }
    let matched = time_to_open.iter().flatten().count();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let opened: Vec<f64> = time_to_open.iter().flatten().copied().collect();
    IncidentEval {
        every_ms,
        labels: labels.to_vec(),
        precision: ratio(matched, predictions.len()),
        recall: ratio(matched, labels.len()),
        matched,
        mean_time_to_open_s: (!opened.is_empty())
            .then(|| opened.iter().sum::<f64>() / opened.len() as f64),
        max_time_to_open_s: opened.iter().copied().reduce(f64::max),
        time_to_open_s: time_to_open,
        predictions,
    }
}

/// Run `analyser` over the clip at one analysed frame every `every`, on `detector`'s detections at or above
/// `operating`; the incidents it opened, and the clip's length.
pub fn predict(
    media: &Path,
    detector: &mut Detector,
    operating: f32,
    analyser: &mut Analyser,
    camera: &str,
    every: Duration,
) -> Result<Vec<Predicted>> {
    let (t0, wall0) = (Instant::now(), SystemTime::now());
    let mut next = Duration::ZERO;
    let mut seq = 0;
    let mut last = Duration::ZERO;
    let mut cases: BTreeMap<String, Predicted> = BTreeMap::new();
    let mut failed = None;
    crate::ingest::decode_file(
        media,
        |_| true,
        |_, at, img| {
            last = at;
            if at < next {
                return true;
            }
            next = at + every;
            let output = match detector.run(img) {
                Ok(o) => o,
                Err(e) => {
                    failed = Some(anyhow::Error::from(e));
                    return false;
                }
            };
            let detections: Vec<_> = output
                .detections
                .into_iter()
                .filter(|d| d.score >= operating)
                .collect();
            let mut rgb = Vec::with_capacity(img.width() * img.height() * 3);
            for y in 0..img.height() {
                rgb.extend_from_slice(&img.row(y)[..img.width() * 3]);
            }
            let meta = FrameMeta {
                camera: camera.into(),
                seq,
                captured_at: wall0 + at,
                captured_mono: t0 + at,
            };
            seq += 1;
            let Ok(frame) = Frame::new(
                meta,
                img.width(),
                img.height(),
                img.width() * 3,
                Pixels::Owned(rgb),
            ) else {
                return true;
            };
            let step = analyser.step(&frame, &detections, output.density.as_ref());
            for d in step.drafts.iter().filter(|d| d.health.is_none()) {
                let s = at.as_secs_f64();
                match d.transition {
                    Transition::Opened { .. } => {
                        let p = cases.entry(d.case.id.clone()).or_insert_with(|| Predicted {
                            incident_id: d.case.id.clone(),
                            category: d.category.clone(),
                            zone: d.zone.id.clone(),
                            start_s: s,
                            end_s: f64::INFINITY,
                            matched: None,
                        });
                        p.end_s = f64::INFINITY;
                    }
                    Transition::Resolved(_) => {
                        if let Some(p) = cases.get_mut(&d.case.id) {
                            p.end_s = s;
                        }
                    }
                    _ => {}
                }
            }
            true
        },
    )?;
    if let Some(e) = failed {
        return Err(e);
    }
    let end = last.as_secs_f64();
    Ok(cases
        .into_values()
        .map(|mut p| {
            p.end_s = p.end_s.min(end);
            p
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(zone: &str, a: f64, b: f64) -> IncidentLabel {
        IncidentLabel {
            category: "crowd_density".into(),
            zone: zone.into(),
            start_s: a,
            end_s: b,
        }
    }

    fn predicted(zone: &str, a: f64, b: f64) -> Predicted {
        Predicted {
            incident_id: format!("{zone}-{a}"),
            category: "crowd_density".into(),
            zone: zone.into(),
            start_s: a,
            end_s: b,
            matched: None,
        }
    }

    #[test]
    fn overlapping_incidents_match_once_and_the_rest_count_against() {
        let labels = [
            label("walkway", 10.0, 40.0),
            label("walkway", 60.0, 70.0),
            label("kerb", 0.0, 5.0),
        ];
        let predictions = vec![
            predicted("walkway", 15.0, 45.0),
            predicted("walkway", 20.0, 30.0),
            predicted("walkway", 58.0, 65.0),
        ];
        let e = score(&labels, predictions, 1000);
        assert_eq!(e.matched, 2);
        assert!((e.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!(
            (e.precision - 2.0 / 3.0).abs() < 1e-12,
            "the second, overlapping prediction is a false one"
        );
        assert_eq!(e.time_to_open_s, vec![Some(5.0), Some(-2.0), None]);
        assert_eq!(e.max_time_to_open_s, Some(5.0));
        assert_eq!(e.mean_time_to_open_s, Some(1.5));
    }

    #[test]
    fn labels_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("i.json");
        std::fs::write(
            &p,
            r#"{"incidents":[{"category":"crowd_density","zone":"w","start_s":5,"end_s":2}]}"#,
        )
        .unwrap();
        let e = load_labels(&p).unwrap_err();
        assert!(format!("{e:#}").contains("start_s ≤ end_s"), "{e:#}");
    }
}
