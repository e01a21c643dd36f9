//! The state directory's disk, shared by everything that writes to it. Events have priority over every
//! image: evidence is written only while it leaves `reserve` bytes free, so the outbox can always commit an
//! event; a small ballast file is kept beside the outbox and given up when an event could not be written
//! even so (something else filled the disk). Files are written under a temporary name and renamed, so a
//! full disk or a power cut never leaves an empty or partial file behind.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Size of the ballast file given up in an emergency.
pub const BALLAST_BYTES: u64 = 1024 * 1024;

/// Free space of the state directory and what was given up for lack of it.
#[derive(Debug)]
pub struct DiskGuard {
    dir: PathBuf,
    reserve: u64,
    /// Free bytes at the last look.
    free: AtomicU64,
    /// Under the reserve at the last look.
    short: AtomicBool,
    /// Evidence images not written (queued or archived) for lack of space.
    evidence_dropped: AtomicU64,
}

impl DiskGuard {
    /// Guard the filesystem of `dir`, keeping `reserve` bytes for events; the ballast is laid if there is
    /// room for it.
    pub fn new(dir: &Path, reserve: u64) -> Self {
        // The directory is made here if missing (the outbox would make it a moment later anyway).
        let _ = std::fs::create_dir_all(dir);
        let g = DiskGuard {
            dir: dir.to_path_buf(),
            reserve,
            free: AtomicU64::new(u64::MAX),
            short: AtomicBool::new(false),
            evidence_dropped: AtomicU64::new(0),
        };
        g.refresh();
        g.restore_ballast();
        g
    }

    pub fn reserve(&self) -> u64 {
        self.reserve
    }

    fn ballast(&self) -> PathBuf {
        self.dir.join(".reserve")
    }

    /// Look at the free space now; `None` when it cannot be read (then nothing is refused for it).
    pub fn refresh(&self) -> Option<u64> {
        let free = super::disk_free_bytes(&self.dir)?;
        self.free.store(free, Ordering::Relaxed);
        self.short.store(free < self.reserve, Ordering::Relaxed);
        Some(free)
    }

    /// Free bytes at the last look.
    pub fn free(&self) -> Option<u64> {
        Some(self.free.load(Ordering::Relaxed)).filter(|f| *f != u64::MAX)
    }

    /// Was the disk under the reserve at the last look?
    pub fn is_short(&self) -> bool {
        self.short.load(Ordering::Relaxed)
    }

    /// May `bytes` of evidence be written, leaving `reserve × headroom` free? (The outbox's evidence asks
    /// with 1, the local archive with 2, so undelivered evidence comes before kept copies.)
    pub fn fits(&self, bytes: u64, headroom: u64) -> bool {
        let Some(free) = self.refresh() else {
            return true;
        };
        free.saturating_sub(bytes) >= self.reserve.saturating_mul(headroom)
    }

    pub fn count_dropped(&self, images: u64) {
        self.evidence_dropped.fetch_add(images, Ordering::Relaxed);
    }

    /// Evidence images dropped for lack of space since start.
    pub fn evidence_dropped(&self) -> u64 {
        self.evidence_dropped.load(Ordering::Relaxed)
    }

    /// Give up the ballast (an event could not be written); returns whether there was one.
    pub fn release_ballast(&self) -> bool {
        let released = std::fs::remove_file(self.ballast()).is_ok();
        if released {
            tracing::warn!(
                dir = %self.dir.display(),
                "Disk full: the space kept in reserve is given up so events can still be stored."
            );
        }
        self.refresh();
        released
    }

    /// Lay the ballast again once there is room for it above the reserve.
    pub fn restore_ballast(&self) {
        let path = self.ballast();
        if path.exists()
            || self
                .free()
                .is_some_and(|f| f < self.reserve + BALLAST_BYTES)
        {
            return;
        }
        // Written, not sparse: the blocks must really be taken to be given back later.
        if write_atomic(&path, &vec![0u8; BALLAST_BYTES as usize]).is_err() {
            tracing::debug!(file = %path.display(), "Ballast not laid.");
        }
        self.refresh();
    }

    /// Total size of the filesystem, for the start-up check of the caps.
    pub fn capacity(&self) -> Option<u64> {
        let st = rustix::fs::statvfs(&self.dir).ok()?;
        Some(st.f_blocks.saturating_mul(st.f_frsize))
    }
}

/// Write `bytes` to `path` under a temporary name in the same directory, flush it, then rename: readers
/// (and a restart after a power cut) see the whole file or none. A failed write removes its temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = temporary_name(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The temporary name `write_atomic` uses for `path`.
pub fn temporary_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_leaves_the_whole_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jpg");
        write_atomic(&path, b"jpeg").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"jpeg");
        assert!(!temporary_name(&path).exists());
        // Into a directory that does not exist: an error, nothing left behind.
        assert!(write_atomic(&dir.path().join("no/such.jpg"), b"x").is_err());
    }

    #[test]
    fn evidence_is_refused_when_it_would_eat_into_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let free = disk_free(dir.path());
        let g = DiskGuard::new(dir.path(), free / 2);
        assert!(g.fits(1000, 1));
        assert!(!g.fits(free, 1), "would leave less than the reserve");
        assert!(
            !g.fits(free / 4 * 3, 2),
            "the archive leaves twice the reserve"
        );
        assert!(
            dir.path().join(".reserve").exists(),
            "ballast laid while there is room"
        );
        let other = tempfile::tempdir().unwrap();
        let g = DiskGuard::new(other.path(), u64::MAX / 4);
        assert!(g.is_short());
        assert!(
            !other.path().join(".reserve").exists(),
            "no room for ballast"
        );
    }

    fn disk_free(p: &Path) -> u64 {
        super::super::disk_free_bytes(p).unwrap()
    }
}
