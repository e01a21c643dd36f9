//! What an event says in words: its local time and a one-sentence description a dispatcher can file as is
//! (Chinese by default, English as the switch). Pure: the event, the time zone and the language in.

use super::ResolveReason;
use super::event::{IncidentEvent, Phase, Verification};
use crate::base::Language;
use chrono::{DateTime, SecondsFormat, Utc};
use std::time::SystemTime;

/// How a pole words its events: its time zone and language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wording {
    pub tz: chrono_tz::Tz,
    pub language: Language,
}

impl Default for Wording {
    fn default() -> Self {
        Wording {
            tz: chrono_tz::Asia::Shanghai,
            language: Language::ZhCn,
        }
    }
}

impl Wording {
    /// `t` in the pole's time zone, RFC 3339 with its offset (`2026-12-05T20:01:02+08:00`).
    pub fn local_time(&self, t: SystemTime) -> String {
        DateTime::<Utc>::from(t)
            .with_timezone(&self.tz)
            .to_rfc3339_opts(SecondsFormat::Secs, false)
    }

    /// Fill in `event.local_time` (for the event's own `time`) and `event.description`.
    pub fn describe(&self, event: &mut IncidentEvent, at: SystemTime) {
        event.local_time = Some(self.local_time(at));
        event.description = Some(self.sentence(event, at));
    }

    fn sentence(&self, e: &IncidentEvent, at: SystemTime) -> String {
        let zh = self.language == Language::ZhCn;
        let when = DateTime::<Utc>::from(at)
            .with_timezone(&self.tz)
            .format(if zh {
                "%Y年%m月%d日 %H:%M"
            } else {
                "%Y-%m-%d %H:%M"
            })
            .to_string();
        let what = match (zh, e.codes.name.as_deref()) {
            (true, Some(name)) if !name.is_empty() => name.to_string(),
            _ => e.category.replace('_', " "),
        };
        let camera = e.camera.name.as_deref().unwrap_or(&e.camera.id);
        let zone = e.zone.name.as_deref().unwrap_or(&e.zone.id);
        let place = match (&e.address, zh) {
            (Some(a), true) => format!("{a}（{camera}，{zone}）"),
            (Some(a), false) => format!("{a} ({camera}, {zone})"),
            (None, true) => format!("{camera}，{zone}"),
            (None, false) => format!("{camera}, {zone}"),
        };
        let lasted = duration(e.dwell_s, self.language);
        let detail = self.detail(e);
        match (e.phase, zh) {
            (Phase::Opened, true) => {
                let again = if e.reopened { "再次" } else { "" };
                format!("{when}，{place}{again}发现{what}{detail}。")
            }
            (Phase::Opened, false) => {
                let again = if e.reopened { " again" } else { "" };
                format!("{when}: {what} found{again} at {place}{detail}.")
            }
            (Phase::Updated, true) => {
                format!("{when}，{place}{what}仍在持续，已持续{lasted}{detail}。")
            }
            (Phase::Updated, false) => {
                format!("{when}: {what} at {place} goes on, for {lasted} so far{detail}.")
            }
            (Phase::Resolved, true) => format!(
                "{when}，{place}{what}已结束（{}），共持续{lasted}。",
                reason(e.reason, self.language)
            ),
            (Phase::Resolved, false) => format!(
                "{when}: {what} at {place} ended ({}) after {lasted}.",
                reason(e.reason, self.language)
            ),
            (Phase::Verified, true) => match e.verification {
                Some(Verification::StillPresent) => {
                    format!("{when}，核查：{place}{what}仍然存在{detail}。")
                }
                _ => format!("{when}，核查：{place}{what}已清除。"),
            },
            (Phase::Verified, false) => match e.verification {
                Some(Verification::StillPresent) => {
                    format!("{when}: re-check: {what} at {place} is still present{detail}.")
                }
                _ => format!("{when}: re-check: {what} at {place} is cleared."),
            },
        }
    }

    /// What the rule measured, as a clause (crowds, zone states, camera faults); empty otherwise.
    fn detail(&self, e: &IncidentEvent) -> String {
        let zh = self.language == Language::ZhCn;
        if let Some(c) = &e.crowd {
            return if zh {
                format!(
                    "，{} 人，密度 {:.1} 人/平方米（{}）",
                    c.count, c.density, c.level
                )
            } else {
                format!(
                    ", {} people, {:.1} per m² ({})",
                    c.count, c.density, c.level
                )
            };
        }
        if let Some(h) = e.health.as_ref().filter(|h| !h.conditions.is_empty()) {
            return if zh {
                format!("：{}", h.names.join("、"))
            } else {
                format!(": {}", h.conditions.join(", "))
            };
        }
        if let Some(s) = &e.zone_state {
            return if zh {
                format!("（状态：{}）", s.state)
            } else {
                format!(" (state: {})", s.state)
            };
        }
        String::new()
    }
}

