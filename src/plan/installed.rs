//! Model versions installed on the pole (by `model_install`) beside the configured bundle: where each one
//! lives, which one is active, which were active before it (what `model_rollback` goes back to) and which
//! was the last to pass its probation. Kept under `<state_dir>/models/<model>/`, one directory per version
//! (`<version>-<first 12 hex of the ONNX sha256>`), and `state.json`, written whole or not at all. An
//! installed version stays active across restarts and reloads until it is rolled back or another is
//! activated; `configured` names the bundle at the configuration's `path`.

use crate::config::LoadedConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The version name of the bundle the configuration points at.
pub const CONFIGURED: &str = "configured";

/// Where the state of a model's versions is kept.
const STATE: &str = "state.json";
/// The downloaded archive's sha256, kept beside an installed bundle (a second install is then a no-op).
pub const ARCHIVE_SHA: &str = ".archive-sha256";

/// Which of a model's versions runs, and which ran before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    /// The active version: an installed directory's name, or `configured`.
    pub active: String,
    /// Earlier active versions, the most recent last: where a rollback goes.
    #[serde(default)]
    pub history: Vec<String>,
    /// The last version that ran its probation through without a fault.
    pub last_good: String,
    /// The last time the pole went back by itself, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<RolledBack>,
}

impl Default for Versions {
    fn default() -> Self {
        Versions {
            active: CONFIGURED.into(),
            history: Vec::new(),
            last_good: CONFIGURED.into(),
            rolled_back: None,
        }
    }
}

/// An automatic rollback: from which version, to which, why and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolledBack {
    pub from: String,
    pub to: String,
    pub reason: String,
    pub at: String,
}

/// An installed version as `models` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    /// Its directory's name, which `model_activate` accepts as the version.
    pub name: String,
    /// The manifest's version and name.
    pub version: String,
    pub bundle: String,
    /// The ONNX file's sha256 the manifest pins.
    pub sha256: String,
    /// The archive it was installed from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_sha256: Option<String>,
}

/// The installed versions of every model of one pole.
#[derive(Debug, Clone)]
pub struct ModelStore {
    root: PathBuf,
}

impl ModelStore {
    /// The store under the configuration's state directory.
    pub fn of(loaded: &LoadedConfig) -> Self {
        ModelStore {
            root: loaded.config.storage.state_dir.get_ref().join("models"),
        }
    }

    /// Where model `model`'s versions are installed.
    pub fn dir(&self, model: &str) -> PathBuf {
        self.root.join(model)
    }

    /// Where downloads and unpacked bundles wait until they are checked (same disk: the final move is a
    /// rename, so a version is either wholly installed or not at all).
    pub fn staging(&self) -> PathBuf {
        self.root.join(".staging")
    }

    /// Model `model`'s versions as last saved; an unreadable file is logged and read as "the configured
    /// bundle runs" (the safe default: the file the installer wrote).
    pub fn versions(&self, model: &str) -> Versions {
        let path = self.dir(model).join(STATE);
        let Ok(text) = crate::base::read_text_capped(&path, 1 << 20) else {
            return Versions::default();
        };
        serde_json::from_str(&text).unwrap_or_else(|error| {
            tracing::error!(file = %path.display(), %error, "Model versions unreadable; the configured bundle runs.");
            Versions::default()
        })
    }

    pub fn save(&self, model: &str, v: &Versions) -> std::io::Result<()> {
        std::fs::create_dir_all(self.dir(model))?;
        let json = serde_json::to_vec_pretty(v).expect("versions serialise");
        crate::base::write_atomic(&self.dir(model).join(STATE), &json)
    }

    /// The bundle directory of `version` of model `model`.
    pub fn path_of(&self, loaded: &LoadedConfig, model: &str, version: &str) -> Option<PathBuf> {
        if version == CONFIGURED {
            let m = loaded.config.models.get(model)?.get_ref();
            return Some(loaded.resolve(&m.path));
        }
        Some(self.dir(model).join(version)).filter(|d| d.join("manifest.toml").is_file())
    }

