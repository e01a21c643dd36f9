//! One case per violation: a rule's per-sample verdict becomes `opened → updated → resolved`.
//!
//! - *opened* the first sample the rule holds (rules already applied their dwell/sustain);
//! - *updated* only when what holds changes meaningfully (the verdict's key), at most once per
//!   `update_interval` — except a rise in severity (a crowd level up), which is reported at once;
//! - *resolved* once the condition has been absent for `clear`;
//! - after resolving, a return within `cooldown` re-opens the *same* incident (`reopened`), so a stall that
//!   packs up for a few minutes and comes back is one case for the dispatcher.
//!
//! Pure: time is an input.

use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LifecycleParams {
    pub clear: Duration,
    pub cooldown: Duration,
    pub update_interval: Duration,
}

/// Why an incident resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveReason {
    /// The condition was absent for the clear time.
    Cleared,
    /// A dispatcher marked it a false alarm; the category is muted in the zone for a while.
    Suppressed,
    /// The rule's active hours ended (e.g. vending rules at 22:00).
    ScheduleEnded,
    /// A dispatcher's verify found it gone (the 核查 step).
    VerifiedCleared,
    /// The camera, its zone or the rule's category was removed from the configuration (reload or restart).
    ConfigChanged,
    /// Not watched long enough to tell whether it went on: the agent was down for longer than the
    /// incident's cooldown, or its camera could not start again.
    NotObserved,
    /// The camera was moved or covered: its zones no longer show what they were drawn on.
    CameraHealth,
}

/// What to publish after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened {
        reopened: bool,
    },
    Updated,
    Resolved(ResolveReason),
    /// A dispatcher's verify: the answer, for an incident that stays open when still present.
    Verified {
        still_present: bool,
    },
}

/// The incident a lifecycle has open (or is cooling down from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRef {
    pub id: String,
    pub first_seen: SystemTime,
}

#[derive(Debug, Clone)]
enum State {
    Idle,
    Open {
        case: CaseRef,
        absent_since: Option<Instant>,
        last_event: Instant,
        key: u64,
        severity: u32,
    },
    Cooling {
        case: CaseRef,
        resolved_at: Instant,
    },
}

/// The lifecycle of one rule's incidents.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    pub params: LifecycleParams,
    state: State,
}

/// One sample's input.
#[derive(Debug, Clone, Copy)]
pub struct StepInput {
    pub holds: bool,
    /// When the condition began, if the rule knows (a new case's first sighting).
    pub since: Option<Instant>,
    pub key: u64,
    pub severity: u32,
    pub now: Instant,
    pub wall: SystemTime,
}

impl Lifecycle {
    pub fn new(params: LifecycleParams) -> Self {
        Self {
            params,
            state: State::Idle,
        }
    }

    /// The incident open now, if any.
    pub fn open_case(&self) -> Option<&CaseRef> {
        match &self.state {
            State::Open { case, .. } => Some(case),
            _ => None,
        }
    }

    /// Feed one sample; returns what to publish and the incident it is about.
    pub fn step(&mut self, i: StepInput) -> Option<(Transition, CaseRef)> {
        let t = self.transition(i)?;
        Some((t, self.case()?.clone()))
    }