fn reason(r: Option<ResolveReason>, language: Language) -> &'static str {
    let (zh, en) = match r.unwrap_or(ResolveReason::Cleared) {
        ResolveReason::Cleared => ("现场已恢复", "the scene is clear"),
        ResolveReason::Suppressed => ("调度员标记为误报", "marked a false alarm"),
        ResolveReason::ScheduleEnded => ("规则时段结束", "the rule's hours ended"),
        ResolveReason::VerifiedCleared => ("核查已清除", "a re-check found it cleared"),
        ResolveReason::ConfigChanged => ("配置已更改", "the configuration changed"),
        ResolveReason::NotObserved => ("未能持续观察", "it could not be watched"),
        ResolveReason::CameraHealth => ("摄像机画面异常", "the camera's view is faulty"),
    };
    language.pick(zh, en)
}

/// `dwell_s` in words: `5分12秒`, `1小时3分` / `5 min 12 s`, `1 h 3 min`.
fn duration(seconds: f64, language: Language) -> String {
    let s = if seconds.is_finite() && seconds > 0.0 {
        seconds.round() as u64
    } else {
        0
    };
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    match (language, h > 0, m > 0) {
        (Language::ZhCn, true, _) => format!("{h}小时{m}分"),
        (Language::ZhCn, false, true) => format!("{m}分{s}秒"),
        (Language::ZhCn, false, false) => format!("{s}秒"),
        (Language::En, true, _) => format!("{h} h {m} min"),
        (Language::En, false, true) => format!("{m} min {s} s"),
        (Language::En, false, false) => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(312.4, Language::ZhCn), "5分12秒");
        assert_eq!(duration(3780.0, Language::ZhCn), "1小时3分");
        assert_eq!(duration(9.0, Language::En), "9 s");
        assert_eq!(duration(f64::NAN, Language::En), "0 s");
        assert_eq!(duration(312.0, Language::En), "5 min 12 s");
    }

    fn event(phase: &str) -> IncidentEvent {
        serde_json::from_value(serde_json::json!({
            "schema": "streetsight.event/1", "event_id": "e", "incident_id": "i", "phase": phase,
            "time": "2026-11-23T08:51:35.148Z", "category": "crowd_density",
            "codes": { "name": "人群聚集", "local": "99-01" },
            "device": { "id": "pole-7" }, "camera": { "id": "east", "name": "东向摄像机" },
            "zone": { "id": "walk", "name": "东侧人行道" }, "address": "文三路7号杆",
            "first_seen": "2026-11-23T08:48:23.000Z", "last_seen": "2026-11-23T08:51:35.000Z",
            "dwell_s": 192.0, "confidence": 0.8,
            "crowd": { "count": 23, "density": 2.44, "level": "warning" },
            "objects": [], "evidence": [],
            "model": { "name": "m", "version": "1", "sha256": "0" },
            "agent": { "name": "streetsight", "version": "0" }
        }))
        .unwrap()
    }

    #[test]
    fn an_event_is_described_in_the_poles_language_with_what_was_measured() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_423_895);
        let mut e = event("opened");
        Wording::default().describe(&mut e, at);
        assert_eq!(e.local_time.as_deref(), Some("2026-11-23T16:51:35+08:00"));
        assert_eq!(
            e.description.as_deref(),
            Some(
                "2026年11月23日 16:51，文三路7号杆（东向摄像机，东侧人行道）发现人群聚集，23 人，密度 2.4 人/平方米（warning）。"
            )
        );
        let mut e = event("resolved");
        let english = Wording {
            language: Language::En,
            ..Wording::default()
        };
        english.describe(&mut e, at);
        assert_eq!(
            e.description.as_deref(),
            Some(
                "2026-11-23 16:51: crowd density at 文三路7号杆 (东向摄像机, 东侧人行道) ended (the scene is clear) after 3 min 12 s."
            )
        );
    }

    #[test]
    fn local_time_carries_the_zone_offset() {
        let w = Wording::default();
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_790_000_000);
        assert_eq!(w.local_time(t), "2026-09-21T22:13:20+08:00");
    }
}
