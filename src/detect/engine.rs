//! The ONNX Runtime side: loading the shared library once per process, opening a model, checking the graph
//! against its manifest (`graph`), and running it: preprocess → session → the manifest's head → NMS →
//! boxes mapped back onto the frame.

use super::density::DensityMap;
use super::graph::{self, TensorInfo};
use super::manifest::{Head, Manifest};
use super::nanodet::{StrideOutput, decode_nanodet};
use super::nms::nms_in_place;
use super::preprocess::Preprocessor;
use super::yolo::{decode_yolov5, decode_yolov8};
use crate::base::{Detection, FrameView, ImageView};
use ndarray::{ArrayView4, Ix3, Ix4};
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "ONNX Runtime library not found; looked in [{0}]; run scripts/setup.sh or set STREETSIGHT_ORT_LIB"
    )]
    RuntimeMissing(String),
    #[error("cannot load ONNX Runtime from {path}: {message}")]
    RuntimeLoad { path: PathBuf, message: String },
    #[error("model `{model}`: {message}")]
    Mismatch { model: String, message: String },
    /// The bundle does not describe the graph (or the file): every problem, each naming its field.
    #[error("model `{model}` does not match its manifest: {}", .problems.join("; "))]
    Invalid {
        model: String,
        problems: Vec<String>,
    },
    #[error("model `{model}`: ONNX Runtime: {message}")]
    Ort { model: String, message: String },
    #[error("model `{model}`: cannot read {path}: {source}")]
    Read {
        model: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

/// Where the ONNX Runtime shared library is looked for, in order.
fn candidate_libraries() -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(p) = std::env::var_os("STREETSIGHT_ORT_LIB") {
        c.push(PathBuf::from(p));
    }
    // The Debian package's private library directory.
    c.push("/usr/lib/streetsight/libonnxruntime.so".into());
    // A development checkout: scripts/setup.sh puts it here.
    c.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/onnxruntime/libonnxruntime.so"));
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        c.push(dir.join("../lib/streetsight/libonnxruntime.so"));
    }
    c
}

/// The first existing ONNX Runtime library.
pub fn runtime_library_path() -> Result<PathBuf, EngineError> {
    let c = candidate_libraries();
    c.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        EngineError::RuntimeMissing(
            c.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        )
    })
}

/// Load ONNX Runtime once for the process (later calls return the first result).
pub fn init_runtime() -> Result<&'static ort::environment::Environment, EngineError> {
    let path = runtime_library_path()?;
    let env = ENVIRONMENT.get_or_init(|| {
        let builder = ort::init_from(&path).map_err(|e| e.to_string())?;
        builder
            .with_name("streetsight")
            .build()
            .map_err(|e| e.to_string())
    });
    env.as_ref().map_err(|message| EngineError::RuntimeLoad {
        path,
        message: message.clone(),
    })
}

/// What one frame gave: boxes (detect models), a density map (density models) or a feature vector
/// (embedders).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    /// At or above the manifest's score threshold, after class-wise NMS, normalised to the frame.
    pub detections: Vec<Detection>,
    pub density: Option<DensityMap>,
    pub embedding: Option<Vec<f32>>,
}

/// A model session with its pre/post-processing. Owned by one worker thread; cameras share it by sending
/// their frames to that worker.
pub struct Detector {
    pub manifest: Manifest,
    /// SHA-256 of the ONNX file, verified against the manifest.
    pub sha256: String,
    session: Session,
    pre: Preprocessor,
    candidates: Vec<Detection>,
    /// YOLOv8 decoding scratch: best score and class per candidate.
    best: Vec<(f32, u32)>,
    times: StageTimes,
}

/// CPU time of the calling thread in each stage of the last `run` (with one intra-op thread, ONNX Runtime
/// works on the calling thread, so this is the whole cost of the frame).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    pub pre: std::time::Duration,
    pub inference: std::time::Duration,
    pub post: std::time::Duration,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("model", &self.manifest.name)
            .finish()
    }
}

/// A session opened from a bundle, with what was found wrong (not yet refused: `verify` reports it all).
pub struct Opened {
    pub session: Session,
    pub sha256: String,
    pub problems: Vec<String>,
}

/// Open the bundle's ONNX file with `threads` intra-op threads and compare hash and I/O with the manifest.
pub fn open(manifest: &Manifest, threads: usize) -> Result<Opened, EngineError> {
    let model = manifest.name.clone();
    let env = init_runtime()?;
    let path = manifest.model_path();
    let bytes = std::fs::read(&path).map_err(|source| EngineError::Read {
        model: model.clone(),
        path: path.clone(),
        source,
    })?;
    let sha256 = crate::base::sha256_hex(&bytes);
    let mut problems = Vec::new();
    if !sha256.eq_ignore_ascii_case(&manifest.sha256) {
        problems.push(format!(
            "sha256: expected {} (the manifest), found {sha256} (sha256 of {}); the file is not the model the manifest describes",
            manifest.sha256,
            path.display()
        ));
    }
    let ort_err = |e: ort::Error| EngineError::Ort {
        model: model.clone(),
        message: e.to_string(),
    };
    let builder = Session::builder(env).map_err(ort_err)?;
    let builder = builder
        .with_intra_threads(threads.max(1))
        .map_err(|e| ort_err(e.into()))?;
    // ONNX Runtime's CPU arena stays on: without it RSS at 8 × 1080p was higher (371–394 MB against 346–348),
    // the freed tensors fragmenting the heap instead (docs/benchmarks.md).
    let mut builder = builder
        .with_inter_threads(1)
        .map_err(|e| ort_err(e.into()))?;
    let session = builder.commit_from_memory(&bytes).map_err(ort_err)?;
    let (inputs, outputs) = graph_io(&session);
    problems.extend(graph::check(manifest, &inputs, &outputs));
    Ok(Opened {
        session,
        sha256,
        problems,
    })
}

