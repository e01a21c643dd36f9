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
    super::rules::timezone(&mut check, config);
    super::rules::verify_evidence(&mut check, config);
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
    }
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

fn verify_device(c: &mut Check, config: &Config) {
    let id = &config.device.id;
    if !is_short_id(id.get_ref()) {
        c.push(id, format!("device id `{}` must be 1–64 letters, digits, `-` or `_` (it is used in MQTT topics)", id.get_ref()));
    }
    if let Some(gb) = &config.device.gb28181_id {
        let v = gb.get_ref();
        if v.len() != 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
            c.push(gb, format!("gb28181_id `{v}` must be 20 digits: 8 centre + 2 industry (08 = city management) + 3 type + 1 network + 6 serial"));
        }
    }
}

fn verify_uplink(c: &mut Check, config: &Config) {
    let up = &config.uplink;
    match url::Url::parse(up.broker.get_ref()) {
        Err(e) => c.push(
            &up.broker,
            format!(
                "broker `{}` is not a URL ({e}); write it as mqtts://host:8883 or mqtt://host:1883",
                up.broker.get_ref()
            ),
        ),
        Ok(u) => {
            if !matches!(u.scheme(), "mqtt" | "mqtts") {
                c.push(&up.broker, format!("broker scheme `{}` is not supported; use mqtts:// (TLS) or mqtt:// (plain TCP)", u.scheme()));
            }
            if u.host_str().is_none_or(str::is_empty) {
                c.push(
                    &up.broker,
                    "broker URL has no host; write it as mqtts://host:8883",
                );
            }
            if u.scheme() == "mqtts" && up.tls.is_none() {
                c.push(
                    &up.broker,
                    "an mqtts:// broker needs [uplink.tls] with at least `ca`",
                );
            }
        }
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

fn verify_models(c: &mut Check, config: &Config) -> BTreeMap<String, Manifest> {
    let mut manifests = BTreeMap::new();
    for (name, model) in &config.models {
        let m = model.get_ref();
        if m.threads == 0 || m.threads > 64 {
            c.push(
                model,
                format!(
                    "model `{name}`: threads = {} is out of range 1–64",
                    m.threads
                ),
            );
        }
        if m.workers == 0 || m.workers > 16 {
            c.push(
                model,
                format!(
                    "model `{name}`: workers = {} is out of range 1–16 (one per core is the most that helps)",
                    m.workers
                ),
            );
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
        super::rules::verify_camera_geometry(c, v, model.as_ref());
        // The same code builds the rules when the camera starts; here only its complaints are kept.
        super::rules::CameraRules {
            config,
            cam: v,
            zones: &zones,
            model: model.as_ref(),
            state_dir: &config.storage.state_dir,
        }
        .slots(c);
    }
}

fn verify_camera_source(c: &mut Check, cam: &Spanned<CameraConfig>) {
    let v = cam.get_ref();
    match url::Url::parse(v.url.get_ref()) {
        Ok(u)
            if matches!(u.scheme(), "rtsp" | "rtsps")
                && u.host_str().is_some_and(|h| !h.is_empty()) => {}
        _ => c.push(
            &v.url,
            format!(
                "camera `{}`: url `{}` must be rtsp://host[:port]/path",
                v.id,
                crate::base::redact_url(v.url.get_ref())
            ),
        ),
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
        }
        if let Some(area) = &z.area_m2
            && !(*area.get_ref() > 0.0 && area.get_ref().is_finite())
        {
            c.push(
                area,
                format!(
                    "camera `{}`: zone `{}`: area_m2 must be a positive number of square metres",
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
