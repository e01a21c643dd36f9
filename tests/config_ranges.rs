//! Every configuration value has a finite, checked range: out-of-range, infinite, huge and malformed values
//! are refused by `check` and by `run` alike (exit 78, the value's line), an oversized file is refused
//! unread, and `check` shows each scene zone's reference state. Runs the real binary.

mod support;

use support::config_check::*;
use support::streetsight_bin;

/// One bad value: `text` is the valid configuration with `bad` inserted after the line that holds `after`
/// (or appended when `after` is empty); the error must name a line from the enclosing table's header to
/// the bad line, and say `needle`.
struct Bad {
    after: &'static str,
    bad: &'static str,
    needle: &'static str,
}

const fn bad(after: &'static str, bad: &'static str, needle: &'static str) -> Bad {
    Bad { after, bad, needle }
}

fn with_bad(case: &Bad) -> (String, usize, usize) {
    let base = valid();
    let text = if case.after.is_empty() {
        format!("{base}{}\n", case.bad)
    } else {
        let at = base.find(case.after).expect("marker in the base config");
        let end = at + base[at..].find('\n').unwrap() + 1;
        format!("{}{}\n{}", &base[..end], case.bad, &base[end..])
    };
    let first_bad_line = case.bad.lines().last().unwrap();
    let bad_line = text
        .lines()
        .position(|l| l == first_bad_line)
        .expect("the bad line is in the text")
        + 1;
    // The table that holds it: the nearest header above (or the bad block's own first line).
    let header = text
        .lines()
        .take(bad_line)
        .enumerate()
        .filter(|(_, l)| l.starts_with('['))
        .map(|(i, _)| i + 1)
        .last()
        .unwrap_or(1);
    (text, header, bad_line)
}

/// A `[console]` table with a valid password hash and one more line, `$bad`.
macro_rules! console {
    ($bad:literal) => {
        concat!(
            "[console]\npassword_hash = \"$argon2id$v=19$m=19456,t=2,p=1$1VK6CedA1h+GmOvDWC5OuQ$2IYfmTLHryWA7a5MA10pmkkWddvQTpmq4hTjTVDu0dg\"\n",
            $bad
        )
    };
}

/// A valid zone-state rule (with its embedder bundle) and one more line, `$bad`.
macro_rules! zone_state {
    ($bad:literal) => {
        concat!(
            "[models.lite0]\npath = \"",
            env!("CARGO_MANIFEST_DIR"),
            "/models/efficientnet-lite0\"\n",
            "[[camera.zone_state]]\nzone = \"plaza\"\ncategory = \"piled_debris\"\nembedder = \"lite0\"\n",
            "states = [\"clear\", \"pile\"]\nalarm = [\"pile\"]\n",
            $bad
        )
    };
}

