//! `streetsight eval`: run a model bundle (and optionally a baseline) over labelled media and measure it —
//! per class precision, recall, F1 at the pole's own threshold, AP@0.5 and AP@0.5:0.95, per-frame and
//! per-zone count error, CPU per frame by stage — into a JSON and an HTML report.

mod incidents;
mod labels;
mod metrics;
mod report;

pub use incidents::{
    IncidentEval, IncidentLabel, Predicted, load_labels as load_incident_labels,
    score as score_incidents,
};
pub use labels::{FrameKey, GroundTruth, GtBox, LabelledFrame};
pub use metrics::{
    ClassMetrics, CountError, IOU_THRESHOLDS, OperatingPoint, Picture, count_error, evaluate, iou,
};
pub use report::{
    ClassDelta, CocoDetection, Comparison, Counts, LabelsInfo, ModelReport, Report, Spread, Timing,
    ZoneCount,
};

use crate::base::{BBox, ImageView};
use crate::detect::{Detector, Manifest};
use crate::rules::ZoneSpec;
use anyhow::{Context, Result, bail};
use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Detections down to this score are kept for the PR curve unless the bundle's own threshold is lower.
pub const CURVE_FLOOR: f32 = 0.05;

pub struct EvalOptions {
    pub model: PathBuf,
    pub baseline: Option<PathBuf>,
    /// A video file (frames by number) or a directory of pictures (by file name).
    pub media: PathBuf,
    pub labels: PathBuf,
    /// Zones to count `count_class` in (a camera's zones from a configuration).
    pub zones: Vec<ZoneSpec>,
    pub count_class: String,
    /// Detections of `count_class` count from this score on (the crowd rule's default `min_score` is 0.5);
    /// never below the bundle's own threshold.
    pub count_score: f32,
    /// ONNX Runtime intra-op threads (1: the CPU times are the calling thread's whole cost).
    pub threads: usize,
    /// Draw a progress bar on stderr (when it is a terminal).
    pub progress: bool,
    /// A camera's rules (its configuration), for incident-level labels.
    pub rules: Option<Rules>,
    /// Labelled incidents (`{"incidents": [{category, zone, start_s, end_s}]}`); needs `rules` and a clip.
    pub incidents: Option<PathBuf>,
}

/// The configuration and the camera whose rules make incidents.
pub struct Rules {
    pub loaded: crate::config::LoadedConfig,
    pub camera: String,
}

impl Rules {
    fn camera(&self) -> Result<&crate::config::CameraConfig> {
        self.loaded
            .config
            .cameras
            .iter()
            .map(|c| c.get_ref())
            .find(|c| c.id == self.camera)
            .with_context(|| {
                format!(
                    "{}: no camera `{}`",
                    self.loaded.path.display(),
                    self.camera
                )
            })
    }

    /// Time between the camera's analysed frames: its interval, or a second for keyframe sampling.
    fn every(&self) -> Result<std::time::Duration> {
        Ok(match self.camera()?.sampling {
            crate::config::Sampling::Interval { interval_ms } => {
                std::time::Duration::from_millis(interval_ms)
            }
            crate::config::Sampling::Keyframe => std::time::Duration::from_secs(1),
        })
    }
}

/// One bundle being measured: its detector and what it found so far.
struct Run {
    detector: Detector,
    path: PathBuf,
    threads: usize,
    /// The bundle's own score threshold (the manifest's is lowered to keep the whole PR curve).
    operating: f32,
    /// Per labelled frame (in label order): detections (class name, score, pixel corners).
    found: Vec<Vec<(String, f64, [f64; 4])>>,
    times: Vec<[f64; 3]>,
}

impl Run {
    fn open(path: &Path, threads: usize) -> Result<Run> {
        let manifest =
            Manifest::load(path).with_context(|| format!("model bundle {}", path.display()))?;
        let mut detector = Detector::load(manifest, threads)?;
        let operating = detector.manifest.score_threshold;
        detector.manifest.score_threshold = detector.manifest.score_threshold.min(CURVE_FLOOR);
        Ok(Run {
            detector,
            path: path.to_path_buf(),
            threads,
            operating,
            found: Vec::new(),
            times: Vec::new(),
        })
    }