    /// The bundle model `model` runs: the active installed version, or the configured one when none is
    /// active or the active one's directory is gone.
    pub fn active_path(&self, loaded: &LoadedConfig, model: &str) -> Option<(String, PathBuf)> {
        let active = self.versions(model).active;
        if let Some(p) = self.path_of(loaded, model, &active) {
            return Some((active, p));
        }
        tracing::error!(model, version = %active, "The active model version is not on disk; the configured bundle runs.");
        self.path_of(loaded, model, CONFIGURED)
            .map(|p| (CONFIGURED.to_string(), p))
    }

    /// Model `model`'s installed versions, oldest first.
    pub fn installed(&self, model: &str) -> Vec<Installed> {
        let Ok(entries) = std::fs::read_dir(self.dir(model)) else {
            return Vec::new();
        };
        let mut found: Vec<(std::time::SystemTime, Installed)> = entries
            .flatten()
            .filter(|e| e.path().join("manifest.toml").is_file())
            .filter_map(|e| {
                let dir = e.path();
                let m = crate::detect::Manifest::load(&dir).ok()?;
                let at = e.metadata().and_then(|m| m.modified()).ok()?;
                let archive_sha256 = std::fs::read_to_string(dir.join(ARCHIVE_SHA))
                    .ok()
                    .map(|s| s.trim().to_string());
                Some((
                    at,
                    Installed {
                        name: e.file_name().to_string_lossy().into_owned(),
                        version: m.version,
                        bundle: m.name,
                        sha256: m.sha256,
                        archive_sha256,
                    },
                ))
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
        found.into_iter().map(|(_, i)| i).collect()
    }

    /// The version `wanted` names: `configured`, an installed directory's name, or a manifest version (the
    /// latest installed with it).
    pub fn find(&self, model: &str, wanted: &str) -> Option<String> {
        if wanted == CONFIGURED {
            return Some(CONFIGURED.into());
        }
        let installed = self.installed(model);
        installed
            .iter()
            .find(|i| i.name == wanted)
            .or_else(|| installed.iter().rev().find(|i| i.version == wanted))
            .map(|i| i.name.clone())
    }

    /// Remove installed versions beyond the newest `keep`, never the active one, one a rollback may go
    /// back to, or the last good one.
    pub fn prune(&self, model: &str, keep: usize) {
        let v = self.versions(model);
        let installed = self.installed(model);
        let surplus = installed.len().saturating_sub(keep);
        for i in installed.iter().take(surplus) {
            let name = i.name.as_str();
            if name == v.active || name == v.last_good || v.history.iter().any(|h| h == name) {
                continue;
            }
            let dir = self.dir(model).join(name);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!(model, version = name, "Old model version removed."),
                Err(error) => {
                    tracing::warn!(model, version = name, %error, "Old model version not removed.")
                }
            }
        }
    }
}

/// The directory name of a bundle with manifest `version` and ONNX `sha256`: the version's safe
/// characters (at most 40) and the hash's first 12 hex digits.
pub fn version_dir_name(version: &str, sha256: &str) -> String {
    let safe: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let safe = safe.trim_start_matches('.');
    let short: String = sha256.chars().take(12).collect();
    format!("{}-{short}", if safe.is_empty() { "v" } else { safe })
}

/// Can `name` be a version directory's name (one plain path component: it never escapes the store)?
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && Path::new(name).components().count() == 1
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_directory_name_is_safe_and_tells_versions_apart_by_hash() {
        assert_eq!(
            version_dir_name("2.1", "abcdef0123456789"),
            "2.1-abcdef012345"
        );
        assert_eq!(
            version_dir_name("../../etc", "00112233445566"),
            "_.._etc-001122334455"
        );
        assert_eq!(version_dir_name("", "ff"), "v-ff");
        assert!(is_plain_name(&version_dir_name("a b/c", "12")));
        assert!(!is_plain_name("../x") && !is_plain_name(".staging") && !is_plain_name(""));
    }

    #[test]
    fn an_unwritten_model_runs_its_configured_bundle() {
        let v = Versions::default();
        assert_eq!(
            (v.active.as_str(), v.last_good.as_str()),
            (CONFIGURED, CONFIGURED)
        );
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<Versions>(&json).unwrap(), v);
    }
}
