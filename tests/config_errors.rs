//! Broken configurations: each is reported with file:line, what is wrong and how to fix it, and the
//! process exits with 78 (EX_CONFIG). Runs the real binary.

mod support;

use std::path::Path;
use support::config_check::*;

fn assert_config_error(text: &str, line: usize, needles: &[&str]) {
    let (code, err) = check(text);
    assert_eq!(code, 78, "exit code for: {err}");
    let located = format!("streetsight.toml:{line}: ");
    assert!(err.contains(&located), "expected {located:?} in:\n{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in:\n{err}");
    }
}

#[test]
fn the_valid_base_config_passes() {
    assert!(
        Path::new(MODEL).join("model.onnx").is_file(),
        "the bundled model is committed"
    );
    let (code, err) = check(&valid());
    assert_eq!(code, 0, "{err}");
}

#[test]
fn unknown_key_names_the_key_and_the_line() {
    let text = valid().replace("id = \"gate\"", "id = \"gate\"\nframerate = 25");
    assert_config_error(
        &text,
        12,
        &[
            "unknown field `framerate`",
            "remove the key or correct its spelling",
        ],
    );
}

#[test]
fn zone_with_two_points_is_rejected() {
    let text = valid().replace(
        "[[0.0, 0.5], [1.0, 0.5], [1.0, 1.0]]",
        "[[0.0, 0.5], [1.0, 0.5]]",
    );
    assert_config_error(
        &text,
        17,
        &["zone `plaza` has 2 points; a zone needs at least 3"],
    );
}

#[test]
fn missing_model_directory_is_rejected() {
    let text = valid().replace(MODEL, "/nonexistent/model-bundle");
    assert_config_error(
        &text,
        7,
        &[
            "model `nanodet`",
            "no manifest at /nonexistent/model-bundle/manifest.toml",
        ],
    );
}

#[test]
fn bad_broker_url_is_rejected() {
    let text = valid().replace("mqtt://127.0.0.1:1883", "tcp://broker:1883");
    assert_config_error(
        &text,
        5,
        &["broker scheme `tcp` is not supported", "mqtts://"],
    );
}

#[test]
fn threshold_out_of_range_is_rejected() {
    let text = valid().replace("min_score = 0.5", "min_score = 1.5");
    assert_config_error(&text, 22, &["min_score = 1.5 is out of range", "(0, 1]"]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = valid()
        .replace(
            "[[0.0, 0.5], [1.0, 0.5], [1.0, 1.0]]",
            "[[0.0, 0.5], [1.0, 0.5]]",
        )
        .replace("min_score = 0.5", "min_score = 1.5")
        .replace("mqtt://127.0.0.1:1883", "tcp://broker:1883");
    let (code, err) = check(&text);
    assert_eq!(code, 78);
    assert!(err.contains("3 problems"), "{err}");
    for line in [5, 17, 22] {
        assert!(
            err.contains(&format!("streetsight.toml:{line}: ")),
            "line {line} missing in:\n{err}"
        );
    }
}

#[test]
fn credentials_in_a_bad_camera_url_are_not_printed() {
    let text = valid().replace("rtsp://10.0.0.5/live", "http://admin:hunter2@10.0.0.5/live");
    let (code, err) = check(&text);
    assert_eq!(code, 78);
    assert!(err.contains("must be rtsp://"), "{err}");
    assert!(!err.contains("hunter2"), "password leaked:\n{err}");
}

#[test]
fn the_documented_example_configuration_is_valid() {
    // The example names a camera password by environment variable; checking does not connect.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/streetsight.example.toml"
    ))
    .unwrap()
    .replace("../models/nanodet-g-416", MODEL);
    let (code, err) = check_with_env(&text, &[("NORTH_CAMERA_PASSWORD", "x")]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn rule_mistakes_are_each_reported_with_their_line_and_fix() {
    let text = valid()
        + r#"
[[camera.street_vending]]
zone = "pavement"

[[camera.hanging_laundry]]
zone = "plaza"

[[camera.bin_overflow]]
zone = "plaza"
labels = ["person"]
window = 4
min_present = 2

[[camera.presence]]
zone = "plaza"
category = "bicycle_parking"
labels = ["bicycle", "scooter"]
schedule = { days = ["funday"], hours = ["7-22"] }

[[camera.scene_change]]
zone = "plaza"
category = "no_such_category"
min_changed_fraction = 1.5
"#;
    let (code, err) = check(&text);
    assert_eq!(code, 78, "{err}");
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let expect = |line: usize, needle: &str| {
        let located = format!("streetsight.toml:{line}: ");
        assert!(
            err.lines()
                .any(|l| l.contains(&located) && l.contains(needle)),
            "expected {needle:?} at {located:?} in:\n{err}"
        );
    };
    expect(
        line_of("zone = \"pavement\""),
        "zone `pavement` is not a zone of this camera",
    );
    expect(
        line_of("[[camera.hanging_laundry]]"),
        "has no class [laundry, clothes]",
    );
    expect(
        line_of("[[camera.hanging_laundry]]"),
        "[[camera.scene_change]]",
    );
    expect(
        line_of("[[camera.bin_overflow]]"),
        "more than half of the window",
    );
    expect(
        line_of("labels = [\"bicycle\", \"scooter\"]"),
        "no class [scooter]",
    );
    expect(line_of("schedule = {"), "schedule");
    expect(
        line_of("category = \"no_such_category\""),
        "neither shipped nor defined",
    );
    expect(line_of("min_changed_fraction = 1.5"), "must be in (0, 1]");
}

#[test]
fn a_bad_timezone_and_an_inconsistent_ground_calibration_are_rejected() {
    let text = valid().replace(
        "id = \"pole-1\"",
        "id = \"pole-1\"\ntimezone = \"China/Beijing\"",
    ) + r#"
[camera.ground]
image = [[0.1, 0.9], [0.9, 0.9], [0.7, 0.5], [0.3, 0.5], [0.5, 0.7]]
ground = [[0.0, 0.0], [8.0, 0.0], [7.0, 15.0], [1.0, 15.0], [4.0, 30.0]]
"#;
    let (code, err) = check(&text);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("streetsight.toml:3: timezone `China/Beijing` is not an IANA time zone"),
        "{err}"
    );
    assert!(err.contains("ground calibration"), "{err}");
}

#[test]
fn worker_count_and_command_wait_out_of_range_are_rejected() {
    let text = valid()
        .replace(
            "broker = \"mqtt://127.0.0.1:1883\"",
            "broker = \"mqtt://127.0.0.1:1883\"\ncommand_wait_s = 0",
        )
        .replace(
            &format!("path = \"{MODEL}\""),
            &format!("path = \"{MODEL}\"\nworkers = 0"),
        );
    let (code, out) = check(&text);
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains(":6:") && out.contains("uplink.command_wait_s = 0 is out of range 1–600"),
        "{out}"
    );
    assert!(out.contains("workers = 0 is out of range 1–16"), "{out}");
}
