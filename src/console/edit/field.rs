//! Which edited thing a line of the file belongs to: the validator reports `file:line`, the console shows
//! the message beside the zone, mask, ground or rule form that line is in.

use serde::Serialize;
use std::ops::Range;
use toml_edit::{Document, Item, Table, TableLike};

/// One of the things [`super::CameraEdit`] holds, and the key of it a line is in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    /// `"zone"`, `"mask"`, `"ground"`, or a rule type such as `"crowd_density"`.
    pub section: String,
    /// Which table of that section, in file order (0 for `ground`).
    pub index: usize,
    /// The table's top-level key the line is in (`"min_score"`, `"levels"`); none on its header, a
    /// comment or a blank line.
    pub key: Option<String>,
}

/// The edited table of camera `camera` that 1-based `line` of `text` falls in; `None` outside all of them
/// (the camera's own keys, another camera, the device) or when `text` does not parse.
pub fn field_at(text: &str, camera: &str, line: usize) -> Option<Field> {
    let doc = Document::parse(text).ok()?;
    let lines = Lines::new(text);
    let cam = doc
        .get("camera")?
        .as_array_of_tables()?
        .iter()
        .find(|c| c.get("id").and_then(Item::as_str) == Some(camera))?;
    let rules = super::rule_names();
    let sections = ["zone", "mask", "ground"].into_iter().chain(rules);
    for section in sections {
        let Some(item) = cam.get(section) else {
            continue;
        };
        let tables: Vec<&dyn TableLike> = match item {
            Item::ArrayOfTables(a) => a.iter().map(|t| t as &dyn TableLike).collect(),
            Item::Table(t) => vec![t as &dyn TableLike],
            Item::Value(v) => match v.as_array() {
                Some(a) => a
                    .iter()
                    .filter_map(|v| v.as_inline_table())
                    .map(|t| t as &dyn TableLike)
                    .collect(),
                None => v
                    .as_inline_table()
                    .map(|t| t as &dyn TableLike)
                    .into_iter()
                    .collect(),
            },
            Item::None => Vec::new(),
        };
        for (index, t) in tables.into_iter().enumerate() {
            let header = match item {
                Item::ArrayOfTables(a) => a.get(index).and_then(Table::span),
                Item::Table(t) => t.span(),
                _ => None,
            };
            let whole = union(header, table_extent(t));
            if !whole.is_some_and(|r| lines.holds(&r, line)) {
                continue;
            }
            let key = t.iter().find_map(|(k, child)| {
                let key_span = t.key(k).and_then(|k| k.span());
                let extent = union(key_span, extent(child));
                extent
                    .is_some_and(|r| lines.holds(&r, line))
                    .then(|| k.to_string())
            });
            return Some(Field {
                section: section.into(),
                index,
                key,
            });
        }
    }
    None
}

fn union(a: Option<Range<usize>>, b: Option<Range<usize>>) -> Option<Range<usize>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.start.min(b.start)..a.end.max(b.end)),
        (a, b) => a.or(b),
    }
}

/// The bytes an item covers: its value, or its header and everything under it.
fn extent(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::None => None,
        Item::Value(v) => v.span(),
        Item::Table(t) => union(t.span(), table_extent(t)),
        Item::ArrayOfTables(a) => a
            .iter()
            .map(|t| union(t.span(), table_extent(t)))
            .fold(None, union),
    }
}

/// The bytes of a table's keys and values (not its header; an inline table has none).
fn table_extent(t: &dyn TableLike) -> Option<Range<usize>> {
    t.iter()
        .map(|(k, child)| union(t.key(k).and_then(|k| k.span()), extent(child)))
        .fold(None, union)
}

/// 1-based line numbers of byte offsets.
struct Lines {
    newlines: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Self {
        let newlines = text.match_indices('\n').map(|(i, _)| i).collect();
        Self { newlines }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&n| n < offset) + 1
    }

    /// Whether `line` is one of the lines `span` touches.
    fn holds(&self, span: &Range<usize>, line: usize) -> bool {
        let last = span.end.saturating_sub(1).max(span.start);
        (self.line_of(span.start)..=self.line_of(last)).contains(&line)
    }
}
