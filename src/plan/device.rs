//! Device-wide settings that schedules and evidence depend on: the time zone and the head share obscured.

use super::check::Check;
use crate::config::Config;

/// The device's time zone: checked, and what schedules and captions use.
pub(crate) fn timezone(c: &mut Check, config: &Config) -> chrono_tz::Tz {
    let tz = &config.device.timezone;
    tz.get_ref().parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
        c.push(
            tz,
            format!(
                "timezone `{}` is not an IANA time zone; write e.g. \"Asia/Shanghai\"",
                tz.get_ref()
            ),
        );
        chrono_tz::Asia::Shanghai
    })
}

/// The evidence settings.
pub(crate) fn verify_evidence(c: &mut Check, config: &Config) {
    let h = &config.evidence.head_fraction;
    if !(*h.get_ref() > 0.0 && *h.get_ref() <= 1.0) {
        c.push(
            h,
            format!("evidence.head_fraction = {} must be in (0, 1]", h.get_ref()),
        );
    }
}
