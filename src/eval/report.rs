//! What `eval` found, as JSON (for scripts and a second computation: the detections are in COCO's
//! results format, in the labels' own ids) and as one self-contained HTML page with the plots drawn by its
//! own script from the same JSON (Simplified Chinese, with an English switch).

use super::metrics::{ClassMetrics, CountError};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub created: String,
    pub media: String,
    pub labels: LabelsInfo,
    /// The class counted per frame and per zone (crowds).
    pub count_class: String,
    /// Detections count from this score on.
    pub count_score: f64,
    pub notes: Vec<String>,
    /// The bundle measured first, then the baseline (when one was given).
    pub models: Vec<ModelReport>,
    pub comparison: Option<Comparison>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelsInfo {
    pub path: String,
    pub format: String,
    pub frames: usize,
    pub boxes: usize,
    pub ignored: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    pub name: String,
    pub version: String,
    pub path: String,
    pub sha256: String,
    pub threads: usize,
    /// The manifest's score threshold: where the pole works (precision, recall, F1, counts).
    pub score_threshold: f64,
    /// Detections down to this score are kept for the PR curve and AP.
    pub curve_floor: f64,
    pub frames: usize,
    pub classes: Vec<ClassMetrics>,
    /// Labelled classes the model has no label for.
    pub missing_classes: Vec<String>,
    pub map50: f64,
    pub map50_95: f64,
    pub counts: Counts,
    pub timing_ms: Timing,
    pub detections: Vec<CocoDetection>,
    /// Incident-level results, when incidents were labelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incidents: Option<super::IncidentEval>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub frame: CountError,
    pub zones: Vec<ZoneCount>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ZoneCount {
    pub zone: String,
    pub error: CountError,
}

/// CPU milliseconds per frame on the evaluating thread.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub pre: Spread,
    pub inference: Spread,
    pub post: Spread,
    pub total: Spread,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(samples: &[f64]) -> Spread {
        if samples.is_empty() {
            return Spread::default();
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
        Spread {
            mean: s.iter().sum::<f64>() / s.len() as f64,
            p50: at(0.5),
            p95: at(0.95),
            max: s[s.len() - 1],
        }
    }
}

/// A detection in COCO's results format (pixels, `[x, y, width, height]`, the labels' ids).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CocoDetection {
    pub image_id: u64,
    pub category_id: u64,
    pub bbox: [f64; 4],
    pub score: f64,
}

/// The measured bundle minus the baseline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub candidate: String,
    pub baseline: String,
    pub classes: Vec<ClassDelta>,
    pub map50: f64,
    pub map50_95: f64,
    pub count_mae: f64,
    pub total_ms: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassDelta {
    pub class: String,
    pub ap50: f64,
    pub ap50_95: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Comparison {
    pub fn between(candidate: &ModelReport, baseline: &ModelReport) -> Comparison {
        let classes = candidate
            .classes
            .iter()
            .filter_map(|c| {
                let b = baseline.classes.iter().find(|b| b.class == c.class)?;
                Some(ClassDelta {
                    class: c.class.clone(),
                    ap50: c.ap50 - b.ap50,
                    ap50_95: c.ap50_95 - b.ap50_95,
                    precision: c.operating.precision - b.operating.precision,
                    recall: c.operating.recall - b.operating.recall,
                    f1: c.operating.f1 - b.operating.f1,
                })
            })
            .collect();
        Comparison {
            candidate: candidate.name.clone(),
            baseline: baseline.name.clone(),
            classes,
            map50: candidate.map50 - baseline.map50,
            map50_95: candidate.map50_95 - baseline.map50_95,
            count_mae: candidate.counts.frame.mae - baseline.counts.frame.mae,
            total_ms: candidate.timing_ms.total.mean - baseline.timing_ms.total.mean,
        }
    }
}

const PAGE: &str = include_str!("report.html");

impl Report {
    /// The HTML page: the template with this report's JSON in it (safe inside a script element).
    pub fn html(&self) -> String {
        let json = serde_json::to_string(self)
            .expect("a report serialises")
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026");
        PAGE.replace("\"__REPORT_JSON__\"", &json)
    }

    /// Write `report.json` and `report.html` into `dir` (created if needed), each whole or not at all.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_vec_pretty(self)?;
        crate::base::write_atomic(&dir.join("report.json"), &json)?;
        crate::base::write_atomic(&dir.join("report.html"), self.html().as_bytes())?;
        Ok(())
    }

    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for m in &self.models {
            out += &format!(
                "{} {} ({} frames, score ≥ {:.2}): mAP@0.5 {:.3}  mAP@0.5:0.95 {:.3}  count MAE {:.2}  CPU {:.1} ms/frame (pre {:.1}, inference {:.1}, post {:.1})\n",
                m.name,
                m.version,
                m.frames,
                m.score_threshold,
                m.map50,
                m.map50_95,
                m.counts.frame.mae,
                m.timing_ms.total.mean,
                m.timing_ms.pre.mean,
                m.timing_ms.inference.mean,
                m.timing_ms.post.mean
            );
            for c in &m.classes {
                out += &format!(
                    "  {:<12} labelled {:>4}  AP50 {:.3}  AP50:95 {:.3}  P {:.3}  R {:.3}  F1 {:.3}\n",
                    c.class,
                    c.labelled,
                    c.ap50,
                    c.ap50_95,
                    c.operating.precision,
                    c.operating.recall,
                    c.operating.f1
                );
            }
            if let Some(i) = &m.incidents {
                out += &format!(
                    "  incidents: {} labelled, {} opened, {} matched: precision {:.2}  recall {:.2}  time to open {}\n",
                    i.labels.len(),
                    i.predictions.len(),
                    i.matched,
                    i.precision,
                    i.recall,
                    i.mean_time_to_open_s.map_or("–".to_string(), |t| format!(
                        "{t:.1} s (mean), {:.1} s (max)",
                        i.max_time_to_open_s.unwrap_or(t)
                    ))
                );
            }
            for z in &m.counts.zones {
                out += &format!(
                    "  zone {:<10} count MAE {:.2} (bias {:+.2})\n",
                    z.zone, z.error.mae, z.error.bias
                );
            }
        }
        if let Some(c) = &self.comparison {
            out += &format!(
                "{} − {}: mAP@0.5 {:+.3}  mAP@0.5:0.95 {:+.3}  count MAE {:+.2}  CPU {:+.1} ms/frame\n",
                c.candidate, c.baseline, c.map50, c.map50_95, c.count_mae, c.total_ms
            );
        }
        out
    }
}
