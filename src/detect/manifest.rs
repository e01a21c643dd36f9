//! The model bundle manifest: everything the agent needs to feed a model and read its answer.
//!
//! A bundle is a directory with `manifest.toml` and the `.onnx` file it names. The manifest is checked
//! against the real ONNX graph when the model is loaded (see `engine`), so a wrong model never reaches a camera.

use serde::Deserialize;
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
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Memory layout of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
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
    /// Scale each axis independently to the input size.
    Stretch,
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
    /// Per-channel mean subtracted from 0–255 pixel values, in the model's channel order.
    pub mean: [f32; 3],
    /// Per-channel divisor applied after the mean, in the model's channel order.
    pub std: [f32; 3],
    pub resize: ResizeMode,
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
}

/// Output description.
pub type OutputSpec = Head;

/// The manifest as written in `manifest.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    /// `detect` (boxes); density maps arrive with the detection-engine work.
    pub task: String,
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
    pub score_threshold: f32,
    /// IoU above which same-class boxes are merged by NMS.
    pub nms_iou: f32,
    /// Bundle directory (set on load).
    #[serde(skip)]
    pub dir: PathBuf,
}

fn default_file() -> PathBuf {
    "model.onnx".into()
}

impl Manifest {
    /// Read `dir/manifest.toml` and check it is self-consistent and its model file exists. Does not open the
    /// ONNX file: that is the engine's job at load time.
    pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join("manifest.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        let mut m: Manifest = toml::from_str(&text).map_err(|e| ManifestError::Parse {
            path: path.clone(),
            message: e.message().trim().to_string(),
        })?;
        m.dir = dir.to_path_buf();
        let invalid = |message: String| ManifestError::Invalid {
            path: path.clone(),
            message,
        };
        if !m.model_path().is_file() {
            return Err(ManifestError::MissingFile {
                path: path.clone(),
                file: m.model_path(),
            });
        }
        if m.task != "detect" {
            return Err(invalid(format!(
                "task `{}` is not supported; expected `detect`",
                m.task
            )));
        }
        if m.input.dtype != "f32" {
            return Err(invalid(format!(
                "input.dtype `{}` is not supported; expected `f32`",
                m.input.dtype
            )));
        }
        if m.labels.is_empty() {
            return Err(invalid(
                "labels is empty; list the model's classes in index order".into(),
            ));
        }
        if m.input.std.contains(&0.0) {
            return Err(invalid(
                "input.std has a zero; every channel divisor must be non-zero".into(),
            ));
        }
        let Head::Nanodet {
            strides,
            scores,
            boxes,
            ..
        } = &m.output;
        if scores.len() != strides.len() || boxes.len() != strides.len() {
            return Err(invalid(format!(
                "output: {} strides but {} score and {} box tensors; give one of each per stride",
                strides.len(),
                scores.len(),
                boxes.len()
            )));
        }
        if !(0.0..=1.0).contains(&m.score_threshold) || !(0.0..=1.0).contains(&m.nms_iou) {
            return Err(invalid(
                "score_threshold and nms_iou must be within 0..1".into(),
            ));
        }
        Ok(m)
    }

    pub fn model_path(&self) -> PathBuf {
        self.dir.join(&self.file)
    }

    /// Index of a label, if the model has it.
    pub fn label_index(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }
}
