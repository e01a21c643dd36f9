//! What the console's rule forms show: for each rule type, its keys in the order the configuration
//! declares them, what kind of value each takes, whether it must be given, and the default that applies
//! when it is left out.
//!
//! The config structs in `crate::config` are the truth; this table restates them for the browser because
//! serde keeps no record of defaults. The tests below hold the two together: every default here must
//! deserialise to exactly what omitting the key gives, and every field of each struct must be listed.

use serde::Serialize;
use serde_json::{Value, json};

/// One rule type (`crowd_density`, …) as the console's form shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleType {
    /// The table array's name under `[[camera.…]]`.
    pub name: &'static str,
    /// Every key the type accepts, in the config struct's field order.
    pub keys: Vec<Key>,
}

/// One key of a rule table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Key {
    pub name: &'static str,
    pub kind: Kind,
    /// The rule is refused without it.
    pub required: bool,
    /// What leaving the key out means. `Null` when it is decided elsewhere: by the rule type, by the
    /// model's label mapping, or (for `schedule`) "always".
    pub default: Value,
}

/// The form control a key needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    String,
    Number,
    Integer,
    Bool,
    /// A list of strings (labels, states).
    Strings,
    /// Crowd levels: a list of `{name, min_density}` in ascending density.
    Levels,
    /// `{days, hours}`: when the rule is active.
    Schedule,
    /// `{clear_s, cooldown_s, update_interval_s}`: how the condition becomes one case.
    Incident,
}

fn key(name: &'static str, kind: Kind, default: Value) -> Key {
    Key {
        name,
        kind,
        required: false,
        default,
    }
}

fn required(name: &'static str, kind: Kind) -> Key {
    Key {
        name,
        kind,
        required: true,
        default: Value::Null,
    }
}

/// `schedule` and `incident`, which every rule type ends with. The incident's `clear_s` differs per
/// rule type (`crate::config::VENDING_CLEAR_S`, …) and is therefore absent from its default.
fn shared_tail() -> [Key; 2] {
    [
        key("schedule", Kind::Schedule, Value::Null),
        key(
            "incident",
            Kind::Incident,
            json!({ "cooldown_s": 300.0, "update_interval_s": 60.0 }),
        ),
    ]
}

fn rule(name: &'static str, keys: Vec<Key>) -> RuleType {
    let mut keys = keys;
    keys.extend(shared_tail());
    RuleType { name, keys }
}

/// The K-of-N rule types share one struct (`PersistenceRuleConfig`); their defaults for the optional
/// keys come from `crate::config::LAUNDRY` and `BIN_OVERFLOW`, so they are `Null` here.
fn persistence(name: &'static str) -> RuleType {
    use Kind::*;
    rule(
        name,
        vec![
            required("zone", String),
            key("category", String, Value::Null),
            key("labels", Strings, Value::Null),
            key("min_score", Number, json!(0.4)),
            key("sample_every_s", Number, Value::Null),
            key("window", Integer, Value::Null),
            key("min_present", Integer, Value::Null),
        ],
    )
}

