//! The engineer's side of signed bundles: `models keygen` makes a minisign key pair (the secret key
//! encrypted with a password unless asked not to), `models sign` signs a bundle's manifest with it. The
//! files are minisign's own, so `minisign -Vm manifest.toml -p city.pub` checks a bundle too.

use crate::detect::sign_bundle;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Where a secret key's password comes from when not typed at the prompt.
pub const PASSWORD_ENV: &str = "STREETSIGHT_KEY_PASSWORD";

/// Write `PREFIX.key` (secret) and `PREFIX.pub` (public); never over existing files.
pub fn keygen(prefix: &Path, encrypt: bool) -> Result<(PathBuf, PathBuf)> {
    let secret = prefix.with_extension("key");
    let public = prefix.with_extension("pub");
    for p in [&secret, &public] {
        if p.exists() {
            bail!(
                "{} exists; keys are never overwritten (move it away first)",
                p.display()
            );
        }
    }
    let pair = if encrypt {
        minisign::KeyPair::generate_encrypted_keypair(std::env::var(PASSWORD_ENV).ok())
    } else {
        minisign::KeyPair::generate_unencrypted_keypair()
    }
    .map_err(|e| anyhow::anyhow!("cannot make a key pair: {e}"))?;
    let sk = pair
        .sk
        .to_box(Some("streetsight model signing secret key"))
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string();
    let pk = pair
        .pk
        .to_box()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string();
    write_private(&secret, sk.as_bytes())?;
    std::fs::write(&public, pk).with_context(|| format!("cannot write {}", public.display()))?;
    Ok((secret, public))
}

/// The secret key file, created readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Sign the bundle in `dir` with the secret key file `key` (password from the environment or the prompt
/// when it is encrypted). Returns the signature file and the key id.
pub fn sign(dir: &Path, key: &Path) -> Result<(PathBuf, String)> {
    let text =
        std::fs::read_to_string(key).with_context(|| format!("cannot read {}", key.display()))?;
    let secret = match minisign::SecretKey::from_unencrypted_box(text.clone().into()) {
        Ok(sk) => sk,
        Err(_) => minisign::SecretKey::from_box(text.into(), std::env::var(PASSWORD_ENV).ok())
            .map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?,
    };
    let out = sign_bundle(dir, &secret).map_err(|e| anyhow::anyhow!(e))?;
    let id: String = secret
        .keynum()
        .iter()
        .rev()
        .map(|b| format!("{b:02X}"))
        .collect();
    Ok((out, id))
}

/// Public key files given on the command line.
pub fn read_keys(paths: &[PathBuf]) -> Result<Vec<crate::detect::TrustedKey>> {
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            crate::detect::TrustedKey::parse(&text, &p.display().to_string())
                .map_err(|e| anyhow::anyhow!(e))
        })
        .collect()
}
