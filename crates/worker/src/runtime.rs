//! The worker process: an apalis worker over [`subsync_queue::QueueBackend`] consuming queue
//! [`SYNC_QUEUE`] with [`crate::sync::handle`].
//!
//! The layers (lease, concurrency, job timeout) and the graceful shutdown are the queue's
//! [`subsync_queue::run_jobs`], shared with the notification deliverer; the handler opens a
//! tracing span per job with `event_id`, `job_id` and `subscription_id`.

use std::future::Future;
use std::time::Duration;

use subsync_eventlog::SYNC_QUEUE;
use subsync_queue::{Job, QueueError, RunConfig, WorkerOptions, run_jobs};

use crate::error::WorkerError;
use crate::sync::{SyncContext, handle};

/// Most jobs claimed in one round trip.
const MAX_CLAIM_BATCH: u32 = 64;

/// How one worker process runs jobs (what the jobs decide with, the tiers and the access
/// policy, is the [`SyncContext`]'s). The binary's `subsync worker` / `subsync serve` fill
/// it from flags.
#[derive(Clone)]
pub struct WorkerConfig {
    /// How this worker consumes the sync queue: concurrency, claim batch, polling fallback,
    /// lease rescue, worker id, observer. Its `queue` is always [`SYNC_QUEUE`].
    pub queue: WorkerOptions,
    /// A job running longer is abandoned and retried later with backoff.
    pub job_timeout: Duration,
    /// After shutdown is asked for, how long in-flight jobs may still finish before they
    /// are aborted and released to other workers.
    pub shutdown_grace: Duration,
}

impl std::fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("queue", &self.queue)
            .field("job_timeout", &self.job_timeout)
            .field("shutdown_grace", &self.shutdown_grace)
            .finish()
    }
}

impl Default for WorkerConfig {
    /// Defaults for production: 16 jobs at once, 60 s job timeout, 20 s shutdown grace,
    /// 1 s polling fallback, 5 s lease rescue.
    fn default() -> Self {
        Self {
            queue: WorkerOptions::new(SYNC_QUEUE),
            job_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

impl WorkerConfig {
    /// Runs `n` jobs at once, claiming up to `n` (at most 64) per round trip.
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.queue.concurrency = n;
        self.queue.batch = u32::try_from(n).unwrap_or(u32::MAX).min(MAX_CLAIM_BATCH);
        self
    }

    fn validate(&self) -> Result<(), WorkerError> {
        if self.queue.queue != SYNC_QUEUE {
            return Err(WorkerError::InvalidInput(format!(
                "the sync worker consumes queue `{SYNC_QUEUE}`, not `{}`",
                self.queue.queue
            )));
        }
        if self.queue.concurrency == 0 || self.queue.batch == 0 {
            return Err(WorkerError::InvalidInput("concurrency and claim batch must be at least 1".into()));
        }
        if self.job_timeout.is_zero() {
            return Err(WorkerError::InvalidInput("job timeout must be positive".into()));
        }
        Ok(())
    }
}

/// Runs the sync worker until `shutdown` completes, then shuts down gracefully (see the
/// module docs). Jobs decide with `ctx` (its store, tiers, policy, and any test hooks).
/// Returns when the worker has stopped. The store must be migrated.
pub async fn run(
    ctx: SyncContext,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WorkerError> {
    config.validate()?;
    let store = ctx.store().clone();
    // Group commit's committers live exactly as long as this worker (stopped or aborted).
    let _committers = ctx.start_committer();
    let run = RunConfig { queue: config.queue, job_timeout: config.job_timeout, shutdown_grace: config.shutdown_grace };
    run_jobs(
        store,
        run,
        move |job: Job| {
            let ctx = ctx.clone();
            async move { handle(job, ctx).await }
        },
        shutdown,
    )
    .await
    .map_err(|e| match e {
        QueueError::Runtime(msg) => WorkerError::Runtime(msg),
        other => WorkerError::Queue(other),
    })
}