#[test]
fn every_key_refuses_out_of_range_infinite_huge_and_malformed_values_and_run_refuses_them_too() {
    let state_file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let state_dir_is_file = format!("[storage]\nstate_dir = \"{state_file}\"");
    let state_dir_is_file: &'static str = Box::leak(state_dir_is_file.into_boxed_str());
    let broker = "broker = \"mqtt://127.0.0.1:1883\"";
    let cam = "model = \"nanodet\"";
    let zone = "area_m2 = 40.0";
    let crowd = "min_score = 0.5";
    let cases = [
        bad(
            cam,
            "gb28181_id = \"34020000081117000001\"",
            "a camera channel is 131 or 132",
        ),
        bad(cam, "gb28181_id = \"3402\"", "must be 20 digits"),
        bad(
            cam,
            "extensions = { patrol = inf }",
            "`patrol` = inf is not a finite number",
        ),
        bad(
            zone,
            "extensions = { \"a key\" = 1 }",
            "must be 1–64 letters, digits or `_`",
        ),
        bad(zone, "address = \"a\\tb\"", "no control characters"),
        bad("id = \"pole-1\"", "language = \"fr\"", "unknown variant"),
        bad(
            broker,
            "telemetry_s = 0",
            "uplink.telemetry_s = 0 is out of range 1–86400",
        ),
        bad(
            broker,
            "telemetry_s = 9223372036854775807",
            "uplink.telemetry_s",
        ),
        bad(
            broker,
            "keep_alive_s = 0",
            "uplink.keep_alive_s = 0 is out of range 5–3600",
        ),
        bad(
            broker,
            "command_max_skew_s = 9223372036854775807",
            "uplink.command_max_skew_s",
        ),
        bad(
            broker,
            "command_wait_s = 100000",
            "uplink.command_wait_s = 100000 is out of range",
        ),
        bad(
            broker,
            "topic_prefix = \"city/+/#\"",
            "cannot start a topic",
        ),
        bad(broker, "topic_prefix = \"\"", "cannot start a topic"),
        bad(broker, "topic_prefix = \"a//b\"", "cannot start a topic"),
        bad(broker, "client_id = \"has space\"", "uplink.client_id"),
        bad(broker, "username = \"a\\nb\"", "no control characters"),
        bad(
            "",
            "[storage]\njpeg_quality = 101",
            "storage.jpeg_quality = 101 is out of range 1–100",
        ),
        bad(
            "",
            "[storage]\njpeg_quality = 0",
            "storage.jpeg_quality = 0",
        ),
        bad(
            "",
            "[storage]\noutbox_max_mb = 0",
            "storage.outbox_max_mb = 0",
        ),
        bad(
            "",
            "[storage]\noutbox_max_mb = 18446744073709551615",
            "storage.outbox_max_mb",
        ),
        bad(
            "",
            "[storage]\noutbox_max_age_h = 0",
            "storage.outbox_max_age_h",
        ),
        bad(
            "",
            "[storage]\nevidence_max_mb = 99999999",
            "storage.evidence_max_mb",
        ),
        bad(
            "",
            "[storage]\nevidence_max_age_h = 1000000",
            "storage.evidence_max_age_h",
        ),
        bad("", "[storage]\nreserve_mb = 0", "storage.reserve_mb"),
        bad("", "[storage]\nreserve_mb = 1000000", "storage.reserve_mb"),
        bad("", state_dir_is_file, "is a file, not a directory"),
        bad(
            "",
            "[ops]\nwatchdog_grace_s = 1",
            "ops.watchdog_grace_s must be at least 2",
        ),
        bad(
            "",
            "[ops]\nwatchdog_grace_s = 18446744073709551615",
            "ops.watchdog_grace_s",
        ),
        bad("", "[ops]\nhttp = \"localhost\"", "is not an address"),
        bad(
            "",
            "[console]\npassword_hash = \"hunter2\"",
            "is not a password hash",
        ),
        bad(
            "",
            "[console]\npassword_hash = \"$argon2i$v=19$m=19456,t=2,p=1$1VK6CedA1h+GmOvDWC5OuQ$2IYfmTLHryWA7a5MA10pmkkWddvQTpmq4hTjTVDu0dg\"",
            "argon2id only",
        ),
        bad("", console!("listen = \"pole:80\""), "console.listen"),
        bad(
            "",
            console!("session_idle_min = 0"),
            "console.session_idle_min",
        ),
        bad(
            "",
            console!("session_idle_min = 100000"),
            "console.session_idle_min",
        ),
        bad("", console!("keep_backups = 0"), "console.keep_backups"),
        bad("", console!("keep_backups = 1000"), "console.keep_backups"),
        bad("", "[evidence]\nhead_fraction = nan", "head_fraction"),
        bad("", "[evidence]\nhead_fraction = inf", "head_fraction"),
        bad(
            "id = \"pole-1\"",
            "timezone = \"Mars/Olympus\"",
            "not an IANA time zone",
        ),
        bad(
            "id = \"pole-1\"",
            "name = \"bell\\u0007\"",
            "no control characters",
        ),
        bad(
            "id = \"pole-1\"",
            "gb28181_id = \"1234\"",
            "must be 20 digits",
        ),
        bad(
            "",
            "[categories.crowd_density]\nname = \"a\\tb\"",
            "no control characters",
        ),
        bad(
            "",
            "[categories.crowd_density]\ngbt47678 = \"9\"",
            "must be 5 digits",
        ),
        bad(
            "path = \"",
            "threads = 0",
            "threads = 0 is out of range 1–64",
        ),
        bad(
            "path = \"",
            "workers = 1000",
            "workers = 1000 is out of range 1–16",
        ),
        bad(
            "path = \"",
            "latency_budget_ms = 0",
            "latency_budget_ms = 0 is out of range 1–60000ms",
        ),
        bad(
            "path = \"",
            "max_download_mb = 18446744073709551615",
            "max_download_mb = 18446744073709551615 is out of range 1–16384MB",
        ),
        bad(
            "path = \"",
            "keep_versions = 0",
            "keep_versions = 0 is out of range 1–20",
        ),
        bad(
            cam,
            "name = \"gate\\r\\nX-Injected: 1\"",
            "no control characters",
        ),
        bad(
            cam,
            "sampling = { mode = \"interval\", interval_ms = 0 }",
            "interval_ms = 0 is out of range",
        ),
        bad(cam, "decoder = \"quantum\"", "decoder `quantum` is unknown"),
        bad(
            zone,
            "inertia = 4294967295",
            "inertia = 4294967295 is out of range 0–1000",
        ),
        bad(zone, "min_overlap = nan", "min_overlap"),
        bad(zone, "lat = nan", "lat must be within"),
        bad(zone, "grid_code = \"12345\"", "must be 15 digits"),
        bad(
            crowd,
            "sustain_s = inf",
            "crowd_density sustain_s = inf is out of range",
        ),
        bad(crowd, "clear_s = 1e300", "crowd_density clear_s"),
        bad(crowd, "hysteresis = nan", "hysteresis"),
        bad(crowd, "max_count = 18446744073709551615", "max_count"),
        bad(
            crowd,
            "levels = [{ name = \"a\", min_density = inf }]",
            "min_density must be a positive number",
        ),
        bad(
            crowd,
            "incident = { cooldown_s = 1e300 }",
            "cooldown_s and update_interval_s must be 0–",
        ),
        bad(
            crowd,
            "incident = { clear_s = -1 }",
            "cooldown_s and update_interval_s must be 0–",
        ),
        bad(
            crowd,
            "schedule = { hours = [\"25:00-26:00\"] }",
            "schedule",
        ),
        bad(
            "",
            "[[camera.street_vending]]\nzone = \"plaza\"\ndwell_s = 1e300",
            "street_vending dwell_s",
        ),
        bad(
            "",
            "[[camera.street_vending]]\nzone = \"plaza\"\nperson_radius = inf",
            "person_radius",
        ),
        bad(
            "",
            "[[camera.presence]]\nzone = \"plaza\"\ncategory = \"crowd_density\"\nlabels = [\"person\"]\ndwell_s = inf",
            "presence dwell_s",
        ),
        bad(
            "",
            "[[camera.presence]]\nzone = \"plaza\"\ncategory = \"crowd_density\"\nlabels = [\"person\"]\nmin_count = 18446744073709551615",
            "min_count",
        ),
        bad(
            "",
            "[[camera.hanging_laundry]]\nzone = \"plaza\"\nlabels = [\"person\"]\nsample_every_s = inf",
            "sample_every_s",
        ),
        bad(
            "",
            "[[camera.hanging_laundry]]\nzone = \"plaza\"\nlabels = [\"person\"]\nwindow = 4294967295",
            "min_present",
        ),
        bad(
            "",
            "[[camera.scene_change]]\nzone = \"plaza\"\ncategory = \"exposed_garbage\"\npersist_s = 1e300",
            "persist_s",
        ),
        bad(
            "",
            "[[camera.scene_change]]\nzone = \"plaza\"\ncategory = \"exposed_garbage\"\ncell_threshold = inf",
            "cell_threshold",
        ),
        bad(
            "",
            zone_state!("margin = 2.0"),
            "margin = 2 must be within 0–1",
        ),
        bad("", zone_state!("sample_every_s = inf"), "sample_every_s"),
        bad(
            "",
            zone_state!("max_examples = 0"),
            "max_examples = 0 is out of range",
        ),
        bad("", zone_state!("max_occluded = -0.5"), "max_occluded"),
        bad("", zone_state!("window = 4294967295"), "min_present"),
        bad(
            "",
            concat!(
                "[models.lite0]\npath = \"",
                env!("CARGO_MANIFEST_DIR"),
                "/models/efficientnet-lite0\"\n",
                "[[camera.zone_state]]\nzone = \"plaza\"\ncategory = \"piled_debris\"\nembedder = \"lite0\"\n",
                "states = [\"clear\", \"clear\"]\nalarm = [\"clear\"]"
            ),
            "different names",
        ),
        bad(
            "",
            "[[camera.zone_state]]\nzone = \"plaza\"\ncategory = \"piled_debris\"\nembedder = \"nanodet\"\nstates = [\"clear\", \"pile\"]\nalarm = [\"pile\"]",
            "whose task is not \"embed\"",
        ),
        bad(
            "",
            "[[camera.zone_state]]\nzone = \"plaza\"\ncategory = \"piled_debris\"\nembedder = \"lite\"\nstates = [\"clear\", \"pile\"]\nalarm = [\"pile\"]",
            "embedder `lite` is not defined",
        ),
        bad(
            "",
            "[[camera.mask]]\npoints = [[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]",
            "its edges may not cross",
        ),
        bad(
            "",
            "[camera.ground]\nimage = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]\nground = [[0.0, 0.0], [inf, 0.0], [10.0, 10.0], [0.0, 10.0]]",
            "ground needs",
        ),
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let (text, header, bad_line) = with_bad(case);
        let (code, err) = check(&text);
        let line_ok = (header..=bad_line).any(|l| err.contains(&format!("streetsight.toml:{l}: ")));
        if code != 78 || !line_ok || !err.contains(case.needle) {
            failures.push(format!(
                "`{}`: exit {code}, wanted 78 naming a line in {header}..={bad_line} and {:?}; got:\n{err}",
                case.bad, case.needle
            ));
            continue;
        }
        // `run` loads the file the same way: refused before anything starts.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("streetsight.toml");
        std::fs::write(&path, &text).unwrap();
        let out = streetsight_bin()
            .args(["run", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        if out.status.code() != Some(78) {
            failures.push(format!(
                "`{}`: run exited {:?}, wanted 78",
                case.bad,
                out.status.code()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn a_huge_file_is_refused_without_being_read() {
    let out = streetsight_bin()
        .args(["check", "--offline", "--config", "/dev/zero"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("larger than 1048576 bytes"), "{err}");
}

#[test]
fn check_shows_whether_each_scene_zone_has_its_reference() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let text = valid().replace(
        "[uplink]",
        &format!("[storage]\nstate_dir = \"{}\"\n\n[uplink]", state.display()),
    ) + "\n[[camera.scene_change]]\nzone = \"plaza\"\ncategory = \"exposed_garbage\"\n";
    let path = dir.path().join("streetsight.toml");
    std::fs::write(&path, &text).unwrap();
    let run = || {
        let out = streetsight_bin()
            .args(["check", "--offline", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let table = run();
    let row = table
        .lines()
        .find(|l| l.contains("scene gate/plaza"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("no reference yet"), "{row}");
    std::fs::create_dir_all(state.join("scene")).unwrap();
    std::fs::write(state.join("scene/gate--plaza.ref"), [0u8; 64]).unwrap();
    let table = run();
    let row = table
        .lines()
        .find(|l| l.contains("scene gate/plaza"))
        .unwrap();
    assert!(row.contains("reference kept (64 bytes"), "{row}");
}
