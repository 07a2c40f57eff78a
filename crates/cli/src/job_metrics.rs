//! Job counters for `/metrics`: the queue tells us about every run, we count it.

use std::sync::Arc;
use std::time::Duration;

use subsync_metrics::{MetricsError, Registry, SECONDS_BUCKETS};
use subsync_queue::{JobObserver, JobOutcome};

const OUTCOMES: [JobOutcome; 5] =
    [JobOutcome::Succeeded, JobOutcome::Retrying, JobOutcome::Dead, JobOutcome::LeaseLost, JobOutcome::Released];

/// Counts job starts, outcomes and durations in a registry.
pub struct JobMetrics {
    registry: Arc<Registry>,
}

impl JobMetrics {
    /// Registers the series up front (so they show as 0 before the first job).
    pub fn new(registry: Arc<Registry>) -> Result<Arc<Self>, MetricsError> {
        let queue = subsync_events::SYNC_QUEUE;
        registry.counter("subsync_jobs_started_total", "Job runs started, by queue.", &[("queue", queue)])?;
        for outcome in OUTCOMES {
            registry.counter(
                "subsync_jobs_finished_total",
                "Job runs ended, by queue and outcome (succeeded, retrying = failed and will retry, dead, lease_lost, released).",
                &[("queue", queue), ("outcome", outcome.as_str())],
            )?;
        }
        registry.histogram(
            "subsync_job_duration_seconds",
            "Job run time, by queue.",
            &[("queue", queue)],
            SECONDS_BUCKETS,
        )?;
        Ok(Arc::new(Self { registry }))
    }
}

impl JobObserver for JobMetrics {
    fn started(&self, queue: &str) {
        if let Ok(c) =
            self.registry.counter("subsync_jobs_started_total", "Job runs started, by queue.", &[("queue", queue)])
        {
            c.inc();
        }
    }

    fn finished(&self, queue: &str, outcome: JobOutcome, elapsed: Duration) {
        if let Ok(c) = self.registry.counter(
            "subsync_jobs_finished_total",
            "Job runs ended, by queue and outcome (succeeded, retrying = failed and will retry, dead, lease_lost, released).",
            &[("queue", queue), ("outcome", outcome.as_str())],
        ) {
            c.inc();
        }
        if let Ok(h) = self.registry.histogram(
            "subsync_job_duration_seconds",
            "Job run time, by queue.",
            &[("queue", queue)],
            SECONDS_BUCKETS,
        ) {
            h.observe_duration(elapsed);
        }
    }
}
