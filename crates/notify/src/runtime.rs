//! The deliverer as a worker of queue [`subsync_outbox::NOTIFY_QUEUE`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use subsync_outbox::NOTIFY_QUEUE;
use subsync_queue::{Job, JobObserver, QueueError, RunConfig, WorkerOptions, run_jobs};

use crate::deliver::Deliverer;

/// Delivers until `shutdown` completes (job runs reported to `observer`), `deliverer.config().concurrency` users at once, then
/// shuts down gracefully (in-flight POSTs get `grace` to finish; the rest are released and
/// sent again, under the same `webhook-id`, by whoever takes them).
pub async fn run(
    deliverer: Arc<Deliverer>,
    worker_id: &str,
    grace: Duration,
    observer: Option<Arc<dyn JobObserver>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), QueueError> {
    let config = deliverer.config();
    let mut queue = WorkerOptions::new(NOTIFY_QUEUE);
    queue.concurrency = config.concurrency;
    queue.batch = u32::try_from(config.concurrency).unwrap_or(u32::MAX).min(64);
    queue.worker_id = format!("{worker_id}-notify");
    queue.observer = observer;
    // A job may send a few changes, each bounded by the POST timeout.
    let job_timeout = (config.timeout * 4).max(Duration::from_secs(60));
    let run = RunConfig { queue, job_timeout, shutdown_grace: grace };
    let store = deliverer.store().clone();
    let _committers = deliverer.start_committer();
    run_jobs(
        store,
        run,
        move |job: Job| {
            let deliverer = Arc::clone(&deliverer);
            async move { deliverer.handle(&job).await }
        },
        shutdown,
    )
    .await
}
