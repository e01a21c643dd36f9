//! A configured model: its manifest, then the ONNX graph checked against it, in a session with the
//! configured threads — after its signature is checked against the keys the pole trusts. The bundle is the
//! model's active version: an installed one (`installed.rs`) or the configured path.

use super::installed::ModelStore;
use crate::config::LoadedConfig;
use crate::detect::{Detector, Manifest};
use std::path::Path;

/// Load the configured model `name` at its active version.
pub fn load_model(loaded: &LoadedConfig, name: &str) -> Result<Detector, String> {
    let (_, dir) = ModelStore::of(loaded)
        .active_path(loaded, name)
        .ok_or_else(|| format!("no model `{name}` in the configuration"))?;
    load_bundle(loaded, name, &dir)
}

/// Load the bundle at `dir` as model `name` (its threads from the configuration), signature first.
pub fn load_bundle(loaded: &LoadedConfig, name: &str, dir: &Path) -> Result<Detector, String> {
    if !loaded.config.models.contains_key(name) {
        return Err(format!("no model `{name}` in the configuration"));
    }
    let signed = super::trust::check_bundle_trust(loaded, dir)?;
    let manifest = Manifest::load(dir).map_err(|e| e.to_string())?;
    let (threads, _) = model_parallelism(&loaded.config, name);
    let detector = Detector::load(manifest, threads).map_err(|e| e.to_string())?;
    if signed != crate::detect::Signed::Unsigned {
        tracing::info!(model = name, signature = %signed.describe(), "Model bundle signature checked.");
    }
    Ok(detector)
}

/// How model `name` runs: intra-op threads per session and sessions (workers). As configured, or when unset
/// from this machine's cores and the model's cameras, as measured (docs/benchmarks.md): several
/// single-threaded sessions analyse more frames per CPU-second than one session with more threads (a second
/// thread costs 4 % more CPU for half the wall time), so a model gets one worker per core, at most one per
/// camera, and the cores left per worker become its threads (at most 4): on 2 cores one camera gets 1 × 2
/// threads, two or more cameras 2 × 1.
pub fn model_parallelism(config: &crate::config::Config, name: &str) -> (usize, usize) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let cameras = config
        .cameras
        .iter()
        .filter(|c| c.get_ref().model.get_ref() == name)
        .count();
    let m = config.models.get(name).map(|m| m.get_ref());
    parallelism(
        cores,
        cameras,
        (m.and_then(|m| m.threads), m.and_then(|m| m.workers)),
    )
}

/// Threads and workers for `cameras` cameras on `cores` cores, each unless configured.
fn parallelism(
    cores: usize,
    cameras: usize,
    (threads, workers): (Option<usize>, Option<usize>),
) -> (usize, usize) {
    let workers = workers.unwrap_or_else(|| cores.min(cameras).max(1));
    let threads = threads.unwrap_or_else(|| (cores / workers).clamp(1, 4));
    (threads, workers)
}

#[cfg(test)]
mod tests {
    use super::parallelism;

    #[test]
    fn unset_threads_and_workers_follow_the_cores_and_the_cameras() {
        assert_eq!(parallelism(2, 1, (None, None)), (2, 1));
        assert_eq!(parallelism(2, 8, (None, None)), (1, 2));
        assert_eq!(parallelism(8, 3, (None, None)), (2, 3));
        assert_eq!(parallelism(16, 1, (None, None)), (4, 1));
        assert_eq!(parallelism(1, 4, (None, None)), (1, 1));
        assert_eq!(parallelism(2, 0, (None, None)), (2, 1));
        // What is configured stands; the other follows it.
        assert_eq!(parallelism(2, 8, (Some(2), None)), (2, 2));
        assert_eq!(parallelism(4, 8, (None, Some(1))), (4, 1));
    }
}
