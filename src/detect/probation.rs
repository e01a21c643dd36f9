//! A newly activated model version on probation: within its probation time, inference that keeps failing or
//! whose median time runs over the budget is a fault, and the pole goes back to the version before. Pure:
//! time is an argument.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Inference failures in a row that count as a fault.
pub const MAX_ERRORS_IN_ROW: u32 = 3;
/// Frames whose median inference time is held against the budget.
pub const LATENCY_WINDOW: usize = 10;

/// What probation concluded after one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Still watching.
    Watching,
    /// The version went through its probation without a fault.
    Passed,
    /// The version faulted: go back, for this reason.
    Fault(String),
}

/// The watch over one newly activated version.
#[derive(Debug, Clone)]
pub struct Probation {
    until: Instant,
    budget_ms: f32,
    errors_in_row: u32,
    recent: VecDeque<f32>,
}

impl Probation {
    pub fn new(now: Instant, length: Duration, budget_ms: u64) -> Self {
        Probation {
            until: now + length,
            budget_ms: budget_ms as f32,
            errors_in_row: 0,
            recent: VecDeque::with_capacity(LATENCY_WINDOW),
        }
    }

    /// One frame's inference: its time in ms, or its error.
    pub fn observe(&mut self, now: Instant, result: Result<f32, &str>) -> Verdict {
        match result {
            Err(error) => {
                self.errors_in_row += 1;
                if self.errors_in_row >= MAX_ERRORS_IN_ROW {
                    return Verdict::Fault(format!(
                        "inference failed on {} frames in a row: {error}",
                        self.errors_in_row
                    ));
                }
            }
            Ok(ms) => {
                self.errors_in_row = 0;
                if self.recent.len() == LATENCY_WINDOW {
                    self.recent.pop_front();
                }
                self.recent.push_back(ms);
                if self.recent.len() == LATENCY_WINDOW {
                    let median = median(&self.recent);
                    if median > self.budget_ms {
                        return Verdict::Fault(format!(
                            "median inference time {median:.1} ms over {LATENCY_WINDOW} frames exceeds the latency budget of {} ms",
                            self.budget_ms
                        ));
                    }
                }
            }
        }
        if now >= self.until {
            Verdict::Passed
        } else {
            Verdict::Watching
        }
    }
}

fn median(v: &VecDeque<f32>) -> f32 {
    let mut s: Vec<f32> = v.iter().copied().collect();
    s.sort_by(f32::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_in_a_row_fault_but_a_success_between_them_resets_the_count() {
        let t = Instant::now();
        let mut p = Probation::new(t, Duration::from_secs(60), 100);
        assert_eq!(p.observe(t, Err("bad")), Verdict::Watching);
        assert_eq!(p.observe(t, Err("bad")), Verdict::Watching);
        assert_eq!(p.observe(t, Ok(10.0)), Verdict::Watching);
        assert_eq!(p.observe(t, Err("bad")), Verdict::Watching);
        assert_eq!(p.observe(t, Err("bad")), Verdict::Watching);
        assert!(
            matches!(p.observe(t, Err("bad")), Verdict::Fault(r) if r.contains("3 frames in a row: bad"))
        );
    }

    #[test]
    fn a_median_over_budget_faults_once_the_window_is_full_and_one_slow_frame_does_not() {
        let t = Instant::now();
        let mut p = Probation::new(t, Duration::from_secs(60), 50);
        for _ in 0..LATENCY_WINDOW - 1 {
            assert_eq!(p.observe(t, Ok(80.0)), Verdict::Watching);
        }
        assert!(matches!(p.observe(t, Ok(80.0)), Verdict::Fault(r) if r.contains("80.0 ms")));
        let mut q = Probation::new(t, Duration::from_secs(60), 50);
        for i in 0..3 * LATENCY_WINDOW {
            let ms = if i % 4 == 0 { 500.0 } else { 20.0 };
            assert_eq!(q.observe(t, Ok(ms)), Verdict::Watching);
        }
    }

    #[test]
    fn a_version_without_faults_passes_when_its_time_is_up() {
        let t = Instant::now();
        let mut p = Probation::new(t, Duration::from_secs(10), 50);
        assert_eq!(
            p.observe(t + Duration::from_secs(9), Ok(5.0)),
            Verdict::Watching
        );
        assert_eq!(
            p.observe(t + Duration::from_secs(10), Ok(5.0)),
            Verdict::Passed
        );
    }
}
