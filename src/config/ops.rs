//! The pole's local endpoints: health and metrics, the watchdog's grace, the installer's console.

use serde::Deserialize;
use toml::Spanned;

/// Local operations endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsConfig {
    /// Address of the HTTP endpoint serving `/healthz` and `/metrics` (e.g. `127.0.0.1:9310`); off when unset.
    #[serde(default)]
    pub http: Option<Spanned<String>>,
    /// Under systemd's watchdog: stop feeding it when no camera has delivered a frame for this many seconds,
    /// or a camera's frames have gone unanalysed that long (systemd then restarts the daemon). Must exceed the
    /// longest time between sampled frames (the GOP length with keyframe sampling).
    #[serde(default = "default_watchdog_grace_s")]
    pub watchdog_grace_s: Spanned<u64>,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            http: None,
            watchdog_grace_s: default_watchdog_grace_s(),
        }
    }
}

/// The installer's console (docs/console.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Address the console listens on. Loopback by default: an installer reaches it through an SSH tunnel,
    /// or sets the gateway's LAN address on purpose.
    #[serde(default = "default_console_listen")]
    pub listen: Spanned<String>,
    /// The installer's password as an Argon2id PHC string (`streetsight console-password` prints one).
    pub password_hash: Spanned<String>,
    /// A login ends after this many minutes without a request.
    #[serde(default = "default_session_idle_min")]
    pub session_idle_min: Spanned<u64>,
    /// Backups of this file kept when the console saves it (`<file>.<UTC time>.bak`, beside it).
    #[serde(default = "default_keep_backups")]
    pub keep_backups: Spanned<u64>,
}

fn default_console_listen() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:9320".into())
}
/// Half an hour: a break on the pole does not log the installer out, a laptop left behind soon does.
fn default_session_idle_min() -> Spanned<u64> {
    Spanned::new(0..0, 30)
}
fn default_keep_backups() -> Spanned<u64> {
    Spanned::new(0..0, 10)
}

/// Five minutes: a camera rebooting does not restart the daemon, and restarts this far apart never exhaust
/// the unit's start limit (10 in 300 s).
fn default_watchdog_grace_s() -> Spanned<u64> {
    Spanned::new(0..0, 300)
}
