//! Jittered exponential backoff for reconnects: a thousand poles that lose their uplink together must not
//! reconnect together.

use rand::Rng;
use std::time::Duration;

/// Delay n is drawn uniformly from `[d/2, d]` where `d = min(max, initial × 2ⁿ)`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// As if `attempts` tries had failed already (a count kept elsewhere, such as in a database).
    pub fn after(mut self, attempts: u32) -> Self {
        self.attempt = attempts;
        self
    }

    /// The next delay, using `rng` for the jitter.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + Duration::from_secs_f64(rng.random::<f64>() * (ceiling - half).as_secs_f64())
    }

    /// Upper bound of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(30));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Call after a success: the next failure starts from the initial delay again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    #[test]
    fn delays_grow_then_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let ceilings: Vec<_> = (0..6)
            .map(|_| {
                let c = b.ceiling();
                b.attempt += 1;
                c.as_secs()
            })
            .collect();
        assert_eq!(ceilings, vec![1, 2, 4, 8, 8, 8]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }

    proptest! {
        #[test]
        fn every_delay_is_within_half_ceiling_and_max(seed: u64, initial_ms in 1u64..5_000, max_ms in 1u64..600_000, n in 0usize..80) {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let (initial, max) = (Duration::from_millis(initial_ms), Duration::from_millis(max_ms));
            let mut b = Backoff::new(initial, max);
            for _ in 0..n {
                let ceiling = b.ceiling();
                let d = b.next_delay(&mut rng);
                prop_assert!(d <= ceiling && d >= ceiling / 2);
                prop_assert!(d <= max.max(initial));
            }
        }
    }
}
