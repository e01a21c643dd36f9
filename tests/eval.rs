//! `streetsight eval` on real data: the shipped NanoDet on the hand-labelled frames of the committed street
//! clip (tests/media/vtest.persons.json, see tests/media/LABELS.md), its numbers checked against a second,
//! independent computation in plain Python, and its HTML report opened in Debian's headless Chromium.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use streetsight::eval::{EvalOptions, GroundTruth, Report};
use support::*;

fn labels_path() -> PathBuf {
    repo("tests/media/vtest.persons.json")
}

/// The shipped bundle with one thing changed in its manifest (a candidate an engineer might compare).
fn variant(dir: &Path, name: &str, from: &str, to: &str) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    let manifest = std::fs::read_to_string(model_dir().join("manifest.toml")).unwrap();
    assert!(manifest.contains(from), "the shipped manifest has `{from}`");
    let manifest = manifest
        .replace("name = \"nanodet-g-416\"", &format!("name = \"{name}\""))
        .replace(from, to);
    std::fs::write(out.join("manifest.toml"), manifest).unwrap();
    std::fs::copy(model_dir().join("model.onnx"), out.join("model.onnx")).unwrap();
    out
}

fn streetsight() -> Command {
    Command::new(env!("CARGO_BIN_EXE_streetsight"))
}

/// A pole configuration with one camera `camera` on the shipped model and `rest` (zones, rules) after it.
fn pole_config(dir: &Path, camera: &str, rest: &str) -> PathBuf {
    let path = dir.join("pole.toml");
    std::fs::write(
        &path,
        format!(
            "[device]\nid = \"eval-pole\"\n[uplink]\nbroker = \"mqtt://127.0.0.1:1\"\n[models.nanodet]\npath = \"{}\"\n[[camera]]\nid = \"{camera}\"\nurl = \"rtsp://127.0.0.1:1/cam\"\nmodel = \"nanodet\"\n{rest}",
            model_dir().display()
        ),
    )
    .unwrap();
    path
}

