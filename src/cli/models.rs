//! Installed model bundles, for `streetsight models list | inspect NAME | verify [PATH]`: where they are,
//! what they say, and whether they hold up against their ONNX graph. Returns text; `main` prints it.

use crate::detect::{Head, Manifest, graph_io, open, shape_text};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where the Debian package installs bundles.
pub const DEFAULT_DIR: &str = "/usr/share/streetsight/models";

/// Bundle directories: each directory that holds `manifest.toml`, or its subdirectories that do.
pub fn find(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in dirs {
        if dir.join("manifest.toml").is_file() {
            out.push(dir.clone());
            continue;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("manifest.toml").is_file())
            .collect();
        found.sort();
        out.extend(found);
    }
    out
}

/// A table of the bundles in `dirs`, checked without opening the model (that is `verify`).
pub fn list(dirs: &[PathBuf]) -> String {
    let bundles = find(dirs);
    let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    if bundles.is_empty() {
        return format!("no model bundles in {}\n", shown.join(", "));
    }
    let mut s = format!(
        "{:<20} {:<10} {:<8} {:<12} {:>6}  {:<12} {:<12} {}\n",
        "NAME", "VERSION", "TASK", "HEAD", "LABELS", "LICENSE", "MANIFEST", "DIRECTORY"
    );
    for dir in bundles {
        let line = match Manifest::load(&dir) {
            Ok(m) => format!(
                "{:<20} {:<10} {:<8} {:<12} {:>6}  {:<12} {:<12} {}",
                m.name,
                m.version,
                format!("{:?}", m.task).to_lowercase(),
                m.output.kind(),
                m.labels.len(),
                m.license,
                "ok",
                dir.display()
            ),
            Err(e) => format!(
                "{:<20} {:<10} {:<8} {:<12} {:>6}  {:<12} {:<12} {}  ({e})",
                dir.file_name().unwrap_or_default().to_string_lossy(),
                "-",
                "-",
                "-",
                "-",
                "-",
                "INVALID",
                dir.display()
            ),
        };
        s.push_str(&line);
        s.push('\n');
    }
    s
}

/// A bundle by directory path, bundle directory name or manifest `name`.
pub fn resolve(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    let path = Path::new(name);
    if path.join("manifest.toml").is_file() {
        return Some(path.to_path_buf());
    }
    let bundles = find(dirs);
    bundles
        .iter()
        .find(|d| d.file_name().is_some_and(|f| f == name))
        .or_else(|| {
            bundles
                .iter()
                .find(|d| Manifest::read(d).is_ok_and(|m| m.name == name))
        })
        .cloned()
}

/// Everything about one bundle: the manifest, and the graph's real I/O.
pub fn inspect(dir: &Path) -> Result<String, String> {
    let m = Manifest::read(dir).map_err(|e| e.to_string())?;
    let mut s = String::new();
    let i = &m.input;
    let _ = writeln!(s, "name      {} {}", m.name, m.version);
    let _ = writeln!(s, "directory {}", dir.display());
    let lower = |d: &dyn std::fmt::Debug| format!("{d:?}").to_lowercase();
    let _ = writeln!(s, "task      {}", lower(&m.task));
    let _ = writeln!(s, "license   {}", m.license);
    let _ = writeln!(s, "source    {}", m.source);
    let _ = writeln!(s, "file      {}", m.model_path().display());
    let _ = writeln!(s, "sha256    {} (manifest)", m.sha256);
    let norm = match (i.std, i.scale) {
        (Some(std), _) => format!("(x - {:?}) / {:?}", i.mean, std),
        (None, Some(k)) => format!("(x - {:?}) × {k}", i.mean),
        (None, None) => format!("x - {:?}", i.mean),
    };
    let _ = writeln!(
        s,
        "input     `{}` {} {}×{} {} {} {}, resize {}{}",
        i.name,
        i.dtype,
        i.width,
        i.height,
        i.layout.as_str(),
        lower(&i.color),
        norm,
        lower(&i.resize),
        if i.resize == crate::detect::ResizeMode::Letterbox {
            format!(" (pad {})", i.pad)
        } else {
            String::new()
        }
    );
    let head = match &m.output {
        Head::Nanodet {
            strides, reg_max, ..
        } => format!("nanodet strides {strides:?} reg_max {reg_max}"),
        other => other.kind().to_string(),
    };
    let _ = writeln!(
        s,
        "head      {head}, outputs {}",
        m.output
            .tensor_names()
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        s,
        "defaults  score_threshold {} nms_iou {}",
        m.score_threshold, m.nms_iou
    );
    let _ = writeln!(s, "labels    {}: {}", m.labels.len(), m.labels.join(", "));
    for (label, cats) in &m.categories {
        let _ = writeln!(s, "category  {label} → {}", cats.join(", "));
    }
    match open(&m, 1) {
        Ok(opened) => {
            let _ = writeln!(s, "sha256    {} (file)", opened.sha256);
            let (inputs, outputs) = graph_io(&opened.session);
            for (kind, list) in [("graph in ", inputs), ("graph out", outputs)] {
                for t in list {
                    let _ = writeln!(
                        s,
                        "{kind} `{}` {} {}",
                        t.name,
                        t.dtype,
                        shape_text(&t.shape)
                    );
                }
            }
        }
        Err(e) => {
            let _ = writeln!(s, "graph     cannot be opened: {e}");
        }
    }
    Ok(s)
}

