//! Evidence pictures on the city side: kept by their SHA-256 (the one the event names, so a picture is
//! checked on arrival and stored once however often it is delivered) and served to the work-order system
//! over HTTP at signed URLs that expire: `/evidence/{sha256}.jpg?exp={unix s}&sig={hex}`, the signature an
//! HMAC-SHA256 over `{sha256}.{exp}` with the bridge's own key.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The evidence directory: `{dir}/{first two hex digits}/{sha256}.jpg`.
#[derive(Debug, Clone)]
pub struct EvidenceStore {
    dir: PathBuf,
    secret: Vec<u8>,
    public_url: String,
    ttl: Duration,
}

/// Why a URL serves nothing.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// Not a URL this bridge signed.
    Forged,
    Expired,
    NotFound,
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// HMAC-SHA256 of `message` under `key`, hex.
pub fn sign(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// `signature` (hex) is the HMAC-SHA256 of `message` under `key` (compared in constant time).
pub fn verify(key: &[u8], message: &[u8], signature: &str) -> bool {
    let Ok(bytes) = hex::decode(signature) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.verify_slice(&bytes).is_ok()
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl EvidenceStore {
    pub fn new(dir: &Path, secret: &[u8], public_url: &str, ttl: Duration) -> Self {
        Self {
            dir: dir.to_path_buf(),
            secret: secret.to_vec(),
            public_url: public_url.trim_end_matches('/').to_string(),
            ttl,
        }
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(&sha256[..2]).join(format!("{sha256}.jpg"))
    }

    /// Delete the pictures that arrived more than `older_than` ago; returns their SHA-256s.
    pub fn sweep(&self, older_than: Duration) -> std::io::Result<Vec<String>> {
        let cutoff = SystemTime::now() - older_than;
        let mut gone = Vec::new();
        let Ok(shards) = std::fs::read_dir(&self.dir) else {
            return Ok(gone); // nothing arrived yet
        };
        for shard in shards.flatten().filter(|e| e.path().is_dir()) {
            for file in std::fs::read_dir(shard.path())?.flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                let Some(sha) = name.strip_suffix(".jpg").filter(|s| is_sha256(s)) else {
                    continue;
                };
                if file.metadata()?.modified()? < cutoff {
                    std::fs::remove_file(file.path())?;
                    gone.push(sha.to_string());
                }
            }
        }
        Ok(gone)
    }

    /// Keep `picture`; its SHA-256 (the name it is served under) is returned.
    pub fn put(&self, picture: &[u8]) -> std::io::Result<String> {
        let sha = crate::base::sha256_hex(picture);
        let path = self.path(&sha);
        if !path.is_file() {
            std::fs::create_dir_all(path.parent().expect("has a parent"))?;
            crate::base::write_atomic(&path, picture)?;
        }
        Ok(sha)
    }

    /// Picture `sha256` is kept.
    pub fn has(&self, sha256: &str) -> bool {
        is_sha256(sha256) && self.path(sha256).is_file()
    }

    /// A URL that serves picture `sha256` until the TTL from now.
    pub fn url(&self, sha256: &str) -> String {
        let exp = now_s() + self.ttl.as_secs();
        let sig = sign(&self.secret, format!("{sha256}.{exp}").as_bytes());
        format!(
            "{}/evidence/{sha256}.jpg?exp={exp}&sig={sig}",
            self.public_url
        )
    }

    /// The picture a signed URL names, if its signature holds and it has not expired.
    pub fn open(&self, file: &str, exp: u64, sig: &str) -> Result<Vec<u8>, Refusal> {
        let sha = file
            .strip_suffix(".jpg")
            .filter(|s| is_sha256(s))
            .ok_or(Refusal::NotFound)?;
        if !verify(&self.secret, format!("{sha}.{exp}").as_bytes(), sig) {
            return Err(Refusal::Forged);
        }
        if exp < now_s() {
            return Err(Refusal::Expired);
        }
        std::fs::read(self.path(sha)).map_err(|_| Refusal::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, u64, String) {
        let u = url::Url::parse(url).unwrap();
        let file = u.path().rsplit('/').next().unwrap().to_string();
        let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
        (file, q["exp"].parse().unwrap(), q["sig"].clone())
    }

    #[test]
    fn a_signed_url_serves_its_picture_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = EvidenceStore::new(
            dir.path(),
            b"0123456789abcdef",
            "https://bridge.example/",
            Duration::from_secs(600),
        );
        let sha = store.put(b"\xff\xd8picture").unwrap();
        assert_eq!(sha, crate::base::sha256_hex(b"\xff\xd8picture"));
        let url = store.url(&sha);
        assert!(url.starts_with("https://bridge.example/evidence/"), "{url}");
        let (file, exp, sig) = parts(&url);
        assert_eq!(store.open(&file, exp, &sig).unwrap(), b"\xff\xd8picture");
        assert_eq!(
            store.open(&file, exp + 1, &sig),
            Err(Refusal::Forged),
            "a longer life is not signed"
        );
        let other = store.put(b"another").unwrap();
        assert_eq!(
            store.open(&format!("{other}.jpg"), exp, &sig),
            Err(Refusal::Forged)
        );
        let past = now_s() - 1;
        let old = sign(b"0123456789abcdef", format!("{sha}.{past}").as_bytes());
        assert_eq!(store.open(&file, past, &old), Err(Refusal::Expired));
        assert_eq!(
            store.open("../../etc/passwd", exp, &sig),
            Err(Refusal::NotFound)
        );
    }

    #[test]
    fn the_sweep_deletes_only_pictures_older_than_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = EvidenceStore::new(
            dir.path(),
            b"0123456789abcdef",
            "http://b/",
            Duration::from_secs(60),
        );
        let old = store.put(b"old picture").unwrap();
        let new = store.put(b"new picture").unwrap();
        let month_ago = SystemTime::now() - Duration::from_secs(31 * 86_400);
        std::fs::File::options()
            .append(true)
            .open(store.path(&old))
            .unwrap()
            .set_modified(month_ago)
            .unwrap();
        assert_eq!(
            store.sweep(Duration::from_secs(30 * 86_400)).unwrap(),
            vec![old.clone()]
        );
        assert!(!store.has(&old) && store.has(&new));
        assert!(
            store
                .sweep(Duration::from_secs(30 * 86_400))
                .unwrap()
                .is_empty()
        );
    }
}
