//! Between the browser's JSON and the file's `toml_edit` items, keeping what the file already says.
//!
//! Every merge compares values, not text, and touches nothing that compares equal: an unchanged `0.40`
//! stays spelled `0.40`, and a replaced value keeps the whitespace and comment around it. Errors are plain
//! strings; the caller says which camera and table they belong to.

use serde_json::{Map, Number, Value as Json};
use toml_edit::{Array, ArrayOfTables, InlineTable, Item, Table, TableLike, Value};

/// Decimal places of the points the console writes: a ten-thousandth of the frame is below a pixel of
/// any camera stream, and it keeps the browser's `0.30000000000000004` out of the file.
pub(super) const POINT_DECIMALS: i32 = 4;
/// Decimal places of a rule's numbers: no threshold or duration means anything below a millionth, and
/// a form's stepping arithmetic leaves noise far smaller than that.
pub(super) const RULE_DECIMALS: i32 = 6;

/// The keys of a rule's nested values (crowd levels, `schedule`, `incident`) in the order docs/rules.md
/// writes them. New keys are written in a given order, then alphabetically: the same file whichever order
/// the browser's JSON (or serde_json's map) had.
const NESTED_ORDER: &[&str] = &[
    "name",
    "min_density",
    "days",
    "hours",
    "clear_s",
    "cooldown_s",
    "update_interval_s",
];

/// The members of `m` that are not null, those named in `order` first in that order, then by name.
fn ordered<'a>(m: &'a Map<String, Json>, order: &[&str]) -> Vec<(&'a String, &'a Json)> {
    let mut keys: Vec<(&String, &Json)> = m.iter().filter(|(_, v)| !v.is_null()).collect();
    let rank = |k: &str| order.iter().position(|o| *o == k).unwrap_or(order.len());
    keys.sort_by(|(a, _), (b, _)| (rank(a), a).cmp(&(rank(b), b)));
    keys
}

pub(super) fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    let r = (x * scale).round() / scale;
    if r.is_finite() { r } else { x }
}

pub(super) fn item_to_json(item: &Item) -> Result<Json, String> {
    match item {
        Item::None => Ok(Json::Null),
        Item::Value(v) => value_to_json(v),
        Item::Table(t) => table_to_json(t).map(Json::Object),
        Item::ArrayOfTables(a) => a
            .iter()
            .map(|t| table_to_json(t).map(Json::Object))
            .collect::<Result<_, _>>()
            .map(Json::Array),
    }
}

pub(super) fn table_to_json(t: &dyn TableLike) -> Result<Map<String, Json>, String> {
    t.iter()
        .map(|(k, item)| {
            let v = item_to_json(item).map_err(|e| format!("`{k}`: {e}"))?;
            Ok((k.to_string(), v))
        })
        .collect()
}

pub(super) fn value_to_json(v: &Value) -> Result<Json, String> {
    Ok(match v {
        Value::String(s) => Json::String(s.value().clone()),
        Value::Integer(i) => Json::from(*i.value()),
        Value::Float(f) => Number::from_f64(*f.value())
            .map(Json::Number)
            .ok_or_else(|| format!("{} cannot be edited here; write a finite number", f.value()))?,
        Value::Boolean(b) => Json::Bool(*b.value()),
        Value::Datetime(d) => {
            return Err(format!(
                "the date-time {} cannot be edited here; no rule key takes one",
                d.value()
            ));
        }
        Value::Array(a) => Json::Array(a.iter().map(value_to_json).collect::<Result<_, _>>()?),
        Value::InlineTable(t) => Json::Object(table_to_json(t)?),
    })
}

