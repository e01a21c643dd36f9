//! The shape of the house, read from the code's own paths: every `crate::<module>` a file of `src/` names
//! must be a layer below the file's own module (imports only look down), and no two files of one module may
//! name each other, directly or round a longer loop (no cycle between files). The layers are the ones
//! docs/ARCHITECTURE.md draws; a new top-level module must be placed here before it can be used.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom up. A module may use modules of a lower layer only; modules on one layer do not use each other.
const LAYERS: &[&[&str]] = &[
    &["base"],
    &["config"],
    // The stages, in the order the data flows.
    &["ingest"],
    &["health"],
    &["detect"],
    &["track"],
    &["rules"],
    &["incident"],
    &["uplink"],
    &["plan"],
    // Measuring a bundle over labelled media: decoding, detection, zones.
    &["eval"],
    &["control"],
    &["ops"],
    // The pole's wiring, and the city side's.
    &["daemon", "bridge"],
    &["cli"],
    // The installer's browser console: the running daemon's handles, the check table, the file's editor.
    &["console"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code without comments (a path in a doc comment is not an import).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every identifier that follows `prefix` (e.g. the `ingest` of `crate::ingest::Frame`), also inside a
/// group (`crate::{ingest::Frame, detect::Detector}`).
fn names_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut names = path_heads(code, prefix);
    for (i, _) in code.match_indices(&format!("{prefix}{{")) {
        let group = &code[i + prefix.len() + 1..];
        let group = &group[..group.find('}').unwrap_or(group.len())];
        for part in group.split(',') {
            let head = part.trim().split("::").next().unwrap_or("");
            if !head.is_empty() && head.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                names.push(head);
            }
        }
    }
    names
}

fn path_heads<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    code.match_indices(prefix)
        .filter(|(i, _)| {
            // `crate::` must be the start of a path, not the tail of `my_crate::`.
            *i == 0
                || !code.as_bytes()[i - 1].is_ascii_alphanumeric() && code.as_bytes()[i - 1] != b'_'
        })
        .map(|(i, _)| {
            let rest = &code[i + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|n| !n.is_empty())
        .collect()
}

struct SourceFile {
    /// Path below `src/`, e.g. `ingest/pipeline.rs`.
    rel: String,
    /// Top-level module, e.g. `ingest`; none for `lib.rs` and `main.rs`.
    module: Option<String>,
    code: String,
}

fn sources() -> Vec<SourceFile> {
    let root = src_dir();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let module = match rel.split_once('/') {
                Some((m, _)) => Some(m.to_string()),
                None if rel != "lib.rs" && rel != "main.rs" => {
                    Some(rel.trim_end_matches(".rs").to_string())
                }
                None => None,
            };
            let code = code_of(&std::fs::read_to_string(&p).unwrap());
            SourceFile { rel, module, code }
        })
        .collect()
}

/// `(from module, to module)` → the files that make the edge.
fn module_edges(files: &[SourceFile]) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let Some(from) = &f.module else { continue };
        for to in names_after(&f.code, "crate::") {
            if to != from {
                edges
                    .entry((from.clone(), to.to_string()))
                    .or_default()
                    .insert(f.rel.clone());
            }
        }
    }
    edges
}

#[test]
fn every_module_of_src_has_a_layer() {
    let unplaced: BTreeSet<String> = sources()
        .into_iter()
        .filter_map(|f| f.module)
        .filter(|m| layer_of(m).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules with no layer in tests/layers.rs: {unplaced:?}; place them (and in docs/ARCHITECTURE.md)"
    );
}

/// Imports that do not look down, as `from → to in [files]`; and how many file-level imports look down.
fn upward(files: &[SourceFile]) -> (Vec<String>, usize) {
    let mut wrong = Vec::new();
    let mut down = 0;
    for ((from, to), by) in &module_edges(files) {
        match (layer_of(from), layer_of(to)) {
            (Some(a), Some(b)) if b < a => down += by.len(),
            (Some(_), Some(_)) => wrong.push(format!("{from} → {to} in {by:?}")),
            _ => wrong.push(format!("{from} → {to} (unknown module) in {by:?}")),
        }
    }
    (wrong, down)
}

#[test]
fn imports_only_look_down() {
    let files = sources();
    let (wrong, down) = upward(&files);
    println!(
        "module edges: {} pairs, {down} file-level imports, all downward",
        module_edges(&files).len()
    );
    assert!(
        wrong.is_empty(),
        "imports that do not look down (move the shared type to a lower layer):\n  {}",
        wrong.join("\n  ")
    );
    assert!(
        down > 50,
        "the scan found only {down} imports; is it still reading src/?"
    );
}

