//! The city's mapping file: which fields a new case carries, each a template over the incident's event.
//!
//! ```toml
//! time_zone = "Asia/Shanghai"
//! [body]
//! title = "{category_name}：{zone.name}"
//! description = "{local_time}，{device.name}{camera.name}发现{category_name}（置信度 {confidence}）。"
//! type_code = "{codes.city_type_id|codes.gbt30428|codes.local}"
//! grid_code = "{zone.grid_code}"
//! longitude = "{zone.lon}"
//! evidence = "{evidence_urls}"
//! [categories.crowd_density]
//! type_code = "99-01"
//! [resolved_before_dispatch]
//! default = "keep"
//! street_vending = "cancel"
//! ```
//!
//! A placeholder names a field of the event (`zone.grid_code`, `device.gb28181_id`, `crowd.level`) or one
//! the bridge derives (`local_time`, `local_date`, `category_name`, `evidence_urls`, `evidence_url`);
//! `a|b|c` takes the first that is present and not empty. A value that is a single placeholder keeps its
//! type (a number stays a number, `evidence_urls` a list); anything else is text. A category's table
//! replaces those fields for its cases. `[resolved_before_dispatch]` says per category what becomes of a
//! case whose incident ended on its own before anyone was sent.

use crate::config::{ConfigError, ConfigErrors, Lines};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

/// What placeholders may start with: the event's own top-level fields and the derived ones.
const ROOTS: &[&str] = &[
    "event_id",
    "incident_id",
    "phase",
    "time",
    "address",
    "description",
    "category",
    "codes",
    "device",
    "camera",
    "zone",
    "first_seen",
    "last_seen",
    "dwell_s",
    "confidence",
    "crowd",
    "objects",
    "zone_state",
    "model",
    "agent",
    "reopened",
    "extensions",
    "local_time",
    "local_date",
    "category_name",
    "evidence_urls",
    "evidence_url",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default = "default_zone")]
    time_zone: Spanned<String>,
    /// The language of what the bridge writes itself (re-check reports): `zh-CN` (default) or `en`.
    #[serde(default)]
    language: crate::base::Language,
    body: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    categories: BTreeMap<String, BTreeMap<String, Spanned<String>>>,
    /// Per category (and `default`): `keep`, `cancel` or `close`.
    #[serde(default)]
    resolved_before_dispatch: BTreeMap<String, Spanned<String>>,
}

/// What becomes of a case whose incident ended on its own before anyone was sent (`[resolved_before_dispatch]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenResolved {
    /// Nothing: the case goes its way (dispatched, re-checked).
    Keep,
    /// Withdrawn: not filed if it was not yet, else reported `cancelled`.
    Cancel,
    /// Closed: filed if it was not yet, then reported `cleared` with the pole's last picture.
    Close,
}

fn default_zone() -> Spanned<String> {
    Spanned::new(0..0, "Asia/Shanghai".into())
}

/// A checked mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    zone: chrono_tz::Tz,
    english: bool,
    when_resolved: BTreeMap<String, WhenResolved>,
    body: BTreeMap<String, String>,
    categories: BTreeMap<String, BTreeMap<String, String>>,
}