    fn transition(&mut self, i: StepInput) -> Option<Transition> {
        let p = self.params;
        match &mut self.state {
            State::Idle | State::Cooling { .. } if i.holds => {
                let (case, reopened) = match std::mem::replace(&mut self.state, State::Idle) {
                    State::Cooling { case, resolved_at }
                        if i.now.saturating_duration_since(resolved_at) < p.cooldown =>
                    {
                        (case, true)
                    }
                    _ => (
                        CaseRef {
                            id: uuid::Uuid::now_v7().to_string(),
                            first_seen: i
                                .since
                                .and_then(|s| {
                                    i.wall.checked_sub(i.now.saturating_duration_since(s))
                                })
                                .unwrap_or(i.wall),
                        },
                        false,
                    ),
                };
                self.state = State::Open {
                    case,
                    absent_since: None,
                    last_event: i.now,
                    key: i.key,
                    severity: i.severity,
                };
                Some(Transition::Opened { reopened })
            }
            State::Idle | State::Cooling { .. } => None,
            State::Open {
                absent_since,
                last_event,
                key,
                severity,
                ..
            } => {
                if !i.holds {
                    let since = *absent_since.get_or_insert(i.now);
                    if i.now.saturating_duration_since(since) >= p.clear {
                        return self.resolve(ResolveReason::Cleared, i.now).map(|(t, _)| t);
                    }
                    return None;
                }
                *absent_since = None;
                let rose = i.severity > *severity;
                let due = i.now.saturating_duration_since(*last_event) >= p.update_interval;
                if i.key != *key && (rose || due) {
                    *key = i.key;
                    *severity = i.severity;
                    *last_event = i.now;
                    return Some(Transition::Updated);
                }
                None
            }
        }
    }

    /// Resolve the open incident now (a cleared verify, a suppression, the schedule's end). Only a
    /// cleared incident cools down: after a suppression or outside the schedule, a violation still there
    /// later is a new case.
    pub fn resolve(
        &mut self,
        reason: ResolveReason,
        now: Instant,
    ) -> Option<(Transition, CaseRef)> {
        let State::Open { case, .. } = std::mem::replace(&mut self.state, State::Idle) else {
            return None;
        };
        if matches!(
            reason,
            ResolveReason::Cleared | ResolveReason::VerifiedCleared
        ) {
            self.state = State::Cooling {
                case: case.clone(),
                resolved_at: now,
            };
        }
        Some((Transition::Resolved(reason), case))
    }

    /// Take over an incident that was open before a restart or reload: it goes on as if it had been seen
    /// at `last_event` (the key of what held is unknown, so the next change is reported as an update).
    pub fn resume_open(&mut self, case: CaseRef, severity: u32, last_event: Instant) {
        self.state = State::Open {
            case,
            absent_since: None,
            last_event,
            key: 0,
            severity,
        };
    }

    /// Take over an incident that had resolved (cleared) before a restart or reload and is cooling down:
    /// a return within the cooldown of `resolved_at` re-opens it.
    pub fn resume_cooling(&mut self, case: CaseRef, resolved_at: Instant) {
        self.state = State::Cooling { case, resolved_at };
    }

