//! `streetsight models list | inspect | verify` through the real binary, on the bundled NanoDet and on
//! bundles built by the tests (tests/support/onnx.rs), one of them wrong in several ways at once.

mod support;

use support::onnx::*;
use support::*;

fn run(args: &[&str]) -> (i32, String) {
    let out = streetsight_bin().args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// A directory with a good YOLOv8 bundle (`good`) and one whose manifest declares NHWC, a wrong hash and
/// two labels (`bad`).
fn bundles() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(&dir.path().join("good"), YOLOV8_MANIFEST, &yolov8_model());
    let bad = YOLOV8_MANIFEST
        .replace("name = \"tiny-yolov8\"", "name = \"bad-yolov8\"")
        .replace("{sha256}", &"0".repeat(64))
        .replace("layout = \"nchw\"", "layout = \"nhwc\"")
        .replace(", \"cart\"]", "]")
        .replace("cart = [\"street_vending\"]\n", "")
        .replace(
            "umbrella = [\"street_vending\"]",
            "umbrella = [\"bycicle_parking\", \"kiosk_check\"]",
        );
    write_bundle(&dir.path().join("bad"), &bad, &yolov8_model());
    dir
}

#[test]
fn list_shows_installed_bundles_and_flags_none_that_only_fail_against_their_graph() {
    let dir = bundles();
    let (code, out) = run(&[
        "models",
        "list",
        "--dir",
        dir.path().to_str().unwrap(),
        "--dir",
        repo("models").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name}: {out}"))
    };
    let v8 = row("tiny-yolov8");
    assert!(
        v8.contains("detect") && v8.contains("yolov8") && v8.contains(" 3 ") && v8.contains(" ok "),
        "{v8}"
    );
    let nano = row("nanodet-g-416");
    assert!(
        nano.contains("nanodet") && nano.contains(" 80 ") && nano.contains("Apache-2.0"),
        "{nano}"
    );
    // `list` reads manifests only; the bad bundle's manifest is self-consistent, `verify` finds the rest.
    assert!(row("bad-yolov8").contains(" ok "));
}

#[test]
fn inspect_shows_the_graphs_real_io_labels_categories_and_hash() {
    let dir = bundles();
    let (code, out) = run(&[
        "models",
        "inspect",
        "tiny-yolov8",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let sha = streetsight::base::sha256_hex(&yolov8_model());
    for part in [
        "task      detect",
        "input     `images` f32 64×64 nchw rgb (x - [0.0, 0.0, 0.0]) × 0.003921569, resize letterbox (pad 114)",
        "head      yolov8, outputs `output0`",
        "labels    3: person, umbrella, cart",
        "category  umbrella → street_vending",
        "graph in  `images` f32 [1, 3, 64, 64]",
        "graph out `output0` f32 [1, 7, 5]",
        &format!("sha256    {sha} (file)"),
    ] {
        assert!(out.contains(part), "missing `{part}` in:\n{out}");
    }
    let (code, out) = run(&[
        "models",
        "inspect",
        "no-such-model",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("no model bundle `no-such-model`"), "{out}");
}

#[test]
fn verify_passes_a_good_bundle_and_names_every_problem_of_a_bad_one() {
    let dir = bundles();
    let (code, out) = run(&[
        "models",
        "verify",
        dir.path().join("good").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("PASS ") && out.contains("tiny-yolov8 0.1.0 (yolov8)"),
        "{out}"
    );
    assert!(out.contains("  note: license Apache-2.0\n"), "{out}");

    let (code, out) = run(&["models", "verify", dir.path().join("bad").to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL ") && out.contains("4 problem(s)"),
        "{out}"
    );
    for part in [
        &format!(
            "  - sha256: expected {} (the manifest), found ",
            "0".repeat(64)
        ),
        "  - input.layout: expected `nchw` (the graph's input `images` is [1, 3, 64, 64]), found `nhwc`",
        "  - labels: expected 3 labels (head yolov8: `output0` is [1, 7, 5], laid out [1, 4 + classes, N]), found 2",
        "  - categories.umbrella: expected a known category, found `bycicle_parking`; did you mean `bicycle_parking`?",
    ] {
        assert!(out.contains(part), "missing `{part}` in:\n{out}");
    }

    // Without a path: every bundle found, one verdict each, failure if any fails.
    let (code, out) = run(&["models", "verify", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("PASS ")).count(),
        1,
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("FAIL ")).count(),
        1,
        "{out}"
    );
}

#[test]
fn verify_of_a_directory_without_a_model_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("manifest.toml"),
        YOLOV8_MANIFEST.replace("{sha256}", "00"),
    )
    .unwrap();
    let (code, out) = run(&["models", "verify", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("  - file: expected the ONNX file at")
            && out.contains("model.onnx, found nothing there"),
        "{out}"
    );
}

#[test]
fn the_bundled_nanodet_verifies() {
    let (code, out) = run(&["models", "verify", model_dir().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("PASS ") && out.contains("nanodet-g-416 1.0.0 (nanodet)"),
        "{out}"
    );
}