/// The outcome of a full validation of one bundle directory.
#[derive(Debug)]
pub struct Verification {
    pub dir: PathBuf,
    pub manifest: Option<Manifest>,
    pub sha256: Option<String>,
    /// Every problem, each naming its field; empty means the bundle passes.
    pub problems: Vec<String>,
    /// What an engineer should know even when it passes (the licence; categories a pole must define).
    pub notes: Vec<String>,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn report(&self) -> String {
        let what = self.manifest.as_ref().map_or(String::new(), |m| {
            format!(" {} {} ({})", m.name, m.version, m.output.kind())
        });
        let notes: String = self
            .notes
            .iter()
            .map(|n| format!("  note: {n}\n"))
            .collect();
        if self.passed() {
            format!(
                "PASS {}{what} sha256 {}\n{notes}",
                self.dir.display(),
                self.sha256.as_deref().unwrap_or("-")
            )
        } else {
            let mut s = format!(
                "FAIL {}{what}: {} problem(s)\n",
                self.dir.display(),
                self.problems.len()
            );
            for p in &self.problems {
                let _ = writeln!(s, "  - {p}");
            }
            s + &notes
        }
    }
}

/// The manifest's category names against the shipped ones: one a typo away from a shipped category is an
/// error naming it; any other unknown one is a note (a city may define its own in `[categories]`).
fn check_categories(m: &Manifest, v: &mut Verification) {
    let known = crate::config::default_categories();
    for (label, cats) in &m.categories {
        for c in cats.iter().filter(|c| !known.contains_key(*c)) {
            let closest = known
                .keys()
                .map(|k| (edit_distance(k, c), k))
                .min()
                .filter(|(d, _)| *d <= (c.chars().count() / 4).max(2));
            match closest {
                Some((_, k)) => v.problems.push(format!(
                    "categories.{label}: expected a known category, found `{c}`; did you mean `{k}`?"
                )),
                None => v.notes.push(format!(
                    "categories.{label}: `{c}` is not a shipped category; the pole's [categories.{c}] must give its work-order codes"
                )),
            }
        }
    }
}

/// The licence line, with a warning where the weights' licence is copyleft.
fn licence_note(license: &str) -> String {
    let copyleft = ["AGPL", "GPL", "LGPL", "SSPL"]
        .iter()
        .any(|l| license.to_uppercase().contains(l));
    if copyleft {
        format!(
            "license {license}: copyleft — weights from some popular YOLO toolchains carry their toolchain's licence; shipping them binds the whole product to it (see docs/models.md)"
        )
    } else {
        format!("license {license}")
    }
}

/// Levenshtein distance between two strings (by characters).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Validate a bundle directory fully: the manifest on its own, the file's presence and hash, and the
/// graph's I/O against the manifest. Lists every problem rather than stopping at the first.
/// Everything about the bundle in `dir`; its signature is checked against `trusted` (noted, not checked,
/// when no key is given).
pub fn verify(dir: &Path, trusted: &[crate::detect::TrustedKey]) -> Verification {
    let mut v = Verification {
        dir: dir.to_path_buf(),
        manifest: None,
        sha256: None,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    let m = match Manifest::read(dir) {
        Ok(m) => m,
        Err(e) => {
            v.problems.push(e.to_string());
            return v;
        }
    };
    v.problems.extend(m.problems());
    check_categories(&m, &mut v);
    v.notes.push(licence_note(&m.license));
    match crate::detect::check_signature(dir, trusted) {
        Ok(signed) => v.notes.push(signed.describe()),
        Err(e) => v.problems.push(format!("signature: {e}")),
    }
    if !m.model_path().is_file() {
        v.problems.push(format!(
            "file: expected the ONNX file at {}, found nothing there",
            m.model_path().display()
        ));
    } else {
        match open(&m, 1) {
            Ok(opened) => {
                v.sha256 = Some(opened.sha256);
                v.problems.extend(opened.problems);
            }
            Err(e) => v.problems.push(e.to_string()),
        }
    }
    v.manifest = Some(m);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("bicycle_parking", "bycicle_parking"), 2);
        assert_eq!(edit_distance("crowd_density", "crowd_density"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn a_copyleft_licence_is_flagged_and_a_permissive_one_is_not() {
        assert!(licence_note("AGPL-3.0-only").contains("copyleft"));
        assert_eq!(licence_note("Apache-2.0"), "license Apache-2.0");
    }
}
