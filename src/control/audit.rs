//! The audit log: one JSON line per command and configuration change, synced to disk before the command
//! acts (等级保护 asks for it; a dispatcher's suppression must be traceable). Rotated by size into
//! [`KEPT_ROTATIONS`] older files, and every entry is small (commands are capped, echoed fields too), so no
//! single command can rotate the history away. Read back at start so nonces used before a restart stay used.

use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {source}")]
pub struct AuditError {
    path: PathBuf,
    source: std::io::Error,
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct AuditEntry {
    pub time: String,
    /// Where it came from: `mqtt`, `signal`.
    pub source: String,
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Milliseconds since the epoch when the agent accepted or refused it.
    pub at_ms: i64,
    /// `accepted`, `refused`, `done`, `failed`.
    pub outcome: String,
    /// The command's fields or the refusal / failure reason.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

pub struct AuditLog {
    path: PathBuf,
    file: File,
    bytes: u64,
    max_bytes: u64,
}

impl AuditLog {
    /// Open (create) the log at `path`, rotating to `path.1` past `max_bytes`.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Self, AuditError> {
        let err = |source| AuditError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        let bytes = file.metadata().map_err(err)?.len();
        let mut log = AuditLog {
            path: path.to_path_buf(),
            file,
            bytes,
            max_bytes,
        };
        // A line torn by a power cut must not swallow the next entry.
        if bytes > 0 && !std::fs::read(path).map_err(err)?.ends_with(b"\n") {
            log.file.write_all(b"\n").map_err(err)?;
            log.bytes += 1;
        }
        Ok(log)
    }

    /// Append one entry and sync it to disk.
    pub fn write(&mut self, entry: &AuditEntry) -> Result<(), AuditError> {
        let err = |source| AuditError {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(entry).expect("audit entries serialise");
        line.push(b'\n');
        if self.bytes + line.len() as u64 > self.max_bytes && self.bytes > 0 {
            rotate(&self.path).map_err(err)?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(err)?;
            self.bytes = 0;
        }
        self.file.write_all(&line).map_err(err)?;
        self.file.sync_data().map_err(err)?;
        self.bytes += line.len() as u64;
        Ok(())
    }

    /// Entries of the current and the rotated file at or after `since_ms`, oldest first. Lines that do
    /// not parse (a torn last line after a power cut) are skipped.
    pub fn read_since(path: &Path, since_ms: i64) -> Vec<AuditEntry> {
        let mut out = Vec::new();
        let files = (1..=KEPT_ROTATIONS)
            .rev()
            .map(|n| rotated_n(path, n))
            .chain([path.to_path_buf()]);
        for p in files {
            let Ok(f) = File::open(&p) else { continue };
            for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
                if let Ok(e) = serde_json::from_str::<AuditEntry>(&line)
                    && e.at_ms >= since_ms
                {
                    out.push(e);
                }
            }
        }
        out
    }
}

/// Older files kept beside the current one (`audit.jsonl.1` is the newest of them).
pub const KEPT_ROTATIONS: usize = 4;

fn rotated_n(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Shift `path.1 … path.(N-1)` up by one (the oldest goes), then `path` becomes `path.1`.
fn rotate(path: &Path) -> std::io::Result<()> {
    for n in (1..KEPT_ROTATIONS).rev() {
        let from = rotated_n(path, n);
        if from.exists() {
            std::fs::rename(&from, rotated_n(path, n + 1))?;
        }
    }
    std::fs::rename(path, rotated_n(path, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at_ms: i64, nonce: &str) -> AuditEntry {
        AuditEntry {
            time: "t".into(),
            source: "mqtt".into(),
            command: "reload".into(),
            request_id: Some("r".into()),
            nonce: Some(nonce.into()),
            at_ms,
            outcome: "accepted".into(),
            detail: serde_json::Value::Null,
        }
    }

    #[test]
    fn entries_survive_reopening_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path, 600).unwrap();
        for i in 0..6 {
            log.write(&entry(i, &format!("nonce-{i}"))).unwrap();
        }
        drop(log);
        assert!(rotated_n(&path, 1).exists(), "rotated past 600 bytes");
        let mut log = AuditLog::open(&path, 600).unwrap();
        log.write(&entry(6, "nonce-6")).unwrap();
        let back = AuditLog::read_since(&path, 3);
        let nonces: Vec<_> = back.iter().filter_map(|e| e.nonce.clone()).collect();
        assert!(nonces.ends_with(&["nonce-5".into(), "nonce-6".into()]));
        assert!(nonces.iter().all(|n| n.as_str() >= "nonce-3"), "{nonces:?}");
    }

    #[test]
    fn history_spans_every_kept_rotation_in_order_and_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        // About three entries per file: 40 entries pass through every rotation.
        let mut log = AuditLog::open(&path, 600).unwrap();
        for i in 0..40 {
            log.write(&entry(i, &format!("nonce-{i:02}"))).unwrap();
        }
        let back = AuditLog::read_since(&path, 0);
        let at: Vec<i64> = back.iter().map(|e| e.at_ms).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "oldest first: {at:?}");
        assert_eq!(at.last(), Some(&39));
        // Current file plus KEPT_ROTATIONS older ones: more than one file's worth survives, the oldest goes.
        assert!(at.len() > 3 * KEPT_ROTATIONS, "{} entries kept", at.len());
        assert!(at[0] > 0, "the oldest entries are gone");
        assert!(!rotated_n(&path, KEPT_ROTATIONS + 1).exists());
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path, 1 << 20).unwrap();
        log.write(&entry(1, "nonce-1")).unwrap();
        drop(log);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"time\":\"t\",\"sou")
            .unwrap();
        assert_eq!(AuditLog::read_since(&path, 0).len(), 1);
        let mut log = AuditLog::open(&path, 1 << 20).unwrap();
        log.write(&entry(2, "nonce-2")).unwrap();
        assert_eq!(
            AuditLog::read_since(&path, 0).len(),
            2,
            "the next entry is whole"
        );
    }
}
