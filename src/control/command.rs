//! Remote commands: what arrives on `cmd/{name}`, checked before anything acts on it. Pure: parsing,
//! field checks and the anti-replay guard (timestamp window + nonce) take the clock as an argument.
//!
//! Every command is a JSON object with `request_id` (the reply goes to `cmd_result/{request_id}`),
//! `timestamp` (RFC 3339, within the allowed skew of the gateway's clock) and `nonce` (never seen before
//! within that window), plus the command's own fields.

use serde::{Deserialize, Serialize};

/// What a command asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// A fresh annotated frame of a camera.
    Snapshot { camera: String },
    /// Re-check an open incident now: `still_present` or `cleared` (which resolves it).
    Verify { incident_id: String },
    /// A dispatcher's false alarm: mute `category` in `zone` (of one camera, or of every camera that has
    /// such a zone) for `duration_s`.
    Suppress {
        camera: Option<String>,
        category: String,
        zone: String,
        duration_s: u64,
    },
    /// Lift suppressions of `category` in `zone`: those made for `camera`, or every one without a camera.
    Unsuppress {
        camera: Option<String>,
        category: String,
        zone: String,
    },
    /// The suppressions in force.
    Suppressions,
    /// The incidents open now (of one camera, or all).
    Incidents { camera: Option<String> },
    /// Take a new clean reference for a scene-change zone on the next quiet frame.
    SceneReference { camera: String, zone: String },
    /// The installer confirms the camera's view: it becomes the reference, conditions clear, rules resume.
    ConfirmView { camera: String },
    /// Re-read and validate the configuration file; apply it if valid, keep the running one otherwise.
    Reload,
    /// Run the bundle at `path` in shadow beside `model` on every `every`-th analysed frame (replacing one).
    ShadowStart {
        model: String,
        path: String,
        every: u32,
    },
    /// Stop the model's shadow; the reply carries its last report.
    ShadowStop { model: String },
    /// What the shadows found so far (of one model, or all).
    ShadowReport { model: Option<String> },
    /// A model's versions: install, activate, roll back, list.
    Model(super::model_args::ModelRequest),
    /// A zone's labelled examples: label, feedback, list, remove.
    Example(super::example_args::ExampleRequest),
}

impl Request {
    pub fn name(&self) -> &'static str {
        match self {
            Request::Snapshot { .. } => "snapshot",
            Request::Verify { .. } => "verify",
            Request::Suppress { .. } => "suppress",
            Request::Unsuppress { .. } => "unsuppress",
            Request::Suppressions => "suppressions",
            Request::Incidents { .. } => "incidents",
            Request::SceneReference { .. } => "scene_reference",
            Request::ConfirmView { .. } => "confirm_view",
            Request::Reload => "reload",
            Request::ShadowStart { .. } => "shadow_start",
            Request::ShadowStop { .. } => "shadow_stop",
            Request::ShadowReport { .. } => "shadow_report",
            Request::Model(m) => m.name(),
            Request::Example(e) => e.name(),
        }
    }
}

/// The command names this agent understands.
pub const COMMANDS: [&str; 20] = [
    "snapshot",
    "verify",
    "suppress",
    "unsuppress",
    "suppressions",
    "incidents",
    "scene_reference",
    "confirm_view",
    "reload",
    "shadow_start",
    "shadow_stop",
    "shadow_report",
    "model_install",
    "model_activate",
    "model_rollback",
    "models",
    "label",
    "feedback",
    "examples",
    "example_remove",
];

/// A checked command.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub request_id: String,
    /// Milliseconds since the Unix epoch, from the command's `timestamp`.
    pub issued_ms: i64,
    pub nonce: String,
    pub request: Request,
}

/// Why a command was refused; `code` is stable for machines, `message` says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandError {
    pub code: &'static str,
    pub message: String,
}

impl CommandError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        CommandError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Reply topic used when a command is too broken to name its own `request_id`.
pub const UNNAMED_REQUEST: &str = "unknown";

