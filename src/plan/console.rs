//! The `[console]` keys: an address to listen on, a password hash that is one, finite times and counts.

use super::check::Check;
use crate::config::Config;

pub(super) fn verify_console(c: &mut Check, config: &Config) {
    let Some(console) = &config.console else {
        return;
    };
    let console = console.get_ref();
    if console
        .listen
        .get_ref()
        .parse::<std::net::SocketAddr>()
        .is_err()
    {
        c.push(
            &console.listen,
            format!(
                "console.listen `{}` is not an address; write it as 127.0.0.1:9320 (loopback, reached through an SSH tunnel) or the gateway's LAN address",
                console.listen.get_ref()
            ),
        );
    }
    if let Err(why) = password_hash(console.password_hash.get_ref()) {
        c.push(
            &console.password_hash,
            format!("console.password_hash {why}; run `streetsight console-password` and paste the line it prints"),
        );
    }
    c.whole(
        &console.session_idle_min,
        "console.session_idle_min",
        *console.session_idle_min.get_ref(),
        1..=1440,
    );
    c.whole(
        &console.keep_backups,
        "console.keep_backups",
        *console.keep_backups.get_ref(),
        1..=100,
    );
}

/// Whether `phc` is an Argon2id hash the console can verify a password against.
fn password_hash(phc: &str) -> Result<(), String> {
    let parsed = argon2::password_hash::phc::PasswordHash::new(phc)
        .map_err(|e| format!("is not a password hash ({e})"))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "uses `{}`; the console takes argon2id only",
            parsed.algorithm
        ));
    }
    argon2::Params::try_from(&parsed).map_err(|e| format!("has unusable parameters ({e})"))?;
    Ok(())
}
