//! Signed bundles: a detached minisign (Ed25519) signature over the bundle's `manifest.toml`, which pins the
//! ONNX file's sha256 (checked again when the session loads) — so one signature covers the whole bundle.
//! The signature's trusted comment names the bundle, its version and the hash it was signed for.

use super::Manifest;
use std::path::{Path, PathBuf};

/// The signature file inside a bundle directory (minisign's own naming: `FILE.minisig`).
pub const SIGNATURE_FILE: &str = "manifest.toml.minisig";

/// A public key a pole trusts to sign bundles.
#[derive(Clone)]
pub struct TrustedKey {
    /// minisign's key id, 16 hex digits (as `minisign -V` prints it).
    pub id: String,
    /// Where it was configured (a file, or "inline").
    pub origin: String,
    key: minisign::PublicKey,
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustedKey({} from {})", self.id, self.origin)
    }
}

fn key_id(keynum: &[u8]) -> String {
    keynum.iter().rev().map(|b| format!("{b:02X}")).collect()
}

impl TrustedKey {
    /// A key from the text of a minisign `.pub` file (comment line + key line) or the bare key line.
    pub fn parse(text: &str, origin: &str) -> Result<TrustedKey, String> {
        let line = text
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .unwrap_or_default();
        let key = minisign::PublicKey::from_base64(line)
            .map_err(|e| format!("{origin}: not a minisign public key ({e})"))?;
        Ok(TrustedKey {
            id: key_id(key.keynum()),
            origin: origin.to_string(),
            key,
        })
    }
}

/// What a bundle's signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signed {
    /// No signature file.
    Unsigned,
    /// Signed, but the pole trusts no key, so it was not checked.
    Unchecked { key_id: String },
    /// Signed by a trusted key, and the manifest is the one it signed.
    Verified {
        key_id: String,
        origin: String,
        comment: String,
    },
}

impl Signed {
    pub fn describe(&self) -> String {
        match self {
            Signed::Unsigned => "unsigned".into(),
            Signed::Unchecked { key_id } => {
                format!("signed by key {key_id} (not checked: this pole trusts no key)")
            }
            Signed::Verified {
                key_id,
                origin,
                comment,
            } => format!("signed by trusted key {key_id} ({origin}): {comment}"),
        }
    }
}