    /// Is no incident open or cooling down?
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// The incident open now or cooling down.
    fn case(&self) -> Option<&CaseRef> {
        match &self.state {
            State::Open { case, .. } | State::Cooling { case, .. } => Some(case),
            State::Idle => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lc() -> Lifecycle {
        Lifecycle::new(LifecycleParams {
            clear: Duration::from_secs(60),
            cooldown: Duration::from_secs(300),
            update_interval: Duration::from_secs(30),
        })
    }

    struct Clock {
        t0: Instant,
        w0: SystemTime,
    }

    impl Clock {
        fn at(&self, s: u64, holds: bool, key: u64, severity: u32) -> StepInput {
            StepInput {
                since: None,
                holds,
                key,
                severity,
                now: self.t0 + Duration::from_secs(s),
                wall: self.w0 + Duration::from_secs(s),
            }
        }
    }

    fn clock() -> Clock {
        Clock {
            t0: Instant::now(),
            w0: SystemTime::now(),
        }
    }

    #[test]
    fn a_new_case_is_first_seen_when_its_condition_began_not_when_the_rule_was_sure() {
        let c = clock();
        let mut l = lc();
        // The crowd has held since second 100; its 10 s sustain confirmed it at 110.
        let mut i = c.at(110, true, 1, 1);
        i.since = Some(c.t0 + Duration::from_secs(100));
        let (t, case) = l.step(i).expect("opens");
        assert_eq!(t, Transition::Opened { reopened: false });
        assert_eq!(case.first_seen, c.w0 + Duration::from_secs(100));
        // Without a known start it is the moment it opened.
        let mut l = lc();
        let (_, case) = l.step(c.at(110, true, 1, 1)).unwrap();
        assert_eq!(case.first_seen, c.w0 + Duration::from_secs(110));
    }

    /// Feed `holds` for seconds `from..to`; collect (second, transition).
    fn run(
        l: &mut Lifecycle,
        c: &Clock,
        from: u64,
        to: u64,
        holds: bool,
        key: u64,
    ) -> Vec<(u64, Transition)> {
        (from..to)
            .filter_map(|s| l.step(c.at(s, holds, key, 0)).map(|(t, _)| (s, t)))
            .collect()
    }

    #[test]
    fn a_violation_that_lasts_is_one_incident() {
        let (mut l, c) = (lc(), clock());
        let events = run(&mut l, &c, 0, 3600, true, 1);
        assert_eq!(events, vec![(0, Transition::Opened { reopened: false })]);
    }

    #[test]
    fn stall_gone_for_30s_and_back_is_same_incident() {
        let (mut l, c) = (lc(), clock());
        run(&mut l, &c, 0, 100, true, 1);
        let id = l.open_case().unwrap().id.clone();
        assert!(
            run(&mut l, &c, 100, 130, false, 0).is_empty(),
            "30 s < clear"
        );
        assert!(run(&mut l, &c, 130, 200, true, 1).is_empty());
        assert_eq!(l.open_case().unwrap().id, id);
    }

    #[test]
    fn resolves_after_the_clear_time_and_a_return_within_cooldown_reopens_the_same_case() {
        let (mut l, c) = (lc(), clock());
        run(&mut l, &c, 0, 100, true, 1);
        let id = l.open_case().unwrap().id.clone();
        assert_eq!(
            run(&mut l, &c, 100, 200, false, 0),
            vec![(160, Transition::Resolved(ResolveReason::Cleared))]
        );
        assert_eq!(
            run(&mut l, &c, 200, 201, true, 1),
            vec![(200, Transition::Opened { reopened: true })]
        );
        assert_eq!(l.open_case().unwrap().id, id);
    }

    #[test]
    fn a_return_after_the_cooldown_is_a_new_case() {
        let (mut l, c) = (lc(), clock());
        run(&mut l, &c, 0, 10, true, 1);
        let id = l.open_case().unwrap().id.clone();
        run(&mut l, &c, 10, 500, false, 0);
        assert_eq!(
            run(&mut l, &c, 500, 501, true, 1),
            vec![(500, Transition::Opened { reopened: false })]
        );
        assert_ne!(l.open_case().unwrap().id, id);
    }

    #[test]
    fn updates_are_rate_limited_but_a_rise_in_severity_is_reported_at_once() {
        let (mut l, c) = (lc(), clock());
        let mut step = |s, key, severity| l.step(c.at(s, true, key, severity)).map(|(t, _)| t);
        step(0, 1, 1);
        assert_eq!(step(5, 2, 1), None, "within the interval");
        assert_eq!(
            step(30, 2, 1),
            Some(Transition::Updated),
            "the pending change goes out when the interval has passed"
        );
        assert_eq!(step(31, 3, 2), Some(Transition::Updated));
        assert_eq!(step(40, 3, 2), None, "no change, no update");
    }

    #[test]
    fn a_suppressed_incident_resolves_and_does_not_cool_down() {
        let (mut l, c) = (lc(), clock());
        l.step(c.at(0, true, 1, 0));
        let id = l.open_case().unwrap().id.clone();
        let (t, case) = l
            .resolve(ResolveReason::Suppressed, c.t0 + Duration::from_secs(5))
            .unwrap();
        assert_eq!(t, Transition::Resolved(ResolveReason::Suppressed));
        assert_eq!(case.id, id);
        l.step(c.at(10, true, 1, 0));
        assert_ne!(l.open_case().unwrap().id, id);
    }
}
