//! The model bundle manifest: everything the agent needs to feed a model and read its answer.
//!
//! A bundle is a directory with `manifest.toml` and the `.onnx` file it names. [`Manifest::load`] checks
//! the manifest on its own (fields, head against task, normalisation, category mapping); `graph` checks it
//! against the real ONNX graph when the model is opened, so a wrong model never reaches a camera.
//! docs/models.md describes every field.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "no manifest at {path}: {source}; a model bundle directory holds manifest.toml and the .onnx file"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: the model file `{file}` named in the manifest does not exist")]
    MissingFile { path: PathBuf, file: PathBuf },
    #[error("{path}: {}", .problems.join("; "))]
    Invalid {
        path: PathBuf,
        /// Every problem found, each naming its field.
        problems: Vec<String>,
    },
}

/// Memory layout of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Nchw => "nchw",
            Layout::Nhwc => "nhwc",
        }
    }
}

/// Channel order the model was trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    Rgb,
    Bgr,
}

/// How a frame is fitted to the model's input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// Scale each axis independently to the input size (aspect ratio not kept).
    Stretch,
    /// Scale by one factor so the frame fits, centre it, fill the rest with `pad` (YOLO's way).
    Letterbox,
}

/// What the model computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Boxes with classes and scores.
    Detect,
    /// A density map whose sum is the number of people.
    Density,
    /// A feature vector per picture (a frozen embedder under zone-state rules); no classes.
    Embed,
}

/// The input tensor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Tensor name in the graph.
    pub name: String,
    pub width: usize,
    pub height: usize,
    pub layout: Layout,
    /// Element type; only `f32` today.
    pub dtype: String,
    pub color: ColorOrder,
    /// Per-channel value subtracted from 0–255 pixel values, in the model's channel order. Default 0.
    #[serde(default)]
    pub mean: [f32; 3],
    /// Per-channel divisor applied after the mean, in the model's channel order. Give `std` or `scale`.
    #[serde(default)]
    pub std: Option<[f32; 3]>,
    /// One factor applied after the mean (`0.00392156862745098` = 1/255 for YOLO). Give `std` or `scale`.
    #[serde(default)]
    pub scale: Option<f32>,
    pub resize: ResizeMode,
    /// Letterbox fill, a 0–255 pixel value before normalisation (YOLO: 114).
    #[serde(default = "default_pad")]
    pub pad: u8,
}

fn default_pad() -> u8 {
    114
}

impl InputSpec {
    /// `(multiplier, offset)` per model channel: `value = pixel × multiplier + offset`.
    pub fn normalisation(&self) -> ([f32; 3], [f32; 3]) {
        let mut mul = [1.0; 3];
        let mut add = [0.0; 3];
        for c in 0..3 {
            mul[c] = match (self.std, self.scale) {
                (Some(std), _) => 1.0 / std[c],
                (None, Some(s)) => s,
                (None, None) => 1.0,
            };
            add[c] = -self.mean[c] * mul[c];
        }
        (mul, add)
    }
}

/// How to read the model's outputs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "head", rename_all = "snake_case")]
pub enum Head {
    /// NanoDet (GFL head): per stride a score tensor `[1, cells, classes]` (sigmoid applied) and a box
    /// distribution `[1, cells, 4 × (reg_max + 1)]`.
    Nanodet {
        strides: Vec<usize>,
        reg_max: usize,
        /// Score tensor names, one per stride, in the order of `strides`.
        scores: Vec<String>,
        /// Box distribution tensor names, one per stride.
        boxes: Vec<String>,
    },
    /// YOLOv5 (and v7): `[1, N, 5 + C]` rows of cx, cy, w, h (input pixels), objectness, C class scores.
    Yolov5 { name: String },
    /// YOLOv8 and YOLO11: `[1, 4 + C, N]` columns of cx, cy, w, h (input pixels) and C class scores.
    Yolov8 { name: String },
    /// A density map `[1, 1, H, W]`; its sum is the count.
    DensityMap { name: String },
    /// One feature vector `[1, D]` per picture.
    Embedding { name: String },
}

impl Head {
    pub fn kind(&self) -> &'static str {
        match self {
            Head::Nanodet { .. } => "nanodet",
            Head::Yolov5 { .. } => "yolov5",
            Head::Yolov8 { .. } => "yolov8",
            Head::DensityMap { .. } => "density_map",
            Head::Embedding { .. } => "embedding",
        }
    }

    /// Names of the output tensors the head reads.
    pub fn tensor_names(&self) -> Vec<&str> {
        match self {
            Head::Nanodet { scores, boxes, .. } => {
                scores.iter().chain(boxes).map(String::as_str).collect()
            }
            Head::Yolov5 { name }
            | Head::Yolov8 { name }
            | Head::DensityMap { name }
            | Head::Embedding { name } => vec![name.as_str()],
        }
    }
}