    fn observe(&mut self, img: &ImageView) -> Result<()> {
        let (w, h) = (img.width() as f64, img.height() as f64);
        let out = self.detector.run(img)?;
        let t = self.detector.last_times();
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        self.times.push([ms(t.pre), ms(t.inference), ms(t.post)]);
        let labels = &self.detector.manifest.labels;
        self.found.push(
            out.detections
                .iter()
                .map(|d| {
                    let b = d.bbox;
                    let corners = [
                        f64::from(b.x1) * w,
                        f64::from(b.y1) * h,
                        f64::from(b.x2) * w,
                        f64::from(b.y2) * h,
                    ];
                    (labels[d.class].clone(), f64::from(d.score), corners)
                })
                .collect(),
        );
        Ok(())
    }
}

/// Run the evaluation and build the report (not yet written anywhere).
pub fn run(opts: &EvalOptions) -> Result<Report> {
    let gt = GroundTruth::load(&opts.labels)?;
    let mut runs = vec![Run::open(&opts.model, opts.threads)?];
    if let Some(b) = &opts.baseline {
        runs.push(Run::open(b, opts.threads)?);
    }
    let mut sizes: Vec<(f64, f64)> = Vec::with_capacity(gt.frames.len());
    let mut progress = Progress::new(opts.progress, gt.frames.len());
    let mut observe = |img: &ImageView| -> Result<()> {
        for r in runs.iter_mut() {
            r.observe(img)?;
        }
        sizes.push((img.width() as f64, img.height() as f64));
        progress.step();
        Ok(())
    };
    if opts.media.is_dir() {
        for frame in &gt.frames {
            let path = picture_path(&opts.media, frame)?;
            let img = image::open(&path)
                .with_context(|| format!("cannot read picture {}", path.display()))?
                .to_rgb8();
            let (w, h) = (img.width() as usize, img.height() as usize);
            observe(&ImageView::new(w, h, w * 3, img.as_raw())?)?;
        }
    } else {
        let wanted: BTreeSet<u64> = gt
            .frames
            .iter()
            .map(|f| match &f.key {
                FrameKey::Index(n) => Ok(*n),
                FrameKey::File(name) => bail!(
                    "{}: the labels name a picture ({}) but the media is a video; name frames `frame_000123.png` (frame numbers from 0) or give a directory of pictures",
                    opts.labels.display(),
                    name.display()
                ),
            })
            .collect::<Result<_>>()?;
        let mut failed = None;
        let total = crate::ingest::decode_file(
            &opts.media,
            |n| wanted.contains(&n),
            |_, _, img| match observe(img) {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            },
        )?;
        if let Some(e) = failed {
            return Err(e);
        }
        let last = *wanted.last().expect("labels are not empty");
        if last >= total {
            bail!(
                "{}: frame {last} is labelled but {} has {total} frames",
                opts.labels.display(),
                opts.media.display()
            );
        }
    }
    progress.done();
    let incidents = match &opts.incidents {
        Some(path) => Some(incident_pass(&mut runs, path, opts)?),
        None => None,
    };
    let mut models: Vec<ModelReport> = runs.iter().map(|r| measure(r, &gt, &sizes, opts)).collect();
    for (m, i) in models.iter_mut().zip(incidents.into_iter().flatten()) {
        m.incidents = Some(i);
    }
    let comparison = (models.len() == 2).then(|| Comparison::between(&models[0], &models[1]));
    Ok(Report {
        created: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        media: opts.media.display().to_string(),
        labels: LabelsInfo {
            path: opts.labels.display().to_string(),
            format: gt.format.to_string(),
            frames: gt.frames.len(),
            boxes: gt.boxes(),
            ignored: gt.ignored(),
        },
        count_class: opts.count_class.clone(),
        count_score: as_written(opts.count_score),
        notes: vec![
            "AP as COCO computes it (greedy matching by score, 101-point interpolated precision), without area ranges or a cap on detections per picture; boxes marked ignore (iscrowd) absorb detections with ordinary IoU.".into(),
            format!(
                "Precision, recall and F1 at each bundle's own score threshold and IoU 0.5. Counts: labelled `{}` boxes that are not ignored against detections scoring at least {} (and the bundle's threshold), by their bottom centre (zones: their own anchor).",
                opts.count_class,
                as_written(opts.count_score)
            ),
            format!(
                "CPU ms per frame on the evaluating thread with {} ONNX Runtime thread(s).",
                opts.threads
            ),
        ],
        models,
        comparison,
    })
}

