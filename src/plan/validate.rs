//! Cross-field checks. Each check is a named function that pushes to one list, so an installer sees every
//! problem of the file at once, each with its line and how to fix it.

use super::check::Check;
use crate::config::{CameraConfig, Config, ConfigError, Lines, ZoneConfig, categories, resolve};
use crate::detect::Manifest;
use crate::incident::ModelInfo;
use crate::ingest::DecoderTemplate;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use toml::Spanned;

pub(crate) fn validate(config: &Config, base: &Path, lines: &Lines) -> Vec<ConfigError> {
    let mut check = Check::new(lines, base);
    verify_device(&mut check, config);
    super::device::timezone(&mut check, config);
    super::device::verify_evidence(&mut check, config);
    verify_uplink(&mut check, config);
    if let Some(addr) = &config.ops.http
        && addr.get_ref().parse::<std::net::SocketAddr>().is_err()
    {
        check.push(
            addr,
            format!(
                "ops.http `{}` is not an address; write it as 127.0.0.1:9310",
                addr.get_ref()
            ),
        );
    }
    let grace = &config.ops.watchdog_grace_s;
    if *grace.get_ref() < 2 {
        check.push(
            grace,
            "ops.watchdog_grace_s must be at least 2 seconds; the default 300 suits most poles",
        );
    } else {
        check.whole(grace, "ops.watchdog_grace_s", *grace.get_ref(), 2..=86_400);
    }
    verify_storage(&mut check, config);
    super::console::verify_console(&mut check, config);
    super::trust::verify_trust(&mut check, config);
    let manifests = verify_models(&mut check, config);
    verify_categories(&mut check, config);
    verify_cameras(&mut check, config, &manifests);
    check.into_errors()
}

fn is_short_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The storage keys: sizes and ages with finite ranges, a state directory that can be one.
fn verify_storage(c: &mut Check, config: &Config) {
    let s = &config.storage;
    c.whole(
        &s.jpeg_quality,
        "storage.jpeg_quality",
        u64::from(*s.jpeg_quality.get_ref()),
        1..=100,
    );
    // Up to a terabyte of flash and a year of history: beyond that the number is a typo.
    c.whole(
        &s.outbox_max_mb,
        "storage.outbox_max_mb",
        *s.outbox_max_mb.get_ref(),
        1..=1_048_576,
    );
    c.whole(
        &s.outbox_max_age_h,
        "storage.outbox_max_age_h",
        *s.outbox_max_age_h.get_ref(),
        1..=8_760,
    );
    c.whole(
        &s.evidence_max_mb,
        "storage.evidence_max_mb",
        *s.evidence_max_mb.get_ref(),
        0..=1_048_576,
    );
    c.whole(
        &s.evidence_max_age_h,
        "storage.evidence_max_age_h",
        *s.evidence_max_age_h.get_ref(),
        1..=8_760,
    );
    c.whole(
        &s.reserve_mb,
        "storage.reserve_mb",
        *s.reserve_mb.get_ref(),
        1..=65_536,
    );
    let dir = resolve(c.base, s.state_dir.get_ref());
    if dir.exists() && !dir.is_dir() {
        c.push(
            &s.state_dir,
            format!(
                "storage.state_dir `{}` is a file, not a directory; point it at a directory (it is created when missing)",
                s.state_dir.get_ref().display()
            ),
        );
    }
}

/// Whether `prefix` can stand at the start of every topic the agent publishes and subscribes to: levels of
/// printable characters without the wildcards `+` and `#`, no empty level, no `$` start (reserved).
fn is_topic_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 200
        && !prefix.starts_with('$')
        && prefix.split('/').all(|level| {
            !level.is_empty()
                && !level
                    .chars()
                    .any(|ch| ch == '+' || ch == '#' || ch.is_control() || ch.is_whitespace())
        })
}

fn verify_device(c: &mut Check, config: &Config) {
    let id = &config.device.id;
    if !is_short_id(id.get_ref()) {
        c.push(id, format!("device id `{}` must be 1–64 letters, digits, `-` or `_` (it is used in MQTT topics)", id.get_ref()));
    }
    if let Some(name) = &config.device.name {
        c.text(id, "device name", name, 256);
    }
    super::place::verify_place(c, config);
}

