use super::*;
use serde_json::json;
use std::path::{Path, PathBuf};

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/streetsight.example.toml")
}

fn example() -> String {
    std::fs::read_to_string(example_path()).unwrap()
}

/// The example with a second camera after the first, to see that edits stay in their camera.
fn two_cameras() -> String {
    example()
        + r#"
[[camera]]
id = "south"
url = "rtsp://192.168.1.65:554/live"
model = "nanodet"

[[camera.zone]]
id = "kerb"
points = [[0.1, 0.5], [0.9, 0.5], [0.9, 0.9]]
"#
}

/// The example as the validator sees it on this machine: its camera password comes from an environment
/// variable nobody sets in tests, so that line goes.
fn checked(text: &str) -> Result<crate::config::LoadedConfig, crate::config::ConfigErrors> {
    let text = text.replace("password_env = \"NORTH_CAMERA_PASSWORD\"", "");
    crate::plan::load_str(&example_path(), &text)
}

/// The lines of `a` and of `b` between their common first and last lines.
fn changed<'a>(a: &'a str, b: &'a str) -> (Vec<&'a str>, Vec<&'a str>) {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    (
        a[head..a.len() - tail].to_vec(),
        b[head..b.len() - tail].to_vec(),
    )
}

fn camera_ids_of(text: &str) -> Vec<String> {
    let doc: DocumentMut = text.parse().unwrap();
    camera_ids(&doc).into_iter().map(String::from).collect()
}

#[test]
fn applying_the_view_unchanged_gives_back_every_shipped_file_byte_for_byte() {
    let demo = crate::cli::demo::demo_config(
        "rtsp://127.0.0.1:8554/walkway",
        "mqtt://127.0.0.1:1883",
        Path::new("/usr/share/streetsight/models/nanodet-g-416-int8"),
        Path::new("/tmp/demo"),
    );
    let cross = Path::new(env!("CARGO_MANIFEST_DIR")).join("cross/streetsight.toml");
    let files = [
        ("example", example()),
        ("two cameras", two_cameras()),
        ("cross", std::fs::read_to_string(cross).unwrap()),
        ("demo", demo),
    ];
    for (name, text) in files {
        let ids = camera_ids_of(&text);
        assert!(!ids.is_empty(), "{name} has cameras");
        for id in ids {
            let edit = view(&text, &id).unwrap();
            assert_eq!(apply(&text, &edit).unwrap(), text, "{name}, camera {id}");
            let through_json: CameraEdit =
                serde_json::from_str(&serde_json::to_string(&edit).unwrap()).unwrap();
            assert_eq!(
                apply(&text, &through_json).unwrap(),
                text,
                "{name}, camera {id} via JSON"
            );
        }
    }
}

#[test]
fn the_view_holds_what_the_console_edits_and_no_secrets() {
    let edit = view(&example(), "north").unwrap();
    let ids: Vec<&str> = edit.zones.iter().map(|z| z.id.as_str()).collect();
    assert_eq!(ids, ["square", "pavement", "tactile", "bin-corner"]);
    assert_eq!(edit.zones[0].points[0], [0.05, 0.40]);
    assert_eq!(edit.masks[0].labels, ["person"]);
    assert_eq!(edit.rules["crowd_density"][0]["levels"][2]["name"], "alarm");
    assert_eq!(
        edit.rules["street_vending"][0]["schedule"]["days"],
        json!(["mon-sun"])
    );
    let shown = serde_json::to_string(&edit).unwrap();
    for secret in [
        "rtsp://",
        "admin",
        "NORTH_CAMERA_PASSWORD",
        "password",
        "grid_code",
    ] {
        assert!(
            !shown.contains(secret),
            "the view carries `{secret}`: {shown}"
        );
    }
}

#[test]
fn an_unknown_camera_or_rule_type_is_named_in_the_error() {
    let err = view(&example(), "west").unwrap_err().to_string();
    assert!(err.contains("`west`") && err.contains("north"), "{err}");
    let mut edit = view(&example(), "north").unwrap();
    edit.rules.insert("loitering".into(), vec![Map::new()]);
    let err = apply(&example(), &edit).unwrap_err().to_string();
    assert!(
        err.contains("`loitering`") && err.contains("crowd_density"),
        "{err}"
    );
}

