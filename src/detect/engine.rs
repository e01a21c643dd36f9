//! The ONNX Runtime side: loading the shared library once per process, opening a model, checking the graph
//! against its manifest, and running it.

use super::manifest::{Head, Layout, Manifest};
use super::nanodet::{StrideOutput, decode_nanodet};
use super::preprocess::{ImageView, Preprocessor};
use super::{Detection, nms_per_class};
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

/// A model session with its pre/post-processing. Owned by one worker thread; cameras share it by sending
/// their frames to that worker.
pub struct Detector {
    pub manifest: Manifest,
    /// SHA-256 of the ONNX file, verified against the manifest.
    pub sha256: String,
    session: Session,
    pre: Preprocessor,
    candidates: Vec<Detection>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("model", &self.manifest.name)
            .finish()
    }
}

impl Detector {
    /// Open the bundle's ONNX file, refuse it unless its hash and I/O match the manifest.
    pub fn load(manifest: Manifest, threads: usize) -> Result<Detector, EngineError> {
        let model = manifest.name.clone();
        let env = init_runtime()?;
        let path = manifest.model_path();
        let bytes = std::fs::read(&path).map_err(|source| EngineError::Read {
            model: model.clone(),
            path: path.clone(),
            source,
        })?;
        let sha256 = crate::ops::sha256_hex(&bytes);
        if !sha256.eq_ignore_ascii_case(&manifest.sha256) {
            return Err(EngineError::Mismatch {
                model,
                message: format!(
                    "sha256 of {} is {sha256}, the manifest says {}; the file is not the model the manifest describes",
                    path.display(),
                    manifest.sha256
                ),
            });
        }
        let ort_err = |e: ort::Error| EngineError::Ort {
            model: model.clone(),
            message: e.to_string(),
        };
        let builder = Session::builder(env).map_err(ort_err)?;
        let builder = builder
            .with_intra_threads(threads)
            .map_err(|e| ort_err(e.into()))?;
        let mut builder = builder
            .with_inter_threads(1)
            .map_err(|e| ort_err(e.into()))?;
        let session = builder.commit_from_memory(&bytes).map_err(ort_err)?;
        check_io(&manifest, &session).map_err(|message| EngineError::Mismatch {
            model: model.clone(),
            message,
        })?;
        let pre = Preprocessor::new(&manifest.input);
        Ok(Detector {
            manifest,
            sha256,
            session,
            pre,
            candidates: Vec::with_capacity(1024),
        })
    }

    /// Detect objects in an RGB image; boxes are normalised to the image. Returns detections at or above
    /// the manifest's score threshold, after class-wise NMS.
    pub fn detect(&mut self, img: &ImageView) -> Result<Vec<Detection>, EngineError> {
        let model = &self.manifest.name;
        let ort_err = |e: ort::Error| EngineError::Ort {
            model: model.clone(),
            message: e.to_string(),
        };
        let shape = self.pre.shape();
        let tensor = self.pre.run(img);
        let input = TensorRef::from_array_view((shape, tensor)).map_err(ort_err)?;
        let outputs = self
            .session
            .run(ort::inputs![self.manifest.input.name.as_str() => input])
            .map_err(ort_err)?;
        let Head::Nanodet {
            strides,
            reg_max,
            scores,
            boxes,
        } = &self.manifest.output;
        let mut per_stride = Vec::with_capacity(strides.len());
        for (i, &stride) in strides.iter().enumerate() {
            let (_, s) = outputs[scores[i].as_str()]
                .try_extract_tensor::<f32>()
                .map_err(ort_err)?;
            let (_, b) = outputs[boxes[i].as_str()]
                .try_extract_tensor::<f32>()
                .map_err(ort_err)?;
            per_stride.push(StrideOutput {
                stride,
                scores: s,
                boxes: b,
            });
        }
        self.candidates.clear();
        let input_size = (self.manifest.input.width, self.manifest.input.height);
        decode_nanodet(
            &per_stride,
            self.manifest.labels.len(),
            *reg_max,
            input_size,
            self.manifest.score_threshold,
            &mut self.candidates,
        );
        Ok(nms_per_class(
            std::mem::take(&mut self.candidates),
            self.manifest.nms_iou,
        ))
    }
}

fn dims_match(found: &[i64], expected: &[i64]) -> bool {
    found.len() == expected.len() && found.iter().zip(expected).all(|(f, e)| *f < 0 || f == e)
}

fn tensor_of<'a>(
    outlets: &'a [ort::value::Outlet],
    name: &str,
    kind: &str,
) -> Result<(&'a [i64], TensorElementType), String> {
    let names = || {
        outlets
            .iter()
            .map(|o| o.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let outlet = outlets.iter().find(|o| o.name() == name).ok_or_else(|| {
        format!(
            "{kind} `{name}` is not in the graph; the graph has [{}]",
            names()
        )
    })?;
    match outlet.dtype() {
        ValueType::Tensor { ty, shape, .. } => Ok((shape, *ty)),
        other => Err(format!("{kind} `{name}` is not a tensor but {other:?}")),
    }
}

/// Compare the graph's real inputs and outputs with the manifest.
fn check_io(m: &Manifest, session: &Session) -> Result<(), String> {
    let (shape, ty) = tensor_of(session.inputs(), &m.input.name, "input")?;
    if ty != TensorElementType::Float32 {
        return Err(format!(
            "input `{}` has element type {ty:?}; the manifest says f32",
            m.input.name
        ));
    }
    let (w, h) = (m.input.width as i64, m.input.height as i64);
    let expected = match m.input.layout {
        Layout::Nchw => [1, 3, h, w],
        Layout::Nhwc => [1, h, w, 3],
    };
    if !dims_match(shape, &expected) {
        return Err(format!(
            "input `{}` has shape {shape:?}; the manifest ({:?}, {w}×{h}) implies {expected:?}",
            m.input.name, m.input.layout
        ));
    }
    let Head::Nanodet {
        strides,
        reg_max,
        scores,
        boxes,
    } = &m.output;
    let classes = m.labels.len() as i64;
    for (i, &stride) in strides.iter().enumerate() {
        let cells = (m.input.width.div_ceil(stride) * m.input.height.div_ceil(stride)) as i64;
        let (s, _) = tensor_of(session.outputs(), &scores[i], "output")?;
        if !dims_match(s, &[1, cells, classes]) {
            return Err(format!(
                "output `{}` has shape {s:?}; expected [1, {cells}, {classes}] for stride {stride} with {classes} labels",
                scores[i]
            ));
        }
        let (b, _) = tensor_of(session.outputs(), &boxes[i], "output")?;
        let bins = 4 * (*reg_max as i64 + 1);
        if !dims_match(b, &[1, cells, bins]) {
            return Err(format!(
                "output `{}` has shape {b:?}; expected [1, {cells}, {bins}] for stride {stride} with reg_max {reg_max}",
                boxes[i]
            ));
        }
    }
    Ok(())
}
