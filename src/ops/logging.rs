//! Logging: `tracing` events to stderr in one of three shapes, chosen once at start.
//!
//! - **journal** when systemd connected stderr to the journal (`JOURNAL_STREAM` names stderr's device and
//!   inode): no timestamps or colours (journald adds its own) and a `<N>` syslog priority prefix per line,
//!   so `journalctl -p warning` filters by level.
//! - **json**: one JSON object per line, for log shippers (`STREETSIGHT_LOG_FORMAT=json`).
//! - **text**: human-readable lines with timestamps, coloured on a terminal.
//!
//! `STREETSIGHT_LOG_FORMAT=text|json|journal` overrides the detection; `RUST_LOG` sets the filter.

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
    Journal,
}

impl LogFormat {
    /// From `STREETSIGHT_LOG_FORMAT`, else journal when stderr is the journal, else text.
    pub fn from_env() -> LogFormat {
        let explicit = std::env::var("STREETSIGHT_LOG_FORMAT").ok();
        let journal = std::env::var("JOURNAL_STREAM").ok();
        LogFormat::choose(explicit.as_deref(), journal.as_deref(), stderr_identity())
    }

    /// The pure choice: an explicit format wins; `JOURNAL_STREAM` counts only if it names our stderr (a
    /// child of a service inherits the variable but may log elsewhere).
    pub fn choose(
        explicit: Option<&str>,
        journal_stream: Option<&str>,
        stderr: Option<(u64, u64)>,
    ) -> LogFormat {
        match explicit.map(str::trim) {
            Some("json") => return LogFormat::Json,
            Some("journal") => return LogFormat::Journal,
            Some("text") => return LogFormat::Text,
            _ => {}
        }
        let named = journal_stream.and_then(|v| {
            let (dev, ino) = v.trim().split_once(':')?;
            Some((dev.parse().ok()?, ino.parse().ok()?))
        });
        match (named, stderr) {
            (Some(n), Some(s)) if n == s => LogFormat::Journal,
            _ => LogFormat::Text,
        }
    }
}

/// (device, inode) of stderr, as `JOURNAL_STREAM` writes them.
fn stderr_identity() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    let st = rustix::fs::fstat(std::io::stderr().as_fd()).ok()?;
    Some((st.st_dev as u64, st.st_ino as u64))
}

/// Install logging with `default_filter` unless `RUST_LOG` says otherwise. A second call does nothing.
pub fn init_logging(default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match LogFormat::from_env() {
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
        LogFormat::Journal => builder
            .with_ansi(false)
            .event_format(JournalPrefix(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_target(false)
                    .with_level(false)
                    .with_ansi(false),
            ))
            .try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

/// The sd-daemon(3) priority prefix for a level.
pub fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Prefixes each event with `<N>` so journald records its priority.
struct JournalPrefix<F>(F);

impl<S, N, F> FormatEvent<S, N> for JournalPrefix<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", syslog_priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_is_chosen_only_when_journal_stream_names_our_stderr() {
        assert_eq!(
            LogFormat::choose(None, Some("8:1234"), Some((8, 1234))),
            LogFormat::Journal
        );
        assert_eq!(
            LogFormat::choose(None, Some("8:1234"), Some((8, 999))),
            LogFormat::Text
        );
        assert_eq!(
            LogFormat::choose(None, None, Some((8, 1234))),
            LogFormat::Text
        );
        assert_eq!(
            LogFormat::choose(None, Some("garbage"), Some((8, 1234))),
            LogFormat::Text
        );
    }

    #[test]
    fn an_explicit_format_wins_over_detection() {
        assert_eq!(
            LogFormat::choose(Some("json"), Some("8:1"), Some((8, 1))),
            LogFormat::Json
        );
        assert_eq!(
            LogFormat::choose(Some("text"), Some("8:1"), Some((8, 1))),
            LogFormat::Text
        );
        assert_eq!(
            LogFormat::choose(Some("journal"), None, None),
            LogFormat::Journal
        );
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(syslog_priority(&Level::ERROR), 3);
        assert_eq!(syslog_priority(&Level::WARN), 4);
        assert_eq!(syslog_priority(&Level::INFO), 6);
        assert_eq!(syslog_priority(&Level::DEBUG), 7);
    }
}