fn verify_uplink(c: &mut Check, config: &Config) {
    let up = &config.uplink;
    let prefix = &up.topic_prefix;
    if !is_topic_prefix(prefix.get_ref()) {
        c.push(prefix, format!("uplink.topic_prefix `{}` cannot start a topic: use levels of letters, digits, `-` or `_` separated by `/` (e.g. \"streetsight/v1\"), without `+`, `#`, spaces, empty levels or a leading `$`", prefix.get_ref().escape_debug()));
    }
    c.whole(
        &up.telemetry_s,
        "uplink.telemetry_s",
        *up.telemetry_s.get_ref(),
        1..=86_400,
    );
    c.whole(
        &up.keep_alive_s,
        "uplink.keep_alive_s",
        *up.keep_alive_s.get_ref(),
        5..=3_600,
    );
    c.whole(
        &up.command_max_skew_s,
        "uplink.command_max_skew_s",
        *up.command_max_skew_s.get_ref(),
        1..=86_400,
    );
    if let Some(id) = &up.client_id {
        let v = id.get_ref();
        if v.is_empty() || v.len() > 128 || !v.bytes().all(|b| b.is_ascii_graphic()) {
            c.push(
                id,
                format!(
                    "uplink.client_id `{}` must be 1–128 printable ASCII characters without spaces",
                    v.escape_debug()
                ),
            );
        }
    }
    if let Some(user) = &up.username {
        c.text(user, "uplink.username", user.get_ref(), 256);
    }
    let urls = &up.broker.get_ref().0;
    if !(1..=8).contains(&urls.len()) {
        c.push(
            &up.broker,
            format!(
                "uplink.broker lists {} brokers; give 1–8 (the nodes of one cluster)",
                urls.len()
            ),
        );
    }
    for (i, url) in urls.iter().enumerate() {
        if urls[..i].contains(url) {
            c.push(&up.broker, format!("uplink.broker lists `{url}` twice"));
        }
        verify_broker_url(c, up, url);
    }
    if let Some(tls) = &up.tls {
        let t = tls.get_ref();
        for (what, p) in [
            ("ca", Some(&t.ca)),
            ("cert", t.cert.as_ref()),
            ("key", t.key.as_ref()),
        ] {
            if let Some(p) = p
                && !resolve(c.base, p).is_file()
            {
                c.push(
                    tls,
                    format!("uplink.tls.{what}: file `{}` does not exist", p.display()),
                );
            }
        }
        if t.cert.is_some() != t.key.is_some() {
            c.push(
                tls,
                "uplink.tls needs both `cert` and `key` for a client certificate, or neither",
            );
        }
    }
    let wait = *up.command_wait_s.get_ref();
    if !(1..=600).contains(&wait) {
        c.push(
            &up.command_wait_s,
            format!("uplink.command_wait_s = {wait} is out of range 1–600 seconds; 20 suits GOPs up to ~10 s"),
        );
    }
    if let Some(p) = &up.password_file
        && !resolve(c.base, p).is_file()
    {
        c.push(
            &up.broker,
            format!("uplink.password_file `{}` does not exist", p.display()),
        );
    }
}

/// One broker URL of `uplink.broker`.
fn verify_broker_url(c: &mut Check, up: &crate::config::UplinkConfig, url: &str) {
    let at = &up.broker;
    match url::Url::parse(url) {
        Err(e) => c.push(
            at,
            format!("broker `{url}` is not a URL ({e}); write it as mqtts://host:8883 or mqtt://host:1883"),
        ),
        Ok(u) => {
            if !matches!(u.scheme(), "mqtt" | "mqtts") {
                c.push(at, format!("broker scheme `{}` is not supported; use mqtts:// (TLS) or mqtt:// (plain TCP)", u.scheme()));
            }
            if u.host_str().is_none_or(str::is_empty) {
                c.push(at, "broker URL has no host; write it as mqtts://host:8883");
            }
            if u.scheme() == "mqtts" && up.tls.is_none() {
                c.push(at, "an mqtts:// broker needs [uplink.tls] with at least `ca`");
            }
        }
    }
}