/// The graph's inputs and outputs as ONNX Runtime reports them.
pub fn graph_io(session: &Session) -> (Vec<TensorInfo>, Vec<TensorInfo>) {
    let info = |outlets: &[ort::value::Outlet]| {
        outlets
            .iter()
            .map(|o| {
                let (dtype, shape) = match o.dtype() {
                    ValueType::Tensor { ty, shape, .. } => (dtype_name(*ty), shape.to_vec()),
                    _ => ("non-tensor".to_string(), Vec::new()),
                };
                TensorInfo {
                    name: o.name().to_string(),
                    dtype,
                    shape,
                }
            })
            .collect()
    };
    (info(session.inputs()), info(session.outputs()))
}

fn dtype_name(t: TensorElementType) -> String {
    match t {
        TensorElementType::Float32 => "f32".into(),
        TensorElementType::Float16 => "f16".into(),
        TensorElementType::Float64 => "f64".into(),
        TensorElementType::Uint8 => "u8".into(),
        TensorElementType::Int8 => "i8".into(),
        TensorElementType::Int32 => "i32".into(),
        TensorElementType::Int64 => "i64".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

impl Detector {
    /// Open the bundle's ONNX file, refuse it unless its hash and I/O match the manifest.
    pub fn load(manifest: Manifest, threads: usize) -> Result<Detector, EngineError> {
        let opened = open(&manifest, threads)?;
        if !opened.problems.is_empty() {
            return Err(EngineError::Invalid {
                model: manifest.name,
                problems: opened.problems,
            });
        }
        let pre = Preprocessor::new(&manifest.input);
        Ok(Detector {
            manifest,
            sha256: opened.sha256,
            session: opened.session,
            pre,
            candidates: Vec::with_capacity(1024),
            best: Vec::new(),
            times: StageTimes::default(),
        })
    }

    /// Detect objects in an RGB image; boxes are normalised to the image. Returns detections at or above
    /// the manifest's score threshold, after class-wise NMS. Empty for a density model.
    pub fn detect<'a>(
        &mut self,
        img: impl Into<FrameView<'a>>,
    ) -> Result<Vec<Detection>, EngineError> {
        Ok(self.run(img)?.detections)
    }

    /// The CPU time each stage of the last `run` took on the calling thread.
    pub fn last_times(&self) -> StageTimes {
        self.times
    }

    /// Run the model on a picture (RGB, or a decoder's 4:2:0 picture read as it is): boxes for detect
    /// models, the density map for density models.
    pub fn run<'a>(&mut self, img: impl Into<FrameView<'a>>) -> Result<Output, EngineError> {
        let t0 = crate::base::thread_cpu_time();
        let output = self.run_stages(img.into(), t0);
        self.times.post = crate::base::thread_cpu_time()
            .saturating_sub(t0 + self.times.pre + self.times.inference);
        output
    }

    fn run_stages(
        &mut self,
        img: FrameView,
        t0: std::time::Duration,
    ) -> Result<Output, EngineError> {
        let model = &self.manifest.name;
        let ort_err = |e: ort::Error| EngineError::Ort {
            model: model.clone(),
            message: e.to_string(),
        };
        let shape = self.pre.shape();
        let fit = self.pre.fit_for(img);
        let tensor = self.pre.run(img);
        // ndarray views are the currency between our buffers and ONNX Runtime's tensors, both ways.
        let view =
            ArrayView4::from_shape(shape, tensor).expect("the preprocessor fills its own shape");
        let input = TensorRef::from_array_view(view).map_err(ort_err)?;
        let t1 = crate::base::thread_cpu_time();
        self.times.pre = t1.saturating_sub(t0);
        self.times.inference = std::time::Duration::ZERO;
        let outputs = self
            .session
            .run(ort::inputs![self.manifest.input.name.as_str() => input])
            .map_err(ort_err)?;
        self.times.inference = crate::base::thread_cpu_time().saturating_sub(t1);
        let classes = self.manifest.labels.len();
        let input_size = (self.manifest.input.width, self.manifest.input.height);
        let min_score = self.manifest.score_threshold;
        // Dynamic dimensions pass the load-time check; the real shape is checked here, per frame.
        let wrong_shape =
            |name: &str, found: &[usize], expected: &str| wrong_shape(model, name, found, expected);
        // An output as an ndarray view (any number of dimensions), checked before it is read as a slice.
        let output = |name: &str| outputs[name].try_extract_array::<f32>().map_err(ort_err);
        let dense = |name: &str, a| dense(model, name, a);
        let table = |name: &str, a, axis, width, expected: &str| {
            table(model, name, a, axis, width, expected)
        };
        self.candidates.clear();
        match &self.manifest.output {
            Head::Nanodet {
                strides,
                reg_max,
                scores,
                boxes,
            } => {
                let mut per_stride = Vec::with_capacity(strides.len());
                for (i, &stride) in strides.iter().enumerate() {
                    per_stride.push(StrideOutput {
                        stride,
                        scores: dense(&scores[i], output(&scores[i])?)?,
                        boxes: dense(&boxes[i], output(&boxes[i])?)?,
                    });
                }
                decode_nanodet(
                    &per_stride,
                    classes,
                    *reg_max,
                    input_size,
                    min_score,
                    &mut self.candidates,
                );
            }
            Head::Yolov5 { name } => {
                let expected = format!("[1, N, {}]", 5 + classes);
                let t = table(name, output(name)?, 2, 5 + classes, &expected)?;
                decode_yolov5(t, classes, input_size, min_score, &mut self.candidates);
            }
            Head::Yolov8 { name } => {
                let expected = format!("[1, {}, N]", 4 + classes);
                let t = table(name, output(name)?, 1, 4 + classes, &expected)?;
                decode_yolov8(
                    t,
                    classes,
                    input_size,
                    min_score,
                    &mut self.best,
                    &mut self.candidates,
                );
            }
            Head::DensityMap { name } => {
                let a = output(name)?;
                let map = a
                    .view()
                    .into_dimensionality::<Ix4>()
                    .ok()
                    .filter(|m| m.shape()[0] == 1 && m.shape()[1] == 1)
                    .ok_or_else(|| wrong_shape(name, a.shape(), "[1, 1, H, W]"))?;
                return Ok(Output {
                    density: Some(DensityMap {
                        width: map.shape()[3],
                        height: map.shape()[2],
                        values: map.iter().copied().collect(),
                        fit,
                    }),
                    ..Output::default()
                });
            }
            Head::Embedding { name } => {
                let a = output(name)?;
                if a.ndim() != 2 || a.shape()[0] != 1 {
                    return Err(wrong_shape(name, a.shape(), "[1, D]"));
                }
                return Ok(Output {
                    embedding: Some(a.iter().copied().collect()),
                    ..Output::default()
                });
            }
        }
        // NMS before mapping back: IoU does not change under the per-axis scaling, and fewer boxes remain.
        // In place, so the candidate buffer keeps its capacity from frame to frame.
        nms_in_place(&mut self.candidates, self.manifest.nms_iou);
        let detections: Vec<Detection> = self
            .candidates
            .iter()
            .map(|d| Detection {
                bbox: fit.unmap(d.bbox),
                ..d.clone()
            })
            .collect();
        Ok(Output {
            detections,
            ..Output::default()
        })
    }
}

