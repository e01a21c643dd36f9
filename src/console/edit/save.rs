//! Writing the configuration file whole or not at all, keeping the version it replaces.
//!
//! The daemon reloads the file it is running from and the installer may be standing on a pole with a
//! flaky power supply: a half-written file would keep the gateway from starting. So the new text goes to a
//! temporary file in the same directory, is synced, and is renamed over the old one (a rename within one
//! file system is atomic), and the directory is synced so the rename itself survives a power cut. The
//! old version stays as `<file>.<UTC time>.bak` beside it, for `streetsight check` to compare against and
//! for the installer to go back to.

use chrono::Utc;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Replace the file at `path` with `text`. If a file was there it is kept as a backup (hard-linked, or
/// copied where links fail), whose path is returned; backups of this file beyond the newest `keep_backups`
/// (at least one) are removed. The new file gets the old one's permissions and owner. A symbolic link is
/// followed: the file it points to is replaced, beside it.
pub fn save(path: &Path, text: &str, keep_backups: usize) -> io::Result<Option<PathBuf>> {
    let path = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path)?,
        _ => path.to_path_buf(),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} names no file", path.display()),
            )
        })?
        .to_string();
    let old = match fs::metadata(&path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let backup = match &old {
        Some(_) => Some(back_up(&path, &dir, &name)?),
        None => None,
    };

    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    tmp.write_all(text.as_bytes())?;
    if let Some(old) = &old {
        tmp.as_file().set_permissions(old.permissions())?;
        let (uid, gid) = (old.uid(), old.gid());
        let mine = tmp.as_file().metadata()?;
        if (mine.uid(), mine.gid()) != (uid, gid)
            && std::os::unix::fs::fchown(tmp.as_file(), Some(uid), Some(gid)).is_err()
        {
            // The service (no CAP_CHOWN) cannot give a root-owned file back to root: the new file is the
            // service's, in the old group where it may, with the old mode.
            let _ = std::os::unix::fs::fchown(tmp.as_file(), None, Some(gid));
        }
    }
    tmp.as_file().sync_all()?;
    tmp.persist(&path).map_err(|e| e.error)?;
    File::open(&dir)?.sync_all()?;

    if let Err(e) = prune(&dir, &name, keep_backups.max(1)) {
        // The new file is in place; a backup too many is no reason to report the save as failed.
        tracing::warn!(dir = %dir.display(), error = %e, "Old configuration backups could not be removed.");
    }
    Ok(backup)
}

/// Hard-link (or copy) `path` to `<name>.<yyyymmddThhmmssZ>.bak` in `dir`, or, when saved more than once
/// within that second, `…Z-2.bak`, `…Z-3.bak`: numbered past the highest already there, so a newer backup
/// never takes the name of a pruned older one and the names keep the order they were made in.
fn back_up(path: &Path, dir: &Path, name: &str) -> io::Result<PathBuf> {
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut n = 1;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some((s, m)) = entry
            .file_name()
            .to_str()
            .and_then(|f| backup_order(f, name))
            && s == stamp
        {
            n = n.max(m + 1);
        }
    }
    loop {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("-{n}")
        };
        let backup = dir.join(format!("{name}.{stamp}{suffix}.bak"));
        let made = match fs::hard_link(path, &backup) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
            Err(_) => copy_new(path, &backup),
            ok => ok,
        };
        match made {
            Ok(()) => return Ok(backup),
            // Another save in this very moment took the name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Copy `from` to `to`, which must not exist yet, with `from`'s permissions.
fn copy_new(from: &Path, to: &Path) -> io::Result<()> {
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)?;
    io::copy(&mut File::open(from)?, &mut out)?;
    out.set_permissions(fs::metadata(from)?.permissions())?;
    out.sync_all()
}