impl Mapping {
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text =
            crate::base::read_text_capped(path, crate::config::MAX_CONFIG_BYTES).map_err(|e| {
                ConfigErrors(vec![ConfigError {
                    file: path.to_path_buf(),
                    line: 0,
                    message: format!("cannot read the mapping file: {e}"),
                }])
            })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigErrors> {
        let lines = Lines::new(path, text);
        let f: File = crate::config::from_toml(path, text)?;
        let mut errors = Vec::new();
        let zone = f
            .time_zone
            .get_ref()
            .parse::<chrono_tz::Tz>()
            .unwrap_or_else(|_| {
                errors.push(lines.error(
                    &f.time_zone.span(),
                    format!(
                        "`{}` is not an IANA time zone; write one like Asia/Shanghai",
                        f.time_zone.get_ref()
                    ),
                ));
                chrono_tz::Asia::Shanghai
            });
        let english = f.language == crate::base::Language::En;
        if f.body.is_empty() {
            errors.push(ConfigError {
                file: path.to_path_buf(),
                line: 0,
                message: "[body] names no field; a case needs at least a title and a description"
                    .into(),
            });
        }
        let mut when_resolved = BTreeMap::new();
        for (category, policy) in &f.resolved_before_dispatch {
            let p = match policy.get_ref().as_str() {
                "keep" => WhenResolved::Keep,
                "cancel" => WhenResolved::Cancel,
                "close" => WhenResolved::Close,
                other => {
                    errors.push(lines.error(
                        &policy.span(),
                        format!("`{category}` = `{other}`: write keep, cancel or close"),
                    ));
                    continue;
                }
            };
            when_resolved.insert(category.clone(), p);
        }
        let mut check = |fields: &BTreeMap<String, Spanned<String>>| -> BTreeMap<String, String> {
            for (name, template) in fields {
                if let Err(e) = check_template(template.get_ref()) {
                    errors.push(lines.error(&template.span(), format!("field `{name}`: {e}")));
                }
            }
            fields
                .iter()
                .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                .collect()
        };
        let body = check(&f.body);
        let categories = f
            .categories
            .iter()
            .map(|(c, fields)| (c.clone(), check(fields)))
            .collect();
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Self {
            zone,
            english,
            when_resolved,
            body,
            categories,
        })
    }

    /// The create-case body for `event` (an `opened` event), its evidence served at `evidence_urls`.
    pub fn render(&self, event: &Value, evidence_urls: &[String]) -> Value {
        let derived = self.derived(event, evidence_urls);
        let category = event["category"].as_str().unwrap_or_default();
        let mut fields = self.body.clone();
        if let Some(over) = self.categories.get(category) {
            fields.extend(over.clone());
        }
        let mut out = Map::new();
        for (name, template) in fields {
            out.insert(name, fill(&template, event, &derived));
        }
        Value::Object(out)
    }

    /// The policy for `category`'s cases whose incident ends before dispatch (its own, else `default`, else
    /// keep).
    pub fn when_resolved(&self, category: &str) -> WhenResolved {
        self.when_resolved
            .get(category)
            .or_else(|| self.when_resolved.get("default"))
            .copied()
            .unwrap_or(WhenResolved::Keep)
    }

    /// The report of a re-check of case `case_id`: what the pole found (`found`: `result`, `verified_at`,
    /// `error`), in words, with the fresh pictures' URLs.
    pub fn report(&self, case_id: &str, found: &Value, evidence_urls: &[String]) -> Value {
        let result = found["result"].as_str().unwrap_or("no_answer");
        let at = found["verified_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| {
                t.with_timezone(&self.zone)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default();
        let error = found["error"].as_str().unwrap_or_default();
        let by_itself = found["resolved_by_itself"] == true;
        let reason = found["reason"].as_str().unwrap_or_default();
        let why = if self.english {
            reason.replace('_', " ")
        } else {
            reason_zh(reason).to_string()
        };
        let text = match (result, self.english) {
            ("cancelled", false) => format!("{at}，事件在派遣前已自行消失（{why}），撤销工单。"),
            ("cancelled", true) => format!(
                "{at}: the incident ended on its own before dispatch ({why}); the case is withdrawn."
            ),
            ("cleared", false) if by_itself => {
                format!("{at}，杆端摄像机确认事件已自行消失（{why}），建议结案。")
            }
            ("cleared", true) if by_itself => format!(
                "{at}: the pole's camera saw the incident end on its own ({why}); the case can be closed."
            ),
            ("cleared", false) => format!("{at}，杆端摄像机复核：现场已恢复正常，建议结案。"),
            ("cleared", true) => format!(
                "{at}: re-checked by the pole's camera — the scene is clear; the case can be closed."
            ),
            ("still_present", false) => format!("{at}，杆端摄像机复核：问题仍然存在，退回处置。"),
            ("still_present", true) => format!(
                "{at}: re-checked by the pole's camera — the problem is still there; returned for disposal."
            ),
            (_, false) => format!("杆端未能完成复核（{error}），请人工核查。"),
            (_, true) => format!("The pole could not re-check ({error}); please check on site."),
        };
        serde_json::json!({
            "case_id": case_id,
            "result": if matches!(result, "cleared" | "still_present" | "cancelled") { result } else { "no_answer" },
            "description": text,
            "verified_at": at,
            "evidence": evidence_urls,
        })
    }

    fn derived(&self, event: &Value, evidence_urls: &[String]) -> Map<String, Value> {
        let local = event["first_seen"]
            .as_str()
            .or(event["time"].as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&self.zone));
        let mut d = Map::new();
        if let Some(t) = local {
            d.insert(
                "local_time".into(),
                t.format("%Y-%m-%d %H:%M:%S").to_string().into(),
            );
            d.insert("local_date".into(), t.format("%Y-%m-%d").to_string().into());
        }
        let name = event["codes"]["name"]
            .as_str()
            .or(event["category"].as_str())
            .unwrap_or_default();
        d.insert("category_name".into(), name.into());
        d.insert("evidence_urls".into(), evidence_urls.to_vec().into());
        if let Some(first) = evidence_urls.first() {
            d.insert("evidence_url".into(), first.clone().into());
        }
        d
    }
}

/// A resolved event's `reason` in words.
fn reason_zh(reason: &str) -> &'static str {
    match reason {
        "cleared" => "目标已离开",
        "suppressed" => "调度员标记为误报",
        "schedule_ended" => "规则时段结束",
        "verified_cleared" => "复核确认已清除",
        "config_changed" => "杆端配置变更",
        "not_observed" => "未能持续观察",
        "camera_health" => "摄像机画面异常",
        _ => "原因未知",
    }
}

