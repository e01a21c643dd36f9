//! The zone-state examples' commands as they arrive: `label`, `feedback`, `examples` and
//! `example_remove`, each field checked before anything is done.

use super::model_args::args_of;
use serde::Deserialize;

/// What an installer or a dispatcher says about a zone's state.
#[derive(Debug, Clone, PartialEq)]
pub enum ExampleRequest {
    /// The zone, on the camera's next frame with nobody over it, is in `state`.
    Label {
        camera: String,
        zone: String,
        state: String,
    },
    /// A dispatcher's verdict on an event: its evidence picture becomes an example (`false_positive` → the
    /// zone's normal state, `confirmed` → the state the rule saw).
    Feedback {
        camera: String,
        zone: String,
        event_id: String,
        verdict: Verdict,
    },
    /// The zone's examples.
    List { camera: String, zone: String },
    /// Forget one example.
    Remove {
        camera: String,
        zone: String,
        id: String,
    },
}

/// A dispatcher's verdict on an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Confirmed,
    FalsePositive,
}

/// The command names, in the order the docs list them.
pub const EXAMPLE_COMMANDS: [&str; 4] = ["label", "feedback", "examples", "example_remove"];

impl ExampleRequest {
    pub fn name(&self) -> &'static str {
        match self {
            ExampleRequest::Label { .. } => "label",
            ExampleRequest::Feedback { .. } => "feedback",
            ExampleRequest::List { .. } => "examples",
            ExampleRequest::Remove { .. } => "example_remove",
        }
    }

    /// The camera and zone it concerns.
    pub fn place(&self) -> (&str, &str) {
        match self {
            ExampleRequest::Label { camera, zone, .. }
            | ExampleRequest::Feedback { camera, zone, .. }
            | ExampleRequest::List { camera, zone }
            | ExampleRequest::Remove { camera, zone, .. } => (camera, zone),
        }
    }

    /// The fields for the audit log.
    pub fn describe(&self) -> serde_json::Value {
        let (camera, zone) = self.place();
        let mut v = serde_json::json!({ "camera": camera, "zone": zone });
        match self {
            ExampleRequest::Label { state, .. } => v["state"] = state.as_str().into(),
            ExampleRequest::Feedback {
                event_id, verdict, ..
            } => {
                v["event_id"] = event_id.as_str().into();
                v["verdict"] = match verdict {
                    Verdict::Confirmed => "confirmed",
                    Verdict::FalsePositive => "false_positive",
                }
                .into();
            }
            ExampleRequest::Remove { id, .. } => v["id"] = id.as_str().into(),
            ExampleRequest::List { .. } => {}
        }
        v
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Place {
    camera: String,
    zone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelArgs {
    camera: String,
    zone: String,
    state: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackArgs {
    camera: String,
    zone: String,
    event_id: String,
    verdict: Verdict,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveArgs {
    camera: String,
    zone: String,
    id: String,
}

/// A short plain token: what ids, states and event ids are made of.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// Command `name`'s request (`name` is one of [`EXAMPLE_COMMANDS`]).
pub fn parse(
    name: &str,
    args: serde_json::Value,
) -> Result<ExampleRequest, (&'static str, String)> {
    let request = match name {
        "label" => args_of::<LabelArgs>(name, args).map(|a| ExampleRequest::Label {
            camera: a.camera,
            zone: a.zone,
            state: a.state,
        }),
        "feedback" => args_of::<FeedbackArgs>(name, args).map(|a| ExampleRequest::Feedback {
            camera: a.camera,
            zone: a.zone,
            event_id: a.event_id,
            verdict: a.verdict,
        }),
        "examples" => args_of::<Place>(name, args).map(|a| ExampleRequest::List {
            camera: a.camera,
            zone: a.zone,
        }),
        _ => args_of::<RemoveArgs>(name, args).map(|a| ExampleRequest::Remove {
            camera: a.camera,
            zone: a.zone,
            id: a.id,
        }),
    }?;
    let extra = match &request {
        ExampleRequest::Label { state, .. } => Some(state),
        ExampleRequest::Feedback { event_id, .. } => Some(event_id),
        ExampleRequest::Remove { id, .. } => Some(id),
        ExampleRequest::List { .. } => None,
    };
    let (camera, zone) = request.place();
    if ![camera, zone]
        .into_iter()
        .chain(extra.map(String::as_str))
        .all(plain)
    {
        return Err((
            "malformed",
            format!(
                "{name}: camera, zone, state, event_id and id must be 1–128 letters, digits, `-`, `_`, `.` or `:`"
            ),
        ));
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_example_command_is_read_and_a_bad_field_is_refused_with_its_code() {
        let label = parse(
            "label",
            json!({"camera": "c", "zone": "z", "state": "stall"}),
        )
        .unwrap();
        assert_eq!(label.name(), "label");
        let fb = parse(
            "feedback",
            json!({"camera": "c", "zone": "z", "event_id": "e-1", "verdict": "false_positive"}),
        )
        .unwrap();
        assert!(matches!(
            fb,
            ExampleRequest::Feedback {
                verdict: Verdict::FalsePositive,
                ..
            }
        ));
        assert_eq!(
            parse(
                "feedback",
                json!({"camera": "c", "zone": "z", "event_id": "e", "verdict": "maybe"})
            )
            .unwrap_err()
            .0,
            "malformed"
        );
        assert_eq!(
            parse("examples", json!({"camera": "c"})).unwrap_err().0,
            "missing_field"
        );
        assert_eq!(
            parse(
                "example_remove",
                json!({"camera": "c", "zone": "z", "id": "../x"})
            )
            .unwrap_err()
            .0,
            "malformed"
        );
    }
}
