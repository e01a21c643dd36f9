//! The console's JSON API. Everything but `/api/login` passes [`admit`] first. Nothing here ever sends a
//! camera's URL, user name or password, nor any key: the camera view is built from its zones, masks,
//! ground and rules only ([`super::edit::view`]).

use super::Console;
use super::auth::{self, Refusal};
use super::edit::{self, CameraEdit, GroundEdit, ZoneEdit};
use axum::Json;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Shared = State<Arc<Console>>;

/// How long the scene-reference button waits for the camera's next frame.
const FRAME_WAIT: Duration = Duration::from_secs(20);

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": code, "message": message.into() })),
    )
        .into_response()
}

fn refused(r: Refusal) -> Response {
    match r {
        Refusal::NoSession => error(
            StatusCode::UNAUTHORIZED,
            "no_session",
            "log in first (the session may have ended)",
        ),
        Refusal::CrossSite(why) => error(StatusCode::FORBIDDEN, "cross_site", why),
        Refusal::WrongPassword => {
            error(StatusCode::UNAUTHORIZED, "wrong_password", "wrong password")
        }
        Refusal::Throttled(wait) => {
            let secs = wait.as_secs().max(1);
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                format!("too many wrong passwords from this address; try again in {secs} s"),
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                secs.to_string().parse().expect("digits"),
            );
            r
        }
    }
}

/// Every `/api` route but the login: a live session, and the session's token on anything that changes.
pub(super) async fn admit(State(c): Shared, req: Request, next: Next) -> Response {
    match c.auth.admit(req.method(), req.headers()) {
        Ok(_) => next.run(req).await,
        Err(r) => refused(r),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct Login {
    password: String,
}

pub(super) async fn login(
    State(c): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<Login>,
) -> Response {
    if !c.auth.host_allowed(&headers) {
        return refused(Refusal::CrossSite("the request names another host"));
    }
    if let Err(r) = auth::same_origin(&headers) {
        return refused(r);
    }
    let Ok(_one) = c.logins.try_acquire() else {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            "another login is being checked; try again in a moment",
        );
    };
    let console = c.clone();
    let done =
        tokio::task::spawn_blocking(move || console.auth.login(peer.ip(), &body.password)).await;
    match done {
        Ok(Ok(session)) => {
            tracing::info!(client = %peer.ip(), "Console: installer logged in.");
            let cookie = auth::session_cookie(&session.token, c.auth.idle());
            (
                [(header::SET_COOKIE, cookie)],
                Json(json!({ "csrf": session.csrf, "language": language(&c) })),
            )
                .into_response()
        }
        Ok(Err(r)) => refused(r),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed",
            "the login could not be checked",
        ),
    }
}

pub(super) async fn logout(State(c): Shared, headers: HeaderMap) -> Response {
    c.auth.logout(&headers);
    (
        [(header::SET_COOKIE, auth::cleared_cookie())],
        Json(json!({})),
    )
        .into_response()
}

/// The session's CSRF token and the pole's language (the page's first question).
pub(super) async fn session(State(c): Shared, req: Request) -> Response {
    match c.auth.admit(req.method(), req.headers()) {
        Ok(csrf) => Json(json!({ "csrf": csrf, "language": language(&c) })).into_response(),
        Err(r) => refused(r),
    }
}

fn language(c: &Console) -> &'static str {
    match running(c).config.device.language {
        crate::base::Language::En => "en",
        _ => "zh-CN",
    }
}

fn running(c: &Console) -> Arc<crate::config::LoadedConfig> {
    c.handles
        .running
        .lock()
        .expect("running config lock")
        .clone()
}

/// Each running camera: state, codec, resolution, analysed frames per second, its last error (URLs
/// redacted where it is made), its scene zones' references and its health.
pub(super) async fn cameras(State(c): Shared) -> Response {
    let loaded = running(&c);
    let list = c.handles.cameras.lock().expect("camera list lock").clone();
    let scenes = c.handles.scenes.lock().expect("scene board lock").clone();
    let now = Instant::now();
    let mut rates = c.rates.lock().expect("rates lock");
    let cameras: Vec<Value> = list
        .iter()
        .map(|(id, s)| {
            let analysed = s
                .frames_analysed
                .load(std::sync::atomic::Ordering::Relaxed);
            let fps = match rates.insert(id.to_string(), (analysed, now)) {
                Some((before, at)) if now > at => {
                    analysed.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64()
                }
                _ => 0.0,
            };
            let stream = s.stream.lock().expect("stream lock").clone();
            let configured = loaded.config.cameras.iter().find(|k| *k.get_ref().id == **id);
            let state = s.state();
            json!({
                "id": id.to_string(),
                "name": configured.and_then(|k| k.get_ref().name.clone()),
                "state": state,
                "codec": stream.as_ref().and_then(|i| i.codec.clone()),
                "width": stream.as_ref().map(|i| i.width),
                "height": stream.as_ref().map(|i| i.height),
                "analysed_fps": (fps * 10.0).round() / 10.0,
                "last_error": s.last_error.lock().expect("stats lock").clone(),
                "scene_zones": scenes.get(&**id).cloned().unwrap_or_default(),
                "health": c.handles.telemetry.camera_health(id, state == crate::ingest::CameraState::Streaming),
            })
        })
        .collect();
    Json(json!({ "cameras": cameras })).into_response()
}

