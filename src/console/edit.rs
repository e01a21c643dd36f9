//! The console's editor of the configuration file: what one camera's zones, masks, ground calibration and
//! rules say ([`view`]), the file with the installer's changes written in ([`apply`]), which of those a
//! line of the file belongs to ([`field_at`], to put the validator's `file:line` next to the right form
//! field), and writing the file with a backup ([`save`]).
//!
//! The file is the installer's as much as ours: its comments, key order and number spelling explain the
//! site to the next person, so `apply` edits the parsed document in place (`toml_edit`) and changes only
//! what differs in value. `apply(text, &view(text, cam)?)` gives back `text` byte for byte. The view
//! carries nothing but what the console edits — never a camera's URL, user name or password source.
//! Checking what the result means is the plan's job (`crate::plan::load_str`), not this module's.

mod convert;
mod field;
mod save;
#[cfg(test)]
mod tests;

pub use field::{Field, field_at};
pub use save::save;

use convert::{
    POINT_DECIMALS, RULE_DECIMALS, item_to_json, merge_tables, merge_value, subtree_end,
    table_to_json,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table};

/// A zone as the console draws it; its other keys (anchor, grid code, …) stay as the file has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneEdit {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Vertices `[x, y]`, normalised 0..1.
    pub points: Vec<[f64; 2]>,
    /// The zone's real ground area in m², typed by the installer (densities need it unless the ground is
    /// calibrated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area_m2: Option<f64>,
}

/// A mask: an area whose detections (of `labels`, or all when empty) are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskEdit {
    pub points: Vec<[f64; 2]>,
    #[serde(default)]
    pub labels: Vec<String>,
}

/// Ground-plane calibration: image points (normalised) and where they lie on the ground (metres).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundEdit {
    pub image: Vec<[f64; 2]>,
    pub ground: Vec<[f64; 2]>,
}

/// Everything the console edits on one camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraEdit {
    pub camera: String,
    #[serde(default)]
    pub zones: Vec<ZoneEdit>,
    #[serde(default)]
    pub masks: Vec<MaskEdit>,
    #[serde(default)]
    pub ground: Option<GroundEdit>,
    /// Rule type → its tables in file order; each table's keys as JSON values (nested tables such as
    /// `schedule`, `incident`, and arrays of tables such as crowd `levels` as JSON objects/arrays).
    #[serde(default)]
    pub rules: BTreeMap<String, Vec<Map<String, Json>>>,
}

/// Why the console cannot show or write an edit, in words the installer can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EditError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, EditError> {
    Err(EditError(message.into()))
}

fn rule_names() -> Vec<&'static str> {
    super::schema::rule_types().iter().map(|r| r.name).collect()
}

/// What the console shows of camera `camera`.
pub fn view(text: &str, camera: &str) -> Result<CameraEdit, EditError> {
    let doc = parse(text)?;
    let index = camera_index(&doc, camera).map_err(EditError)?;
    let cam = doc
        .get("camera")
        .and_then(Item::as_array_of_tables)
        .and_then(|a| a.get(index))
        .expect("camera_index found it");
    let at = |what: &str, e: String| EditError(format!("camera `{camera}`: {what}: {e}"));
    let mut edit = CameraEdit {
        camera: camera.into(),
        zones: Vec::new(),
        masks: Vec::new(),
        ground: None,
        rules: BTreeMap::new(),
    };
    for (i, z) in tables(cam, "zone", camera)?
        .into_iter()
        .flatten()
        .enumerate()
    {
        let what = format!("zone {}", i + 1);
        let id = zone_id(z).ok_or_else(|| at(&what, "it has no `id`".into()))?;
        let what = format!("zone `{id}`");
        let name = match z.get("name").map(Item::as_str) {
            None => None,
            Some(Some(name)) => Some(name.to_string()),
            Some(None) => return Err(at(&what, "`name` is not a string".into())),
        };
        let points = points(z.get("points")).map_err(|e| at(&what, format!("`points`: {e}")))?;
        let area_m2 = match z.get("area_m2").and_then(Item::as_value) {
            None => None,
            Some(v) => Some(
                v.as_float()
                    .or_else(|| v.as_integer().map(|i| i as f64))
                    .ok_or_else(|| at(&what, "`area_m2` is not a number".into()))?,
            ),
        };
        edit.zones.push(ZoneEdit {
            id: id.into(),
            name,
            points,
            area_m2,
        });
    }
    for (i, m) in tables(cam, "mask", camera)?
        .into_iter()
        .flatten()
        .enumerate()
    {
        let what = format!("mask {}", i + 1);
        let points = points(m.get("points")).map_err(|e| at(&what, format!("`points`: {e}")))?;
        let labels = match m.get("labels").map(item_to_json).transpose() {
            Ok(None) => Vec::new(),
            Ok(Some(l)) => serde_json::from_value(l)
                .map_err(|_| at(&what, "`labels` is not a list of strings".into()))?,
            Err(e) => return Err(at(&what, e)),
        };
        edit.masks.push(MaskEdit { points, labels });
    }
    if let Some(g) = cam.get("ground") {
        let g = g
            .as_table_like()
            .ok_or_else(|| at("ground", "it is not a table".into()))?;
        edit.ground = Some(GroundEdit {
            image: points(g.get("image")).map_err(|e| at("ground", format!("`image`: {e}")))?,
            ground: points(g.get("ground")).map_err(|e| at("ground", format!("`ground`: {e}")))?,
        });
    }
    for ty in rule_names() {
        if let Some(item) = cam.get(ty) {
            edit.rules
                .insert(ty.into(), rule_tables(ty, item).map_err(|e| at(ty, e))?);
        }
    }
    Ok(edit)
}