/// Each bundle's incidents over the whole clip, through the camera's rules, scored against the labels.
fn incident_pass(runs: &mut [Run], labels: &Path, opts: &EvalOptions) -> Result<Vec<IncidentEval>> {
    let Some(rules) = &opts.rules else {
        bail!("--incidents needs the camera's rules: give --config and --camera");
    };
    if opts.media.is_dir() {
        bail!("--incidents needs a video: incidents unfold in time");
    }
    let labels = incidents::load_labels(labels)?;
    let cam = rules.camera()?;
    let every = rules.every()?;
    runs.iter_mut()
        .map(|r| {
            let info = crate::incident::ModelInfo::new(&r.detector.manifest, &r.detector.sha256);
            let mut analyser = crate::plan::analyser(&rules.loaded.config, cam, info);
            let predicted = incidents::predict(
                &opts.media,
                &mut r.detector,
                r.operating,
                &mut analyser,
                &cam.id,
                every,
            )?;
            Ok(incidents::score(
                &labels,
                predicted,
                every.as_millis() as u64,
            ))
        })
        .collect()
}

/// A manifest's f32 as the manifest wrote it (0.35, not 0.3499999940395355).
fn as_written(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// The picture file of a labelled frame in a media directory (YOLO labels name frames without extension).
fn picture_path(dir: &Path, frame: &LabelledFrame) -> Result<PathBuf> {
    let named = dir.join(&frame.name);
    if named.is_file() {
        return Ok(named);
    }
    ["png", "jpg", "jpeg", "PNG", "JPG", "bmp"]
        .iter()
        .map(|e| dir.join(format!("{}.{e}", frame.name)))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{}: no picture for the labelled {}",
                dir.display(),
                frame.name
            )
        })
}

/// A bundle's metrics from what it found on the labelled frames.
fn measure(r: &Run, gt: &GroundTruth, sizes: &[(f64, f64)], opts: &EvalOptions) -> ModelReport {
    let truth_px = |b: &GtBox, (w, h): (f64, f64)| {
        if gt.normalised {
            [b.bbox[0] * w, b.bbox[1] * h, b.bbox[2] * w, b.bbox[3] * h]
        } else {
            b.bbox
        }
    };
    let labels = &r.detector.manifest.labels;
    let (classes, missing): (Vec<String>, Vec<String>) = gt
        .labelled_classes()
        .into_iter()
        .partition(|c| labels.contains(c));
    let mut metrics = Vec::new();
    let mut detections = Vec::new();
    for class in &classes {
        let pictures: Vec<Picture> = gt
            .frames
            .iter()
            .zip(&r.found)
            .zip(sizes)
            .map(|((f, found), &size)| Picture {
                truth: f
                    .boxes
                    .iter()
                    .filter(|b| &b.class == class)
                    .map(|b| (truth_px(b, size), b.ignore))
                    .collect(),
                detections: found
                    .iter()
                    .filter(|d| &d.0 == class)
                    .map(|d| (d.1, d.2))
                    .collect(),
            })
            .collect();
        metrics.push(evaluate(class, &pictures, f64::from(r.operating)));
        let category_id = gt.class_id(class).unwrap_or_default();
        for (f, p) in gt.frames.iter().zip(&pictures) {
            detections.extend(p.detections.iter().map(|&(score, c)| CocoDetection {
                image_id: f.id,
                category_id,
                bbox: [c[0], c[1], c[2] - c[0], c[3] - c[1]],
                score,
            }));
        }
    }
    let mean = |f: fn(&ClassMetrics) -> f64| {
        if metrics.is_empty() {
            0.0
        } else {
            metrics.iter().map(f).sum::<f64>() / metrics.len() as f64
        }
    };
    let (map50, map50_95) = (mean(|m| m.ap50), mean(|m| m.ap50_95));
    let counts = counts(r, gt, sizes, opts, truth_px);
    let column = |i: usize| r.times.iter().map(|t| t[i]).collect::<Vec<f64>>();
    let total: Vec<f64> = r.times.iter().map(|t| t.iter().sum()).collect();
    ModelReport {
        name: r.detector.manifest.name.clone(),
        version: r.detector.manifest.version.clone(),
        path: r.path.display().to_string(),
        sha256: r.detector.sha256.clone(),
        threads: r.threads,
        score_threshold: as_written(r.operating),
        curve_floor: as_written(r.detector.manifest.score_threshold),
        frames: r.found.len(),
        classes: metrics,
        missing_classes: missing,
        map50,
        map50_95,
        counts,
        timing_ms: Timing {
            pre: Spread::of(&column(0)),
            inference: Spread::of(&column(1)),
            post: Spread::of(&column(2)),
            total: Spread::of(&total),
        },
        detections,
        incidents: None,
    }
}