#[test]
fn a_new_zone_lands_after_the_cameras_last_zone_and_before_the_next_camera() {
    let text = two_cameras();
    let mut edit = view(&text, "north").unwrap();
    let points = vec![[0.1, 0.1], [0.2, 0.1], [0.30000000000000004, 0.2]];
    edit.zones.push(ZoneEdit {
        area_m2: None,
        id: "kiosk".into(),
        name: Some("Kiosk".into()),
        points,
    });
    let out = apply(&text, &edit).unwrap();

    let (removed, added) = changed(&text, &out);
    assert!(removed.is_empty(), "{removed:?}");
    assert_eq!(
        added,
        [
            "[[camera.zone]]",
            "id = \"kiosk\"",
            "name = \"Kiosk\"",
            "points = [[0.1, 0.1], [0.2, 0.1], [0.3, 0.2]]",
            "",
        ]
    );
    let kiosk = out.find("id = \"kiosk\"").unwrap();
    assert!(kiosk > out.find("id = \"bin-corner\"").unwrap());
    assert!(kiosk < out.find("id = \"south\"").unwrap());
    let config = crate::config::parse_str(&example_path(), &out)
        .unwrap()
        .config;
    let zones = |i: usize| -> Vec<String> {
        config.cameras[i]
            .get_ref()
            .zones
            .iter()
            .map(|z| z.get_ref().id.clone())
            .collect()
    };
    assert_eq!(
        zones(0),
        ["square", "pavement", "tactile", "bin-corner", "kiosk"]
    );
    assert_eq!(zones(1), ["kerb"]);
}

#[test]
fn moving_one_point_changes_only_that_line_and_keeps_the_others_spelling() {
    let text = example();
    let mut edit = view(&text, "north").unwrap();
    edit.zones[0].points[1] = [0.9, 0.45];
    let out = apply(&text, &edit).unwrap();
    let (removed, added) = changed(&text, &out);
    assert_eq!(removed.len(), 1);
    assert_eq!(
        added,
        [
            "points = [[0.05, 0.40], [0.9, 0.45], [0.95, 0.98], [0.05, 0.98]]   # normalised x, y; at least 3 points"
        ]
    );
}

#[test]
fn comments_above_inside_and_after_an_edited_zone_survive() {
    let text = r#"[[camera]]
id = "a"
url = "rtsp://cam/a"
model = "m"

# The bus stop: keep it clear.
[[camera.zone]]
id = "stop"   # as the city names it
name = "Bus stop"
# Drawn from the 2024 survey.
points = [[0.1, 0.1], [0.2, 0.1], [0.2, 0.2]]   # clockwise
area_m2 = 12.0

# The next zone follows.
[[camera.zone]]
id = "next"
points = [[0.5, 0.5], [0.6, 0.5], [0.6, 0.6]]
"#;
    let mut edit = view(text, "a").unwrap();
    edit.zones[0].name = Some("Bus stop 12".into());
    edit.zones[0].points.push([0.1, 0.2]);
    let out = apply(text, &edit).unwrap();
    let expected = text.replace("\"Bus stop\"", "\"Bus stop 12\"").replace(
        "[0.2, 0.2]]   # clockwise",
        "[0.2, 0.2], [0.1, 0.2]]   # clockwise",
    );
    assert_eq!(out, expected);
}

#[test]
fn removing_a_zone_removes_its_lines_and_nothing_else() {
    let text = example();
    let mut edit = view(&text, "north").unwrap();
    edit.zones.retain(|z| z.id != "tactile");
    let out = apply(&text, &edit).unwrap();
    let block = "\n[[camera.zone]]\nid = \"tactile\"\nname = \"Tactile paving by the crossing\"\n\
                 points = [[0.60, 0.60], [0.75, 0.60], [0.75, 0.95], [0.60, 0.95]]\n";
    assert!(text.contains(block));
    assert_eq!(out, text.replacen(block, "", 1));
}

