//! The bridge's own TOML file (`/etc/streetsight/bridge.toml`), read and checked: every problem at
//! `file:line` with its fix, every value in a finite range — what `bridge --check` accepts, `bridge` runs.

use crate::config::{ConfigError, ConfigErrors, Lines, resolve};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    broker: Broker,
    database: Database,
    workorder: Workorder,
    evidence: Evidence,
    http: Http,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Broker {
    /// `mqtts://host:8883` (an MQTT 5 broker: shared subscriptions), or the servers of a NATS JetStream
    /// cluster whose MQTT gateway the poles publish to: `nats://host:4222` / `tls://host:4222`, one or a list.
    url: Spanned<crate::config::Brokers>,
    /// NATS only: replicas of the gateway's message stream if the bridge creates it (1–5).
    #[serde(default = "default_stream_replicas")]
    stream_replicas: Spanned<u64>,
    #[serde(default = "default_prefix")]
    topic_prefix: Spanned<String>,
    /// The shared subscription's group: every bridge replica of one city uses the same.
    #[serde(default = "default_group")]
    group: Spanned<String>,
    /// Stable per replica: the broker keeps this session's messages while the replica is away.
    client_id: Spanned<String>,
    #[serde(default)]
    ca: Option<PathBuf>,
    #[serde(default)]
    cert: Option<PathBuf>,
    #[serde(default)]
    key: Option<PathBuf>,
    #[serde(default)]
    username: Option<Spanned<String>>,
    #[serde(default)]
    password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Database {
    /// libpq-style: `host=/run/postgresql dbname=streetsight user=bridge` (no password here).
    url: Spanned<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Workorder {
    /// Where cases are created: `POST {url}`.
    url: Spanned<String>,
    /// The city's mapping file (fields, description template, codes).
    mapping: Spanned<PathBuf>,
    /// The shared secret of the body signature (`X-Signature: hmac-sha256=<hex>`).
    secret_file: Spanned<PathBuf>,
    #[serde(default = "default_timeout_s")]
    timeout_s: Spanned<u64>,
    /// Longest wait between two attempts while the work-order system is down.
    #[serde(default = "default_retry_max_s")]
    retry_max_s: Spanned<u64>,
    /// How long a case waits for its evidence pictures before it is filed without the missing ones.
    #[serde(default = "default_evidence_wait_s")]
    evidence_wait_s: Spanned<u64>,
    /// How long a pole has to answer a re-check before the case is left for a person.
    #[serde(default = "default_verify_timeout_s")]
    verify_timeout_s: Spanned<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Evidence {
    /// Where evidence pictures are kept (shared by the replicas: a directory on shared storage).
    dir: PathBuf,
    /// The key evidence URLs are signed with.
    secret_file: Spanned<PathBuf>,
    /// How long a signed evidence URL serves its picture.
    #[serde(default = "default_url_ttl_s")]
    url_ttl_s: Spanned<u64>,
    /// Days a picture is kept after it arrived (at least as long as its URLs serve it); older ones are
    /// deleted every hour.
    #[serde(default = "default_keep_days")]
    keep_days: Spanned<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Http {
    listen: Spanned<String>,
    /// How the work-order system reaches this listener (evidence URLs start with it).
    public_url: Spanned<String>,
}

fn default_prefix() -> Spanned<String> {
    Spanned::new(0..0, "streetsight/v1".into())
}
fn default_stream_replicas() -> Spanned<u64> {
    Spanned::new(0..0, 3)
}
fn default_group() -> Spanned<String> {
    Spanned::new(0..0, "streetsight-bridge".into())
}
fn default_timeout_s() -> Spanned<u64> {
    Spanned::new(0..0, 10)
}
fn default_retry_max_s() -> Spanned<u64> {
    Spanned::new(0..0, 60)
}
fn default_evidence_wait_s() -> Spanned<u64> {
    Spanned::new(0..0, 30)
}
fn default_verify_timeout_s() -> Spanned<u64> {
    Spanned::new(0..0, 120)
}
fn default_keep_days() -> Spanned<u64> {
    Spanned::new(0..0, 30)
}
fn default_url_ttl_s() -> Spanned<u64> {
    Spanned::new(0..0, 7 * 24 * 3600)
}

/// Where the poles' messages come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// One MQTT 5 broker, read through a shared subscription.
    Mqtt(String),
    /// The servers of a NATS JetStream cluster, read through a durable consumer.
    Nats {
        servers: Vec<String>,
        replicas: usize,
    },
}

impl Source {
    /// The first server, credentials removed: for the log.
    pub fn display(&self) -> String {
        match self {
            Source::Mqtt(url) => crate::base::redact_url(url),
            Source::Nats { servers, .. } => crate::base::redact_url(&servers[0]),
        }
    }
}

/// The checked settings of one bridge replica.
#[derive(Debug, Clone)]
pub struct BridgeSettings {
    pub source: Source,
    pub topic_prefix: String,
    pub group: String,
    pub client_id: String,
    pub tls: Option<crate::uplink::TlsFiles>,
    pub username: Option<String>,
    pub broker_password_file: Option<PathBuf>,
    pub database: String,
    pub database_password_file: Option<PathBuf>,
    pub workorder_url: String,
    pub mapping: PathBuf,
    pub workorder_secret: Vec<u8>,
    pub timeout: Duration,
    pub retry_max: Duration,
    pub evidence_wait: Duration,
    pub verify_timeout: Duration,
    pub evidence_dir: PathBuf,
    pub url_secret: Vec<u8>,
    pub url_ttl: Duration,
    /// How long a picture is kept after it arrived.
    pub keep: Duration,
    pub listen: std::net::SocketAddr,
    pub public_url: String,
}

/// Read and check the bridge's file: all problems together.
pub fn load(path: &Path) -> Result<BridgeSettings, ConfigErrors> {
    let text =
        crate::base::read_text_capped(path, crate::config::MAX_CONFIG_BYTES).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: 0,
                message: format!(
                    "cannot read the bridge's configuration: {e}; pass its path with --config"
                ),
            }])
        })?;
    load_str(path, &text)
}