/// An embedder bundle's session gives the zone-state rules their vectors.
impl crate::base::Embed for Detector {
    fn embed(&mut self, picture: &ImageView) -> Result<Vec<f32>, String> {
        self.run(picture)
            .map_err(|e| e.to_string())?
            .embedding
            .ok_or_else(|| {
                format!(
                    "model `{}` is not an embedder (task `embed`)",
                    self.manifest.name
                )
            })
    }

    fn id(&self) -> String {
        self.sha256.clone()
    }
}

/// An output's memory as one slice (ONNX Runtime hands out contiguous tensors; anything else is refused,
/// not copied).
fn dense<'a>(
    model: &str,
    name: &str,
    a: ndarray::ArrayViewD<'a, f32>,
) -> Result<&'a [f32], EngineError> {
    a.to_slice().ok_or_else(|| EngineError::Mismatch {
        model: model.to_string(),
        message: format!("output `{name}` is not laid out contiguously"),
    })
}

/// A `[1, a, b]` output whose dimension `axis` must be `width`, as one slice.
fn table<'a>(
    model: &str,
    name: &str,
    a: ndarray::ArrayViewD<'a, f32>,
    axis: usize,
    width: usize,
    expected: &str,
) -> Result<&'a [f32], EngineError> {
    let ok = a
        .view()
        .into_dimensionality::<Ix3>()
        .is_ok_and(|a3| a3.shape()[0] == 1 && a3.shape()[axis] == width);
    if !ok {
        return Err(wrong_shape(model, name, a.shape(), expected));
    }
    dense(model, name, a)
}

/// Dynamic dimensions pass the load-time check; the real shape is checked per frame.
fn wrong_shape(model: &str, name: &str, found: &[usize], expected: &str) -> EngineError {
    let found: Vec<i64> = found.iter().map(|&d| d as i64).collect();
    EngineError::Mismatch {
        model: model.to_string(),
        message: format!(
            "output `{name}` is {} on this frame; expected {expected}",
            graph::shape_text(&found)
        ),
    }
}