/// Every `{…}` of `template` names a known root; braces are balanced.
fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or("a `{` has no closing `}`")? + open;
        for path in rest[open + 1..close].split('|') {
            let root = path.split('.').next().unwrap_or_default().trim();
            if !ROOTS.contains(&root) {
                return Err(format!(
                    "unknown placeholder `{{{path}}}`; use a field of the event or one of local_time, local_date, category_name, evidence_urls, evidence_url"
                ));
            }
        }
        rest = &rest[close + 1..];
    }
    if rest.contains('}') {
        return Err("a `}` has no opening `{`".into());
    }
    Ok(())
}

/// The value at dotted `path` of the derived fields or the event; `None` when absent, null or empty.
fn lookup<'a>(path: &str, event: &'a Value, derived: &'a Map<String, Value>) -> Option<&'a Value> {
    let mut parts = path.trim().split('.');
    let first = parts.next()?;
    let mut v = derived.get(first).or_else(|| event.get(first))?;
    for p in parts {
        v = v.get(p)?;
    }
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(a) if a.is_empty() => None,
        v => Some(v),
    }
}

fn first_present<'a>(
    alternatives: &str,
    event: &'a Value,
    derived: &'a Map<String, Value>,
) -> Option<&'a Value> {
    alternatives
        .split('|')
        .find_map(|p| lookup(p, event, derived))
}

fn fill(template: &str, event: &Value, derived: &Map<String, Value>) -> Value {
    let t = template.trim();
    if t.starts_with('{') && t.ends_with('}') && t.matches('{').count() == 1 {
        return first_present(&t[1..t.len() - 1], event, derived)
            .cloned()
            .unwrap_or(Value::Null);
    }
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| c + open) else {
            break;
        };
        out.push_str(&rest[..open]);
        match first_present(&rest[open + 1..close], event, derived) {
            Some(Value::String(s)) => out.push_str(s),
            Some(Value::Number(n)) => out.push_str(&n.to_string()),
            Some(v) => out.push_str(&v.to_string()),
            None => {}
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Value::String(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "event_id": "e1", "incident_id": "i1", "phase": "opened", "category": "crowd_density",
            "first_seen": "2026-11-23T08:51:35.120Z", "confidence": 0.76,
            "codes": { "name": "人群聚集", "local": "99-01" },
            "device": { "id": "pole-7", "name": "文三路7号杆", "gb28181_id": "34020000085050000001" },
            "camera": { "id": "walkway", "name": "人行道" },
            "zone": { "id": "walkway", "grid_code": "330106001002003", "lat": 30.2741, "lon": 120.1551 }
        })
    }

    #[test]
    fn a_case_body_takes_the_events_fields_in_the_citys_words() {
        let m = Mapping::parse(
            Path::new("m.toml"),
            r#"
[body]
title = "{category_name}：{device.name}"
description = "{local_time}，{device.name}{camera.name}发现{category_name}（置信度 {confidence}）。"
type_code = "{codes.city_type_id|codes.local}"
channel = "{device.gb28181_id}"
lat = "{zone.lat}"
photos = "{evidence_urls}"
[categories.crowd_density]
title = "人群聚集：{zone.grid_code}"
"#,
        )
        .unwrap();
        let body = m.render(&event(), &["https://b/e/1".into()]);
        assert_eq!(
            body["title"], "人群聚集：330106001002003",
            "the category's own title"
        );
        assert_eq!(
            body["description"],
            "2026-11-23 16:51:35，文三路7号杆人行道发现人群聚集（置信度 0.76）。",
            "local time in the city's zone"
        );
        assert_eq!(body["type_code"], "99-01", "the first code present");
        assert_eq!(body["channel"], "34020000085050000001");
        assert_eq!(body["lat"], 30.2741, "a single placeholder keeps its type");
        assert_eq!(body["photos"], json!(["https://b/e/1"]));
    }

    #[test]
    fn a_wrong_placeholder_or_zone_is_named_at_its_line() {
        let e = Mapping::parse(
            Path::new("m.toml"),
            "time_zone = \"Mars/Olympus\"\n[body]\ntitle = \"{categry}\"\n[resolved_before_dispatch]\nstreet_vending = \"forget\"\n",
        )
        .unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains("m.toml:1: `Mars/Olympus` is not an IANA time zone"),
            "{shown}"
        );
        assert!(
            shown.contains("m.toml:3: field `title`: unknown placeholder `{categry}`"),
            "{shown}"
        );
        assert!(
            shown.contains("m.toml:5: `street_vending` = `forget`: write keep, cancel or close"),
            "{shown}"
        );
        let e = Mapping::parse(
            Path::new("m.toml"),
            "language = \"fr\"\n[body]\ntitle = \"{category_name}\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("m.toml:1:") && e.contains("zh-CN"), "{e}");
    }
}