fn verify_models(c: &mut Check, config: &Config) -> BTreeMap<String, Manifest> {
    let mut manifests = BTreeMap::new();
    for (name, model) in &config.models {
        let m = model.get_ref();
        if let Some(t) = m.threads.filter(|t| !(1..=64).contains(t)) {
            c.push(
                model,
                format!("model `{name}`: threads = {t} is out of range 1–64"),
            );
        }
        if let Some(w) = m.workers.filter(|w| !(1..=16).contains(w)) {
            c.push(
                model,
                format!(
                    "model `{name}`: workers = {w} is out of range 1–16 (one per core is the most that helps)"
                ),
            );
        }
        for (key, value, range, unit) in [
            ("probation_s", m.probation_s, 10..=86_400, "s"),
            ("latency_budget_ms", m.latency_budget_ms, 1..=60_000, "ms"),
            ("max_download_mb", m.max_download_mb, 1..=16_384, "MB"),
            ("keep_versions", m.keep_versions as u64, 1..=20, ""),
        ] {
            if !range.contains(&value) {
                c.push(
                    model,
                    format!(
                        "model `{name}`: {key} = {value} is out of range {}–{}{unit}",
                        range.start(),
                        range.end()
                    ),
                );
            }
        }
        let dir = resolve(c.base, &m.path);
        match Manifest::load(&dir) {
            Ok(manifest) => {
                manifests.insert(name.clone(), manifest);
            }
            Err(e) => c.push(model, format!("model `{name}`: {e}")),
        }
    }
    manifests
}

fn verify_categories(c: &mut Check, config: &Config) {
    for (name, codes) in &config.categories {
        let v = codes.get_ref();
        for (key, text) in [
            ("name", &v.name),
            ("cjt214", &v.cjt214),
            ("local", &v.local),
        ] {
            if let Some(t) = text {
                c.text(codes, &format!("category `{name}`: {key}"), t, 64);
            }
        }
        if let Some(code) = &v.gbt47678
            && !categories::is_gbt47678_code(code)
        {
            c.push(
                codes,
                format!(
                    "category `{name}`: gbt47678 code `{code}` must be 5 digits, e.g. \"09006\""
                ),
            );
        }
        if let Some(code) = &v.gbt30428
            && !categories::is_gbt30428_code(code)
        {
            c.push(
                codes,
                format!("category `{name}`: gbt30428 code `{code}` must look like \"04-06\""),
            );
        }
    }
}

fn verify_cameras(c: &mut Check, config: &Config, manifests: &BTreeMap<String, Manifest>) {
    let mut ids = HashSet::new();
    for cam in &config.cameras {
        let v = cam.get_ref();
        if !is_short_id(&v.id) {
            c.push(
                cam,
                format!(
                    "camera id `{}` must be 1–64 letters, digits, `-` or `_`",
                    v.id
                ),
            );
        }
        if !ids.insert(v.id.clone()) {
            c.push(
                cam,
                format!(
                    "camera id `{}` is used twice; camera ids must be unique",
                    v.id
                ),
            );
        }
        verify_camera_source(c, cam);
        if !config.models.contains_key(v.model.get_ref()) {
            let known: Vec<_> = config.models.keys().map(String::as_str).collect();
            c.push(
                &v.model,
                format!(
                    "camera `{}`: model `{}` is not defined; defined models: [{}]",
                    v.id,
                    v.model.get_ref(),
                    known.join(", ")
                ),
            );
        }
        let zones = verify_zones(c, v);
        let model = manifests
            .get(v.model.get_ref())
            .map(|m| ModelInfo::new(m, &m.sha256));
        super::geometry::verify_camera_geometry(c, v, model.as_ref());
        super::health::health_params(c, v);
        super::zone_state::verify_model_tasks(c, cam, manifests);
        // The same code builds the rules when the camera starts; here only its complaints are kept.
        super::rules::CameraRules {
            config,
            cam: v,
            zones: &zones,
            model: model.as_ref(),
            state_dir: config.storage.state_dir.get_ref(),
        }
        .slots(c);
    }
}

