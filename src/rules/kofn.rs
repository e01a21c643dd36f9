//! K of the last N samples: a condition seen in at least K of them holds; absent from at least K, it clears
//! (K above half of N, so the two cannot both be met). One bad sample neither opens nor clears a case.

use std::collections::VecDeque;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct KofN {
    /// N
    window: usize,
    /// K
    min_present: usize,
    /// Recent samples: when, and whether the condition was seen.
    history: VecDeque<(Instant, bool)>,
    holding: bool,
}

impl KofN {
    pub fn new(window: usize, min_present: usize) -> Self {
        Self {
            window: window.max(1),
            min_present: min_present.max(1),
            history: VecDeque::new(),
            holding: false,
        }
    }

    /// Count one sample; returns whether the condition holds after it.
    pub fn push(&mut self, now: Instant, seen: bool) -> bool {
        self.history.push_back((now, seen));
        while self.history.len() > self.window {
            self.history.pop_front();
        }
        let present = self.history.iter().filter(|(_, h)| *h).count();
        let absent = self.history.len() - present;
        if present >= self.min_present {
            self.holding = true;
        } else if absent >= self.min_present {
            self.holding = false;
        }
        self.holding
    }

    pub fn holds(&self) -> bool {
        self.holding
    }

    /// The last sample saw the condition.
    pub fn last_seen(&self) -> bool {
        self.history.back().is_some_and(|(_, h)| *h)
    }

    /// While it holds: the first sample of the window that saw it.
    pub fn since(&self) -> Option<Instant> {
        self.holding
            .then(|| self.history.iter().find(|(_, h)| *h).map(|(t, _)| *t))
            .flatten()
    }

    pub fn reset(&mut self) {
        self.history.clear();
        self.holding = false;
    }
}
