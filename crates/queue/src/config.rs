//! Tunables of the queue, with the defaults the issue tracker agreed on.

use std::time::Duration;

/// How failed attempts are spaced: exponential with jitter, stored in the job's `run_at`
/// so the backoff survives restarts and is shared by every worker process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before a job goes `dead` (per job, this is the default).
    pub max_attempts: u32,
    /// Delay after the first failure.
    pub base: Duration,
    /// Upper bound of any one delay.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 12, base: Duration::from_secs(5), cap: Duration::from_secs(3600) }
    }
}

impl RetryPolicy {
    /// The delay before attempt `failed_attempt + 1`: `base · 2^(n-1)` capped, with "equal
    /// jitter" (half fixed, half random) so a burst of failures does not retry in lockstep.
    pub fn delay_after(&self, failed_attempt: u32) -> Duration {
        let exp = failed_attempt.saturating_sub(1).min(30);
        let raw = self.base.saturating_mul(1u32 << exp).min(self.cap);
        let half = raw / 2;
        let jitter_ms = fastrand::u64(0..=half.as_millis().min(u64::MAX as u128) as u64);
        half + Duration::from_millis(jitter_ms)
    }
}

/// Queue-wide settings shared by producers, workers and operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Retry spacing and attempt budget.
    pub retry: RetryPolicy,
    /// How long a claimed job is ours without a heartbeat. A dead worker's jobs are taken
    /// over after this.
    pub lease: Duration,
    /// How long finished jobs (and so their unique keys) are kept. Stripe retries a delivery
    /// for up to 3 days and lists events for 30, so the default is 30 days.
    pub retention: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            lease: Duration::from_secs(30),
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl QueueConfig {
    /// Heartbeats renew the lease three times per lease period, so one lost beat is harmless.
    pub fn heartbeat_interval(&self) -> Duration {
        (self.lease / 3).max(Duration::from_millis(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_within_jittered_bounds() {
        let policy = RetryPolicy { max_attempts: 12, base: Duration::from_secs(2), cap: Duration::from_secs(60) };
        for attempt in 1..=12u32 {
            let raw = Duration::from_secs(2).saturating_mul(1 << (attempt - 1).min(30)).min(Duration::from_secs(60));
            for _ in 0..50 {
                let d = policy.delay_after(attempt);
                assert!(d >= raw / 2, "attempt {attempt}: {d:?} < half of {raw:?}");
                assert!(d <= raw, "attempt {attempt}: {d:?} > {raw:?}");
            }
        }
    }

    #[test]
    fn backoff_survives_huge_attempt_numbers() {
        let policy = RetryPolicy::default();
        assert!(policy.delay_after(u32::MAX) <= policy.cap);
        assert!(policy.delay_after(0) <= policy.base);
    }

    #[test]
    fn heartbeat_is_a_third_of_the_lease() {
        let cfg = QueueConfig::default();
        assert_eq!(cfg.heartbeat_interval(), Duration::from_secs(10));
    }
}
