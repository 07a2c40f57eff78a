//! The worker process: an apalis worker over [`QueueBackend`] consuming queue
//! [`SYNC_QUEUE`] with [`crate::sync::handle`].
//!
//! Layers, outermost first: the queue's lease layer (heartbeats, records the outcome),
//! apalis `concurrency`, a timeout-to-retry mapping, apalis `timeout` (a job running past
//! `job_timeout` is dropped — its transaction rolls back — and counts as a retryable
//! failure), then the handler, which opens a tracing span per job with `event_id`, `job_id`
//! and `subscription_id`.
//!
//! Shutdown: when the `shutdown` future completes the worker stops claiming and lets
//! in-flight jobs finish for up to `shutdown_grace`; then it aborts the rest through
//! [`subsync_queue::AbortHandle`], which releases them (pending at once, attempt not counted)
//! so another worker takes them immediately instead of waiting for their leases to expire.

use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::layers::WorkerBuilderExt;
use apalis_core::error::BoxDynError;
use apalis_core::worker::builder::WorkerBuilder;
use subsync_eventlog::SYNC_QUEUE;
use subsync_queue::{Job, JobError, QueueBackend, WorkerOptions};
use tower::{Layer, Service};

use crate::error::WorkerError;
use crate::sync::{SyncContext, handle};

/// Most jobs claimed in one round trip.
const MAX_CLAIM_BATCH: u32 = 64;

/// How long [`run`] waits for the worker to wind down after aborting in-flight jobs.
const ABORT_WAIT: Duration = Duration::from_secs(10);

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
    let options = config.queue.clone();
    let backend = QueueBackend::new(ctx.store().clone(), options.clone());
    let abort = backend.abort_handle();
    let timeout = config.job_timeout;
    let worker = WorkerBuilder::new(options.worker_id.as_str())
        .backend(backend)
        .concurrency(options.concurrency)
        .layer(TimeoutMessageLayer { timeout })
        .timeout(timeout)
        .build(move |job: Job| {
            let ctx = ctx.clone();
            async move { handle(job, ctx).await }
        });
    tracing::info!(worker_id = %options.worker_id, queue = SYNC_QUEUE, concurrency = options.concurrency, "sync worker starting");

    let (fired_tx, mut fired_rx) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown.await;
        tracing::info!("shutdown requested: no new jobs; letting in-flight jobs finish");
        let _ = fired_tx.send(true);
        Ok::<(), std::io::Error>(())
    };
    let grace = config.shutdown_grace;
    let deadline = async move {
        if fired_rx.wait_for(|fired| *fired).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    };
    let running = worker.run_until(signal);
    tokio::pin!(running);
    tokio::select! {
        res = &mut running => {
            // Jobs that finished in the grace period are recorded by the lease layer: wait for it.
            abort.settled(ABORT_WAIT).await;
            return res.map_err(|e| WorkerError::Runtime(e.to_string()));
        }
        () = deadline => {
            tracing::warn!(grace_secs = grace.as_secs_f64(), "shutdown grace over: aborting in-flight jobs and releasing them to other workers");
            abort.abort();
        }
    }
    let stopped = match tokio::time::timeout(ABORT_WAIT, running).await {
        Ok(res) => res.map_err(|e| WorkerError::Runtime(e.to_string())),
        Err(_) => Err(WorkerError::Runtime(format!(
            "worker did not stop within {ABORT_WAIT:?} after aborting its jobs; their leases will expire"
        ))),
    };
    // The aborted jobs' releases are written by the lease layer; return only once they are.
    if !abort.settled(ABORT_WAIT).await {
        tracing::warn!("some aborted jobs were still being released at exit; their leases will expire");
    }
    stopped
}

/// Turns the timeout layer's error into a retryable [`JobError`] saying what happened, so
/// operators read "job timed out after 60s" rather than tower's "request timed out".
#[derive(Debug, Clone, Copy)]
struct TimeoutMessageLayer {
    timeout: Duration,
}

impl<S> Layer<S> for TimeoutMessageLayer {
    type Service = TimeoutMessage<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutMessage { inner, timeout: self.timeout }
    }
}

/// See [`TimeoutMessageLayer`].
#[derive(Debug, Clone)]
struct TimeoutMessage<S> {
    inner: S,
    timeout: Duration,
}

impl<S, R> Service<R> for TimeoutMessage<S>
where
    S: Service<R>,
    S::Error: Into<BoxDynError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let timeout = self.timeout;
        let fut = self.inner.call(req);
        Box::pin(async move {
            fut.await.map_err(|e| {
                let e: BoxDynError = e.into();
                if e.is::<tower::timeout::error::Elapsed>() {
                    Box::new(JobError::retry(format!("job timed out after {timeout:?}"))) as BoxDynError
                } else {
                    e
                }
            })
        })
    }
}