fn verify_camera_source(c: &mut Check, cam: &Spanned<CameraConfig>) {
    let v = cam.get_ref();
    // The URL parser drops tabs and newlines silently; a URL that holds any is refused, not repaired.
    let raw = v.url.get_ref();
    match url::Url::parse(raw) {
        Ok(u)
            if matches!(u.scheme(), "rtsp" | "rtsps")
                && u.host_str().is_some_and(|h| !h.is_empty())
                && raw.len() <= 2048
                && !raw.chars().any(|ch| ch.is_control() || ch == ' ') => {}
        _ => c.push(
            &v.url,
            format!(
                "camera `{}`: url `{}` must be rtsp://host[:port]/path",
                v.id,
                crate::base::redact_url(v.url.get_ref())
            ),
        ),
    }
    if let Some(name) = &v.name {
        c.text(cam, &format!("camera `{}`: name", v.id), name, 256);
    }
    if let Some(user) = &v.username {
        c.text(cam, &format!("camera `{}`: username", v.id), user, 256);
    }
    if v.password_file.is_some() && v.password_env.is_some() {
        c.push(
            cam,
            format!(
                "camera `{}`: set password_file or password_env, not both",
                v.id
            ),
        );
    }
    if let Some(p) = &v.password_file
        && !resolve(c.base, p).is_file()
    {
        c.push(
            cam,
            format!(
                "camera `{}`: password_file `{}` does not exist",
                v.id,
                p.display()
            ),
        );
    }
    if let Some(var) = &v.password_env
        && std::env::var_os(var).is_none()
    {
        c.push(
            cam,
            format!(
                "camera `{}`: environment variable `{var}` (password_env) is not set",
                v.id
            ),
        );
    }
    if DecoderTemplate::find(&v.decoder).is_none() {
        c.push(
            cam,
            format!(
                "camera `{}`: decoder `{}` is unknown; choose one of [{}]",
                v.id,
                v.decoder,
                DecoderTemplate::names().join(", ")
            ),
        );
    }
    if let crate::config::Sampling::Interval { interval_ms } = v.sampling
        && !(40..=3_600_000).contains(&interval_ms)
    {
        c.push(
            cam,
            format!(
                "camera `{}`: sampling interval_ms = {interval_ms} is out of range 40–3600000",
                v.id
            ),
        );
    }
}

fn verify_zones<'a>(c: &mut Check, cam: &'a CameraConfig) -> BTreeMap<&'a str, &'a ZoneConfig> {
    let mut zones = BTreeMap::new();
    for zone in &cam.zones {
        let z = zone.get_ref();
        if zones.insert(z.id.as_str(), z).is_some() {
            c.push(
                zone,
                format!("camera `{}`: zone id `{}` is used twice", cam.id, z.id),
            );
        }
        let points = z.points.get_ref();
        if points.len() < 3 {
            c.push(
                &z.points,
                format!(
                    "camera `{}`: zone `{}` has {} point{}; a zone needs at least 3",
                    cam.id,
                    z.id,
                    points.len(),
                    if points.len() == 1 { "" } else { "s" }
                ),
            );
        }
        if points.iter().flatten().any(|v| !(0.0..=1.0).contains(v)) {
            c.push(&z.points, format!("camera `{}`: zone `{}` has a point outside 0..1; points are fractions of the image width and height", cam.id, z.id));
        } else if super::check::self_intersects(points) {
            c.push(&z.points, format!("camera `{}`: zone `{}` crosses itself; list its points in order around the area (clockwise or anticlockwise)", cam.id, z.id));
        }
        if z.points.get_ref().len() > 256 {
            c.push(
                &z.points,
                format!(
                    "camera `{}`: zone `{}` has more than 256 points",
                    cam.id, z.id
                ),
            );
        }
        c.whole(
            zone,
            &format!("camera `{}`: zone `{}`: inertia", cam.id, z.id),
            u64::from(z.inertia),
            0..=1_000,
        );
        if let Some(name) = &z.name {
            c.text(
                zone,
                &format!("camera `{}`: zone `{}`: name", cam.id, z.id),
                name,
                256,
            );
        }
        // Up to ten square kilometres: no camera sees more ground than that.
        if let Some(area) = &z.area_m2
            && !(*area.get_ref() > 0.0 && *area.get_ref() <= 1e7)
        {
            c.push(
                area,
                format!(
                    "camera `{}`: zone `{}`: area_m2 must be a positive number of square metres, at most 10000000",
                    cam.id, z.id
                ),
            );
        }
        if let Some(grid) = &z.grid_code {
            let g = grid.get_ref();
            if g.len() != 15 || !g.bytes().all(|b| b.is_ascii_digit()) {
                c.push(grid, format!("camera `{}`: zone `{}`: grid_code `{g}` must be 15 digits (6 division + 3 street + 3 community + 3 grid)", cam.id, z.id));
            }
        }
        if z.lat.is_some_and(|v| !(-90.0..=90.0).contains(&v))
            || z.lon.is_some_and(|v| !(-180.0..=180.0).contains(&v))
        {
            c.push(
                zone,
                format!(
                    "camera `{}`: zone `{}`: lat must be within ±90 and lon within ±180",
                    cam.id, z.id
                ),
            );
        }
    }
    zones
}
