//! `model_install`'s download: an HTTP(S) URL into the staging directory, resumed where an earlier try
//! stopped (`Range`), capped in size, checked against the expected sha256, then unpacked (tar, or tar.gz)
//! into a directory of plain files. Nothing here touches an installed version; every refusal says why.

use super::command::CommandError;
use sha2::Digest;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// What to fetch and within which limits.
pub(super) struct Fetch<'a> {
    pub url: &'a str,
    /// Lowercase hex.
    pub sha256: &'a str,
    /// Bytes: the archive and what it unpacks to.
    pub cap: u64,
    pub staging: &'a Path,
    pub timeout: Duration,
}

/// Files an archive may hold (a bundle has a manifest, a graph, a signature, a licence and a few notes).
const MAX_ENTRIES: usize = 64;

fn refuse(kind: &'static str, message: String) -> CommandError {
    CommandError::new(kind, format!("{message}; nothing was installed"))
}

impl Fetch<'_> {
    fn part(&self) -> PathBuf {
        self.staging.join(format!("{}.part", self.sha256))
    }

    /// Download (or finish downloading) the archive; its path once its sha256 is the expected one. A cut
    /// download keeps what arrived, and the next try with the same sha256 resumes from there.
    pub fn archive(&self) -> Result<PathBuf, CommandError> {
        std::fs::create_dir_all(self.staging)
            .map_err(|e| refuse("failed", format!("staging directory: {e}")))?;
        let part = self.part();
        let mut have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        if have > self.cap {
            have = 0;
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(self.timeout))
            .build()
            .into();
        let mut request = agent.get(self.url);
        if have > 0 {
            request = request.header("Range", format!("bytes={have}-"));
        }
        let shown = crate::base::redact_url(self.url);
        let response = request.call().map_err(|e| {
            refuse(
                "download_failed",
                format!("could not download {shown}: {e}"),
            )
        })?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let length = header("content-length").and_then(|v| v.parse::<u64>().ok());
        let (start, total) = match status {
            200 => (0, length),
            206 => {
                let range = header("content-range").unwrap_or_default();
                let (from, total) = parse_content_range(&range).ok_or_else(|| {
                    refuse(
                        "download_failed",
                        format!("{shown} answered a range with `Content-Range: {range}`"),
                    )
                })?;
                if from != have {
                    return Err(refuse(
                        "download_failed",
                        format!("{shown} resumed at byte {from}, not at {have}"),
                    ));
                }
                (from, total)
            }
            // Everything is here already (an earlier try got it all but was stopped before the check).
            416 if have > 0 => return self.checked(have),
            _ => {
                return Err(refuse(
                    "download_failed",
                    format!("{shown} answered HTTP {status}"),
                ));
            }
        };
        if let Some(total) = total.filter(|t| *t > self.cap) {
            let _ = std::fs::remove_file(&part);
            return Err(refuse(
                "oversize",
                format!(
                    "the archive is {total} bytes, over this model's max_download_mb ({} bytes)",
                    self.cap
                ),
            ));
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(start == 0)
            .append(start > 0)
            .open(&part)
            .map_err(|e| refuse("failed", format!("staging file: {e}")))?;
        let mut reader = response.into_body().into_reader();
        let mut got = start;
        let mut buf = vec![0u8; 64 * 1024];
        let cut = loop {
            match reader.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => {
                    got += n as u64;
                    if got > self.cap {
                        drop(file);
                        let _ = std::fs::remove_file(&part);
                        return Err(refuse(
                            "oversize",
                            format!(
                                "the download passed this model's max_download_mb ({} bytes) and was stopped",
                                self.cap
                            ),
                        ));
                    }
                    file.write_all(&buf[..n])
                        .map_err(|e| refuse("failed", format!("staging file: {e}")))?;
                }
                Err(e) => break Some(e),
            }
        };
        file.sync_all()
            .map_err(|e| refuse("failed", format!("staging file: {e}")))?;
        if cut.is_some() || total.is_some_and(|t| got < t) {
            let of = total.map_or_else(String::new, |t| format!(" of {t}"));
            let why = cut.map_or_else(String::new, |e| format!(" ({e})"));
            return Err(refuse(
                "truncated",
                format!(
                    "the download was cut after {got}{of} bytes{why}; what arrived is kept and the same model_install resumes it"
                ),
            ));
        }
        self.checked(got)
    }

    /// The part file if its sha256 is the expected one; else it is deleted and the install refused.
    fn checked(&self, bytes: u64) -> Result<PathBuf, CommandError> {
        let part = self.part();
        let actual =
            file_sha256(&part).map_err(|e| refuse("failed", format!("staging file: {e}")))?;
        if actual != self.sha256 {
            let _ = std::fs::remove_file(&part);
            return Err(refuse(
                "hash_mismatch",
                format!(
                    "the archive's sha256 is {actual}, not the expected {} ({bytes} bytes)",
                    self.sha256
                ),
            ));
        }
        Ok(part)
    }
}

