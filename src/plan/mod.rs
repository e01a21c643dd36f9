//! The plan: configuration in, each stage's own typed settings out. `load` parses the file (`crate::config`)
//! and runs every cross-field check once (`validate.rs`, `rules.rs`, `geometry.rs`, `device.rs`: every problem with `file:line` and the
//! fix, all reported together); the builders here turn the checked file into what the stages take — a
//! camera's source (`camera.rs`), its analyser with zones, schedules, homographies and rule parameters
//! resolved against the model's labels (`analyser.rs`), the model's session (`model.rs`), the uplink's
//! connection and store settings (`uplink.rs`). The stages never see `crate::config`.

mod analyser;
mod camera;
mod check;
mod console;
mod device;
mod geometry;
mod health;
pub mod installed;
mod model;
mod place;
pub(crate) mod rules;
mod trust;
mod uplink;
mod validate;
mod zone_state;

pub use analyser::{analyser, analysers, has_rule, rule_problems};
pub use camera::camera_source;
pub use device::{CAPTION_FONTS, caption_font, caption_font_path, load_caption_font};
pub use geometry::{scene_reference_file, scene_reference_states, zone_area};
pub use health::{camera_health_params, view_picture_file, view_reference_file};
pub use installed::ModelStore;
pub use model::{load_bundle, load_model, model_parallelism};
pub use place::{merged_extensions, wording};
pub use rules::zone_spec;
pub use trust::{check_bundle_trust, trusted_keys};
pub use uplink::{store_bounds, uplink_settings};
pub use zone_state::examples_dir;

use crate::config::{ConfigErrors, Lines, LoadedConfig};
use std::path::Path;

/// Read, parse and check the configuration file at `path`.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigErrors> {
    let (loaded, text) = crate::config::parse(path)?;
    checked(loaded, path, &text)
}

/// Parse and check configuration text that was read from `path`.
pub fn load_str(path: &Path, text: &str) -> Result<LoadedConfig, ConfigErrors> {
    checked(crate::config::parse_str(path, text)?, path, text)
}

fn checked(loaded: LoadedConfig, path: &Path, text: &str) -> Result<LoadedConfig, ConfigErrors> {
    let lines = Lines::new(path, text);
    let errors = validate::validate(&loaded.config, &loaded.base_dir, &lines);
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(ConfigErrors(errors))
    }
}