/// `streetsight eval` on the clip and its person labels with `args` added, writing into `out`; its report
/// and what it printed.
fn eval_clip(args: &[&std::ffi::OsStr], out: &Path) -> (Report, String) {
    let run = streetsight()
        .args(["eval", "--media"])
        .arg(clip_path())
        .arg("--labels")
        .arg(labels_path())
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    (report, stdout)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn the_shipped_model_on_the_labelled_street_frames_checked_twice_and_drawn_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let letterbox = variant(
        dir.path(),
        "nanodet-letterbox",
        "resize = \"stretch\"",
        "resize = \"letterbox\"",
    );
    let config = pole_config(
        dir.path(),
        "plaza",
        r#"[[camera.zone]]
id = "whole"
points = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
[[camera.zone]]
id = "left"
points = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
"#,
    );
    let out_dir = dir.path().join("report");
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    let (report, stdout) = eval_clip(
        &[
            os("--model"),
            model_dir().as_os_str(),
            os("--baseline"),
            letterbox.as_os_str(),
            os("--config"),
            config.as_os_str(),
            os("--camera"),
            os("plaza"),
        ],
        &out_dir,
    );
    assert!(stdout.contains("mAP@0.5"), "{stdout}");

    // What was measured: every labelled frame, by both bundles.
    let gt = GroundTruth::load(&labels_path()).unwrap();
    assert!(gt.frames.len() >= 40);
    assert_eq!(report.labels.frames, gt.frames.len());
    assert_eq!(report.models.len(), 2);
    let (shipped, baseline) = (&report.models[0], &report.models[1]);
    assert_eq!(shipped.name, "nanodet-g-416");
    assert_eq!(shipped.frames, gt.frames.len());
    let person = &shipped.classes[0];
    assert_eq!(person.class, "person");
    assert_eq!(person.labelled + person.ignored, gt.boxes());
    assert_eq!(person.pr_curve.len(), 101);
    assert!(shipped.timing_ms.inference.mean > 0.0 && shipped.timing_ms.pre.mean > 0.0);

    // The second computation: plain Python over the labels and the report's detections.
    let check = Command::new("python3")
        .arg(repo("scripts/eval_check.py"))
        .arg(labels_path())
        .arg(out_dir.join("report.json"))
        .output()
        .expect("python3 runs");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let second: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    for m in &report.models {
        let theirs = &second[format!("{} {}", m.name, m.path)];
        for c in &m.classes {
            let t = &theirs["classes"][&c.class];
            for (ours, key) in [
                (c.ap50, "ap50"),
                (c.ap50_95, "ap50_95"),
                (c.operating.precision, "precision"),
                (c.operating.recall, "recall"),
                (c.operating.f1, "f1"),
            ] {
                let expected = t[key].as_f64().unwrap_or(f64::NAN);
                assert!(
                    close(ours, expected),
                    "{} {}: {key} {ours} vs {expected} (Python)",
                    m.name,
                    c.class
                );
            }
            assert_eq!(c.operating.tp as u64, t["tp"].as_u64().unwrap());
            assert_eq!(c.operating.fp as u64, t["fp"].as_u64().unwrap());
        }
        assert!(close(
            m.counts.frame.mae,
            theirs["count_mae"].as_f64().unwrap()
        ));
        // The zone that is the whole picture counts what the frame counts; the left half is its own.
        assert_eq!(m.counts.zones.len(), 2);
        assert_eq!(m.counts.zones[0].error, m.counts.frame);
        assert_eq!(m.counts.zones[1].zone, "left");
        assert_eq!(m.counts.zones[1].error.frames, gt.frames.len());
    }

    // The comparison is the difference of the two columns.
    let cmp = report
        .comparison
        .as_ref()
        .expect("a baseline gives a comparison");
    assert_eq!(
        (cmp.candidate.as_str(), cmp.baseline.as_str()),
        ("nanodet-g-416", "nanodet-letterbox")
    );
    assert!(close(cmp.map50, shipped.map50 - baseline.map50));
    assert!(close(
        cmp.classes[0].recall,
        person.operating.recall - baseline.classes[0].operating.recall
    ));

    // The shipped model is good at people on this street (the figures docs/models.md quotes).
    assert!(person.ap50 > 0.6, "AP50 {}", person.ap50);
    assert!(person.operating.precision > 0.8, "{:?}", person.operating);

    // The HTML report in a real browser: its script draws a PR curve per model and the count histogram.
    let html = out_dir.join("report.html");
    let dom = chromium(&["--dump-dom"], &html);
    assert!(
        dom.contains("class=\"pr-curve\""),
        "no PR curve in the rendered page"
    );
    assert_eq!(
        dom.matches("class=\"curve\"").count(),
        2,
        "one curve per bundle"
    );
    assert!(dom.contains("class=\"count-histogram\"") && dom.contains("class=\"bar\""));
    assert!(dom.contains("模型评估报告"), "the page is in Chinese first");
    let shot = dir.path().join("report.png");
    chromium(
        &["--screenshot=".to_string() + shot.to_str().unwrap()]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &html,
    );
    let png = image::open(&shot)
        .expect("Chromium wrote a screenshot")
        .to_rgb8();
    // The first bundle's colour (#1565c0), give or take the renderer's colour handling.
    let coloured = png
        .pixels()
        .filter(|p| {
            p.0.iter()
                .zip([0x15u8, 0x65, 0xc0])
                .all(|(a, b)| a.abs_diff(b) <= 8)
        })
        .count();
    assert!(
        coloured > 2000,
        "the curves and bars are drawn in the screenshot ({coloured} px of the first colour)"
    );
}