/// Every rule type the configuration knows, in the order docs/rules.md describes them.
pub fn rule_types() -> Vec<RuleType> {
    use Kind::*;
    vec![
        rule(
            "crowd_density",
            vec![
                required("zone", String),
                key("category", String, json!("crowd_density")),
                key("labels", Strings, Value::Null),
                key("min_score", Number, json!(0.5)),
                key(
                    "levels",
                    Levels,
                    json!([
                        { "name": "attention", "min_density": 2.0 },
                        { "name": "warning", "min_density": 4.0 },
                        { "name": "alarm", "min_density": 5.0 },
                    ]),
                ),
                key("sustain_s", Number, json!(10.0)),
                key("hysteresis", Number, json!(0.2)),
                key("clear_s", Number, json!(30.0)),
                key("max_count", Integer, Value::Null),
            ],
        ),
        rule(
            "street_vending",
            vec![
                required("zone", String),
                key("category", String, json!("street_vending")),
                key(
                    "vendor_labels",
                    Strings,
                    json!(["vendor", "stall", "cart", "tricycle"]),
                ),
                key("cue_labels", Strings, Value::Null),
                key("person_labels", Strings, json!(["person"])),
                key("min_score", Number, json!(0.4)),
                key("dwell_s", Number, json!(300.0)),
                key("person_radius", Number, json!(1.5)),
                key("min_person_share", Number, json!(0.5)),
            ],
        ),
        persistence("hanging_laundry"),
        persistence("bin_overflow"),
        rule(
            "presence",
            vec![
                required("zone", String),
                required("category", String),
                required("labels", Strings),
                key("min_score", Number, json!(0.4)),
                key("dwell_s", Number, json!(60.0)),
                key("stationary", Bool, json!(false)),
                key("min_count", Integer, json!(1)),
            ],
        ),
        rule(
            "scene_change",
            vec![
                required("zone", String),
                required("category", String),
                key(
                    "exclude_labels",
                    Strings,
                    json!([
                        "person",
                        "bicycle",
                        "car",
                        "motorcycle",
                        "bus",
                        "truck",
                        "umbrella"
                    ]),
                ),
                key("persist_s", Number, json!(120.0)),
                key("min_changed_fraction", Number, json!(0.05)),
                key("cell_threshold", Number, json!(14.0)),
            ],
        ),
        rule(
            "zone_state",
            vec![
                required("zone", String),
                required("category", String),
                required("embedder", String),
                required("states", Strings),
                required("alarm", Strings),
                key("sample_every_s", Number, json!(2.0)),
                key("window", Integer, json!(5)),
                key("min_present", Integer, json!(3)),
                key("margin", Number, json!(0.1)),
                key(
                    "exclude_labels",
                    Strings,
                    json!(["person", "bicycle", "car", "motorcycle", "bus", "truck"]),
                ),
                key("max_occluded", Number, json!(0.3)),
                key("max_examples", Integer, json!(20)),
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        CrowdRuleConfig, PersistenceRuleConfig, PresenceRuleConfig, SceneRuleConfig,
        VendingRuleConfig, ZoneStateRuleConfig,
    };
    use serde::de::DeserializeOwned;
    use std::fmt::Debug;

    fn debug_of<T: DeserializeOwned + Debug>(text: &str) -> Result<String, String> {
        toml::from_str::<T>(text)
            .map(|v| without_spans(&format!("{v:?}")))
            .map_err(|e| e.message().to_string())
    }

    /// The rule table `text` deserialised into its rule type's config struct, as `Debug` text.
    fn parse(rule: &str, text: &str) -> Result<String, String> {
        match rule {
            "crowd_density" => debug_of::<CrowdRuleConfig>(text),
            "street_vending" => debug_of::<VendingRuleConfig>(text),
            "hanging_laundry" | "bin_overflow" => debug_of::<PersistenceRuleConfig>(text),
            "presence" => debug_of::<PresenceRuleConfig>(text),
            "scene_change" => debug_of::<SceneRuleConfig>(text),
            "zone_state" => debug_of::<ZoneStateRuleConfig>(text),
            other => panic!("no config struct for rule type `{other}`"),
        }
    }

    /// `Spanned`'s `Debug` prints where the value was (`span: 12..17, `); a default has `0..0`. Drop it so
    /// a written default and an omitted key compare equal.
    fn without_spans(debug: &str) -> String {
        let mut out = String::with_capacity(debug.len());
        let mut rest = debug;
        while let Some(at) = rest.find("span: ") {
            out.push_str(&rest[..at]);
            let after = &rest[at + "span: ".len()..];
            let end = after
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(after.len());
            rest = after[end..].strip_prefix(", ").unwrap_or(&after[end..]);
        }
        out.push_str(rest);
        out
    }

    /// A value of `kind` the struct accepts (validity is the plan's business, not the parser's).
    fn sample(kind: Kind) -> Value {
        match kind {
            Kind::String => json!("x"),
            Kind::Number => json!(0.75),
            Kind::Integer => json!(4),
            Kind::Bool => json!(true),
            Kind::Strings => json!(["x", "y"]),
            Kind::Levels => json!([{ "name": "busy", "min_density": 1.5 }]),
            Kind::Schedule => json!({ "days": ["mon-fri"], "hours": ["07:00-22:00"] }),
            Kind::Incident => json!({ "clear_s": 5.0, "cooldown_s": 10.0 }),
        }
    }

    fn line(name: &str, value: &Value) -> String {
        let value = toml::Value::try_from(value).expect("a JSON value TOML can hold");
        format!("{name} = {value}\n")
    }

    /// The rule's required keys, each with a sample value.
    fn minimal(rule: &RuleType) -> String {
        rule.keys
            .iter()
            .filter(|k| k.required)
            .map(|k| line(k.name, &sample(k.kind)))
            .collect()
    }

    #[test]
    fn every_default_is_what_omitting_the_key_gives() {
        for rule in rule_types() {
            let base = minimal(&rule);
            let omitted = parse(rule.name, &base).expect("the minimal table parses");
            for k in rule.keys.iter().filter(|k| !k.default.is_null()) {
                let written = parse(rule.name, &(base.clone() + &line(k.name, &k.default)))
                    .unwrap_or_else(|e| panic!("{}.{}: {e}", rule.name, k.name));
                assert_eq!(
                    written, omitted,
                    "{}.{}: the schema's default {} differs from the config's",
                    rule.name, k.name, k.default
                );
            }
        }
    }

    #[test]
    fn required_keys_are_required_and_defaults_are_not_given_for_them() {
        for rule in rule_types() {
            for k in rule.keys.iter().filter(|k| k.required) {
                assert!(k.default.is_null(), "{}.{}", rule.name, k.name);
                let without: String = minimal(&rule)
                    .lines()
                    .filter(|l| !l.starts_with(&format!("{} = ", k.name)))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let err = parse(rule.name, &without).expect_err(k.name);
                assert!(err.contains(k.name), "{}: {err}", rule.name);
            }
        }
    }

    #[test]
    fn every_listed_key_is_accepted_with_a_value_of_its_kind() {
        for rule in rule_types() {
            let text = minimal(&rule)
                + &rule
                    .keys
                    .iter()
                    .filter(|k| !k.required)
                    .map(|k| line(k.name, &sample(k.kind)))
                    .collect::<String>();
            if let Err(e) = parse(rule.name, &text) {
                panic!("{}: {e}\n{text}", rule.name);
            }
        }
    }

    #[test]
    fn the_schema_lists_every_field_of_each_struct_in_order() {
        for rule in rule_types() {
            let text = minimal(&rule) + "bogus = 1\n";
            let err = parse(rule.name, &text).expect_err("bogus is refused");
            let list = err
                .split_once("expected one of ")
                .map(|(_, l)| l.lines().next().unwrap_or(""))
                .unwrap_or_else(|| panic!("{}: {err}", rule.name));
            let fields: Vec<&str> = list.split(", ").map(|f| f.trim_matches('`')).collect();
            let listed: Vec<&str> = rule.keys.iter().map(|k| k.name).collect();
            assert_eq!(listed, fields, "{}", rule.name);
        }
    }

    #[test]
    fn kinds_serialise_as_the_forms_expect() {
        let crowd = &rule_types()[0];
        let levels = crowd.keys.iter().find(|k| k.name == "levels").unwrap();
        let json = serde_json::to_value(levels).unwrap();
        assert_eq!(json["kind"], "levels");
        assert_eq!(json["required"], false);
        assert_eq!(json["default"][2]["name"], "alarm");
        assert_eq!(serde_json::to_value(Kind::Strings).unwrap(), "strings");
    }

    #[test]
    fn span_stripping_leaves_everything_else() {
        assert_eq!(
            without_spans("Spanned { span: 12..17, value: 0.5 }, Spanned { span: 0..0, value: 1 }"),
            "Spanned { value: 0.5 }, Spanned { value: 1 }"
        );
    }
}