/// Fields every command carries.
#[derive(Deserialize)]
struct Envelope {
    request_id: Option<serde_json::Value>,
    timestamp: Option<serde_json::Value>,
    nonce: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotArgs {
    camera: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyArgs {
    incident_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppressArgs {
    camera: Option<String>,
    category: String,
    zone: String,
    duration_s: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsuppressArgs {
    camera: Option<String>,
    category: String,
    zone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentsArgs {
    camera: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SceneReferenceArgs {
    camera: String,
    zone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CameraArgs {
    camera: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShadowStartArgs {
    model: String,
    path: String,
    #[serde(default = "default_shadow_every")]
    every: u32,
}

fn default_shadow_every() -> u32 {
    5
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelArgs {
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// Longest suppression a dispatcher may ask for (30 days): longer mutes belong in the configuration.
pub const MAX_SUPPRESS_S: u64 = 30 * 24 * 3600;

/// The largest command payload read: a command is a few hundred bytes; anything past this is refused
/// unread, so a huge field can reach neither a reply, a log line nor the audit log.
pub const MAX_COMMAND_BYTES: usize = 16 * 1024;

/// The longest camera, zone, category or incident id a command may name (configuration ids are ≤ 64).
const MAX_ID_CHARS: usize = 128;

/// A command name or id as it may be echoed: at most 64 characters, control characters replaced.
pub fn echo(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

/// The request id a payload names, if it is small enough to read and names a usable one.
pub fn request_id_of(payload: &[u8]) -> Option<String> {
    if payload.len() > MAX_COMMAND_BYTES {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    v.get("request_id")?
        .as_str()
        .filter(|id| valid_request_id(id))
        .map(String::from)
}

/// A request id becomes a topic level: keep it to characters that are safe there.
fn valid_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Parse the command `name` with its JSON `payload`. On failure the error comes with the request id to
/// reply to (or [`UNNAMED_REQUEST`] when the payload names none usable).
pub fn parse(name: &str, payload: &[u8]) -> Result<Command, (String, CommandError)> {
    let unnamed = |e: CommandError| (UNNAMED_REQUEST.to_string(), e);
    if payload.len() > MAX_COMMAND_BYTES {
        return Err(unnamed(CommandError::new(
            "too_large",
            format!(
                "payload is {} bytes; a command is at most {MAX_COMMAND_BYTES} bytes",
                payload.len()
            ),
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(payload).map_err(|e| {
        unnamed(CommandError::new(
            "malformed",
            format!("payload is not JSON ({e}); send a JSON object"),
        ))
    })?;
    let serde_json::Value::Object(mut fields) = value else {
        return Err(unnamed(CommandError::new(
            "malformed",
            "payload must be a JSON object with request_id, timestamp and nonce",
        )));
    };
    let envelope: Envelope = serde_json::from_value(serde_json::Value::Object(fields.clone()))
        .map_err(|e| unnamed(CommandError::new("malformed", e.to_string())))?;
    let request_id = match envelope.request_id {
        Some(serde_json::Value::String(s)) if valid_request_id(&s) => s,
        Some(_) => {
            return Err(unnamed(CommandError::new(
                "malformed",
                "request_id must be 1–64 characters of A–Z, a–z, 0–9, '-', '_' or '.'",
            )));
        }
        None => {
            return Err(unnamed(CommandError::new(
                "missing_field",
                "request_id is required (the reply goes to cmd_result/{request_id})",
            )));
        }
    };
    let fail = |code, msg: String| Err((request_id.clone(), CommandError::new(code, msg)));
    let issued_ms = match envelope.timestamp {
        Some(serde_json::Value::String(s)) => match chrono::DateTime::parse_from_rfc3339(&s) {
            Ok(t) => t.timestamp_millis(),
            Err(e) => {
                return fail(
                    "malformed",
                    format!(
                        "timestamp `{}` is not RFC 3339 ({e}); e.g. 2026-11-23T08:00:00Z",
                        echo(&s)
                    ),
                );
            }
        },
        Some(_) => return fail("malformed", "timestamp must be an RFC 3339 string".into()),
        None => return fail("missing_field", "timestamp is required (RFC 3339)".into()),
    };
    let nonce = match envelope.nonce {
        Some(serde_json::Value::String(s)) if (8..=128).contains(&s.len()) => s,
        Some(_) => {
            return fail(
                "malformed",
                "nonce must be a string of 8–128 characters, new for every command".into(),
            );
        }
        None => return fail("missing_field", "nonce is required".into()),
    };
    for k in ["request_id", "timestamp", "nonce"] {
        fields.remove(k);
    }
    let args = serde_json::Value::Object(fields);
    let request = match name {
        "snapshot" => {
            args_of::<SnapshotArgs>(name, args).map(|a| Request::Snapshot { camera: a.camera })
        }
        "verify" => args_of::<VerifyArgs>(name, args).map(|a| Request::Verify {
            incident_id: a.incident_id,
        }),
        "suppress" => args_of::<SuppressArgs>(name, args).and_then(|a| {
            if a.duration_s == 0 || a.duration_s > MAX_SUPPRESS_S {
                return Err(CommandError::new(
                    "malformed",
                    format!(
                        "duration_s is {}; it must be between 1 and {MAX_SUPPRESS_S} (30 days)",
                        a.duration_s
                    ),
                ));
            }
            Ok(Request::Suppress {
                camera: a.camera,
                category: a.category,
                zone: a.zone,
                duration_s: a.duration_s,
            })
        }),
        "unsuppress" => args_of::<UnsuppressArgs>(name, args).map(|a| Request::Unsuppress {
            camera: a.camera,
            category: a.category,
            zone: a.zone,
        }),
        "suppressions" => args_of::<NoArgs>(name, args).map(|_| Request::Suppressions),
        "incidents" => {
            args_of::<IncidentsArgs>(name, args).map(|a| Request::Incidents { camera: a.camera })
        }
        "scene_reference" => {
            args_of::<SceneReferenceArgs>(name, args).map(|a| Request::SceneReference {
                camera: a.camera,
                zone: a.zone,
            })
        }
        "confirm_view" => {
            args_of::<CameraArgs>(name, args).map(|a| Request::ConfirmView { camera: a.camera })
        }
        "reload" => args_of::<NoArgs>(name, args).map(|_| Request::Reload),
        "shadow_start" => args_of::<ShadowStartArgs>(name, args).and_then(shadow_start),
        "shadow_stop" => args_of::<ModelArgs>(name, args).and_then(|a| match a.model {
            Some(model) => Ok(Request::ShadowStop { model }),
            None => Err(CommandError::new(
                "missing_field",
                "shadow_stop: missing field `model`",
            )),
        }),
        "shadow_report" => {
            args_of::<ModelArgs>(name, args).map(|a| Request::ShadowReport { model: a.model })
        }
        other if super::example_args::EXAMPLE_COMMANDS.contains(&other) => {
            super::example_args::parse(other, args)
                .map(Request::Example)
                .map_err(|(code, m)| CommandError::new(code, m))
        }
        other => match super::model_args::parse(other, args) {
            Some(parsed) => parsed
                .map(Request::Model)
                .map_err(|(code, m)| CommandError::new(code, m)),
            None => Err(CommandError::new(
                "unknown_command",
                format!(
                    "no command `{}`; this agent knows {}",
                    echo(other),
                    COMMANDS.join(", ")
                ),
            )),
        },
    };
    let too_long = match &request {
        Ok(Request::Snapshot { camera }) | Ok(Request::ConfirmView { camera }) => {
            vec![camera.as_str()]
        }
        Ok(Request::Verify { incident_id }) => vec![incident_id.as_str()],
        Ok(Request::Suppress {
            camera,
            category,
            zone,
            ..
        })
        | Ok(Request::Unsuppress {
            camera,
            category,
            zone,
        }) => vec![camera.as_deref().unwrap_or(""), category, zone],
        Ok(Request::Incidents { camera }) => vec![camera.as_deref().unwrap_or("")],
        Ok(Request::SceneReference { camera, zone }) => vec![camera.as_str(), zone.as_str()],
        Ok(Request::ShadowStart { model, .. }) | Ok(Request::ShadowStop { model }) => {
            vec![model.as_str()]
        }
        Ok(Request::ShadowReport { model }) => vec![model.as_deref().unwrap_or("")],
        Ok(Request::Model(m)) => vec![m.model().unwrap_or("")],
        Ok(Request::Example(e)) => vec![e.place().0, e.place().1],
        _ => vec![],
    }
    .into_iter()
    .any(|s| s.chars().count() > MAX_ID_CHARS || s.chars().any(char::is_control));
    if too_long {
        return fail(
            "malformed",
            format!(
                "ids a command names are at most {MAX_ID_CHARS} characters, without control characters"
            ),
        );
    }
    match request {
        Ok(request) => Ok(Command {
            request_id,
            issued_ms,
            nonce,
            request,
        }),
        Err(e) => Err((request_id, e)),
    }
}

/// A shadow's bundle is an absolute directory on the pole, and it runs every 1–100 frames.
fn shadow_start(a: ShadowStartArgs) -> Result<Request, CommandError> {
    let (every, max) = (a.every, crate::incident::SHADOW_EVERY.end());
    let problem = if !crate::incident::SHADOW_EVERY.contains(&every) {
        format!(
            "every is {every}; it must be 1 to {max} (the candidate runs on every N-th analysed frame)"
        )
    } else if !a.path.starts_with('/')
        || a.path.len() > 4096
        || a.path.chars().any(char::is_control)
    {
        "path must be the absolute path of a bundle directory on the pole (at most 4096 bytes)"
            .into()
    } else {
        let (model, path) = (a.model, a.path);
        return Ok(Request::ShadowStart { model, path, every });
    };
    Err(CommandError::new("malformed", problem))
}

fn args_of<T: serde::de::DeserializeOwned>(
    name: &str,
    args: serde_json::Value,
) -> Result<T, CommandError> {
    super::model_args::args_of(name, args).map_err(|(code, m)| CommandError::new(code, m))
}

#[cfg(test)]
mod tests;
