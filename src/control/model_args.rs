//! The model lifecycle's commands as they arrive: `model_install`, `model_activate`, `model_rollback` and
//! `models`, each field checked to a finite range before anything is done. Also how any command's
//! arguments are read into their struct.

use serde::Deserialize;

/// What the engineer asks of a model's versions.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelRequest {
    /// Download a bundle archive, check it and keep it as an installed version (not active yet).
    Install {
        model: String,
        url: String,
        sha256: String,
        /// The manifest's minisign signature, when it is not in the archive.
        signature: Option<String>,
    },
    /// Make an installed version (or `configured`) the running one, on probation.
    Activate {
        model: String,
        version: String,
        latency_budget_ms: Option<u64>,
        probation_s: Option<u64>,
    },
    /// Go back to the version that ran before.
    Rollback { model: String },
    /// Installed versions, the active one, the one in shadow.
    List { model: Option<String> },
}

/// The command names, in the order the docs list them.
pub const MODEL_COMMANDS: [&str; 4] = [
    "model_install",
    "model_activate",
    "model_rollback",
    "models",
];

/// Budgets an engineer may set for one activation (the configuration's ranges).
pub const LATENCY_BUDGET_MS: std::ops::RangeInclusive<u64> = 1..=60_000;
pub const PROBATION_S: std::ops::RangeInclusive<u64> = 10..=86_400;

impl ModelRequest {
    pub fn name(&self) -> &'static str {
        match self {
            ModelRequest::Install { .. } => "model_install",
            ModelRequest::Activate { .. } => "model_activate",
            ModelRequest::Rollback { .. } => "model_rollback",
            ModelRequest::List { .. } => "models",
        }
    }

    /// The model it concerns (`models` may name none).
    pub fn model(&self) -> Option<&str> {
        match self {
            ModelRequest::Install { model, .. }
            | ModelRequest::Activate { model, .. }
            | ModelRequest::Rollback { model } => Some(model),
            ModelRequest::List { model } => model.as_deref(),
        }
    }

    /// The fields for the audit log (a URL's credentials redacted).
    pub fn describe(&self) -> serde_json::Value {
        match self {
            ModelRequest::Install {
                model,
                url,
                sha256,
                signature,
            } => serde_json::json!({
                "model": model, "url": crate::base::redact_url(url), "sha256": sha256,
                "signature": signature.is_some(),
            }),
            ModelRequest::Activate {
                model,
                version,
                latency_budget_ms,
                probation_s,
            } => serde_json::json!({
                "model": model, "version": version,
                "latency_budget_ms": latency_budget_ms, "probation_s": probation_s,
            }),
            ModelRequest::Rollback { model } => serde_json::json!({ "model": model }),
            ModelRequest::List { model } => serde_json::json!({ "model": model }),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallArgs {
    model: String,
    url: String,
    sha256: String,
    #[serde(default)]
    signature: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateArgs {
    model: String,
    version: String,
    #[serde(default)]
    latency_budget_ms: Option<u64>,
    #[serde(default)]
    probation_s: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackArgs {
    model: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    #[serde(default)]
    model: Option<String>,
}

/// A command's arguments as `T`; the error code and message when they do not fit.
pub fn args_of<T: serde::de::DeserializeOwned>(
    name: &str,
    args: serde_json::Value,
) -> Result<T, (&'static str, String)> {
    serde_json::from_value(args).map_err(|e| {
        let msg = e.to_string();
        let code = if msg.starts_with("missing field") {
            "missing_field"
        } else {
            "malformed"
        };
        (code, format!("{name}: {msg}"))
    })
}

/// Command `name`'s request, or `None` when it is not a model command.
pub fn parse(
    name: &str,
    args: serde_json::Value,
) -> Option<Result<ModelRequest, (&'static str, String)>> {
    let bad = |m: String| Err(("malformed", m));
    Some(match name {
        "model_install" => args_of::<InstallArgs>(name, args).and_then(|a| {
            let sha256 = a.sha256.to_ascii_lowercase();
            let scheme_ok = url::Url::parse(&a.url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !scheme_ok || a.url.len() > 2048 {
                bad("url must be an http:// or https:// URL of at most 2048 bytes".into())
            } else if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                bad("sha256 must be the archive's SHA-256 as 64 hex digits".into())
            } else if a
                .signature
                .as_ref()
                .is_some_and(|s| s.len() > 4096 || s.trim().is_empty())
            {
                bad("signature must be the text of the manifest's .minisig file (at most 4096 bytes)".into())
            } else {
                let (model, url, signature) = (a.model, a.url, a.signature);
                Ok(ModelRequest::Install {
                    model,
                    url,
                    sha256,
                    signature,
                })
            }
        }),
        "model_activate" => args_of::<ActivateArgs>(name, args).and_then(|a| {
            let out_of = |v: Option<u64>, r: &std::ops::RangeInclusive<u64>| {
                v.is_some_and(|v| !r.contains(&v))
            };
            if !crate::plan::installed::is_plain_name(&a.version) {
                bad("version must be an installed version's name (as `models` lists it), its manifest version, or `configured`".into())
            } else if out_of(a.latency_budget_ms, &LATENCY_BUDGET_MS) {
                bad(format!(
                    "latency_budget_ms must be {} to {}",
                    LATENCY_BUDGET_MS.start(),
                    LATENCY_BUDGET_MS.end()
                ))
            } else if out_of(a.probation_s, &PROBATION_S) {
                bad(format!(
                    "probation_s must be {} to {}",
                    PROBATION_S.start(),
                    PROBATION_S.end()
                ))
            } else {
                Ok(ModelRequest::Activate {
                    model: a.model,
                    version: a.version,
                    latency_budget_ms: a.latency_budget_ms,
                    probation_s: a.probation_s,
                })
            }
        }),
        "model_rollback" => args_of::<RollbackArgs>(name, args)
            .map(|a| ModelRequest::Rollback { model: a.model }),
        "models" => args_of::<ListArgs>(name, args).map(|a| ModelRequest::List { model: a.model }),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(name: &str, args: serde_json::Value) -> &'static str {
        parse(name, args).unwrap().unwrap_err().0
    }

    #[test]
    fn each_field_is_checked_before_anything_is_done() {
        let sha = "ab".repeat(32);
        let ok = parse(
            "model_install",
            json!({ "model": "m", "url": "https://models.example/v2.tar.gz", "sha256": sha.to_uppercase() }),
        )
        .unwrap()
        .unwrap();
        assert!(matches!(ok, ModelRequest::Install { sha256, .. } if sha256 == sha));
        for url in ["file:///etc/passwd", "ftp://x/y", "not a url"] {
            let args = json!({ "model": "m", "url": url, "sha256": sha });
            assert_eq!(code("model_install", args), "malformed", "{url}");
        }
        let short = json!({ "model": "m", "url": "http://h/a", "sha256": "abc" });
        assert_eq!(code("model_install", short), "malformed");
        assert_eq!(
            code("model_install", json!({ "model": "m" })),
            "missing_field"
        );
        for (version, budget) in [("../x", None), ("v1", Some(0)), ("v1", Some(60_001))] {
            let args = json!({ "model": "m", "version": version, "latency_budget_ms": budget });
            assert_eq!(
                code("model_activate", args),
                "malformed",
                "{version} {budget:?}"
            );
        }
        let slow = json!({ "model": "m", "version": "v1", "probation_s": 5 });
        assert_eq!(code("model_activate", slow), "malformed");
        assert!(parse("snapshot", json!({})).is_none());
    }
}
