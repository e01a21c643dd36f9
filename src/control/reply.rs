//! The answer to a command, published on `cmd_result/{request_id}`.

use super::command::CommandError;
use serde::Serialize;

/// The reply on `cmd_result/{request_id}`.
#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    pub request_id: String,
    pub command: String,
    pub ok: bool,
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<CommandError>,
}

impl Reply {
    pub fn ok(request_id: &str, command: &str, result: serde_json::Value) -> Self {
        Reply {
            request_id: request_id.into(),
            command: command.into(),
            ok: true,
            time: now_rfc3339(),
            result: Some(result),
            error: None,
        }
    }

    pub fn error(request_id: &str, command: &str, error: CommandError) -> Self {
        Reply {
            request_id: request_id.into(),
            command: command.into(),
            ok: false,
            time: now_rfc3339(),
            result: None,
            error: Some(error),
        }
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
