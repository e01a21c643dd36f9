//! Detection: a model bundle (manifest + ONNX file), the ONNX Runtime session that runs it, and the pure
//! pre- and post-processing around it (testable without ONNX Runtime).

mod agreement;
mod density;
mod engine;
mod graph;
mod manifest;
mod nanodet;
mod nms;
mod preprocess;
pub mod probation;
mod signature;
mod yolo;

pub use agreement::{Agreement, ClassAgreement, MATCH_IOU};
pub use density::DensityMap;
pub use engine::{
    Detector, EngineError, Opened, Output, StageTimes, graph_io, init_runtime, open,
    runtime_library_path,
};
pub use graph::{TensorInfo, shape_text};
pub use manifest::{
    ColorOrder, Head, InputSpec, Layout, Manifest, ManifestError, OutputSpec, ResizeMode, Task,
};
pub use nanodet::{StrideOutput, decode_nanodet};
pub use nms::{MAX_PER_CLASS, nms_in_place, nms_per_class};
pub use preprocess::{Fit, Preprocessor};
pub use signature::{SIGNATURE_FILE, Signed, TrustedKey, check_signature, sign_bundle};
pub use yolo::{decode_yolov5, decode_yolov8};
