//! Where an event happened, in the work-order system's terms: the GB/T 28181 ids of the device and its
//! cameras, addresses in words, the language events are worded in, and the city's own `extensions` fields
//! (device → camera → zone, the most specific winning), checked here and built into each rule's slot.

use super::check::Check;
use crate::config::{CameraConfig, Config, ZoneConfig};
use crate::incident::{Extensions, Wording};
use serde_json::{Map, Value};
use std::sync::Arc;
use toml::Spanned;

/// At most this many bytes of `extensions` JSON per event: the fields a case needs, not a payload.
const MAX_EXTENSION_BYTES: usize = 4096;

/// How events are worded: the device's time zone (Asia/Shanghai if it is not one — `check` reports that)
/// and its language.
pub fn wording(config: &Config) -> Wording {
    Wording {
        tz: config
            .device
            .timezone
            .get_ref()
            .parse()
            .unwrap_or(chrono_tz::Asia::Shanghai),
        language: config.device.language,
    }
}

/// The device's and every camera's and zone's identity and place fields.
pub(crate) fn verify_place(c: &mut Check, config: &Config) {
    let d = &config.device;
    if let Some(gb) = &d.gb28181_id {
        gb28181(c, gb, "device gb28181_id", None);
    }
    address(c, d.address.as_ref(), "device address");
    extensions(c, d.extensions.as_ref(), "device extensions");
    for cam in &config.cameras {
        let cam = cam.get_ref();
        if let Some(gb) = &cam.gb28181_id {
            let what = format!("camera `{}`: gb28181_id", cam.id);
            gb28181(c, gb, &what, Some(&["131", "132"]));
        }
        address(
            c,
            cam.address.as_ref(),
            &format!("camera `{}`: address", cam.id),
        );
        let what = format!("camera `{}`: extensions", cam.id);
        extensions(c, cam.extensions.as_ref(), &what);
        for z in &cam.zones {
            let z = z.get_ref();
            let what = format!("camera `{}`: zone `{}`", cam.id, z.id);
            address(c, z.address.as_ref(), &format!("{what}: address"));
            extensions(c, z.extensions.as_ref(), &format!("{what}: extensions"));
        }
    }
}

/// The city-specific fields of `cam`'s events (of zone `zone`'s when given): device, camera and zone
/// tables merged key by key, the most specific winning; none when nothing is configured.
pub fn merged_extensions(
    config: &Config,
    cam: &CameraConfig,
    zone: Option<&ZoneConfig>,
) -> Option<Extensions> {
    let tables = [
        config.device.extensions.as_ref(),
        cam.extensions.as_ref(),
        zone.and_then(|z| z.extensions.as_ref()),
    ];
    let mut out = Map::new();
    for table in tables.into_iter().flatten() {
        for (k, v) in table.get_ref() {
            if let Ok(v) = json(v) {
                out.insert(k.clone(), v);
            }
        }
    }
    (!out.is_empty()).then(|| Arc::new(out))
}

fn gb28181(c: &mut Check, at: &Spanned<String>, what: &str, types: Option<&[&str]>) {
    let v = at.get_ref();
    if v.len() != 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
        c.push(at, format!("{what} `{v}` must be 20 digits: 8 centre + 2 industry (08 = city management) + 3 type + 1 network + 6 serial"));
    } else if let Some(types) = types
        && !types.contains(&&v[10..13])
    {
        c.push(
            at,
            format!(
                "{what} `{v}` has type {} (digits 11–13); a camera channel is {}",
                &v[10..13],
                types.join(" or ")
            ),
        );
    }
}

fn address(c: &mut Check, at: Option<&Spanned<String>>, what: &str) {
    if let Some(a) = at {
        c.text(a, what, a.get_ref(), 256);
    }
}

fn extensions(c: &mut Check, at: Option<&Spanned<toml::Table>>, what: &str) {
    let Some(table) = at else { return };
    let mut bytes = 0;
    for (k, v) in table.get_ref() {
        if k.is_empty()
            || k.len() > 64
            || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            c.push(table, format!("{what}: key `{}` must be 1–64 letters, digits or `_` (it becomes a JSON field the city's system reads)", k.escape_debug()));
        }
        match json(v) {
            Ok(v) => bytes += k.len() + v.to_string().len(),
            Err(e) => c.push(table, format!("{what}: `{k}` {e}")),
        }
    }
    if bytes > MAX_EXTENSION_BYTES {
        c.push(table, format!("{what} take {bytes} bytes as JSON; at most {MAX_EXTENSION_BYTES} (keep ids and codes here, not documents)"));
    }
}

/// A TOML value as JSON: numbers must be finite (JSON has no `inf`/`nan`), dates become RFC 3339 text.
fn json(v: &toml::Value) -> Result<Value, String> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("= {f} is not a finite number"))?,
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(json).collect::<Result<_, _>>()?),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_values_become_json_and_non_finite_numbers_are_refused() {
        let t: toml::Table =
            toml::from_str("a = 1\nb = \"x\"\nc = [1.5, true]\nd = { e = 2 }\n").unwrap();
        let v: Vec<Value> = t.values().map(|v| json(v).unwrap()).collect();
        assert_eq!(v[2], serde_json::json!([1.5, true]));
        assert_eq!(v[3], serde_json::json!({"e": 2}));
        assert!(json(&toml::Value::Float(f64::INFINITY)).is_err());
        assert!(json(&toml::Value::Float(f64::NAN)).is_err());
    }
}
