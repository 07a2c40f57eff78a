//! Job counters for `/metrics`: the queue tells us about every run, we count it.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use subsync_metrics::{MetricsError, Registry, SECONDS_BUCKETS};
use subsync_queue::{JobObserver, JobOutcome};

const OUTCOMES: [JobOutcome; 5] =
    [JobOutcome::Succeeded, JobOutcome::Retrying, JobOutcome::Dead, JobOutcome::LeaseLost, JobOutcome::Released];

/// `{queue}`.
type QueueLabel = [(&'static str, String); 1];
/// `{queue, outcome}`.
type OutcomeLabels = [(&'static str, String); 2];

fn queue_label(queue: &str) -> QueueLabel {
    [("queue", queue.to_string())]
}

fn outcome_labels(queue: &str, outcome: JobOutcome) -> OutcomeLabels {
    [("queue", queue.to_string()), ("outcome", outcome.as_str().to_string())]
}

fn duration_histogram() -> Histogram {
    Histogram::new(SECONDS_BUCKETS.iter().copied())
}

/// Counts job starts, outcomes and durations in a registry.
pub struct JobMetrics {
    started: Family<QueueLabel, Counter>,
    finished: Family<OutcomeLabels, Counter>,
    duration: Family<QueueLabel, Histogram, fn() -> Histogram>,
}

impl JobMetrics {
    /// Registers the series up front (so they show as 0 before the first job).
    pub fn new(registry: Arc<Registry>) -> Result<Arc<Self>, MetricsError> {
        let metrics = Self {
            started: Family::default(),
            finished: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
        };
        // Counters are exposed as `subsync_jobs_started_total` and `subsync_jobs_finished_total`:
        // the client appends `_total`.
        registry.register("subsync_jobs_started", "Job runs started, by queue.", metrics.started.clone())?;
        registry.register(
            "subsync_jobs_finished",
            "Job runs ended, by queue and outcome (succeeded, retrying = failed and will retry, dead, lease_lost, released).",
            metrics.finished.clone(),
        )?;
        registry.register("subsync_job_duration_seconds", "Job run time, by queue.", metrics.duration.clone())?;
        let queue = subsync_eventlog::SYNC_QUEUE;
        metrics.started.get_or_create_owned(&queue_label(queue));
        for outcome in OUTCOMES {
            metrics.finished.get_or_create_owned(&outcome_labels(queue, outcome));
        }
        metrics.duration.get_or_create_owned(&queue_label(queue));
        Ok(Arc::new(metrics))
    }
}

impl JobObserver for JobMetrics {
    fn started(&self, queue: &str) {
        self.started.get_or_create(&queue_label(queue)).inc();
    }

    fn finished(&self, queue: &str, outcome: JobOutcome, elapsed: Duration) {
        self.finished.get_or_create(&outcome_labels(queue, outcome)).inc();
        self.duration.get_or_create(&queue_label(queue)).observe(elapsed.as_secs_f64());
    }
}
