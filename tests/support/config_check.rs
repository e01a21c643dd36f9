//! A valid configuration to break, and `streetsight check --offline` run on a text: what the configuration
//! tests share.

use super::streetsight_bin;

/// The committed NanoDet bundle.
pub const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/nanodet-g-416");

pub fn valid() -> String {
    format!(
        r#"[device]
id = "pole-1"

[uplink]
broker = "mqtt://127.0.0.1:1883"

[models.nanodet]
path = "{MODEL}"

[[camera]]
id = "gate"
url = "rtsp://10.0.0.5/live"
model = "nanodet"

[[camera.zone]]
id = "plaza"
points = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0]]
area_m2 = 40.0

[[camera.crowd_density]]
zone = "plaza"
min_score = 0.5
"#
    )
}

/// Run `streetsight check --offline` on `text`; returns (exit code, stderr).
pub fn check(text: &str) -> (i32, String) {
    check_with_env(text, &[])
}

pub fn check_with_env(text: &str, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streetsight.toml");
    std::fs::write(&path, text).unwrap();
    let out = streetsight_bin()
        .args(["check", "--offline", "--config"])
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr)
            .replace(&path.display().to_string(), "streetsight.toml"),
    )
}