/// Output description.
pub type OutputSpec = Head;

/// The manifest as written in `manifest.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub task: Task,
    /// The ONNX file, relative to the bundle directory.
    #[serde(default = "default_file")]
    pub file: PathBuf,
    /// SHA-256 of the ONNX file, hex.
    pub sha256: String,
    pub license: String,
    pub source: String,
    pub input: InputSpec,
    pub output: OutputSpec,
    /// Class labels, in the model's class-index order.
    pub labels: Vec<String>,
    /// Default minimum score for a detection.
    #[serde(default = "default_score_threshold")]
    pub score_threshold: f32,
    /// IoU above which same-class boxes are merged by NMS.
    #[serde(default = "default_nms_iou")]
    pub nms_iou: f32,
    /// Label → the incident categories it is evidence for (`umbrella = ["street_vending"]`). A rule whose
    /// configuration names no labels takes the labels mapped to its category.
    #[serde(default)]
    pub categories: BTreeMap<String, Vec<String>>,
    /// Bundle directory (set on load).
    #[serde(skip)]
    pub dir: PathBuf,
}

fn default_file() -> PathBuf {
    "model.onnx".into()
}
fn default_score_threshold() -> f32 {
    0.25
}
fn default_nms_iou() -> f32 {
    0.45
}

impl Manifest {
    /// Read `dir/manifest.toml` and check it is self-consistent and its model file exists. Does not open the
    /// ONNX file: that is the engine's job at load time.
    pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
        let m = Manifest::read(dir)?;
        let path = dir.join("manifest.toml");
        if !m.model_path().is_file() {
            return Err(ManifestError::MissingFile {
                path: path.clone(),
                file: m.model_path(),
            });
        }
        // `problems` refuses a `file` that names a path outside the bundle (`..`, absolute). A link inside the
        // bundle is the installer's own choice (bundles may share one large file) and is followed.
        let problems = m.problems();
        if problems.is_empty() {
            Ok(m)
        } else {
            Err(ManifestError::Invalid { path, problems })
        }
    }

    /// Parse `dir/manifest.toml` without checking it (`verify` wants to list every problem).
    pub fn read(dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join("manifest.toml");
        let text = crate::base::read_text_capped(&path, 1024 * 1024).map_err(|source| {
            ManifestError::Read {
                path: path.clone(),
                source,
            }
        })?;
        let mut m: Manifest = toml::from_str(&text).map_err(|e| ManifestError::Parse {
            path: path.clone(),
            message: e.message().trim().to_string(),
        })?;
        m.dir = dir.to_path_buf();
        Ok(m)
    }

    /// Everything wrong with the manifest on its own, each naming the field, what is expected and what was
    /// found.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.file.is_absolute()
            || self
                .file
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            p.push(format!(
                "file: `{}` must name a file inside the bundle directory (no `..`, not absolute)",
                self.file.display()
            ));
        }
        let i = &self.input;
        if i.dtype != "f32" {
            p.push(format!("input.dtype: expected `f32`, found `{}`", i.dtype));
        }
        if i.width == 0 || i.height == 0 {
            p.push(format!(
                "input.width/height: expected sizes above 0, found {}×{}",
                i.width, i.height
            ));
        }
        match (i.std, i.scale) {
            (Some(_), Some(_)) => p.push(
                "input.std/input.scale: expected one of them, found both; give mean/std or scale"
                    .into(),
            ),
            (Some(std), None) if std.contains(&0.0) => p.push(format!(
                "input.std: expected non-zero divisors, found {std:?}"
            )),
            (None, Some(s)) if !(s.is_finite() && s != 0.0) => p.push(format!(
                "input.scale: expected a finite non-zero factor, found {s}"
            )),
            _ => {}
        }
        let expected_task = match self.output {
            Head::DensityMap { .. } => Task::Density,
            Head::Embedding { .. } => Task::Embed,
            _ => Task::Detect,
        };
        if self.labels.is_empty() && expected_task != Task::Embed {
            p.push(
                "labels: expected the model's classes in index order, found an empty list".into(),
            );
        }
        if self.task != expected_task {
            p.push(format!(
                "task: expected `{}` for head `{}`, found `{}`",
                task_name(expected_task),
                self.output.kind(),
                task_name(self.task)
            ));
        }
        if let Head::Nanodet {
            strides,
            scores,
            boxes,
            ..
        } = &self.output
            && (scores.len() != strides.len() || boxes.len() != strides.len())
        {
            p.push(format!(
                "output.scores/output.boxes: expected one of each per stride ({}), found {} score and {} box tensors",
                strides.len(),
                scores.len(),
                boxes.len()
            ));
        }
        for (field, v) in [
            ("score_threshold", self.score_threshold),
            ("nms_iou", self.nms_iou),
        ] {
            if !(0.0..=1.0).contains(&v) {
                p.push(format!("{field}: expected a value within 0..1, found {v}"));
            }
        }
        for (label, cats) in &self.categories {
            if !self.labels.contains(label) {
                p.push(format!(
                    "categories.{label}: expected a label of the model, found `{label}`, which is not in labels"
                ));
            }
            if cats.is_empty() || cats.iter().any(|c| c.trim().is_empty()) {
                p.push(format!(
                    "categories.{label}: expected one or more category names, found {cats:?}"
                ));
            }
        }
        p
    }

    pub fn model_path(&self) -> PathBuf {
        self.dir.join(&self.file)
    }

    /// Index of a label, if the model has it.
    pub fn label_index(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }

    /// Labels the manifest maps to `category`, in class-index order.
    pub fn labels_for(&self, category: &str) -> Vec<String> {
        self.labels
            .iter()
            .filter(|l| {
                self.categories
                    .get(*l)
                    .is_some_and(|cats| cats.iter().any(|c| c == category))
            })
            .cloned()
            .collect()
    }
}

