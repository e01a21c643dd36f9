//! When a rule is active: a set of weekdays and daily time windows, read on the local wall clock of the
//! time zone the instant carries (the daemon passes `now.with_timezone(&device_tz)`), so "07:00-22:00"
//! means seven in the morning where the camera stands, in winter and in summer.
//!
//! Meanings, chosen to match how street-management rules are written on paper:
//! - A window `start-end` includes `start` and excludes `end`; `00:00-24:00` is the whole day.
//! - A window whose end is before its start runs overnight and belongs to the day it starts on:
//!   `fri` with `22:00-06:00` covers Friday 22:00 to Saturday 06:00, and not Friday 01:00.
//! - A day range runs forward through the week and may wrap: `fri-mon` is Friday, Saturday, Sunday,
//!   Monday — read the same way as an overnight window.
//! - On a daylight-saving change, the skipped wall-clock hour never occurs and the repeated one is active
//!   twice, as a person reading a wall clock would expect.

use chrono::{DateTime, Datelike, TimeZone, Timelike};
use thiserror::Error;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const ALL_DAYS: u8 = 0b111_1111;
const MINUTES_PER_DAY: u16 = 24 * 60;

/// A configured schedule that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScheduleError {
    #[error(
        "day `{found}` is not a day; expected one of mon, tue, wed, thu, fri, sat, sun, or a range such as `mon-fri`"
    )]
    UnknownDay { found: String },
    #[error(
        "hours `{found}` is not a time window; expected `HH:MM-HH:MM` on the 24-hour clock, e.g. `07:00-22:00`, or `22:00-06:00` for overnight"
    )]
    BadHours { found: String },
    #[error(
        "hours `{found}`: `{time}` is not a time of day; expected HH:MM with hours 00..23 and minutes 00..59 (`24:00` only as an end)"
    )]
    BadTime { found: String, time: String },
    #[error(
        "hours `{found}` starts and ends at the same time; for the whole day use `00:00-24:00` or leave hours empty"
    )]
    EmptyWindow { found: String },
}

/// Minutes since local midnight. `start < end`: within one day; `start > end`: overnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    start: u16,
    end: u16,
}

/// Days of the week and time windows in which a rule is active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Bit i set: `DAY_NAMES[i]` is listed (Monday = bit 0).
    days: u8,
    /// Never empty; active if any window is.
    windows: Vec<Window>,
}

impl Default for Schedule {
    fn default() -> Self {
        Self::always()
    }
}

impl Schedule {
    /// Every day, all day.
    pub fn always() -> Self {
        Self {
            days: ALL_DAYS,
            windows: vec![Window {
                start: 0,
                end: MINUTES_PER_DAY,
            }],
        }
    }

    /// `days`: names (`mon` … `sun`, any case) or forward ranges (`mon-fri`, wrapping `fri-mon`); empty means
    /// every day. `hours`: `HH:MM-HH:MM` windows, overnight when the end is before the start; empty means
    /// all day. Several entries of either are united.
    pub fn parse(days: &[String], hours: &[String]) -> Result<Self, ScheduleError> {
        let mut schedule = Self::always();
        if !days.is_empty() {
            schedule.days = days.iter().try_fold(0, |acc, d| Ok(acc | parse_days(d)?))?;
        }
        if !hours.is_empty() {
            schedule.windows = hours
                .iter()
                .map(|h| parse_window(h))
                .collect::<Result<_, _>>()?;
        }
        Ok(schedule)
    }

    /// Whether the rule is active at `t`, judged by the wall clock of `t`'s own time zone.
    pub fn is_active<Tz: TimeZone>(&self, t: &DateTime<Tz>) -> bool {
        let local = t.naive_local();
        let today = local.weekday().num_days_from_monday();
        let yesterday = (today + 6) % 7;
        let listed = |day: u32| self.days & (1 << day) != 0;
        // Seconds are ignored: windows start and end on whole minutes, so minute resolution is exact.
        let minute = (local.hour() * 60 + local.minute()) as u16;
        self.windows.iter().any(|w| {
            if w.start < w.end {
                listed(today) && (w.start..w.end).contains(&minute)
            } else {
                (listed(today) && minute >= w.start) || (listed(yesterday) && minute < w.end)
            }
        })
    }
}

