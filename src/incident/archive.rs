//! Evidence kept on the gateway: every evidence JPEG also goes to `state_dir/evidence/`, so a dispatcher can
//! ask for it after the broker copy is gone. Flash wears out and PIPL allows keeping images only as long
//! as needed: the archive is capped by bytes and by age, oldest removed first. Best effort: a failed
//! write is logged and costs only the local copy (the outbox holds the one that is delivered). The local
//! copies come last on a full disk: a copy is written only while it leaves twice the events' reserve free,
//! and the oldest are given up when an event or undelivered evidence needs the space. Files are written
//! under a temporary name and renamed: never an empty or partial JPEG.

use crate::base::{DiskGuard, temporary_name, write_atomic};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub struct EvidenceArchive {
    dir: PathBuf,
    max_bytes: u64,
    max_age: Duration,
    /// Files oldest first: when written, path, size.
    files: VecDeque<(SystemTime, PathBuf, u64)>,
    bytes: u64,
    disk: Option<Arc<DiskGuard>>,
}

impl EvidenceArchive {
    /// Open the archive in `dir`, taking stock of what earlier runs left there.
    /// Temporary files and empty JPEGs (from a version that wrote in place, or a crash) are removed.
    pub fn open(dir: &Path, max_bytes: u64, max_age: Duration) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut files: Vec<(SystemTime, PathBuf, u64)> = Vec::new();
        for e in std::fs::read_dir(dir)?.filter_map(Result::ok) {
            let (path, Ok(m)) = (e.path(), e.metadata()) else {
                continue;
            };
            let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("");
            if ext == "tmp" || (ext == "jpg" && m.len() == 0) {
                let _ = std::fs::remove_file(&path);
            } else if ext == "jpg"
                && let Ok(t) = m.modified()
            {
                files.push((t, path, m.len()));
            }
        }
        files.sort();
        let bytes = files.iter().map(|f| f.2).sum();
        Ok(EvidenceArchive {
            dir: dir.to_path_buf(),
            max_bytes,
            max_age,
            files: files.into(),
            bytes,
            disk: None,
        })
    }

    /// Write only while `disk` keeps its reserve (twice over: undelivered evidence comes first).
    pub fn guarded(mut self, disk: Arc<DiskGuard>) -> Self {
        self.disk = Some(disk);
        self
    }

    /// Keep `jpeg` as `{name}.jpg` (name from an evidence topic; `/` becomes `-`), then apply the caps.
    pub fn store(&mut self, name: &str, jpeg: &[u8], now: SystemTime) -> std::io::Result<()> {
        let path = self.dir.join(format!("{}.jpg", name.replace('/', "-")));
        self.prune(now);
        let len = jpeg.len() as u64;
        if self.max_bytes == 0 {
            return Ok(());
        }
        if let Some(d) = self.disk.clone()
            && !d.fits(len, 2)
        {
            // Make room from our own oldest copies once; if that is not enough, this copy is not kept.
            self.free_up(len + 2 * d.reserve());
            if !d.fits(len, 2) {
                d.count_dropped(1);
                return Ok(());
            }
        }
        write_atomic(&path, jpeg)?;
        self.files.push_back((now, path, len));
        self.bytes += len;
        self.prune(now);
        Ok(())
    }

    /// Remove the oldest copies until about `bytes` are freed (an event or undelivered evidence needs the
    /// space); returns what was freed.
    pub fn free_up(&mut self, bytes: u64) -> u64 {
        let mut freed = 0;
        while freed < bytes {
            let Some((_, path, len)) = self.files.pop_front() else {
                break;
            };
            if std::fs::remove_file(&path).is_ok() {
                freed += len;
            }
            let _ = std::fs::remove_file(temporary_name(&path));
            self.bytes -= len;
        }
        if freed > 0 {
            tracing::warn!(
                freed,
                "Disk short: the oldest evidence kept on the gateway was removed."
            );
        }
        freed
    }

    /// Remove the oldest files while over the byte cap, and every file past the age cap.
    pub fn prune(&mut self, now: SystemTime) {
        while let Some((written, path, len)) = self.files.front().cloned() {
            let too_old = now.duration_since(written).unwrap_or_default() > self.max_age;
            if !too_old && self.bytes <= self.max_bytes {
                break;
            }
            if let Err(error) = std::fs::remove_file(&path)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(file = %path.display(), %error, "Old evidence could not be removed.");
            }
            self.bytes -= len;
            self.files.pop_front();
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    fn at(s: u64) -> SystemTime {
        T0 + Duration::from_secs(1_800_000_000 + s)
    }

    #[test]
    fn the_oldest_files_go_first_when_over_the_byte_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = EvidenceArchive::open(dir.path(), 250, Duration::from_secs(3600)).unwrap();
        for i in 0..5 {
            a.store(&format!("evidence/e{i}"), &[0u8; 100], at(i))
                .unwrap();
        }
        assert_eq!((a.len(), a.bytes()), (2, 200));
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["evidence-e3.jpg", "evidence-e4.jpg"]);
    }

    #[test]
    fn files_past_the_age_cap_are_removed_even_under_the_byte_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = EvidenceArchive::open(dir.path(), 1 << 20, Duration::from_secs(60)).unwrap();
        a.store("evidence/old", &[0u8; 10], at(0)).unwrap();
        a.store("evidence/new", &[0u8; 10], at(50)).unwrap();
        a.prune(at(100));
        assert_eq!(a.len(), 1);
        assert!(dir.path().join("evidence-new.jpg").exists());
        assert!(!dir.path().join("evidence-old.jpg").exists());
    }

    #[test]
    fn files_from_an_earlier_run_count_against_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("evidence-x.jpg"), [0u8; 200]).unwrap();
        std::fs::write(dir.path().join("notes.txt"), [0u8; 500]).unwrap();
        let a = EvidenceArchive::open(dir.path(), 1 << 20, Duration::from_secs(60)).unwrap();
        assert_eq!((a.len(), a.bytes()), (1, 200));
    }

    #[test]
    fn a_zero_cap_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = EvidenceArchive::open(dir.path(), 0, Duration::from_secs(60)).unwrap();
        a.store("evidence/e", &[0u8; 10], at(0)).unwrap();
        assert!(a.is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