/// A new TOML value for `j`, in toml_edit's default layout. Objects become inline tables.
pub(super) fn json_to_value(j: &Json, decimals: i32) -> Result<Value, String> {
    Ok(match j {
        Json::Null => return Err("a list cannot hold null (TOML has no null)".into()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => number(n, decimals)?,
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(a) => Value::Array(
            a.iter()
                .map(|x| json_to_value(x, decimals))
                .collect::<Result<Array, _>>()?,
        ),
        Json::Object(m) => {
            let mut t = InlineTable::new();
            for (k, v) in ordered(m, NESTED_ORDER) {
                t.insert(
                    k,
                    json_to_value(v, decimals).map_err(|e| format!("`{k}`: {e}"))?,
                );
            }
            Value::InlineTable(t)
        }
    })
}

/// JSON integers stay integers and floats stay floats (serde reads either into an `f64`).
fn number(n: &Number, decimals: i32) -> Result<Value, String> {
    if let Some(i) = n.as_i64() {
        Ok(Value::from(i))
    } else if n.is_u64() {
        Err(format!(
            "{n} is too large; TOML integers end at {}",
            i64::MAX
        ))
    } else {
        let f = n
            .as_f64()
            .ok_or_else(|| format!("{n} is not a number TOML can hold"))?;
        Ok(Value::from(round(f, decimals)))
    }
}

/// Whether the file's `old` already says what the browser sent as `new`: numbers compare by value
/// (`10` equals `10.0`, and `0.40` equals a `0.4000000001` that rounds to it), an object's null members
/// are absent keys.
pub(super) fn same(old: &Json, new: &Json, decimals: i32) -> bool {
    match (old, new) {
        (Json::Number(a), Json::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => {
                let (x, y) = (a.as_f64(), b.as_f64());
                x == y || y.is_some_and(|y| x == Some(round(y, decimals)))
            }
        },
        (Json::Array(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y, decimals))
        }
        (Json::Object(a), Json::Object(b)) => {
            let present = b.iter().filter(|(_, v)| !v.is_null());
            present.clone().count() == a.len()
                && present
                    .into_iter()
                    .all(|(k, y)| a.get(k).is_some_and(|x| same(x, y, decimals)))
        }
        (a, b) => a == b,
    }
}

/// Make `old` say `new`, changing as little of its text as the values allow.
pub(super) fn merge_value(old: &mut Value, new: &Json, decimals: i32) -> Result<(), String> {
    if value_to_json(old).is_ok_and(|o| same(&o, new, decimals)) {
        return Ok(());
    }
    match (&mut *old, new) {
        (Value::Array(a), Json::Array(n)) => merge_array(a, n, decimals),
        (Value::InlineTable(t), Json::Object(m)) => merge_inline(t, m, decimals),
        _ => {
            let mut v = json_to_value(new, decimals)?;
            *v.decor_mut() = old.decor().clone();
            *old = v;
            Ok(())
        }
    }
}

/// Elements merge by index; new ones follow the layout of the last one (one per line stays one per line).
fn merge_array(a: &mut Array, n: &[Json], decimals: i32) -> Result<(), String> {
    let continuation = a.iter().last().and_then(line_break_before);
    for (i, new) in n.iter().enumerate() {
        match a.get_mut(i) {
            Some(old) => {
                merge_value(old, new, decimals).map_err(|e| format!("item {}: {e}", i + 1))?
            }
            None => {
                let mut v =
                    json_to_value(new, decimals).map_err(|e| format!("item {}: {e}", i + 1))?;
                if let Some(prefix) = &continuation {
                    v.decor_mut().set_prefix(prefix.as_str());
                }
                a.push_formatted(v);
            }
        }
    }
    while a.len() > n.len() {
        a.remove(a.len() - 1);
    }
    Ok(())
}

/// `"\n  "` when `v` starts a line of its array: the indentation a new element should get.
fn line_break_before(v: &Value) -> Option<String> {
    let prefix = v.decor().prefix()?.as_str()?;
    let (_, indent) = prefix.rsplit_once('\n')?;
    Some(format!("\n{indent}"))
}

fn merge_inline(t: &mut InlineTable, m: &Map<String, Json>, decimals: i32) -> Result<(), String> {
    for k in gone(t.iter().map(|(k, _)| k), m) {
        t.remove(&k);
    }
    for (k, new) in ordered(m, NESTED_ORDER) {
        let err = |e| format!("`{k}`: {e}");
        match t.get_mut(k) {
            Some(old) => merge_value(old, new, decimals).map_err(err)?,
            None => {
                t.insert(k, json_to_value(new, decimals).map_err(err)?);
            }
        }
    }
    Ok(())
}

/// The keys of a table that the browser's object no longer has (or sent as null).
fn gone<'a>(keys: impl Iterator<Item = &'a str>, m: &Map<String, Json>) -> Vec<String> {
    keys.filter(|k| m.get(*k).is_none_or(Json::is_null))
        .map(str::to_string)
        .collect()
}

/// Keys of `m` set in `t` where they differ, removed where absent or null, appended where new (in
/// `order`, then alphabetically).
pub(super) fn merge_table(
    t: &mut Table,
    m: &Map<String, Json>,
    decimals: i32,
    order: &[&str],
) -> Result<(), String> {
    for k in gone(t.iter().map(|(k, _)| k), m) {
        t.remove(&k);
    }
    for (k, new) in ordered(m, order) {
        let err = |e| format!("`{k}`: {e}");
        match t.get_mut(k) {
            Some(item) => merge_item(item, new, decimals).map_err(err)?,
            None => {
                t.insert(k, Item::Value(json_to_value(new, decimals).map_err(err)?));
            }
        }
    }
    Ok(())
}