/// `bytes FROM-TO/TOTAL` → (FROM, TOTAL when known).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (from, _) = range.split_once('-')?;
    Some((from.trim().parse().ok()?, total.trim().parse().ok()))
}

fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// Unpack the archive at `archive` (tar, or gzip-compressed tar) into `into`: plain files and directories
/// only, no path that leaves `into`, at most `cap` bytes in all. Returns the bundle's directory: `into`,
/// or the one directory inside it that holds `manifest.toml`.
pub(super) fn unpack(archive: &Path, into: &Path, cap: u64) -> Result<PathBuf, CommandError> {
    let bad = |m: String| refuse("invalid_bundle", m);
    let _ = std::fs::remove_dir_all(into);
    std::fs::create_dir_all(into).map_err(|e| refuse("failed", format!("staging: {e}")))?;
    let mut magic = [0u8; 2];
    let mut f = std::fs::File::open(archive).map_err(|e| refuse("failed", e.to_string()))?;
    let gz = f.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let f = std::fs::File::open(archive).map_err(|e| refuse("failed", e.to_string()))?;
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut tar = tar::Archive::new(reader);
    let entries = tar
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    let (mut count, mut bytes) = (0usize, 0u64);
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("archive unreadable: {e}")))?;
        count += 1;
        if count > MAX_ENTRIES {
            return Err(bad(format!(
                "the archive holds more than {MAX_ENTRIES} entries"
            )));
        }
        let path = entry
            .path()
            .map_err(|e| bad(format!("archive entry name: {e}")))?
            .into_owned();
        let parts: Vec<&std::ffi::OsStr> = path
            .components()
            .filter(|c| *c != Component::CurDir)
            .map(|c| match c {
                Component::Normal(p) => Ok(p),
                _ => Err(bad(format!(
                    "archive entry `{}` leaves the bundle",
                    path.display()
                ))),
            })
            .collect::<Result<_, _>>()?;
        if parts.is_empty() {
            continue;
        }
        let target: PathBuf = parts.iter().fold(into.to_path_buf(), |p, c| p.join(c));
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&target).map_err(|e| refuse("failed", e.to_string()))?;
            }
            tar::EntryType::Regular => {
                bytes += entry.header().size().unwrap_or(u64::MAX);
                if bytes > cap {
                    return Err(refuse(
                        "oversize",
                        format!(
                            "the bundle unpacks to more than {cap} bytes (four times this model's max_download_mb)"
                        ),
                    ));
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| refuse("failed", e.to_string()))?;
                }
                let mut out =
                    std::fs::File::create(&target).map_err(|e| refuse("failed", e.to_string()))?;
                std::io::copy(&mut (&mut entry).take(cap), &mut out)
                    .and_then(|_| out.sync_all())
                    .map_err(|e| bad(format!("archive entry `{}`: {e}", path.display())))?;
            }
            other => {
                return Err(bad(format!(
                    "archive entry `{}` is a {other:?}; a bundle holds plain files only",
                    path.display()
                )));
            }
        }
    }
    if into.join("manifest.toml").is_file() {
        return Ok(into.to_path_buf());
    }
    let inner: Vec<PathBuf> = std::fs::read_dir(into)
        .map_err(|e| refuse("failed", e.to_string()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("manifest.toml").is_file())
        .collect();
    match inner.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(bad(
            "the archive holds no manifest.toml (at its top or in one directory)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_gives_the_start_and_the_total() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn an_archive_entry_that_leaves_the_bundle_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("evil.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&archive).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // `set_path` refuses `..`; write the name into the header's bytes as a hostile tool would.
        h.as_old_mut().name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        b.append(&h, &b"abc"[..]).unwrap();
        b.finish().unwrap();
        drop(b);
        let err = unpack(&archive, &dir.path().join("out"), 1 << 20).unwrap_err();
        assert!(err.to_string().contains("leaves the bundle"), "{err}");
        assert!(!dir.path().join("escape").exists());
    }

    #[test]
    fn a_bundle_in_one_directory_or_at_the_top_is_found_and_a_cap_holds() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("b.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&archive).unwrap(),
            flate2::Compression::fast(),
        );
        let mut b = tar::Builder::new(gz);
        for (name, body) in [
            ("bundle/manifest.toml", "x = 1\n"),
            ("bundle/model.onnx", "0123456789"),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, body.as_bytes()).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
        let root = unpack(&archive, &dir.path().join("out"), 1 << 20).unwrap();
        assert_eq!(root, dir.path().join("out/bundle"));
        assert_eq!(
            std::fs::read_to_string(root.join("model.onnx")).unwrap(),
            "0123456789"
        );
        let err = unpack(&archive, &dir.path().join("out2"), 12).unwrap_err();
        assert_eq!(err.code, "oversize", "{err}");
    }
}