/// `(stamp, n)` of a backup of `name`, the order they were made in; `None` for any other file.
fn backup_order(file: &str, name: &str) -> Option<(String, u32)> {
    let middle = file
        .strip_prefix(name)?
        .strip_prefix('.')?
        .strip_suffix(".bak")?;
    let (stamp, n) = match middle.split_once('-') {
        Some((stamp, n)) => (stamp, n.parse().ok().filter(|&n| n >= 2)?),
        None => (middle, 1),
    };
    let b = stamp.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let is_stamp = b.len() == 16 && digits(0..8) && b[8] == b'T' && digits(9..15) && b[15] == b'Z';
    is_stamp.then(|| (stamp.to_string(), n))
}

/// Remove the backups of `name` in `dir` but the newest `keep`.
fn prune(dir: &Path, name: &str, keep: usize) -> io::Result<()> {
    let mut backups = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(order) = entry
            .file_name()
            .to_str()
            .and_then(|f| backup_order(f, name))
        {
            backups.push((order, entry.path()));
        }
    }
    backups.sort();
    let excess = backups.len().saturating_sub(keep);
    for (_, path) in backups.into_iter().take(excess) {
        fs::remove_file(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn backups(dir: &Path) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "bak"))
            .collect();
        found.sort_by_key(|p| {
            backup_order(p.file_name().unwrap().to_str().unwrap(), "streetsight.toml")
        });
        found
    }

    #[test]
    fn the_old_text_goes_to_a_backup_and_the_new_takes_its_place_with_its_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("streetsight.toml");
        fs::write(&path, "old = 1\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();

        let backup = save(&path, "new = 2\n", 3)
            .unwrap()
            .expect("a file was there");
        assert_eq!(fs::read_to_string(&path).unwrap(), "new = 2\n");
        assert_eq!(fs::read_to_string(&backup).unwrap(), "old = 1\n");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(backup.parent(), Some(dir.path()));
        let name = backup.file_name().unwrap().to_str().unwrap();
        assert!(backup_order(name, "streetsight.toml").is_some(), "{name}");
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 2, "no temporary file is left behind");
    }

    #[test]
    fn a_new_file_has_no_backup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("streetsight.toml");
        assert_eq!(save(&path, "a = 1\n", 1).unwrap(), None);
        assert_eq!(fs::read_to_string(&path).unwrap(), "a = 1\n");
    }

    #[test]
    fn backups_made_within_a_second_get_numbers_and_only_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("streetsight.toml");
        fs::write(&path, "v = 0\n").unwrap();
        fs::write(
            dir.path().join("other.toml.20200101T000000Z.bak"),
            "not ours",
        )
        .unwrap();
        for v in 1..=5 {
            save(&path, &format!("v = {v}\n"), 2).unwrap();
        }
        let kept = backups(dir.path());
        let ours: Vec<String> = kept
            .iter()
            .filter(|p| p.to_str().unwrap().contains("streetsight.toml."))
            .map(|p| fs::read_to_string(p).unwrap())
            .collect();
        assert_eq!(ours, ["v = 3\n", "v = 4\n"], "{kept:?}");
        assert!(dir.path().join("other.toml.20200101T000000Z.bak").exists());
        assert_eq!(fs::read_to_string(&path).unwrap(), "v = 5\n");
    }

    #[test]
    fn backup_names_order_by_time_then_number() {
        let name = "s.toml";
        let mut names = [
            "s.toml.20240101T000000Z-10.bak",
            "s.toml.20240101T000000Z.bak",
            "s.toml.20240101T000000Z-2.bak",
            "s.toml.20231231T235959Z.bak",
        ];
        names.sort_by_key(|f| backup_order(f, name));
        assert_eq!(names[0], "s.toml.20231231T235959Z.bak");
        assert_eq!(names[1], "s.toml.20240101T000000Z.bak");
        assert_eq!(names[3], "s.toml.20240101T000000Z-10.bak");
        assert_eq!(backup_order("s.toml.bak", name), None);
        assert_eq!(backup_order("s.toml.2024-01-01.bak", name), None);
        assert_eq!(backup_order("s.tomlx.20240101T000000Z.bak", name), None);
    }
}
