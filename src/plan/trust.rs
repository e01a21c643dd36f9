//! `[model_trust]`: the keys a pole trusts to sign model bundles (files or inline keys), checked at
//! file:line, and the signature check every bundle passes before a session is opened for it.

use super::check::Check;
use crate::config::{Config, LoadedConfig, resolve};
use crate::detect::{Signed, TrustedKey, check_signature};
use std::path::Path;

/// The most keys a pole trusts.
pub const MAX_KEYS: usize = 16;

/// The trusted keys; a key that cannot be read is left out (validation reported it).
pub fn trusted_keys(config: &Config, base: &Path) -> Vec<TrustedKey> {
    config
        .model_trust
        .keys
        .iter()
        .filter_map(|k| read_key(k.get_ref(), base).ok())
        .collect()
}

fn read_key(entry: &str, base: &Path) -> Result<TrustedKey, String> {
    if entry.starts_with("RW") && !entry.contains('/') {
        return TrustedKey::parse(entry, "inline");
    }
    let path = resolve(base, Path::new(entry));
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "model_trust.keys: cannot read the public key file {} ({e}); give the path of a minisign .pub file or the key itself (RWQ…)",
            path.display()
        )
    })?;
    TrustedKey::parse(&text, &path.display().to_string())
}

pub(crate) fn verify_trust(c: &mut Check, config: &Config) {
    let trust = &config.model_trust;
    if let Some(extra) = trust.keys.get(MAX_KEYS) {
        c.push(
            extra,
            format!("model_trust.keys: at most {MAX_KEYS} keys (a key per signing party, not per bundle)"),
        );
    }
    for key in &trust.keys {
        if let Err(e) = read_key(key.get_ref(), c.base) {
            c.push(key, e);
        }
    }
    if let Some(required) = &trust.require_signature
        && *required.get_ref()
        && trust.keys.is_empty()
    {
        c.push(
            required,
            "model_trust.require_signature = true needs at least one key in model_trust.keys (the .pub file `streetsight models keygen` wrote)",
        );
    }
}

/// Check the bundle in `dir` against the pole's trust: a bad or untrusted signature is refused, and so is
/// an unsigned bundle when signatures are required.
pub fn check_bundle_trust(loaded: &LoadedConfig, dir: &Path) -> Result<Signed, String> {
    let keys = trusted_keys(&loaded.config, &loaded.base_dir);
    let signed = check_signature(dir, &keys)?;
    if signed == Signed::Unsigned && loaded.config.model_trust.required() {
        return Err(format!(
            "{}: the bundle is not signed and model_trust.require_signature = true; sign it with `streetsight models sign {} --key KEY.key`",
            dir.display(),
            dir.display()
        ));
    }
    Ok(signed)
}