/// Check the bundle in `dir` against the keys the pole trusts. An error names the key and the file.
pub fn check_signature(dir: &Path, trusted: &[TrustedKey]) -> Result<Signed, String> {
    let sig_path = dir.join(SIGNATURE_FILE);
    let manifest_path = dir.join("manifest.toml");
    if !sig_path.exists() {
        return Ok(Signed::Unsigned);
    }
    let sig = minisign::SignatureBox::from_file(&sig_path)
        .map_err(|e| format!("{}: not a minisign signature ({e})", sig_path.display()))?;
    let key_id = key_id(sig.keynum());
    if trusted.is_empty() {
        return Ok(Signed::Unchecked { key_id });
    }
    let Some(key) = trusted.iter().find(|k| k.id == key_id) else {
        return Err(format!(
            "{}: signed by key {key_id}, which this pole does not trust (trusted: {})",
            sig_path.display(),
            trusted
                .iter()
                .map(|k| format!("{} from {}", k.id, k.origin))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    let manifest = std::fs::File::open(&manifest_path)
        .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    minisign::verify(&key.key, &sig, manifest, true, false, false).map_err(|e| {
        format!(
            "{}: the signature {} by key {key_id} ({}) does not verify ({e}): the manifest was changed after signing, or the signature is damaged",
            manifest_path.display(),
            sig_path.display(),
            key.origin
        )
    })?;
    Ok(Signed::Verified {
        key_id,
        origin: key.origin.clone(),
        comment: sig.trusted_comment().unwrap_or_default(),
    })
}

/// Sign the bundle in `dir` with `secret` (decrypted): writes `manifest.toml.minisig` next to the
/// manifest, whose trusted comment names the bundle, version and ONNX hash. The ONNX file must hash to
/// what the manifest says, or nothing is signed.
pub fn sign_bundle(dir: &Path, secret: &minisign::SecretKey) -> Result<PathBuf, String> {
    let manifest = Manifest::load(dir).map_err(|e| e.to_string())?;
    let onnx = manifest.model_path();
    let bytes = std::fs::read(&onnx).map_err(|e| format!("{}: {e}", onnx.display()))?;
    let sha = crate::base::sha256_hex(&bytes);
    if !sha.eq_ignore_ascii_case(&manifest.sha256) {
        return Err(format!(
            "{}: sha256 is {sha} but the manifest says {}; fix the manifest before signing",
            onnx.display(),
            manifest.sha256
        ));
    }
    let manifest_path = dir.join("manifest.toml");
    let file = std::fs::File::open(&manifest_path)
        .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let comment = format!(
        "streetsight bundle {} {} sha256:{}",
        manifest.name, manifest.version, manifest.sha256
    );
    let public = minisign::PublicKey::from_secret_key(secret).ok();
    let sig = minisign::sign(
        public.as_ref(),
        secret,
        file,
        Some(&comment),
        Some("signature from streetsight models sign"),
    )
    .map_err(|e| format!("cannot sign {}: {e}", manifest_path.display()))?;
    let out = dir.join(SIGNATURE_FILE);
    crate::base::write_atomic(&out, sig.to_string().as_bytes())
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(dir: &Path) {
        let onnx = b"not really onnx";
        std::fs::write(dir.join("model.onnx"), onnx).unwrap();
        let manifest = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models/nanodet-g-416/manifest.toml"),
        )
        .unwrap();
        let sha = manifest
            .lines()
            .find(|l| l.starts_with("sha256"))
            .unwrap()
            .to_string();
        let manifest = manifest.replace(
            &sha,
            &format!("sha256 = \"{}\"", crate::base::sha256_hex(onnx)),
        );
        std::fs::write(dir.join("manifest.toml"), manifest).unwrap();
    }

    #[test]
    fn signed_verified_tampered_and_untrusted() {
        let dir = tempfile::tempdir().unwrap();
        bundle(dir.path());
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let other = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let trusted =
            TrustedKey::parse(&pair.pk.to_box().unwrap().to_string(), "city.pub").unwrap();
        let stranger = TrustedKey::parse(&other.pk.to_base64(), "inline").unwrap();
        assert_eq!(
            check_signature(dir.path(), std::slice::from_ref(&trusted)),
            Ok(Signed::Unsigned)
        );
        sign_bundle(dir.path(), &pair.sk).unwrap();
        let ok = check_signature(dir.path(), std::slice::from_ref(&trusted)).unwrap();
        assert!(
            matches!(&ok, Signed::Verified { key_id, comment, .. } if key_id == &trusted.id && comment.contains("nanodet-g-416 1.0.0 sha256:")),
            "{ok:?}"
        );
        let e = check_signature(dir.path(), std::slice::from_ref(&stranger)).unwrap_err();
        assert!(
            e.contains(&trusted.id) && e.contains("does not trust") && e.contains(SIGNATURE_FILE),
            "{e}"
        );
        // One changed byte in the manifest (a different threshold) breaks it.
        let m = std::fs::read_to_string(dir.path().join("manifest.toml")).unwrap();
        std::fs::write(
            dir.path().join("manifest.toml"),
            m.replace("score_threshold = 0.35", "score_threshold = 0.15"),
        )
        .unwrap();
        let e = check_signature(dir.path(), &[trusted]).unwrap_err();
        assert!(
            e.contains("does not verify") && e.contains("city.pub"),
            "{e}"
        );
    }

    #[test]
    fn a_bundle_whose_onnx_does_not_match_is_not_signed() {
        let dir = tempfile::tempdir().unwrap();
        bundle(dir.path());
        std::fs::write(dir.path().join("model.onnx"), b"something else").unwrap();
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let e = sign_bundle(dir.path(), &pair.sk).unwrap_err();
        assert!(e.contains("fix the manifest before signing"), "{e}");
        assert!(!dir.path().join(SIGNATURE_FILE).exists());
    }
}