fn task_name(t: Task) -> &'static str {
    match t {
        Task::Detect => "detect",
        Task::Density => "density",
        Task::Embed => "embed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YOLO: &str = r#"
name = "y"
version = "1"
task = "detect"
sha256 = "00"
license = "AGPL-3.0"
source = "test"
labels = ["person", "umbrella"]
[input]
name = "images"
width = 640
height = 640
layout = "nchw"
dtype = "f32"
color = "rgb"
scale = 0.00392156862745098
resize = "letterbox"
[output]
head = "yolov8"
name = "output0"
[categories]
umbrella = ["street_vending"]
person = ["crowd_density", "street_vending"]
"#;

    fn parse(text: &str) -> Manifest {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_yolov8_manifest_with_scale_and_letterbox_parses_with_defaults() {
        let m = parse(YOLO);
        assert!(m.problems().is_empty(), "{:?}", m.problems());
        assert_eq!(m.input.pad, 114);
        assert_eq!(m.score_threshold, 0.25);
        assert_eq!(m.input.resize, ResizeMode::Letterbox);
        let (mul, add) = m.input.normalisation();
        assert!((mul[0] * 255.0 - 1.0).abs() < 1e-6 && add == [0.0; 3]);
    }

    #[test]
    fn a_model_file_outside_the_bundle_is_refused() {
        for file in ["../../../../etc/passwd", "/etc/passwd", "sub/../../x.onnx"] {
            let m = parse(&format!("file = \"{file}\"\n{YOLO}"));
            assert!(
                m.problems()
                    .iter()
                    .any(|p| p.contains("must name a file inside the bundle directory")),
                "{file}: {:?}",
                m.problems()
            );
        }
        let m = parse(&format!("file = \"models/yolo.onnx\"\n{YOLO}"));
        assert!(m.problems().is_empty(), "{:?}", m.problems());
    }

    #[test]
    fn labels_for_a_category_come_from_the_mapping_in_class_order() {
        let m = parse(YOLO);
        assert_eq!(m.labels_for("street_vending"), vec!["person", "umbrella"]);
        assert_eq!(m.labels_for("crowd_density"), vec!["person"]);
        assert!(m.labels_for("bin_overflow").is_empty());
    }

    #[test]
    fn every_self_inconsistency_is_named_with_its_field() {
        let text = YOLO
            .replace("task = \"detect\"", "task = \"density\"")
            .replace(
                "scale = 0.00392156862745098",
                "scale = 0.1\nstd = [1.0, 1.0, 1.0]",
            )
            .replace(
                "umbrella = [\"street_vending\"]",
                "tarp = [\"street_vending\"]",
            );
        let p = parse(&text).problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("input.std/input.scale: expected one of them, found both"));
        assert!(p[1].starts_with("task: expected `detect` for head `yolov8`, found `density`"));
        assert!(p[2].starts_with("categories.tarp: expected a label of the model"));
    }
}
