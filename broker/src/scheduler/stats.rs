//! What the scheduler reports per tenant (`gpushare status`, benchmarks): device time, the share
//! over the last 10 s, queue delay percentiles, kernels and the cost model's prediction error.

use std::collections::VecDeque;

use super::cost::{Nanos, Observation};

/// The window over which `share` is computed.
pub const SHARE_WINDOW_NS: Nanos = 10_000_000_000;
/// Width of one bucket of the share window.
const BUCKET_NS: Nanos = 100_000_000;
/// Queue delays kept for percentiles.
const DELAY_SAMPLES: usize = 2048;
/// Prediction errors kept for the average.
const ERROR_SAMPLES: usize = 1024;

/// A tenant's scheduling figures, as reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TenantReport {
    /// Device time of completed operations, total.
    pub device_ns: Nanos,
    /// Share of device time over the last 10 s (or since the tenant joined, if later).
    pub share: f64,
    /// Median time from queueing to submission, recent operations.
    pub queue_p50_ns: Nanos,
    /// 99th percentile of the same.
    pub queue_p99_ns: Nanos,
    /// Kernels completed.
    pub kernels: u64,
    /// Mean |predicted − measured| / measured of recent timed operations (`None`: none yet).
    pub prediction_error: Option<f64>,
}

/// Running figures of one tenant.
#[derive(Debug)]
pub struct TenantStats {
    joined: Nanos,
    device_ns: Nanos,
    kernels: u64,
    /// (bucket index, device ns completed in it), oldest first.
    recent: VecDeque<(u64, Nanos)>,
    delays: VecDeque<Nanos>,
    errors: VecDeque<f64>,
}

impl TenantStats {
    /// Figures of a tenant joining at `now`.
    pub fn new(now: Nanos) -> TenantStats {
        TenantStats {
            joined: now,
            device_ns: 0,
            kernels: 0,
            recent: VecDeque::new(),
            delays: VecDeque::new(),
            errors: VecDeque::new(),
        }
    }

    /// An operation waited `delay` in the queue.
    pub fn queued(&mut self, delay: Nanos) {
        if self.delays.len() == DELAY_SAMPLES {
            self.delays.pop_front();
        }
        self.delays.push_back(delay);
    }

    /// A timed operation completed at `now` (`obs`: its prediction and measurement).
    pub fn completed(&mut self, now: Nanos, kernel: bool, obs: Observation) {
        self.add_device_time(now, kernel, obs.measured);
        if self.errors.len() == ERROR_SAMPLES {
            self.errors.pop_front();
        }
        self.errors.push_back(obs.relative_error());
    }

    /// An operation completed at `now` after `ns` of device time, measured or (an untimed one)
    /// estimated: its time counts; only [`TenantStats::completed`] also records the model's
    /// error.
    pub fn add_device_time(&mut self, now: Nanos, kernel: bool, ns: Nanos) {
        self.device_ns += ns;
        self.kernels += u64::from(kernel);
        let bucket = now / BUCKET_NS;
        match self.recent.back_mut() {
            Some((b, n)) if *b == bucket => *n += ns,
            _ => self.recent.push_back((bucket, ns)),
        }
        self.trim(now);
    }

    fn trim(&mut self, now: Nanos) {
        let oldest = now.saturating_sub(SHARE_WINDOW_NS) / BUCKET_NS;
        while self.recent.front().is_some_and(|(b, _)| *b < oldest) {
            self.recent.pop_front();
        }
    }

    /// Device time completed in the window ending at `now`, and the window's length.
    pub fn window(&mut self, now: Nanos) -> (Nanos, Nanos) {
        self.trim(now);
        let sum = self.recent.iter().map(|(_, ns)| ns).sum();
        let start = now.saturating_sub(SHARE_WINDOW_NS).max(self.joined);
        (sum, now.saturating_sub(start).max(1))
    }

    /// The report at `now`.
    pub fn report(&mut self, now: Nanos) -> TenantReport {
        let (used, span) = self.window(now);
        let mut d: Vec<Nanos> = self.delays.iter().copied().collect();
        d.sort_unstable();
        let pct = |p: f64| -> Nanos {
            if d.is_empty() {
                return 0;
            }
            d[((d.len() - 1) as f64 * p).round() as usize]
        };
        TenantReport {
            device_ns: self.device_ns,
            share: (used as f64 / span as f64).min(1.0),
            queue_p50_ns: pct(0.5),
            queue_p99_ns: pct(0.99),
            kernels: self.kernels,
            prediction_error: (!self.errors.is_empty())
                .then(|| self.errors.iter().sum::<f64>() / self.errors.len() as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_percentiles_and_error() {
        let mut s = TenantStats::new(0);
        for i in 1..=100 {
            s.queued(i * 1000);
        }
        let obs = Observation {
            predicted: 150,
            measured: 100,
        };
        // 3 s of device time within the first 6 s.
        for i in 0..30 {
            s.completed(
                i * 200_000_000,
                true,
                Observation {
                    measured: 100_000_000,
                    ..obs
                },
            );
        }
        let r = s.report(6_000_000_000);
        assert!((r.share - 0.5).abs() < 1e-9, "{}", r.share);
        assert_eq!((r.queue_p50_ns, r.queue_p99_ns), (51_000, 99_000));
        assert_eq!(r.kernels, 30);
        let want = (100_000_000.0 - 150.0) / 100_000_000.0;
        assert!((r.prediction_error.unwrap() - want).abs() < 1e-9);
        // 20 s later the window has emptied.
        assert_eq!(s.report(26_000_000_000).share, 0.0);
    }
}