/// A rule type's tables as JSON objects, whether written as `[[camera.<ty>]]` or as an inline list.
fn rule_tables(ty: &str, item: &Item) -> Result<Vec<Map<String, Json>>, String> {
    let not_tables = || format!("write it as [[camera.{ty}]] tables to edit it here");
    match item_to_json(item)? {
        Json::Array(rules) => rules
            .into_iter()
            .map(|r| match r {
                Json::Object(m) => Ok(m),
                _ => Err(not_tables()),
            })
            .collect(),
        _ => Err(not_tables()),
    }
}

/// The file `text` with `edit` written into its camera; everything the edit does not change stays as it
/// was, comments included.
pub fn apply(text: &str, edit: &CameraEdit) -> Result<String, EditError> {
    let known = rule_names();
    if let Some(ty) = edit.rules.keys().find(|ty| !known.contains(&ty.as_str())) {
        return fail(format!(
            "there is no rule type `{ty}`; the types are {}",
            known.join(", ")
        ));
    }
    let mut doc = parse(text)?;
    let index = camera_index(&doc, &edit.camera).map_err(EditError)?;
    let cam = doc
        .get_mut("camera")
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|a| a.get_mut(index))
        .expect("camera_index found it");
    let name = edit.camera.as_str();
    apply_zones(cam, &edit.zones, name)?;
    apply_masks(cam, &edit.masks, name)?;
    apply_ground(cam, edit.ground.as_ref(), name)?;
    for (ty, rules) in &edit.rules {
        apply_rules(cam, ty, rules)
            .map_err(|e| EditError(format!("camera `{name}`: {ty}: {e}")))?;
    }
    let out = doc.to_string();
    // toml_edit does not check what it writes (a key added to a dotted table, say, can come out where TOML
    // forbids it). What the result means is the plan's check; that it is TOML at all is checked here.
    if let Err(e) = out.parse::<DocumentMut>() {
        return fail(format!(
            "the edited file would not parse (a bug; nothing was written): {e}"
        ));
    }
    Ok(out)
}

fn parse(text: &str) -> Result<DocumentMut, EditError> {
    // Only where and what: toml_edit's own text quotes the line, which may hold a camera's URL.
    text.parse::<DocumentMut>().map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        EditError(format!(
            "the configuration is not valid TOML (line {}: {}); fix it first",
            line.map_or("?".to_string(), |l| l.to_string()),
            e.message()
        ))
    })
}

fn camera_ids(doc: &DocumentMut) -> Vec<&str> {
    let cams = doc.get("camera").and_then(Item::as_array_of_tables);
    cams.into_iter()
        .flatten()
        .map(|c| c.get("id").and_then(Item::as_str).unwrap_or(""))
        .collect()
}

fn no_camera(doc: &DocumentMut, camera: &str) -> String {
    let ids = camera_ids(doc);
    if doc.get("camera").is_some_and(|c| !c.is_array_of_tables()) {
        return "the cameras are not written as [[camera]] tables; write them so to edit them here"
            .into();
    }
    format!(
        "there is no camera `{camera}` in the configuration (cameras: {})",
        if ids.is_empty() {
            "none".into()
        } else {
            ids.join(", ")
        }
    )
}