/// Check `text`, read from `path`.
pub fn load_str(path: &Path, text: &str) -> Result<BridgeSettings, ConfigErrors> {
    let lines = Lines::new(path, text);
    let f: File = crate::config::from_toml(path, text)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut errors = Vec::new();
    let mut bad = |span: &std::ops::Range<usize>, m: String| errors.push(lines.error(span, m));
    let in_range = |v: &Spanned<u64>,
                    lo: u64,
                    hi: u64,
                    name: &str,
                    bad: &mut dyn FnMut(&std::ops::Range<usize>, String)| {
        if !(lo..=hi).contains(v.get_ref()) {
            bad(
                &v.span(),
                format!("`{name}` = {} is out of range; use {lo}–{hi}", v.get_ref()),
            );
        }
    };
    // The broker.
    let urls = &f.broker.url.get_ref().0;
    let schemes: Vec<String> = urls
        .iter()
        .map(|u| match url::Url::parse(u) {
            Ok(p) if p.host_str().is_some_and(|h| !h.is_empty()) => p.scheme().to_string(),
            Ok(_) => "no host".into(),
            Err(e) => e.to_string(),
        })
        .collect();
    let nats = schemes.iter().all(|s| s == "nats" || s == "tls");
    let mqtt = schemes.iter().all(|s| s == "mqtt" || s == "mqtts");
    let span = f.broker.url.span();
    if urls.is_empty() || urls.len() > 8 || !(nats || mqtt) {
        bad(&span, "write the broker as mqtts://host:8883 (mqtt://host:1883 on a trusted network), or a NATS cluster's servers as [\"nats://host:4222\", …] (tls:// for TLS): 1–8 URLs of one kind".into());
    } else if mqtt && urls.len() > 1 {
        bad(&span, "the bridge reads one MQTT broker (its shared subscription is per broker); for a cluster, read its NATS JetStream servers (nats://)".into());
    } else if schemes.iter().any(|s| s == "mqtts" || s == "tls") && f.broker.ca.is_none() {
        bad(
            &span,
            "a TLS broker needs `ca` (and `cert` + `key` for a client certificate)".into(),
        );
    }
    in_range(&f.broker.stream_replicas, 1, 5, "stream_replicas", &mut bad);
    if f.broker.cert.is_some() != f.broker.key.is_some() {
        bad(
            &f.broker.url.span(),
            "a client certificate needs both `cert` and `key`".into(),
        );
    }
    for (value, name) in [
        (&f.broker.group, "group"),
        (&f.broker.client_id, "client_id"),
    ] {
        let v = value.get_ref();
        if v.is_empty()
            || v.len() > 64
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            bad(
                &value.span(),
                format!("`{name}` must be 1–64 characters A–Z a–z 0–9 - _ ."),
            );
        }
    }
    let prefix = f.broker.topic_prefix.get_ref();
    if prefix.is_empty()
        || prefix.contains(['+', '#'])
        || prefix.starts_with('/')
        || prefix.ends_with('/')
    {
        bad(
            &f.broker.topic_prefix.span(),
            "the topic prefix must be plain topic levels like streetsight/v1".into(),
        );
    }
    if f.database
        .url
        .get_ref()
        .parse::<tokio_postgres::Config>()
        .is_err()
    {
        bad(&f.database.url.span(), "not a PostgreSQL connection string; write host=/run/postgresql dbname=streetsight user=bridge".into());
    }
    let http_url =
        |v: &Spanned<String>, name: &str, bad: &mut dyn FnMut(&std::ops::Range<usize>, String)| {
            match url::Url::parse(v.get_ref()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                _ => bad(
                    &v.span(),
                    format!("`{name}` must be an http:// or https:// URL"),
                ),
            }
        };
    http_url(&f.workorder.url, "workorder.url", &mut bad);
    http_url(&f.http.public_url, "http.public_url", &mut bad);
    in_range(&f.workorder.timeout_s, 1, 300, "timeout_s", &mut bad);
    in_range(&f.workorder.retry_max_s, 1, 3600, "retry_max_s", &mut bad);
    in_range(
        &f.workorder.evidence_wait_s,
        0,
        3600,
        "evidence_wait_s",
        &mut bad,
    );
    in_range(
        &f.workorder.verify_timeout_s,
        10,
        3600,
        "verify_timeout_s",
        &mut bad,
    );
    in_range(
        &f.evidence.url_ttl_s,
        60,
        90 * 24 * 3600,
        "url_ttl_s",
        &mut bad,
    );
    in_range(&f.evidence.keep_days, 1, 3650, "keep_days", &mut bad);
    if f.evidence.keep_days.get_ref().saturating_mul(86_400) < *f.evidence.url_ttl_s.get_ref() {
        bad(
            &f.evidence.keep_days.span(),
            "`keep_days` is shorter than `url_ttl_s`: a URL would outlive its picture; keep pictures at least as long".into(),
        );
    }
    let listen = f.http.listen.get_ref().parse::<std::net::SocketAddr>();
    if listen.is_err() {
        bad(
            &f.http.listen.span(),
            "`listen` must be address:port, like 0.0.0.0:8090".into(),
        );
    }
    let mapping = resolve(base, f.workorder.mapping.get_ref());
    if !mapping.is_file() {
        bad(
            &f.workorder.mapping.span(),
            format!(
                "no mapping file at {}; write one (docs/bridge.md has a full example)",
                mapping.display()
            ),
        );
    }
    let secret = |v: &Spanned<PathBuf>, bad: &mut dyn FnMut(&std::ops::Range<usize>, String)| {
        let p = resolve(base, v.get_ref());
        match std::fs::read(&p) {
            Ok(s) if s.trim_ascii().len() >= 16 => s.trim_ascii().to_vec(),
            Ok(_) => {
                bad(
                    &v.span(),
                    format!(
                        "{} holds fewer than 16 bytes; a secret needs at least 16 random bytes",
                        p.display()
                    ),
                );
                Vec::new()
            }
            Err(e) => {
                bad(
                    &v.span(),
                    format!("cannot read the secret {}: {e}", p.display()),
                );
                Vec::new()
            }
        }
    };
    let workorder_secret = secret(&f.workorder.secret_file, &mut bad);
    let url_secret = secret(&f.evidence.secret_file, &mut bad);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let tls = f.broker.ca.as_ref().map(|ca| crate::uplink::TlsFiles {
        ca: resolve(base, ca),
        client: f
            .broker
            .cert
            .as_ref()
            .zip(f.broker.key.as_ref())
            .map(|(c, k)| (resolve(base, c), resolve(base, k))),
    });
    Ok(BridgeSettings {
        source: if nats {
            Source::Nats {
                servers: f.broker.url.into_inner().0,
                replicas: *f.broker.stream_replicas.get_ref() as usize,
            }
        } else {
            Source::Mqtt(f.broker.url.into_inner().0.remove(0))
        },
        topic_prefix: f.broker.topic_prefix.into_inner(),
        group: f.broker.group.into_inner(),
        client_id: f.broker.client_id.into_inner(),
        tls,
        username: f.broker.username.map(Spanned::into_inner),
        broker_password_file: f.broker.password_file.map(|p| resolve(base, &p)),
        database: f.database.url.into_inner(),
        database_password_file: f.database.password_file.map(|p| resolve(base, &p)),
        workorder_url: f.workorder.url.into_inner(),
        mapping,
        workorder_secret,
        timeout: Duration::from_secs(*f.workorder.timeout_s.get_ref()),
        retry_max: Duration::from_secs(*f.workorder.retry_max_s.get_ref()),
        evidence_wait: Duration::from_secs(*f.workorder.evidence_wait_s.get_ref()),
        verify_timeout: Duration::from_secs(*f.workorder.verify_timeout_s.get_ref()),
        evidence_dir: resolve(base, &f.evidence.dir),
        url_secret,
        url_ttl: Duration::from_secs(*f.evidence.url_ttl_s.get_ref()),
        keep: Duration::from_secs(*f.evidence.keep_days.get_ref() * 86_400),
        listen: listen.expect("checked above"),
        public_url: f
            .http
            .public_url
            .into_inner()
            .trim_end_matches('/')
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) {
        std::fs::write(
            dir.join("mapping.toml"),
            "[body]\ntitle = \"{category_name}\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("wo.secret"), "0123456789abcdef0123").unwrap();
        std::fs::write(dir.join("short.secret"), "short").unwrap();
    }

    const GOOD: &str = r#"[broker]
url = "mqtts://broker.example:8883"
client_id = "bridge-1"
ca = "ca.pem"
[database]
url = "host=/run/postgresql dbname=streetsight user=bridge"
[workorder]
url = "https://wo.example/api/cases"
mapping = "mapping.toml"
secret_file = "wo.secret"
[evidence]
dir = "evidence"
secret_file = "wo.secret"
[http]
listen = "0.0.0.0:8090"
public_url = "https://bridge.example/"
"#;

    #[test]
    fn a_good_file_is_taken_with_its_paths_resolved() {
        let dir = tempfile::tempdir().unwrap();
        files(dir.path());
        let s = load_str(&dir.path().join("bridge.toml"), GOOD).unwrap();
        assert_eq!(s.mapping, dir.path().join("mapping.toml"));
        assert_eq!(s.evidence_dir, dir.path().join("evidence"));
        assert_eq!(s.public_url, "https://bridge.example");
        assert_eq!(
            (s.group.as_str(), s.evidence_wait.as_secs()),
            ("streetsight-bridge", 30)
        );
        assert_eq!(s.tls.unwrap().ca, dir.path().join("ca.pem"));
    }

    #[test]
    fn every_problem_is_named_at_its_line_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        files(dir.path());
        let bad = GOOD
            .replace("ca = \"ca.pem\"\n", "")
            .replace("client_id = \"bridge-1\"", "client_id = \"bridge 1\"")
            .replace(
                "secret_file = \"wo.secret\"\n[evidence]",
                "secret_file = \"short.secret\"\ntimeout_s = 0\n[evidence]",
            )
            .replace("0.0.0.0:8090", "everywhere");
        let e = load_str(&dir.path().join("bridge.toml"), &bad)
            .unwrap_err()
            .to_string();
        for expected in [
            "bridge.toml:2: a TLS broker needs `ca`",
            "bridge.toml:3: `client_id` must be 1–64 characters",
            "bridge.toml:9: ",
            "holds fewer than 16 bytes",
            "bridge.toml:10: `timeout_s` = 0 is out of range; use 1–300",
            "`listen` must be address:port",
        ] {
            assert!(e.contains(expected), "{expected:?} not in:\n{e}");
        }
    }

    #[test]
    fn pictures_are_kept_at_least_as_long_as_their_urls_serve_them() {
        let dir = tempfile::tempdir().unwrap();
        files(dir.path());
        let path = dir.path().join("bridge.toml");
        let short = GOOD.replace(
            "dir = \"evidence\"",
            "dir = \"evidence\"\nkeep_days = 3\nurl_ttl_s = 604800",
        );
        let e = load_str(&path, &short).unwrap_err().to_string();
        assert!(e.contains("`keep_days` is shorter than `url_ttl_s`"), "{e}");
        let long = GOOD.replace("dir = \"evidence\"", "dir = \"evidence\"\nkeep_days = 9999");
        let e = load_str(&path, &long).unwrap_err().to_string();
        assert!(
            e.contains("`keep_days` = 9999 is out of range; use 1–3650"),
            "{e}"
        );
        assert_eq!(load_str(&path, GOOD).unwrap().keep.as_secs(), 30 * 86_400);
    }

    #[test]
    fn a_nats_cluster_is_a_list_of_servers_and_mqtt_is_one_broker() {
        let dir = tempfile::tempdir().unwrap();
        files(dir.path());
        let path = dir.path().join("bridge.toml");
        let nats = GOOD.replace(
            "url = \"mqtts://broker.example:8883\"",
            "url = [\"nats://n1:4222\", \"nats://n2:4222\"]\nstream_replicas = 3",
        );
        let s = load_str(&path, &nats).unwrap();
        assert_eq!(
            s.source,
            Source::Nats {
                servers: vec!["nats://n1:4222".into(), "nats://n2:4222".into()],
                replicas: 3
            }
        );
        for (url, expected) in [
            (
                "[\"mqtt://a:1883\", \"mqtt://b:1883\"]",
                "reads one MQTT broker",
            ),
            (
                "[\"nats://a:4222\", \"mqtt://b:1883\"]",
                "1–8 URLs of one kind",
            ),
            ("\"http://a\"", "1–8 URLs of one kind"),
            ("[]", "1–8 URLs of one kind"),
        ] {
            let bad = GOOD.replace("\"mqtts://broker.example:8883\"", url);
            let e = load_str(&path, &bad).unwrap_err().to_string();
            assert!(
                e.contains("bridge.toml:2: ") && e.contains(expected),
                "{url}: {e}"
            );
        }
        let e = load_str(
            &path,
            &nats.replace("stream_replicas = 3", "stream_replicas = 9"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`stream_replicas` = 9 is out of range; use 1–5"),
            "{e}"
        );
    }
}