pub(super) async fn live_jpeg(State(c): Shared, Path(id): Path<String>) -> Response {
    c.handles.live.watch(&id);
    match c.handles.live.view(&id) {
        Some(v) => (
            [(header::CONTENT_TYPE, "image/jpeg")],
            v.jpeg.as_ref().clone(),
        )
            .into_response(),
        None => no_frame_yet(&id),
    }
}

pub(super) async fn live(State(c): Shared, Path(id): Path<String>) -> Response {
    c.handles.live.watch(&id);
    match c.handles.live.view(&id) {
        Some(v) => Json(v).into_response(),
        None => no_frame_yet(&id),
    }
}

fn no_frame_yet(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no_frame",
        format!("no analysed frame of `{id}` yet (it appears within a second or two of streaming)"),
    )
}

/// The file's text, as a person reads it in errors.
async fn read_config(path: &std::path::Path) -> Result<String, Response> {
    tokio::fs::read_to_string(path).await.map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unreadable",
            format!("{}: {e}", path.display()),
        )
    })
}

/// What the editor shows of camera `id`: its zones, masks, ground and rules as the file has them, the
/// rule types' keys and defaults, and the fitted zone areas.
pub(super) async fn camera_config(State(c): Shared, Path(id): Path<String>) -> Response {
    let loaded = running(&c);
    let text = match read_config(&loaded.path).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match edit::view(&text, &id) {
        Ok(view) => {
            let areas = fitted_areas(view.ground.as_ref(), &view.zones);
            Json(json!({
                "file": loaded.path.display().to_string(),
                "edit": view,
                "rule_types": super::schema::rule_types(),
                "areas": areas,
            }))
            .into_response()
        }
        Err(e) => error(StatusCode::NOT_FOUND, "not_found", e.to_string()),
    }
}

/// Save camera `edit.camera`'s zones, masks, ground and rules: edited into the file keeping its comments,
/// checked by the same validator as `check` (errors with their line and the field they fall in), written
/// whole with a backup, then applied by the validated reload. A reload that fails puts the old file back.
pub(super) async fn save(
    State(c): Shared,
    Path(id): Path<String>,
    Json(mut body): Json<CameraEdit>,
) -> Response {
    body.camera = id.clone();
    let _one = c.saving.lock().await;
    let loaded = running(&c);
    let path = loaded.path.clone();
    let text = match read_config(&path).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let new = match edit::apply(&text, &body) {
        Ok(n) => n,
        Err(e) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "error": "invalid", "errors": [{ "line": 0, "message": e.to_string() }] })),
            )
                .into_response();
        }
    };
    if new == text {
        return Json(json!({ "saved": false, "message": "nothing changed" })).into_response();
    }
    let (check_path, check_text) = (path.clone(), new.clone());
    let checked =
        tokio::task::spawn_blocking(move || crate::plan::load_str(&check_path, &check_text)).await;
    match checked {
        Ok(Ok(_)) => {}
        Ok(Err(errors)) => {
            let errors: Vec<Value> = errors
                .0
                .iter()
                .map(|e| {
                    json!({
                        "line": e.line,
                        "message": e.to_string(),
                        "field": edit::field_at(&new, &id, e.line),
                    })
                })
                .collect();
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "error": "invalid", "errors": errors })),
            )
                .into_response();
        }
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed",
                "the check did not finish",
            );
        }
    }
    // The reload gate is held from the write to the reload: no SIGHUP or command applies this file
    // in between, and a busy gate leaves the file untouched.
    let Ok(_gate) = c.handles.reloading.clone().try_lock_owned() else {
        return error(
            StatusCode::CONFLICT,
            "busy",
            "a reload is being applied; nothing saved, try again when it is done",
        );
    };
    let keep = c.keep_backups;
    let (write_path, write_text) = (path.clone(), new.clone());
    let backup =
        match tokio::task::spawn_blocking(move || edit::save(&write_path, &write_text, keep)).await
        {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "unwritable",
                    format!(
                        "{} could not be written ({e}); nothing changed",
                        path.display()
                    ),
                );
            }
            Err(_) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "failed",
                    "the save did not finish",
                );
            }
        };
    let (tx, reload_path) = (c.handles.reload.clone(), path.clone());
    let reloaded =
        tokio::task::spawn_blocking(move || crate::control::apply_reload(&tx, &reload_path)).await;
    let backup_name = backup.as_ref().map(|b| b.display().to_string());
    match reloaded {
        Ok(Ok(summary)) => {
            let _ = crate::control::write_audit(
                &c.handles.audit,
                "console",
                "save",
                None,
                None,
                "done",
                json!({ "camera": id, "backup": backup_name }),
            );
            tracing::info!(camera = %id, backup = ?backup_name, "Console: configuration saved and reloaded.");
            Json(json!({ "saved": true, "backup": backup_name, "reload": summary })).into_response()
        }
        // No answer in time: the reload may still be applied, so the new file stays.
        Ok(Err(e)) if e.code == "timeout" => error(
            StatusCode::GATEWAY_TIMEOUT,
            e.code,
            format!("saved, but the reload has not answered yet: {}", e.message),
        ),
        Ok(Err(e)) => {
            // Refused (a model that does not load, say): the file must say what runs, so the old one goes
            // back, written whole, without a backup of the refused one.
            let (p, t) = (path.clone(), text.into_bytes());
            let restored =
                tokio::task::spawn_blocking(move || crate::base::write_atomic(&p, &t)).await;
            let back = match restored {
                Ok(Ok(())) => "the previous file is back in place".to_string(),
                _ => format!(
                    "the previous file could NOT be put back: restore it from {}",
                    backup_name.as_deref().unwrap_or("the backup")
                ),
            };
            error(
                StatusCode::CONFLICT,
                e.code,
                format!("not applied ({}); {back}", e.message),
            )
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed",
            "the reload did not finish",
        ),
    }
}