/// Run Debian's headless Chromium on a local file; stdout.
fn chromium(args: &[&str], page: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1400,3200",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium is installed (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The same frames as pictures in a directory with YOLO labels give the same numbers as the clip with COCO
/// labels: frame numbering, picture files and normalised boxes agree.
#[test]
fn yolo_labels_on_pictures_agree_with_coco_labels_on_the_clip() {
    let dir = tempfile::tempdir().unwrap();
    let gt = GroundTruth::load(&labels_path()).unwrap();
    let chosen: Vec<_> = gt.frames.iter().step_by(8).take(5).collect();
    let wanted: std::collections::BTreeSet<u64> = chosen
        .iter()
        .map(|f| match f.key {
            streetsight::eval::FrameKey::Index(n) => n,
            _ => panic!("the clip's labels name frames"),
        })
        .collect();
    let pictures = dir.path().join("pictures");
    let labels = dir.path().join("labels");
    std::fs::create_dir_all(&pictures).unwrap();
    std::fs::create_dir_all(&labels).unwrap();
    std::fs::write(labels.join("obj.names"), "person\n").unwrap();
    let mut size = (0.0, 0.0);
    streetsight::ingest::decode_file(
        &clip_path(),
        |n| wanted.contains(&n),
        |n, _, img| {
            let mut rgb = Vec::with_capacity(img.width() * img.height() * 3);
            for y in 0..img.height() {
                rgb.extend_from_slice(&img.row(y)[..img.width() * 3]);
            }
            let picture =
                image::RgbImage::from_raw(img.width() as u32, img.height() as u32, rgb).unwrap();
            picture
                .save(pictures.join(format!("frame_{n:06}.png")))
                .unwrap();
            size = (img.width() as f64, img.height() as f64);
            true
        },
    )
    .unwrap();
    // A COCO file of just these frames, and the same boxes as YOLO lines (without the ignored ones: YOLO
    // has no such flag, so both sides leave them out).
    let mut coco = serde_json::json!({"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]});
    for f in &chosen {
        coco["images"].as_array_mut().unwrap().push(
            serde_json::json!({"id": f.id, "file_name": f.name, "width": 768, "height": 576}),
        );
        let mut lines = String::new();
        for b in f.boxes.iter().filter(|b| !b.ignore) {
            let [x1, y1, x2, y2] = b.bbox;
            coco["annotations"].as_array_mut().unwrap().push(serde_json::json!({"image_id": f.id, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0}));
            lines += &format!(
                "0 {} {} {} {}\n",
                (x1 + x2) / 2.0 / size.0,
                (y1 + y2) / 2.0 / size.1,
                (x2 - x1) / size.0,
                (y2 - y1) / size.1
            );
        }
        std::fs::write(
            labels.join(format!(
                "{}.txt",
                Path::new(&f.name).file_stem().unwrap().to_str().unwrap()
            )),
            lines,
        )
        .unwrap();
    }
    let coco_path = dir.path().join("subset.json");
    std::fs::write(&coco_path, coco.to_string()).unwrap();
    let run = |media: PathBuf, labels: PathBuf| {
        streetsight::eval::run(&EvalOptions {
            model: model_dir(),
            baseline: None,
            media,
            labels,
            zones: Vec::new(),
            count_class: "person".into(),
            count_score: 0.5,
            threads: 1,
            progress: false,
            rules: None,
            incidents: None,
        })
        .unwrap()
    };
    let from_clip = run(clip_path(), coco_path);
    let from_pictures = run(pictures, labels);
    let (a, b) = (&from_clip.models[0], &from_pictures.models[0]);
    assert_eq!(a.frames, 5);
    assert_eq!(b.frames, 5);
    assert_eq!(from_pictures.labels.format, "yolo");
    let (pa, pb) = (&a.classes[0], &b.classes[0]);
    assert_eq!(pa.labelled, pb.labelled);
    // PNG is lossless: the same pixels, the same detections; YOLO's normalised boxes round-trip within
    // float precision, so the matches are the same.
    assert!(
        (pa.ap50 - pb.ap50).abs() < 1e-9,
        "{} vs {}",
        pa.ap50,
        pb.ap50
    );
    assert!((pa.ap50_95 - pb.ap50_95).abs() < 1e-6);
    assert_eq!(pa.operating, pb.operating);
    assert_eq!(a.counts.frame, b.counts.frame);
}

#[test]
fn labels_for_frames_the_clip_does_not_have_are_an_error_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("late.json");
    std::fs::write(
        &labels,
        r#"{"images":[{"id":1,"file_name":"frame_000900.png"}],"annotations":[],"categories":[{"id":1,"name":"person"}]}"#,
    )
    .unwrap();
    let out = streetsight()
        .args(["eval", "--model"])
        .arg(model_dir())
        .arg("--media")
        .arg(clip_path())
        .arg("--labels")
        .arg(&labels)
        .arg("--out")
        .arg(dir.path().join("r"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("frame 900 is labelled but") && err.contains("795 frames"),
        "{err}"
    );
    assert!(
        !dir.path().join("r/report.json").exists(),
        "no report from a failed run"
    );
}

/// Incident-level labels run through a camera's own crowd rule over the whole clip: the rule opens its
/// incidents on the model's detections at the camera's sampling, and they are matched to the labelled ones.
#[test]
fn labelled_crowd_incidents_are_matched_to_what_the_camera_rules_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = pole_config(
        dir.path(),
        "walkway",
        r#"sampling = { mode = "keyframe" }
[camera.health]
frozen = false
[[camera.zone]]
id = "walkway"
points = [[0.0, 0.25], [1.0, 0.25], [1.0, 1.0], [0.0, 1.0]]
area_m2 = 6.0
[[camera.crowd_density]]
zone = "walkway"
levels = [{ name = "attention", min_density = 1.0 }, { name = "warning", min_density = 1.3 }]
hysteresis = 0.0
sustain_s = 3
clear_s = 10
"#,
    );
    let labels = repo("tests/media/vtest.crowd-incidents.json");
    let out_dir = dir.path().join("report");
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    let (report, stdout) = eval_clip(
        &[
            os("--model"),
            model_dir().as_os_str(),
            os("--config"),
            config.as_os_str(),
            os("--camera"),
            os("walkway"),
            os("--incidents"),
            labels.as_os_str(),
        ],
        &out_dir,
    );
    assert!(stdout.contains("incidents: 2 labelled"), "{stdout}");
    let i = report.models[0]
        .incidents
        .as_ref()
        .expect("incident results");
    assert_eq!(
        i.every_ms, 1000,
        "keyframe sampling: one analysed frame a second"
    );
    assert_eq!(
        i.labels,
        streetsight::eval::load_incident_labels(&labels).unwrap()
    );
    assert!(!i.predictions.is_empty(), "the crowd rule opened nothing");
    // Every matched prediction is of its label's category and zone and overlaps it in time; the figures
    // are what the matches say.
    for p in &i.predictions {
        assert_eq!(
            (p.category.as_str(), p.zone.as_str()),
            ("crowd_density", "walkway")
        );
        assert!(p.start_s <= p.end_s && p.end_s <= 79.5 + 1e-9, "{p:?}");
        if let Some(k) = p.matched {
            let l = &i.labels[k];
            assert!(
                p.start_s <= l.end_s && p.end_s >= l.start_s,
                "{p:?} vs {l:?}"
            );
            assert_eq!(i.time_to_open_s[k], Some(p.start_s - l.start_s));
        }
    }
    let matched = i.predictions.iter().filter(|p| p.matched.is_some()).count();
    assert_eq!(i.matched, matched);
    assert!(matched >= 1, "the first crowd was not found: {i:?}");
    assert!((i.precision - matched as f64 / i.predictions.len() as f64).abs() < 1e-12);
    assert!((i.recall - matched as f64 / 2.0).abs() < 1e-12);
    // The first crowd is opened after the rule's 3-s sustain and within half a minute of its start.
    let first = i.time_to_open_s[0].expect("the first crowd is matched");
    assert!((3.0..30.0).contains(&first), "time to open {first}");
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("\"time_to_open_s\""));
}

/// The INT8 bundle beside the shipped fp32 one on the same labelled frames: within the tolerance
/// docs/models.md states (AP@0.5 and AP@0.5:0.95 at most 0.02 lower, per-frame count error at most 0.15
/// person higher), and its graph really is quantised.
#[test]
fn the_int8_bundle_stays_within_its_stated_tolerance_of_the_fp32_one() {
    let out = tempfile::tempdir().unwrap();
    let int8 = repo("models/nanodet-g-416-int8");
    let model = std::fs::read(int8.join("model.onnx")).unwrap();
    assert!(
        model
            .windows(b"QuantizeLinear".len())
            .any(|w| w == b"QuantizeLinear"),
        "the INT8 graph has no quantisation nodes"
    );
    let (report, stdout) = eval_clip(
        &[
            "--model".as_ref(),
            int8.as_os_str(),
            "--baseline".as_ref(),
            model_dir().as_os_str(),
        ],
        out.path(),
    );
    eprintln!("{stdout}");
    let (q, f) = (&report.models[0], &report.models[1]);
    assert_eq!(
        (q.name.as_str(), f.name.as_str()),
        ("nanodet-g-416-int8", "nanodet-g-416")
    );
    assert!(
        q.map50 >= f.map50 - 0.02,
        "AP@0.5 {} vs {}",
        q.map50,
        f.map50
    );
    assert!(
        q.map50_95 >= f.map50_95 - 0.02,
        "AP@0.5:0.95 {} vs {}",
        q.map50_95,
        f.map50_95
    );
    let (qc, fc) = (q.counts.frame.mae, f.counts.frame.mae);
    assert!(qc <= fc + 0.15, "count MAE {qc} vs {fc}");
}
