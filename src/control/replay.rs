//! Anti-replay for commands: a timestamp window and nonces never seen within it. Pure: the clock is an
//! argument.

use super::command::{Command, CommandError};
use std::collections::{HashMap, VecDeque};

/// Anti-replay: a command is accepted only if its timestamp is within `max_skew_ms` of now and its nonce
/// was not seen within that window (older nonces need not be kept: their timestamps are stale anyway).
#[derive(Debug)]
pub struct ReplayGuard {
    max_skew_ms: i64,
    seen: HashMap<String, i64>,
    /// Nonces by the time they were accepted, oldest first, for pruning.
    order: VecDeque<(i64, String)>,
}

impl ReplayGuard {
    pub fn new(max_skew: std::time::Duration) -> Self {
        ReplayGuard {
            max_skew_ms: max_skew.as_millis() as i64,
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Remember a nonce accepted earlier (e.g. read back from the audit log after a restart).
    pub fn remember(&mut self, nonce: &str, accepted_ms: i64) {
        if self.seen.insert(nonce.to_string(), accepted_ms).is_none() {
            self.order.push_back((accepted_ms, nonce.to_string()));
        }
    }

    /// Accept the command at `now_ms` or say why not; an accepted nonce is remembered.
    pub fn check(&mut self, cmd: &Command, now_ms: i64) -> Result<(), CommandError> {
        while let Some((t, _)) = self.order.front() {
            if now_ms - t <= 2 * self.max_skew_ms {
                break;
            }
            let (_, n) = self.order.pop_front().expect("front exists");
            self.seen.remove(&n);
        }
        let skew = now_ms - cmd.issued_ms;
        if skew.abs() > self.max_skew_ms {
            return Err(CommandError::new(
                "stale",
                format!(
                    "timestamp is {:.0} s {} the gateway's clock; commands must be within {} s (send a fresh timestamp, check NTP)",
                    skew.abs() as f64 / 1000.0,
                    if skew > 0 { "behind" } else { "ahead of" },
                    self.max_skew_ms / 1000
                ),
            ));
        }
        if self.seen.contains_key(&cmd.nonce) {
            return Err(CommandError::new(
                "replayed",
                "this nonce was already used; every command needs a new nonce",
            ));
        }
        self.remember(&cmd.nonce, now_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::command::Request;
    use std::time::Duration;

    const NOW: i64 = 1_795_000_000_000;

    fn command() -> Command {
        Command {
            request_id: "r-1".into(),
            issued_ms: NOW,
            nonce: "n-0000001".into(),
            request: Request::Reload,
        }
    }

    #[test]
    fn a_nonce_is_accepted_once_and_a_stale_timestamp_never() {
        let mut g = ReplayGuard::new(Duration::from_secs(300));
        let c = command();
        assert!(g.check(&c, NOW + 1000).is_ok());
        assert_eq!(g.check(&c, NOW + 2000).unwrap_err().code, "replayed");
        let mut fresh = c.clone();
        fresh.nonce = "n-0000002".into();
        assert_eq!(g.check(&fresh, NOW + 301_000).unwrap_err().code, "stale");
        assert_eq!(g.check(&fresh, NOW - 301_000).unwrap_err().code, "stale");
        assert!(g.check(&fresh, NOW + 299_000).is_ok());
    }

    #[test]
    fn nonces_remembered_from_before_a_restart_still_count() {
        let mut g = ReplayGuard::new(Duration::from_secs(300));
        g.remember("n-0000001", NOW);
        let c = command();
        assert_eq!(g.check(&c, NOW + 10).unwrap_err().code, "replayed");
    }

    #[test]
    fn old_nonces_are_forgotten_once_their_window_has_passed() {
        let mut g = ReplayGuard::new(Duration::from_secs(1));
        for i in 0..1000 {
            g.remember(&format!("nonce-{i:05}"), NOW + i * 1000);
        }
        let mut c = command();
        c.issued_ms = NOW + 1_000_000;
        g.check(&c, NOW + 1_000_000).unwrap();
        assert!(g.seen.len() <= 4, "{} nonces kept", g.seen.len());
    }
}
