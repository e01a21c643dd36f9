//! Reading the small text files a person points the agent at (the configuration, a manifest, a password
//! file) with a size cap, so a wrong path (`/dev/zero`, a video) is refused instead of read into memory.

use std::io::Read;
use std::path::Path;

/// Read `path` as UTF-8 text of at most `max` bytes; a longer file is an `InvalidData` error that says so.
pub fn read_text_capped(path: &Path, max: u64) -> std::io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {max} bytes; is this the right file?"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_cap_is_refused_without_reading_it_all() {
        let e = read_text_capped(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(e.to_string().contains("larger than 1024 bytes"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("small.toml");
        std::fs::write(&p, "a = 1\n").unwrap();
        assert_eq!(read_text_capped(&p, 6).unwrap(), "a = 1\n");
        assert!(read_text_capped(&p, 5).is_err());
    }
}