fn camera_index(doc: &DocumentMut, camera: &str) -> Result<usize, String> {
    camera_ids(doc)
        .iter()
        .position(|id| *id == camera)
        .ok_or_else(|| no_camera(doc, camera))
}

/// The camera's `[[camera.<key>]]` tables; `None` when it has none. Zones and masks written as an inline
/// list cannot be matched up and are refused.
fn tables<'a>(
    cam: &'a Table,
    key: &str,
    camera: &str,
) -> Result<Option<&'a ArrayOfTables>, EditError> {
    match cam.get(key) {
        None => Ok(None),
        Some(Item::ArrayOfTables(a)) => Ok(Some(a)),
        Some(_) => fail(format!(
            "camera `{camera}`: `{key}` is not written as [[camera.{key}]] tables; write it so to edit it here"
        )),
    }
}

fn tables_mut<'a>(
    cam: &'a mut Table,
    key: &str,
    camera: &str,
) -> Result<&'a mut ArrayOfTables, EditError> {
    tables(cam, key, camera)?;
    let item = cam
        .entry(key)
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()));
    Ok(item.as_array_of_tables_mut().expect("checked above"))
}

fn zone_id(t: &Table) -> Option<&str> {
    t.get("id").and_then(Item::as_str)
}

fn points(item: Option<&Item>) -> Result<Vec<[f64; 2]>, String> {
    let item = item.ok_or("it is missing")?;
    let json = item_to_json(item)?;
    serde_json::from_value(json).map_err(|_| "it is not a list of [x, y] pairs".into())
}

fn points_json(points: &[[f64; 2]]) -> Json {
    Json::Array(
        points
            .iter()
            .map(|[x, y]| Json::from(vec![*x, *y]))
            .collect(),
    )
}

/// Set `key` of `t` to `new`, merging into what is there so unchanged parts keep their text.
fn set(t: &mut Table, key: &str, new: &Json, decimals: i32) -> Result<(), String> {
    match t.get_mut(key) {
        Some(Item::Value(v)) => merge_value(v, new, decimals),
        Some(item) => {
            *item = Item::Value(convert::json_to_value(new, decimals)?);
            Ok(())
        }
        None => {
            t.insert(key, Item::Value(convert::json_to_value(new, decimals)?));
            Ok(())
        }
    }
}

fn apply_zones(cam: &mut Table, zones: &[ZoneEdit], camera: &str) -> Result<(), EditError> {
    for (i, z) in zones.iter().enumerate() {
        if zones[..i].iter().any(|o| o.id == z.id) {
            return fail(format!(
                "camera `{camera}`: two zones are called `{}`; zone ids must differ",
                z.id
            ));
        }
    }
    let existing = tables(cam, "zone", camera)?;
    if existing.is_none() && zones.is_empty() {
        return Ok(());
    }
    // With no zone yet, the first goes right after the camera's own keys.
    let anchor = existing
        .and_then(|a| a.iter().last())
        .map_or(cam.position(), subtree_end);
    let all = tables_mut(cam, "zone", camera)?;
    if let Some(i) = all.iter().position(|t| zone_id(t).is_none()) {
        return fail(format!(
            "camera `{camera}`: zone {} has no `id`; give it one in the file first",
            i + 1
        ));
    }
    all.retain(|t| zones.iter().any(|z| Some(z.id.as_str()) == zone_id(t)));
    let mut kept = Vec::new();
    for t in all.iter_mut() {
        let z = zones
            .iter()
            .find(|z| Some(z.id.as_str()) == zone_id(t))
            .expect("retained");
        write_zone(t, z)
            .map_err(|e| EditError(format!("camera `{camera}`: zone `{}`: {e}", z.id)))?;
        kept.push(z.id.clone());
    }
    for z in zones.iter().filter(|z| !kept.contains(&z.id)) {
        let mut t = Table::new();
        t.insert("id", toml_edit::value(z.id.as_str()));
        write_zone(&mut t, z)
            .map_err(|e| EditError(format!("camera `{camera}`: zone `{}`: {e}", z.id)))?;
        t.set_position(all.iter().last().map_or(anchor, subtree_end));
        all.push(t);
    }
    if all.is_empty() {
        cam.remove("zone");
    }
    Ok(())
}