fn merge_item(item: &mut Item, new: &Json, decimals: i32) -> Result<(), String> {
    let objects: Option<Vec<&Map<String, Json>>> = new
        .as_array()
        .and_then(|a| a.iter().map(Json::as_object).collect());
    match (&mut *item, new, objects) {
        (Item::Value(v), _, _) => merge_value(v, new, decimals),
        (Item::Table(t), Json::Object(m), _) => merge_table(t, m, decimals, NESTED_ORDER),
        (Item::ArrayOfTables(a), _, Some(objects)) => {
            merge_tables(a, &objects, decimals, None, NESTED_ORDER)
        }
        _ => {
            if !item_to_json(item).is_ok_and(|o| same(&o, new, decimals)) {
                *item = Item::Value(json_to_value(new, decimals)?);
            }
            Ok(())
        }
    }
}

/// Tables merge by index, extra ones go from the end, new ones are appended. `anchor` places new tables
/// when `a` has none yet (see [`subtree_end`]); `order` is [`merge_table`]'s.
pub(super) fn merge_tables(
    a: &mut ArrayOfTables,
    n: &[&Map<String, Json>],
    decimals: i32,
    anchor: Option<isize>,
    order: &[&str],
) -> Result<(), String> {
    for (i, new) in n.iter().enumerate() {
        let err = |e| format!("table {}: {e}", i + 1);
        match a.get_mut(i) {
            Some(t) => merge_table(t, new, decimals, order).map_err(err)?,
            None => {
                let at = a.iter().last().map_or(anchor, subtree_end);
                let mut t = Table::new();
                merge_table(&mut t, new, decimals, order).map_err(err)?;
                t.set_position(at);
                a.push(t);
            }
        }
    }
    while a.len() > n.len() {
        a.remove(a.len() - 1);
    }
    Ok(())
}

/// The document position of the last table header in `t` or below it. toml_edit writes tables sorted
/// by position, ties in tree order; a new table given this position lands right after `t` and all its
/// sub-tables, and never after a header of the next camera.
pub(super) fn subtree_end(t: &Table) -> Option<isize> {
    let below = t.iter().filter_map(|(_, item)| match item {
        Item::Table(t) => subtree_end(t),
        Item::ArrayOfTables(a) => a.iter().filter_map(subtree_end).max(),
        _ => None,
    });
    t.position().into_iter().chain(below).max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(text: &str, new: Json) -> String {
        let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
        merge_table(
            doc.as_table_mut(),
            new.as_object().unwrap(),
            RULE_DECIMALS,
            &[],
        )
        .unwrap();
        doc.to_string()
    }

    #[test]
    fn equal_values_keep_their_spelling_and_changed_ones_their_comment() {
        let text = "a = 0.40 # kept\nb = 10\nc = [1, 2]\n";
        assert_eq!(
            merged(text, json!({"a": 0.4, "b": 10.0, "c": [1, 2]})),
            text
        );
        assert_eq!(
            merged(
                text,
                json!({"a": 0.30000000000000004, "b": 10, "c": [1, 2]})
            ),
            "a = 0.3 # kept\nb = 10\nc = [1, 2]\n"
        );
    }

    #[test]
    fn null_removes_a_key_and_new_keys_are_appended() {
        let text = "a = 1\nb = { x = 1, y = 2 }\n";
        assert_eq!(
            merged(
                text,
                json!({"a": null, "b": {"x": 1, "y": null, "z": "s"}, "c": [true]})
            ),
            "b = { x = 1, z = \"s\" }\nc = [true]\n"
        );
    }

    #[test]
    fn a_new_element_of_a_list_written_one_per_line_gets_its_own_line() {
        let text = "l = [\n  { n = 1 },\n  { n = 2 },\n]\n";
        assert_eq!(
            merged(text, json!({"l": [{"n": 1}, {"n": 2}, {"n": 3}]})),
            "l = [\n  { n = 1 },\n  { n = 2 },\n  { n = 3 },\n]\n"
        );
    }

    #[test]
    fn what_toml_cannot_hold_is_refused_with_the_key() {
        let mut doc: toml_edit::DocumentMut = "a = 1\n".parse().unwrap();
        let err = merge_table(
            doc.as_table_mut(),
            json!({"a": [1, null]}).as_object().unwrap(),
            RULE_DECIMALS,
            &[],
        )
        .unwrap_err();
        assert!(err.contains("`a`") && err.contains("null"), "{err}");
        let big = json!({ "a": u64::MAX });
        let err = merge_table(
            doc.as_table_mut(),
            big.as_object().unwrap(),
            RULE_DECIMALS,
            &[],
        );
        assert!(err.unwrap_err().contains("too large"));
    }
}