/// A day name or a forward range of them, as a bit set.
fn parse_days(text: &str) -> Result<u8, ScheduleError> {
    let unknown = || ScheduleError::UnknownDay {
        found: text.to_owned(),
    };
    let day = |name: &str| {
        let name = name.trim().to_ascii_lowercase();
        DAY_NAMES
            .iter()
            .position(|d| *d == name)
            .ok_or_else(unknown)
    };
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (day(a)?, day(b)?),
        None => {
            let d = day(text)?;
            (d, d)
        }
    };
    let len = (last + 7 - first) % 7 + 1;
    Ok((0..len).fold(0, |acc, i| acc | 1 << ((first + i) % 7)))
}

fn parse_window(text: &str) -> Result<Window, ScheduleError> {
    let (start, end) = text
        .split_once('-')
        .ok_or_else(|| ScheduleError::BadHours {
            found: text.to_owned(),
        })?;
    let start = parse_time(text, start, false)?;
    let end = parse_time(text, end, true)?;
    if start == end {
        return Err(ScheduleError::EmptyWindow {
            found: text.to_owned(),
        });
    }
    Ok(Window { start, end })
}

/// `H:MM` or `HH:MM` as minutes since midnight; `24:00` only when `is_end`.
fn parse_time(window: &str, text: &str, is_end: bool) -> Result<u16, ScheduleError> {
    let time = text.trim();
    let (h, m) = time
        .split_once(':')
        .ok_or_else(|| ScheduleError::BadHours {
            found: window.to_owned(),
        })?;
    let digits = |s: &str, len: std::ops::RangeInclusive<usize>| {
        (len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u16>().ok())?
    };
    let (Some(h), Some(m)) = (digits(h, 1..=2), digits(m, 2..=2)) else {
        return Err(ScheduleError::BadHours {
            found: window.to_owned(),
        });
    };
    let minutes = h * 60 + m;
    let valid = (h < 24 && m < 60) || (is_end && minutes == MINUTES_PER_DAY);
    if !valid {
        return Err(ScheduleError::BadTime {
            found: window.to_owned(),
            time: time.to_owned(),
        });
    }
    Ok(minutes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, Utc};
    use chrono_tz::{Asia::Shanghai, Europe::Berlin, Tz};
    use proptest::prelude::*;

    fn schedule(days: &[&str], hours: &[&str]) -> Schedule {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Schedule::parse(&owned(days), &owned(hours)).unwrap()
    }

    fn error(days: &[&str], hours: &[&str]) -> ScheduleError {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Schedule::parse(&owned(days), &owned(hours)).unwrap_err()
    }

    /// Wall-clock time in `tz`. 2025-06-06 is a Friday.
    fn at(tz: Tz, date: (i32, u32, u32), hms: (u32, u32, u32)) -> DateTime<Tz> {
        let naive = NaiveDate::from_ymd_opt(date.0, date.1, date.2)
            .unwrap()
            .and_hms_opt(hms.0, hms.1, hms.2)
            .unwrap();
        tz.from_local_datetime(&naive).single().unwrap()
    }

    fn utc(date: (i32, u32, u32), hms: (u32, u32, u32)) -> DateTime<Utc> {
        let naive = NaiveDate::from_ymd_opt(date.0, date.1, date.2)
            .unwrap()
            .and_hms_opt(hms.0, hms.1, hms.2)
            .unwrap();
        Utc.from_utc_datetime(&naive)
    }

    #[test]
    fn vending_rule_is_off_at_night() {
        let s = schedule(&[], &["07:00-22:00"]);
        let on = |h, m, sec| s.is_active(&at(Shanghai, (2025, 6, 4), (h, m, sec)));
        assert!(!on(6, 59, 59));
        assert!(on(7, 0, 0));
        assert!(on(21, 59, 59));
        assert!(!on(22, 0, 0), "the end is exclusive");
        assert!(!on(23, 30, 0));
        assert!(!on(3, 0, 0));
    }

    #[test]
    fn overnight_window_belongs_to_the_day_it_starts() {
        let s = schedule(&["fri"], &["22:00-06:00"]);
        let on = |d, h| s.is_active(&at(Shanghai, (2025, 6, d), (h, 0, 0)));
        assert!(on(6, 22), "Friday 22:00");
        assert!(on(6, 23), "Friday 23:00");
        assert!(on(7, 1), "Saturday 01:00 is still Friday night");
        assert!(!on(7, 6), "Saturday 06:00: the end is exclusive");
        assert!(!on(6, 1), "Friday 01:00 belongs to Thursday night");
        assert!(!on(7, 23), "Saturday night is not listed");
        assert!(!on(5, 23), "Thursday night is not listed");
    }

    #[test]
    fn empty_days_and_hours_mean_always() {
        let s = schedule(&[], &[]);
        assert_eq!(s, Schedule::always());
        for h in [0, 5, 12, 23] {
            assert!(s.is_active(&at(Berlin, (2025, 6, 8), (h, 59, 59))));
        }
    }

    #[test]
    fn whole_day_window_runs_midnight_to_midnight() {
        let s = schedule(&["sun"], &["00:00-24:00"]);
        assert!(s.is_active(&at(Shanghai, (2025, 6, 8), (0, 0, 0))));
        assert!(s.is_active(&at(Shanghai, (2025, 6, 8), (23, 59, 59))));
        assert!(
            !s.is_active(&at(Shanghai, (2025, 6, 9), (0, 0, 0))),
            "Monday"
        );
    }

    #[test]
    fn several_windows_and_day_entries_are_united() {
        let s = schedule(&["mon-wed", "sat"], &["07:00-09:00", "17:00-19:00"]);
        let on = |d, h| s.is_active(&at(Shanghai, (2025, 6, d), (h, 30, 0)));
        assert!(
            on(2, 8) && on(4, 18) && on(7, 7),
            "Mon morning, Wed evening, Sat morning"
        );
        assert!(!on(2, 12), "Monday noon is between the windows");
        assert!(
            !on(5, 8) && !on(8, 18),
            "Thursday and Sunday are not listed"
        );
    }

    #[test]
    fn day_names_ignore_case_and_spaces() {
        assert_eq!(
            schedule(&[" Mon - FRI "], &[]),
            schedule(&["mon", "tue", "wed", "thu", "fri"], &[])
        );
    }

    #[test]
    fn day_range_may_wrap_over_the_weekend() {
        assert_eq!(
            schedule(&["fri-mon"], &[]),
            schedule(&["fri", "sat", "sun", "mon"], &[])
        );
        let s = schedule(&["fri-mon"], &[]);
        assert!(
            s.is_active(&at(Shanghai, (2025, 6, 8), (12, 0, 0))),
            "Sunday"
        );
        assert!(
            !s.is_active(&at(Shanghai, (2025, 6, 10), (12, 0, 0))),
            "Tuesday"
        );
        assert_eq!(schedule(&["sun-sat"], &[]), Schedule::always());
    }

    #[test]
    fn shanghai_wall_clock_decides_not_utc() {
        // Friday 23:30 UTC is Saturday 07:30 in Shanghai (UTC+8).
        let s = schedule(&["sat"], &["07:00-22:00"]);
        let instant = utc((2025, 6, 6), (23, 30, 0));
        assert!(s.is_active(&instant.with_timezone(&Shanghai)));
        assert!(!s.is_active(&instant), "read as UTC it is Friday night");
    }

    #[test]
    fn berlin_summer_and_winter_both_open_at_seven_local() {
        let s = schedule(&[], &["07:00-22:00"]);
        let on = |date, hms| s.is_active(&utc(date, hms).with_timezone(&Berlin));
        // Winter: UTC+1, summer: UTC+2.
        assert!(!on((2025, 1, 15), (5, 30, 0)) && on((2025, 1, 15), (6, 30, 0)));
        assert!(!on((2025, 7, 15), (4, 30, 0)) && on((2025, 7, 15), (5, 30, 0)));
        assert!(
            on((2025, 7, 15), (19, 59, 0)) && !on((2025, 7, 15), (20, 0, 0)),
            "closes 22:00 CEST"
        );
    }

    #[test]
    fn daylight_saving_skips_or_repeats_the_wall_clock_hour() {
        let s = schedule(&[], &["02:00-03:00"]);
        let on = |date, hms| s.is_active(&utc(date, hms).with_timezone(&Berlin));
        // 30 March 2025: 02:00 CET jumps to 03:00 CEST, so the window never opens.
        assert!(!on((2025, 3, 30), (0, 59, 59)) && !on((2025, 3, 30), (1, 0, 0)));
        // 26 October 2025: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice and both count.
        assert!(on((2025, 10, 26), (0, 30, 0)) && on((2025, 10, 26), (1, 30, 0)));
        assert!(!on((2025, 10, 26), (2, 0, 0)));
    }

    #[test]
    fn hours_without_minutes_are_rejected_with_the_expected_form() {
        let err = error(&[], &["7-22"]);
        assert_eq!(
            err,
            ScheduleError::BadHours {
                found: "7-22".into()
            }
        );
        assert!(
            err.to_string().contains("`7-22`") && err.to_string().contains("HH:MM-HH:MM"),
            "{err}"
        );
        for bad in [
            "07:00",
            "07:00-",
            "7.00-22.00",
            "07:0-22:00",
            "07:00-22:00:00",
            "-07:00-22:00",
            "0700-2200",
        ] {
            assert!(
                matches!(error(&[], &[bad]), ScheduleError::BadHours { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn hours_beyond_the_clock_are_rejected_naming_the_time() {
        let err = error(&[], &["25:00-26:00"]);
        assert_eq!(
            err,
            ScheduleError::BadTime {
                found: "25:00-26:00".into(),
                time: "25:00".into()
            }
        );
        assert!(err.to_string().contains("00..23"), "{err}");
        assert!(
            matches!(error(&[], &["24:00-06:00"]), ScheduleError::BadTime { time, .. } if time == "24:00")
        );
        assert!(matches!(
            error(&[], &["07:60-08:00"]),
            ScheduleError::BadTime { .. }
        ));
        assert!(matches!(
            error(&[], &["07:00-24:01"]),
            ScheduleError::BadTime { .. }
        ));
    }

    #[test]
    fn an_empty_window_is_rejected_rather_than_guessed() {
        let err = error(&[], &["07:00-07:00"]);
        assert_eq!(
            err,
            ScheduleError::EmptyWindow {
                found: "07:00-07:00".into()
            }
        );
        assert!(err.to_string().contains("00:00-24:00"));
    }

    #[test]
    fn unknown_days_are_rejected_with_the_expected_names() {
        let err = error(&["funday"], &[]);
        assert_eq!(
            err.to_string(),
            "day `funday` is not a day; expected one of mon, tue, wed, thu, fri, sat, sun, or a range such as `mon-fri`"
        );
        for bad in ["monday", "mon-", "mon-tue-wed", "", "1"] {
            assert!(
                matches!(error(&[bad], &[]), ScheduleError::UnknownDay { .. }),
                "{bad:?}"
            );
        }
    }

    proptest! {
        /// An overnight window is the evening part on the listed day plus the morning part on the next.
        #[test]
        fn overnight_window_is_evening_plus_next_morning(
            day in 0usize..7,
            start in 1u16..MINUTES_PER_DAY,
            end_frac in 0.0f64..1.0,
            offset_min in 0i64..(3 * 7 * 24 * 60),
        ) {
            let end = (f64::from(start) * end_frac) as u16; // 0 ≤ end < start
            let hhmm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
            let next = DAY_NAMES[(day + 1) % 7];
            let overnight = schedule(&[DAY_NAMES[day]], &[&format!("{}-{}", hhmm(start), hhmm(end))]);
            let evening = schedule(&[DAY_NAMES[day]], &[&format!("{}-24:00", hhmm(start))]);
            let morning = (end > 0).then(|| schedule(&[next], &[&format!("00:00-{}", hhmm(end))]));
            let t = at(Shanghai, (2025, 6, 2), (0, 0, 0)) + chrono::Duration::minutes(offset_min);
            let split = evening.is_active(&t) || morning.is_some_and(|m| m.is_active(&t));
            prop_assert_eq!(overnight.is_active(&t), split);
        }
    }
}