fn write_zone(t: &mut Table, z: &ZoneEdit) -> Result<(), String> {
    match &z.name {
        Some(name) => set(t, "name", &Json::from(name.as_str()), RULE_DECIMALS)?,
        None => {
            t.remove("name");
        }
    }
    set(t, "points", &points_json(&z.points), POINT_DECIMALS)?;
    match z.area_m2 {
        Some(a) => set(t, "area_m2", &Json::from(a), RULE_DECIMALS),
        None => {
            t.remove("area_m2");
            Ok(())
        }
    }
}

fn apply_masks(cam: &mut Table, masks: &[MaskEdit], camera: &str) -> Result<(), EditError> {
    if tables(cam, "mask", camera)?.is_none() && masks.is_empty() {
        return Ok(());
    }
    let anchor = subtree_end(cam);
    let all = tables_mut(cam, "mask", camera)?;
    while all.len() > masks.len() {
        all.remove(all.len() - 1);
    }
    for (i, m) in masks.iter().enumerate() {
        if i == all.len() {
            let mut t = Table::new();
            t.set_position(all.iter().last().map_or(anchor, subtree_end));
            all.push(t);
        }
        let t = all.get_mut(i).expect("pushed above");
        write_mask(t, m)
            .map_err(|e| EditError(format!("camera `{camera}`: mask {}: {e}", i + 1)))?;
    }
    if all.is_empty() {
        cam.remove("mask");
    }
    Ok(())
}

fn write_mask(t: &mut Table, m: &MaskEdit) -> Result<(), String> {
    set(t, "points", &points_json(&m.points), POINT_DECIMALS)?;
    let labels = Json::from(m.labels.clone());
    let unchanged = t.get("labels").map(item_to_json).transpose()?;
    match unchanged {
        Some(old) if convert::same(&old, &labels, RULE_DECIMALS) => Ok(()),
        _ if m.labels.is_empty() => {
            t.remove("labels");
            Ok(())
        }
        _ => set(t, "labels", &labels, RULE_DECIMALS),
    }
}

fn apply_ground(
    cam: &mut Table,
    ground: Option<&GroundEdit>,
    camera: &str,
) -> Result<(), EditError> {
    let Some(g) = ground else {
        cam.remove("ground");
        return Ok(());
    };
    let at = |e: String| EditError(format!("camera `{camera}`: ground: {e}"));
    let mut new = Map::new();
    new.insert("image".into(), points_json(&g.image));
    new.insert("ground".into(), points_json(&g.ground));
    let anchor = subtree_end(cam);
    // Keys the console does not edit stay (the plan reports them if they do not belong).
    if let Some(old) = cam.get("ground").and_then(Item::as_table_like) {
        let mut all = table_to_json(old).map_err(at)?;
        all.extend(new.clone());
        new = all;
    }
    match cam.get_mut("ground") {
        Some(Item::Table(t)) => convert::merge_table(t, &new, POINT_DECIMALS, &[]).map_err(at),
        Some(Item::Value(v)) => merge_value(v, &Json::Object(new), POINT_DECIMALS).map_err(at),
        _ => {
            let mut t = Table::new();
            convert::merge_table(&mut t, &new, POINT_DECIMALS, &["image", "ground"]).map_err(at)?;
            t.set_position(anchor);
            cam.insert("ground", Item::Table(t));
            Ok(())
        }
    }
}

fn apply_rules(cam: &mut Table, ty: &str, rules: &[Map<String, Json>]) -> Result<(), String> {
    let new: Vec<&Map<String, Json>> = rules.iter().collect();
    let schema = super::schema::rule_types();
    let order: Vec<&str> = schema
        .iter()
        .filter(|r| r.name == ty)
        .flat_map(|r| r.keys.iter().map(|k| k.name))
        .collect();
    if new.is_empty() {
        cam.remove(ty);
        return Ok(());
    }
    let anchor = subtree_end(cam);
    match cam.get_mut(ty) {
        Some(Item::ArrayOfTables(a)) => merge_tables(a, &new, RULE_DECIMALS, anchor, &order),
        Some(Item::Value(v)) => {
            let list = Json::Array(rules.iter().cloned().map(Json::Object).collect());
            merge_value(v, &list, RULE_DECIMALS)
        }
        Some(_) => Err(format!(
            "write it as [[camera.{ty}]] tables to edit it here"
        )),
        None => {
            let mut a = ArrayOfTables::new();
            merge_tables(&mut a, &new, RULE_DECIMALS, anchor, &order)?;
            cam.insert(ty, Item::ArrayOfTables(a));
            Ok(())
        }
    }
}
