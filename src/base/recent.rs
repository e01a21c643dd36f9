//! The last few hundred measurements of something (analysis time, event latency) and their percentiles:
//! what a summary metric and the telemetry report, without keeping a growing history.

use std::collections::VecDeque;
use std::sync::Mutex;

/// How many measurements are kept.
const KEPT: usize = 256;

/// A window of the newest measurements; shared between the thread that measures and the ones that report.
#[derive(Debug, Default)]
pub struct Recent {
    values: Mutex<VecDeque<f32>>,
}

impl Recent {
    pub fn record(&self, value: f32) {
        let mut q = self.values.lock().expect("recent lock");
        if q.len() == KEPT {
            q.pop_front();
        }
        q.push_back(value);
    }

    /// The value at each quantile (nearest rank over the window), or none before the first measurement.
    pub fn quantiles<const N: usize>(&self, qs: [f32; N]) -> Option<[f32; N]> {
        let mut v: Vec<f32> = self
            .values
            .lock()
            .expect("recent lock")
            .iter()
            .copied()
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f32::total_cmp);
        Some(qs.map(|q| v[((v.len() - 1) as f32 * q.clamp(0.0, 1.0)).round() as usize]))
    }

    /// How many measurements the window holds now.
    pub fn len(&self) -> usize {
        self.values.lock().expect("recent lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_newest_measurements_only() {
        let r = Recent::default();
        assert_eq!(r.quantiles([0.5]), None);
        for v in 0..KEPT {
            r.record(1000.0 + v as f32); // pushed out below
        }
        for v in 1..=100 {
            r.record(v as f32);
        }
        let kept_old = KEPT - 100;
        assert_eq!(r.len(), KEPT);
        let [min, p99, max] = r.quantiles([0.0, 0.99, 1.0]).unwrap();
        assert_eq!(min, 1.0);
        assert_eq!(max, 1000.0 + (KEPT - 1) as f32);
        assert!(p99 >= 1000.0 + (kept_old as f32 * 0.9), "p99 {p99}");
        for v in 0..KEPT {
            r.record(v as f32);
        }
        assert_eq!(r.quantiles([0.5]), Some([128.0]));
    }
}