/// The stages take settings in their own types, built by the plan; none reads the configuration file's
/// structs.
#[test]
fn no_stage_reads_the_configuration() {
    let stages = [
        "ingest", "health", "detect", "track", "rules", "incident", "uplink",
    ];
    let readers: Vec<String> = module_edges(&sources())
        .into_iter()
        .filter(|((from, to), _)| stages.contains(&from.as_str()) && to == "config")
        .map(|((from, _), by)| format!("{from} in {by:?}"))
        .collect();
    assert!(
        readers.is_empty(),
        "stages reading crate::config (give them a settings type and build it in crate::plan):\n  {}",
        readers.join("\n  ")
    );
}

/// Files of one module that name another file of it: `super::x::`, `self::x::` or `crate::<module>::x::`.
fn file_edges(files: &[SourceFile]) -> BTreeMap<String, BTreeSet<String>> {
    let by_rel: BTreeSet<&str> = files.iter().map(|f| f.rel.as_str()).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let Some(module) = &f.module else { continue };
        // The directory the file's `super::` and siblings live in.
        let dir = match f.rel.rsplit_once('/') {
            Some((d, "mod.rs")) => d.rsplit_once('/').map_or("", |(p, _)| p),
            Some((d, _)) => d,
            None => "",
        };
        let own_dir = f.rel.trim_end_matches("/mod.rs").trim_end_matches(".rs");
        let mut targets = Vec::new();
        for n in names_after(&f.code, "super::") {
            targets.push(format!("{dir}/{n}"));
        }
        for n in names_after(&f.code, "self::") {
            targets.push(format!("{own_dir}/{n}"));
        }
        for n in names_after(&f.code, &format!("crate::{module}::")) {
            targets.push(format!("{module}/{n}"));
        }
        for t in targets {
            let t = t.trim_start_matches('/');
            for candidate in [format!("{t}.rs"), format!("{t}/mod.rs")] {
                if by_rel.contains(candidate.as_str()) && candidate != f.rel {
                    edges.entry(f.rel.clone()).or_default().insert(candidate);
                }
            }
        }
    }
    edges
}

/// Every loop of files that depend on each other, as `a → b → a`.
fn cycles(files: &[SourceFile]) -> Vec<String> {
    let edges = file_edges(files);
    let mut cycles = Vec::new();
    for start in edges.keys() {
        // A file reaches itself again only through a cycle.
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        while let Some((at, path)) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                if next == start {
                    cycles.push(path.join(" → ") + " → " + start);
                } else if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    cycles
}

#[test]
fn no_two_files_depend_on_each_other() {
    let files = sources();
    let edge_count: usize = file_edges(&files).values().map(BTreeSet::len).sum();
    println!("file edges inside modules: {edge_count}");
    assert!(
        edge_count > 20,
        "the scan found only {edge_count} file edges"
    );
    let cycles = cycles(&files);
    assert!(
        cycles.is_empty(),
        "files that depend on each other:\n  {}",
        cycles.join("\n  ")
    );
}

#[test]
fn the_checks_fail_on_a_back_edge_a_grouped_import_and_a_cycle() {
    // The checks above would pass on nothing; prove each one fails on what it looks for.
    let file = |rel: &str, code: &str| SourceFile {
        rel: rel.into(),
        module: rel.split_once('/').map(|(m, _)| m.to_string()),
        code: code_of(code),
    };
    let files = vec![
        file(
            "ingest/a.rs",
            "use super::b::X; // use crate::cli::Y\nuse crate::base::Z;",
        ),
        file("ingest/b.rs", "use crate::ingest::a::W;"),
        file("rules/c.rs", "use crate::{base::Frame, incident::Draft};"),
        file(
            "track/d.rs",
            "fn f(o: crate::detect::Output) -> usize { o.detections.len() }",
        ),
    ];
    let (wrong, down) = upward(&files);
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    assert!(wrong[0].starts_with("rules → incident"), "{wrong:?}");
    assert_eq!(down, 3, "ingest → base, rules → base, track → detect");
    assert!(
        !module_edges(&files).contains_key(&("ingest".into(), "cli".into())),
        "comments are not code"
    );
    let cycles = cycles(&files);
    assert!(
        cycles
            .iter()
            .any(|c| c == "ingest/a.rs → ingest/b.rs → ingest/a.rs"),
        "{cycles:?}"
    );
}