#[test]
fn a_new_crowd_rule_with_levels_is_written_where_the_validator_accepts_it() {
    let text = two_cameras();
    assert!(checked(&text).is_ok(), "{}", checked(&text).unwrap_err());
    let mut edit = view(&text, "north").unwrap();
    let rule = json!({
        "zone": "square",
        "min_score": 0.45,
        "levels": [{ "name": "busy", "min_density": 1.5 }, { "name": "packed", "min_density": 3 }],
        "schedule": { "days": ["sat", "sun"], "hours": ["10:00-18:00"] },
        "incident": { "cooldown_s": 600 },
        "max_count": null,
    });
    let crowd = edit.rules.get_mut("crowd_density").unwrap();
    crowd.push(rule.as_object().unwrap().clone());
    let out = apply(&text, &edit).unwrap();
    let loaded = checked(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let north = loaded.config.cameras[0].get_ref();
    assert_eq!(north.crowd_density.len(), 2);
    let new = north.crowd_density[1].get_ref();
    assert_eq!(new.zone.get_ref(), "square");
    assert_eq!(new.levels.get_ref()[1].name, "packed");
    assert_eq!(new.incident.cooldown_s, 600.0);
    assert!(loaded.config.cameras[1].get_ref().crowd_density.is_empty());
    let (removed, added) = changed(&text, &out);
    assert!(removed.is_empty(), "{removed:?}");
    assert_eq!(added[0], "[[camera.crowd_density]]");
    assert_eq!(
        added[1], "zone = \"square\"",
        "the schema's order: zone first"
    );
    assert_eq!(
        view(&out, "north").unwrap().rules["crowd_density"][1],
        rule_without_nulls(&rule)
    );
}

fn rule_without_nulls(rule: &Json) -> Map<String, Json> {
    let mut m = rule.as_object().unwrap().clone();
    m.retain(|_, v| !v.is_null());
    m
}

#[test]
fn changing_a_rule_touches_only_the_keys_that_differ() {
    let text = example();
    let mut edit = view(&text, "north").unwrap();
    let crowd = &mut edit.rules.get_mut("crowd_density").unwrap()[0];
    crowd.insert("hysteresis".into(), json!(0.25));
    crowd.remove("clear_s");
    crowd.insert("max_count".into(), json!(40));
    let out = apply(&text, &edit).unwrap();
    let (removed, added) = changed(&text, &out);
    assert_eq!(
        removed,
        [
            "hysteresis = 0.2                           # a held level is kept until density < min_density − hysteresis",
            "sustain_s = 10                             # a level must hold this long before it is reported",
            "clear_s = 30                               # below every level this long → the incident resolves",
        ]
    );
    assert_eq!(
        added,
        [
            "hysteresis = 0.25                           # a held level is kept until density < min_density − hysteresis",
            "sustain_s = 10                             # a level must hold this long before it is reported",
            "max_count = 40",
        ]
    );
}

#[test]
fn rule_types_left_out_are_untouched_and_an_empty_list_removes_them_all() {
    let text = example();
    let mut edit = view(&text, "north").unwrap();
    edit.rules.remove("presence");
    edit.rules.insert("scene_change".into(), Vec::new());
    let out = apply(&text, &edit).unwrap();
    assert!(out.contains("[[camera.presence]]"));
    assert!(!out.contains("\n[[camera.scene_change]]"));
    assert!(
        out.contains("# [[camera.hanging_laundry]]"),
        "the next table's comments stay"
    );
    assert!(
        !view(&out, "north")
            .unwrap()
            .rules
            .contains_key("scene_change")
    );
}

#[test]
fn a_first_rule_of_a_type_goes_to_the_end_of_its_camera() {
    let text = two_cameras();
    let mut edit = view(&text, "north").unwrap();
    let rule =
        json!({ "zone": "bin-corner", "labels": ["overflow"], "window": 4, "min_present": 3 });
    edit.rules.insert(
        "bin_overflow".into(),
        vec![rule.as_object().unwrap().clone()],
    );
    let out = apply(&text, &edit).unwrap();
    let at = out.find("\n[[camera.bin_overflow]]").unwrap();
    assert!(at > out.find("[[camera.mask]]").unwrap());
    assert!(at < out.find("id = \"south\"").unwrap());
    let config = crate::config::parse_str(&example_path(), &out)
        .unwrap()
        .config;
    assert_eq!(config.cameras[0].get_ref().bin_overflow.len(), 1);
}

#[test]
fn masks_match_by_position_and_ground_is_added_changed_and_removed() {
    let text = two_cameras();
    let mut edit = view(&text, "south").unwrap();
    let square = vec![[0.0, 0.0], [0.1, 0.0], [0.1, 0.1], [0.0, 0.1]];
    edit.masks.push(MaskEdit {
        points: square.clone(),
        labels: Vec::new(),
    });
    edit.ground = Some(GroundEdit {
        image: square.clone(),
        ground: vec![[0.0, 0.0], [4.0, 0.0], [4.0, 3.0], [0.0, 3.0]],
    });
    let out = apply(&text, &edit).unwrap();
    let config = crate::config::parse_str(&example_path(), &out)
        .unwrap()
        .config;
    let south = config.cameras[1].get_ref();
    assert_eq!(south.masks.len(), 1);
    assert_eq!(
        south.ground.as_ref().unwrap().get_ref().ground[2],
        [4.0, 3.0]
    );
    assert_eq!(
        view(&out, "south").unwrap(),
        edit,
        "what was written reads back"
    );

    edit.ground.as_mut().unwrap().ground[2] = [4.5, 3.0];
    let moved = apply(&out, &edit).unwrap();
    assert_eq!(
        changed(&out, &moved).1,
        ["ground = [[0.0, 0.0], [4.0, 0.0], [4.5, 3.0], [0.0, 3.0]]"]
    );

    edit.masks.clear();
    edit.ground = None;
    assert_eq!(apply(&out, &edit).unwrap(), text);
}

#[test]
fn field_at_names_the_rule_and_key_of_a_validator_error() {
    let text = example();
    let mut edit = view(&text, "north").unwrap();
    edit.rules.get_mut("crowd_density").unwrap()[0].insert("min_score".into(), json!(3.0));
    let out = apply(&text, &edit).unwrap();
    let errors = checked(&out).unwrap_err();
    let error = errors
        .0
        .iter()
        .find(|e| e.message.contains("min_score"))
        .expect("min_score is refused");
    assert_eq!(
        field_at(&out, "north", error.line),
        Some(Field {
            section: "crowd_density".into(),
            index: 0,
            key: Some("min_score".into())
        })
    );
}

#[test]
fn field_at_knows_headers_multi_line_values_zones_masks_and_what_is_not_edited() {
    let text = example();
    let line = |start: &str| {
        text.lines()
            .position(|l| l.trim_start().starts_with(start))
            .unwrap()
            + 1
    };
    let field = |section: &str, index, key: Option<&str>| {
        Some(Field {
            section: section.into(),
            index,
            key: key.map(String::from),
        })
    };
    assert_eq!(
        field_at(&text, "north", line("{ name = \"warning\"")),
        field("crowd_density", 0, Some("levels"))
    );
    assert_eq!(
        field_at(&text, "north", line("[[camera.crowd_density]]")),
        field("crowd_density", 0, None)
    );
    assert_eq!(
        field_at(&text, "north", line("# category = \"crowd_density\"")),
        field("crowd_density", 0, None)
    );
    assert_eq!(
        field_at(&text, "north", line("id = \"tactile\"")),
        field("zone", 2, Some("id"))
    );
    assert_eq!(
        field_at(&text, "north", line("labels = [\"person\"]")),
        field("mask", 0, Some("labels"))
    );
    assert_eq!(
        field_at(&text, "north", line("min_count = 2")),
        field("presence", 0, Some("min_count"))
    );
    assert_eq!(field_at(&text, "north", line("url = ")), None);
    assert_eq!(field_at(&text, "north", line("[device]")), None);
    assert_eq!(field_at(&text, "south", line("min_count = 2")), None);
    assert_eq!(field_at("not toml = = =", "north", 1), None);
}

#[test]
fn the_first_zone_of_a_camera_goes_right_after_its_own_keys() {
    let text = r#"[[camera]]
id = "a"
url = "rtsp://cam/a"
model = "m"

[[camera.mask]]
points = [[0.0, 0.0], [0.1, 0.0], [0.1, 0.1]]

[[camera]]
id = "b"
url = "rtsp://cam/b"
model = "m"
"#;
    let mut edit = view(text, "a").unwrap();
    let points = vec![[0.2, 0.2], [0.4, 0.2], [0.4, 0.4]];
    edit.zones.push(ZoneEdit {
        area_m2: None,
        id: "z".into(),
        name: None,
        points,
    });
    let out = apply(text, &edit).unwrap();
    let expected = text.replace(
        "model = \"m\"\n\n[[camera.mask]]",
        "model = \"m\"\n\n[[camera.zone]]\nid = \"z\"\npoints = [[0.2, 0.2], [0.4, 0.2], [0.4, 0.4]]\n\n[[camera.mask]]",
    );
    assert_eq!(out, expected);
}

#[test]
fn rules_written_with_sub_tables_are_edited_in_place() {
    let text = r#"[[camera]]
id = "a"
url = "rtsp://cam/a"
model = "m"

[[camera.crowd_density]]
zone = "z"

[camera.crowd_density.incident]
cooldown_s = 60 # short: a market square

[[camera.crowd_density.levels]]
name = "busy"
min_density = 1.0

[[camera.presence]]
zone = "z"
category = "c"
labels = ["bicycle"]
"#;
    let edit = view(text, "a").unwrap();
    assert_eq!(apply(text, &edit).unwrap(), text);
    let mut changed_edit = edit.clone();
    let crowd = &mut changed_edit.rules.get_mut("crowd_density").unwrap()[0];
    crowd["incident"]["cooldown_s"] = json!(90);
    crowd["levels"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "packed", "min_density": 3.0}));
    let out = apply(text, &changed_edit).unwrap();
    let expected = text.replace("cooldown_s = 60 #", "cooldown_s = 90 #").replace(
        "min_density = 1.0\n",
        "min_density = 1.0\n\n[[camera.crowd_density.levels]]\nname = \"packed\"\nmin_density = 3.0\n",
    );
    assert_eq!(out, expected);
    let line = |start: &str| out.lines().position(|l| l.starts_with(start)).unwrap() + 1;
    let crowd = |key: &str| {
        Some(Field {
            section: "crowd_density".into(),
            index: 0,
            key: Some(key.into()),
        })
    };
    assert_eq!(field_at(&out, "a", line("cooldown_s")), crowd("incident"));
    assert_eq!(
        field_at(&out, "a", line("name = \"packed\"")),
        crowd("levels")
    );
    assert_eq!(
        field_at(&out, "a", line("labels")),
        Some(Field {
            section: "presence".into(),
            index: 0,
            key: Some("labels".into())
        })
    );
}