/// Count error per frame and per zone: labelled `count_class` boxes (not ignored) against detections at
/// the working threshold.
fn counts(
    r: &Run,
    gt: &GroundTruth,
    sizes: &[(f64, f64)],
    opts: &EvalOptions,
    truth_px: impl Fn(&GtBox, (f64, f64)) -> [f64; 4],
) -> Counts {
    let class = &opts.count_class;
    // Per frame: the labelled boxes and the detected ones, normalised to the picture.
    let per_frame: Vec<(Vec<BBox>, Vec<BBox>)> = gt
        .frames
        .iter()
        .zip(&r.found)
        .zip(sizes)
        .map(|((f, found), &(w, h))| {
            let norm = |c: [f64; 4]| BBox {
                x1: (c[0] / w) as f32,
                y1: (c[1] / h) as f32,
                x2: (c[2] / w) as f32,
                y2: (c[3] / h) as f32,
            };
            let truth = f
                .boxes
                .iter()
                .filter(|b| &b.class == class && !b.ignore)
                .map(|b| norm(truth_px(b, (w, h))))
                .collect();
            let found = found
                .iter()
                .filter(|d| &d.0 == class && d.1 >= f64::from(r.operating.max(opts.count_score)))
                .map(|d| norm(d.2))
                .collect();
            (truth, found)
        })
        .collect();
    let in_zone = |boxes: &[BBox], z: Option<&ZoneSpec>| {
        boxes
            .iter()
            .filter(|b| z.is_none_or(|z| z.contains_box(b, true)))
            .count()
    };
    let error_in = |z: Option<&ZoneSpec>| {
        let pairs: Vec<(usize, usize)> = per_frame
            .iter()
            .map(|(t, f)| (in_zone(t, z), in_zone(f, z)))
            .collect();
        count_error(&pairs)
    };
    Counts {
        frame: error_in(None),
        zones: opts
            .zones
            .iter()
            .map(|z| ZoneCount {
                zone: z.id.clone(),
                error: error_in(Some(z)),
            })
            .collect(),
    }
}

/// A one-line progress bar on stderr, redrawn in place; nothing when stderr is not a terminal.
struct Progress {
    on: bool,
    total: usize,
    done: usize,
    started: std::time::Instant,
}

impl Progress {
    fn new(wanted: bool, total: usize) -> Progress {
        Progress {
            on: wanted && std::io::stderr().is_terminal(),
            total,
            done: 0,
            started: std::time::Instant::now(),
        }
    }

    fn step(&mut self) {
        self.done += 1;
        if !self.on {
            return;
        }
        let width = 30;
        let filled = width * self.done / self.total.max(1);
        let elapsed = self.started.elapsed().as_secs_f64();
        let left = elapsed / self.done as f64 * (self.total - self.done.min(self.total)) as f64;
        let _ = write!(
            std::io::stderr(),
            "\r[{}{}] {}/{} frames, {:.0} s left ",
            "#".repeat(filled),
            "-".repeat(width - filled),
            self.done,
            self.total,
            left
        );
    }

    fn done(&self) {
        if self.on {
            let _ = writeln!(std::io::stderr());
        }
    }
}
