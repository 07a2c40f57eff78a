//! Running a queue's handler as an apalis worker, with the shutdown every subsync worker
//! wants: the sync worker and the notification deliverer share it.
//!
//! Layers, outermost first: the lease layer (heartbeats, records the outcome), apalis
//! `concurrency`, a timeout-to-retry mapping, apalis `timeout` (a job running past
//! `job_timeout` is dropped — its transaction rolls back — and counts as a retryable
//! failure), then the handler.
//!
//! Shutdown: when the `shutdown` future completes the worker stops claiming and lets
//! in-flight jobs finish for up to `shutdown_grace`; then it aborts the rest through
//! [`AbortHandle`](super::AbortHandle), which releases them (pending at once, attempt not
//! counted) so another worker takes them immediately instead of waiting for their leases.

use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::layers::WorkerBuilderExt;
use apalis_core::error::BoxDynError;
use apalis_core::worker::builder::WorkerBuilder;
use tower_layer::Layer;
use tower_service::Service;

use super::{QueueBackend, WorkerOptions};
use crate::error::QueueError;
use crate::job::{Job, JobError};
use crate::store::Store;

/// How long [`run_jobs`] waits for the worker to wind down after aborting in-flight jobs.
const ABORT_WAIT: Duration = Duration::from_secs(10);

/// How one process runs one queue's jobs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Which queue, how many at once, claim batch, polling fallback, lease rescue, worker id.
    pub queue: WorkerOptions,
    /// A job running longer is abandoned and retried later with backoff.
    pub job_timeout: Duration,
    /// After shutdown is asked for, how long in-flight jobs may still finish before they
    /// are aborted and released to other workers.
    pub shutdown_grace: Duration,
}

impl RunConfig {
    /// Refuses settings a worker cannot run with, saying which.
    pub fn validate(&self) -> Result<(), QueueError> {
        if self.queue.concurrency == 0 || self.queue.batch == 0 {
            return Err(QueueError::InvalidInput("concurrency and claim batch must be at least 1".into()));
        }
        if self.job_timeout.is_zero() {
            return Err(QueueError::InvalidInput("job timeout must be positive".into()));
        }
        Ok(())
    }
}

/// Runs `handler` over `config.queue`'s jobs until `shutdown` completes, then shuts down
/// gracefully (see the module docs). Returns when the worker has stopped.
pub async fn run_jobs<H, Fut>(
    store: Store,
    config: RunConfig,
    handler: H,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), QueueError>
where
    H: Fn(Job) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    config.validate()?;
    let options = config.queue.clone();
    let backend = QueueBackend::new(store, options.clone());
    let abort = backend.abort_handle();
    let timeout = config.job_timeout;
    let worker = WorkerBuilder::new(options.worker_id.as_str())
        .backend(backend)
        .concurrency(options.concurrency)
        .layer(TimeoutMessageLayer { timeout })
        .timeout(timeout)
        .build(move |job: Job| handler(job));
    tracing::info!(worker_id = %options.worker_id, queue = %options.queue, concurrency = options.concurrency, "worker starting");

    let (fired_tx, mut fired_rx) = tokio::sync::watch::channel(false);
    let queue = options.queue.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!(queue = %queue, "shutdown requested: no new jobs; letting in-flight jobs finish");
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
            return res.map_err(|e| QueueError::Runtime(e.to_string()));
        }
        () = deadline => {
            tracing::warn!(queue = %options.queue, grace_secs = grace.as_secs_f64(), "shutdown grace over: aborting in-flight jobs and releasing them to other workers");
            abort.abort();
        }
    }
    let stopped = match tokio::time::timeout(ABORT_WAIT, running).await {
        Ok(res) => res.map_err(|e| QueueError::Runtime(e.to_string())),
        Err(_) => Err(QueueError::Runtime(format!(
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