pub(super) async fn take_reference(
    State(c): Shared,
    Path((id, zone)): Path<(String, String)>,
) -> Response {
    let workers = c.handles.workers.clone();
    let done = tokio::task::spawn_blocking(move || {
        crate::control::scene_reference(&workers, &id, &zone, FRAME_WAIT)
    })
    .await;
    match done {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => error(StatusCode::CONFLICT, e.code, e.message),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "failed", "no answer"),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct AreasBody {
    #[serde(default)]
    ground: Option<GroundEdit>,
    #[serde(default)]
    zones: Vec<ZoneEdit>,
}

/// The ground calibration as drawn (saved or not): how well it fits and each zone's area on the ground.
pub(super) async fn areas(Json(body): Json<AreasBody>) -> Response {
    Json(fitted_areas(body.ground.as_ref(), &body.zones)).into_response()
}

fn fitted_areas(ground: Option<&GroundEdit>, zones: &[ZoneEdit]) -> Value {
    let Some(g) = ground else {
        return json!({ "fit": null, "areas": {} });
    };
    if g.image.len() != g.ground.len() || g.image.len() < 4 {
        return json!({ "fit": { "error": "at least 4 points, each with its ground position" }, "areas": {} });
    }
    match crate::rules::Homography::fit(&g.image, &g.ground) {
        Ok(h) => {
            let areas: serde_json::Map<String, Value> = zones
                .iter()
                .map(|z| {
                    let poly: Vec<(f32, f32)> = z
                        .points
                        .iter()
                        .map(|p| (p[0] as f32, p[1] as f32))
                        .collect();
                    let a = h.area_m2(&poly).map(|a| (a * 10.0).round() / 10.0);
                    (z.id.clone(), json!(a))
                })
                .collect();
            json!({
                "fit": { "max_residual_m": (h.max_residual_m(&g.image, &g.ground) * 100.0).round() / 100.0 },
                "areas": areas,
            })
        }
        Err(e) => json!({ "fit": { "error": e.to_string() }, "areas": {} }),
    }
}

/// The pole's latest incident events, newest first, each with the archive names of its evidence images.
pub(super) async fn incidents(State(c): Shared) -> Response {
    let events: Vec<Value> = c
        .handles
        .live
        .events()
        .into_iter()
        .map(|e| {
            let images: Vec<String> = e
                .evidence
                .iter()
                .map(|r| format!("{}.jpg", r.topic.replace('/', "-")))
                .collect();
            let mut v = serde_json::to_value(&e).expect("events serialise");
            v["evidence_files"] = json!(images);
            v
        })
        .collect();
    Json(json!({ "events": events })).into_response()
}

/// An image of the local evidence archive, by its file name.
pub(super) async fn evidence(State(c): Shared, Path(name): Path<String>) -> Response {
    let plain = !name.starts_with('.')
        && name.ends_with(".jpg")
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !plain {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_name",
            "not an evidence file name",
        );
    }
    match tokio::fs::read(c.handles.evidence_dir.join(&name)).await {
        Ok(jpeg) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "private, max-age=3600"),
            ],
            jpeg,
        )
            .into_response(),
        Err(_) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "not in the archive (removed by its size or age cap)",
        ),
    }
}

/// Run `check` on the running configuration (cameras and broker probed again, models run once), one at a
/// time, on a thread of its own: loading and running the models must not hold up the daemon's async threads.
pub(super) async fn check(State(c): Shared) -> Response {
    let Ok(_one) = c.checking.try_lock() else {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            "a check is running; its table comes when it is done",
        );
    };
    let loaded = running(&c).as_ref().clone();
    let (runner, runtime) = (c.check.clone(), tokio::runtime::Handle::current());
    match tokio::task::spawn_blocking(move || runtime.block_on(runner(loaded))).await {
        Ok(rows) => Json(json!({ "rows": rows })).into_response(),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed",
            "the check did not finish",
        ),
    }
}
