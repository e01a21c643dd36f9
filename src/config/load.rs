//! Reading and parsing the file, and mapping byte spans to line numbers. Checking what it says is the plan's
//! job (`crate::plan::load`).

use super::Config;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in the configuration, located at `file:line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line; 0 when the problem has no single place (e.g. the file cannot be read).
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// Every problem found, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} problem{} in the configuration:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A parsed configuration, with where it came from (validated when it comes from `crate::plan::load`).
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// The file it was read from.
    pub path: PathBuf,
    /// Directory relative paths in the file are resolved against.
    pub base_dir: PathBuf,
    /// The file's contents as a TOML table, to tell which sections a reload changes.
    pub table: toml::Table,
}

impl LoadedConfig {
    /// Resolve a path written in the configuration file.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        resolve(&self.base_dir, p)
    }
}

/// `p` as written in the file, resolved against the file's directory.
pub fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Maps byte offsets of the source text to 1-based line numbers.
pub struct Lines<'a> {
    pub file: &'a Path,
    text: &'a str,
}

impl<'a> Lines<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Self { file, text }
    }

    pub fn line_of(&self, span: &Range<usize>) -> usize {
        if span.start == 0 && span.end == 0 {
            return 0; // a default value: no place in the file
        }
        let at = span.start.min(self.text.len());
        self.text[..at].bytes().filter(|&b| b == b'\n').count() + 1
    }

    pub fn error(&self, span: &Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: self.line_of(span),
            message: message.into(),
        }
    }
}

/// A configuration file is a few kilobytes; a megabyte is a wrong path.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Read and parse the configuration file at `path` (syntax, types and unknown keys; nothing else).
pub fn parse(path: &Path) -> Result<(LoadedConfig, String), ConfigErrors> {
    let text = crate::base::read_text_capped(path, MAX_CONFIG_BYTES).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            message: format!(
                "cannot read the configuration file: {e}; pass its path with --config"
            ),
        }])
    })?;
    let loaded = parse_str(path, &text)?;
    Ok((loaded, text))
}

/// TOML text read from `path` as a `T` (syntax, types, unknown keys): the problem at `file:line` with the
/// usual fix.
pub fn from_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, ConfigErrors> {
    let lines = Lines::new(path, text);
    toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| lines.line_of(&s)).unwrap_or(0);
        let message = explain_parse_error(e.message());
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line,
            message,
        }])
    })
}

/// Parse configuration text that was read from `path`.
pub fn parse_str(path: &Path, text: &str) -> Result<LoadedConfig, ConfigErrors> {
    let config: Config = from_toml(path, text)?;
    Ok(LoadedConfig {
        config,
        path: path.to_path_buf(),
        base_dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        table: text.parse().unwrap_or_default(),
    })
}

/// toml's messages are good; add the fix where the usual mistake is obvious.
fn explain_parse_error(message: &str) -> String {
    let message = message.trim().replace('\n', " ");
    if message.starts_with("unknown field") {
        format!("{message}; remove the key or correct its spelling")
    } else if message.starts_with("missing field") {
        format!("{message}; add it (see docs/configuration.md)")
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_numbers_are_one_based() {
        let text = "a = 1\nb = 2\nc = 3\n";
        let lines = Lines::new(Path::new("x.toml"), text);
        assert_eq!(
            lines.line_of(&(0..0)),
            0,
            "an empty default span has no line"
        );
        assert_eq!(lines.line_of(&(0..1)), 1);
        assert_eq!(lines.line_of(&(6..7)), 2);
        assert_eq!(lines.line_of(&(12..13)), 3);
    }
}
