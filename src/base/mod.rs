//! The ground floor: types every stage may use and that use none of them — boxes and detections, image
//! views with a validating constructor, the frame behind which ingest hides GStreamer, backoff, shutdown,
//! hashing, URL redaction and the window of recent measurements.

mod backoff;
mod codes;
mod disk;
mod embed;
mod files;
mod frame;
mod geometry;
mod hash;
mod image;
mod language;
mod process;
mod recent;
mod redact;
mod shutdown;
mod yuv;

pub use backoff::Backoff;
pub use codes::CategoryCodes;
pub use disk::{BALLAST_BYTES, DiskGuard, temporary_name, write_atomic};
pub use embed::{Embed, SharedEmbedder, dot, unit};
pub use files::read_text_capped;
pub use frame::{Frame, FrameMeta, FrameView, Pixels};
pub use geometry::{BBox, Detection};
pub use hash::sha256_hex;
pub use image::{ImageError, ImageView};
pub use language::Language;
pub use process::{disk_free_bytes, process_cpu_seconds, process_rss_bytes, thread_cpu_time};
pub use recent::Recent;
pub use redact::redact_url;
pub use shutdown::Shutdown;
pub use yuv::{Chroma, ColorMatrix, YuvLayout, YuvToRgb, YuvView};
