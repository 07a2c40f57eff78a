//! The queue as an apalis backend: apalis runs the worker (concurrency, tower layers,
//! tracing, graceful shutdown); we decide what to claim and own each job's lease.
//!
//! - [`QueueBackend`] claims due jobs, never more than there are free slots, so a claimed job
//!   starts at once and never holds its group while waiting in a buffer.
//! - [`LeaseLayer`] wraps every job: it renews the lease while the handler runs, aborts the
//!   handler if the lease is lost, and then records the outcome with a compare-and-set.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::error::BoxDynError;
use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use futures::FutureExt;
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::{Notify, watch};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::QueueError;
use crate::job::{Job, JobError};
use crate::model::{ClaimedJob, FailOutcome};
use crate::store::Store;

/// How a job run ended, as reported to a [`JobObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Completed (by the handler's transaction or by the layer).
    Succeeded,
    /// Failed; back to pending with backoff.
    Retrying,
    /// Failed for good.
    Dead,
    /// The lease was lost to another worker or an operator.
    LeaseLost,
    /// Given back at the shutdown deadline, attempt not counted.
    Released,
}

impl JobOutcome {
    /// Lowercase label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Retrying => "retrying",
            JobOutcome::Dead => "dead",
            JobOutcome::LeaseLost => "lease_lost",
            JobOutcome::Released => "released",
        }
    }
}

/// Hears about every job a worker runs, so the binary can count them without the queue
/// knowing about any metrics system.
pub trait JobObserver: Send + Sync + 'static {
    /// A job was handed to its handler.
    fn started(&self, _queue: &str) {}
    /// A job run ended with `outcome` after `elapsed`.
    fn finished(&self, _queue: &str, _outcome: JobOutcome, _elapsed: Duration) {}
}

/// How a worker process consumes one queue.
#[derive(Clone)]
pub struct WorkerOptions {
    /// The queue to consume.
    pub queue: String,
    /// Jobs run at once by this worker. Must match the apalis `concurrency` layer if one is
    /// used; the backend never claims more than this many.
    pub concurrency: usize,
    /// Upper bound of jobs claimed in one round trip.
    pub batch: u32,
    /// Poll interval when no wake-up arrives (the fallback for cross-process SQLite, or a
    /// missed notification).
    pub poll_interval: Duration,
    /// How often this worker looks for jobs whose lease expired.
    pub rescue_interval: Duration,
    /// Identifies this worker in leases (shown to operators as the lease holder).
    pub worker_id: String,
    /// Told about every job run (metrics).
    pub observer: Option<Arc<dyn JobObserver>>,
}

impl std::fmt::Debug for WorkerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerOptions")
            .field("queue", &self.queue)
            .field("concurrency", &self.concurrency)
            .field("batch", &self.batch)
            .field("poll_interval", &self.poll_interval)
            .field("rescue_interval", &self.rescue_interval)
            .field("worker_id", &self.worker_id)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl WorkerOptions {
    /// Defaults for `queue`: 16 at once, 1 s polling fallback, a unique worker id.
    pub fn new(queue: impl Into<String>) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        Self {
            queue: queue.into(),
            concurrency: 16,
            batch: 16,
            poll_interval: Duration::from_secs(1),
            rescue_interval: Duration::from_secs(5),
            worker_id: format!("{host}:{}:{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]),
            observer: None,
        }
    }
}

/// Tells in-flight handlers to stop and give their jobs back (shutdown deadline passed).
#[derive(Debug, Clone)]
pub struct AbortHandle {
    tx: watch::Sender<bool>,
}

impl AbortHandle {
    /// Stops in-flight handlers; their jobs go back to pending at once, attempt not counted.
    pub fn abort(&self) {
        self.tx.send_replace(true);
    }
}

/// Counts jobs handed to the service and not finished yet; wakes the claimer when one ends.
#[derive(Debug, Default)]
struct InFlight {
    running: AtomicUsize,
    freed: Notify,
}

impl InFlight {
    fn finish(&self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.freed.notify_one();
    }
}

/// The subsync queue as an apalis [`Backend`]. Emits `Task<Job>`; pair it with a handler
/// `async fn(Job) -> Result<(), JobError>`.
pub struct QueueBackend {
    store: Store,
    options: WorkerOptions,
    inflight: Arc<InFlight>,
    stream: Option<BoxStream<'static, Result<Task<Job>, QueueError>>>,
    buffered: Arc<std::sync::Mutex<VecDeque<ClaimedJob>>>,
    abort: watch::Sender<bool>,
}

impl std::fmt::Debug for QueueBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueBackend").field("options", &self.options).finish()
    }
}

impl QueueBackend {
    /// A backend consuming `options.queue` from `store`.
    pub fn new(store: Store, options: WorkerOptions) -> Self {
        Self {
            store,
            options,
            inflight: Arc::default(),
            stream: None,
            buffered: Arc::default(),
            abort: watch::Sender::new(false),
        }
    }

    /// A handle to abort in-flight handlers at a shutdown deadline.
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle { tx: self.abort.clone() }
    }

    fn claim_stream(&self) -> BoxStream<'static, Result<Task<Job>, QueueError>> {
        let state = Claimer {
            store: self.store.clone(),
            options: self.options.clone(),
            inflight: self.inflight.clone(),
            buffered: self.buffered.clone(),
            wake: self.store.subscribe(),
            last_rescue: None,
        };
        futures::stream::unfold(state, |mut claimer| async move {
            let next = claimer.next().await;
            Some((next, claimer))
        })
        .boxed()
    }
}

/// The claim loop's state.
struct Claimer {
    store: Store,
    options: WorkerOptions,
    inflight: Arc<InFlight>,
    buffered: Arc<std::sync::Mutex<VecDeque<ClaimedJob>>>,
    wake: crate::store::WakeSubscription,
    last_rescue: Option<tokio::time::Instant>,
}

impl Claimer {
    fn pop_buffered(&self) -> Option<ClaimedJob> {
        self.buffered.lock().ok()?.pop_front()
    }

    async fn next(&mut self) -> Result<Task<Job>, QueueError> {
        let mut backoff = Duration::from_millis(100);
        loop {
            if let Some(claimed) = self.pop_buffered() {
                self.inflight.running.fetch_add(1, Ordering::SeqCst);
                let job_id = claimed.lease.job_id;
                let job = Job::new(claimed, self.store.clone());
                return Ok(TaskBuilder::new(job).task_id(TaskId::Uuid(job_id)).build());
            }
            self.maybe_rescue().await;
            let running = self.inflight.running.load(Ordering::SeqCst);
            let free = self.options.concurrency.saturating_sub(running);
            if free == 0 {
                // Wait for a slot; a finishing job notifies.
                let _ = tokio::time::timeout(self.options.poll_interval, self.inflight.freed.notified()).await;
                continue;
            }
            let limit = (free as u32).min(self.options.batch.max(1));
            match self.store.claim(&self.options.queue, &self.options.worker_id, limit).await {
                Ok(jobs) if jobs.is_empty() => {
                    backoff = Duration::from_millis(100);
                    self.wake.wait(self.options.poll_interval).await;
                }
                Ok(jobs) => {
                    backoff = Duration::from_millis(100);
                    if let Ok(mut buf) = self.buffered.lock() {
                        buf.extend(jobs);
                    }
                }
                Err(e) => {
                    // The database is away: keep the worker alive and try again with backoff.
                    tracing::warn!(error = %e, queue = %self.options.queue, "claim failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn maybe_rescue(&mut self) {
        let due = self
            .last_rescue
            .is_none_or(|at| at.elapsed() >= self.options.rescue_interval);
        if !due {
            return;
        }
        self.last_rescue = Some(tokio::time::Instant::now());
        if let Err(e) = self.store.rescue_expired(100).await {
            tracing::warn!(error = %e, "lease rescue failed; will try again");
        }
    }
}

impl Backend for QueueBackend {
    type Task = Task<Job>;
    type Error = QueueError;

    fn poll_ready(&mut self, _cx: &mut Context<'_>, _worker: &WorkerContext) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        if self.stream.is_none() {
            self.stream = Some(self.claim_stream());
        }
        match &mut self.stream {
            Some(stream) => stream.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>, _worker: &WorkerContext) -> Poll<Result<(), Self::Error>> {
        // Stop claiming; give back anything claimed but not started so others take it now.
        self.stream = None;
        let leftovers: Vec<ClaimedJob> = match self.buffered.lock() {
            Ok(mut buf) => buf.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        if leftovers.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let store = self.store.clone();
        let mut fut = Box::pin(async move {
            for job in leftovers {
                store.release(&job.lease).await?;
            }
            Ok::<(), QueueError>(())
        });
        match fut.as_mut().poll(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => {
                // Finish the release in the background; shutdown must not hang on it.
                tokio::spawn(fut);
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl BackendConfig for QueueBackend {
    type Args = Job;
    type Id = uuid::Uuid;
    type Kind = Ephemeral;
    type Config = WorkerOptions;
    type Layer = LeaseLayer;

    fn config(&self) -> &Self::Config {
        &self.options
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        LeaseLayer {
            store: self.store.clone(),
            inflight: self.inflight.clone(),
            abort: self.abort.subscribe(),
            observer: self.options.observer.clone(),
        }
    }
}

/// Holds a job's lease for the length of its handler and records the outcome.
#[derive(Clone)]
pub struct LeaseLayer {
    store: Store,
    inflight: Arc<InFlight>,
    abort: watch::Receiver<bool>,
    observer: Option<Arc<dyn JobObserver>>,
}

impl std::fmt::Debug for LeaseLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for LeaseLayer {
    type Service = LeaseService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LeaseService {
            inner,
            store: self.store.clone(),
            inflight: self.inflight.clone(),
            abort: self.abort.clone(),
            observer: self.observer.clone(),
        }
    }
}

/// See [`LeaseLayer`].
#[derive(Clone)]
pub struct LeaseService<S> {
    inner: S,
    store: Store,
    inflight: Arc<InFlight>,
    abort: watch::Receiver<bool>,
    observer: Option<Arc<dyn JobObserver>>,
}

impl<S> std::fmt::Debug for LeaseService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseService").finish_non_exhaustive()
    }
}

/// How a handler run ended, before we record it.
enum RunEnd<T> {
    Finished(Result<T, BoxDynError>),
    Panicked(String),
    LeaseLost,
    Aborted,
}

impl<S> Service<Task<Job>> for LeaseService<S>
where
    S: Service<Task<Job>> + Send,
    S::Future: Send + 'static,
    S::Error: Into<BoxDynError>,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxDynError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Job>) -> Self::Future {
        let job = task.args.clone();
        let store = self.store.clone();
        let inflight = self.inflight.clone();
        let mut abort = self.abort.clone();
        let observer = self.observer.clone();
        let queue = job.claimed().lease.queue.clone();
        if let Some(o) = &observer {
            o.started(&queue);
        }
        let started = std::time::Instant::now();
        let handler = self.inner.call(task);
        let span = tracing::info_span!(
            "job",
            job_id = %job.id(),
            group = %job.group_key(),
            key = job.claimed().unique_key.as_deref().unwrap_or(""),
            attempt = job.attempt()
        );
        let fut = async move {
            let end = {
                let handler = AssertUnwindSafe(async move { handler.await.map_err(Into::into) }).catch_unwind();
                let heartbeat = keep_lease(&store, &job);
                let aborted = async {
                    let _ = abort.wait_for(|stop| *stop).await;
                };
                tokio::select! {
                    res = handler => match res {
                        Ok(r) => RunEnd::Finished(r),
                        Err(panic) => RunEnd::Panicked(panic_message(&panic)),
                    },
                    () = heartbeat => RunEnd::LeaseLost,
                    () = aborted => RunEnd::Aborted,
                }
            };
            let (result, outcome) = record(&store, &job, end).await;
            inflight.finish();
            if let Some(o) = &observer {
                o.finished(&queue, outcome, started.elapsed());
            }
            result
        };
        Box::pin(tracing::Instrument::instrument(fut, span))
    }
}

/// Renews the lease until it is lost; never returns while the lease is ours.
async fn keep_lease(store: &Store, job: &Job) {
    let every = store.config().heartbeat_interval();
    let mut failures = 0u32;
    loop {
        tokio::time::sleep(every).await;
        match store.heartbeat(&job.claimed().lease).await {
            Ok(true) => failures = 0,
            Ok(false) => {
                tracing::warn!("lease lost: another worker or an operator took the job; stopping the handler");
                return;
            }
            Err(e) => {
                // Keep trying until the lease would have run out; then assume it is gone.
                failures += 1;
                tracing::warn!(error = %e, "heartbeat failed");
                if failures >= 3 {
                    return;
                }
            }
        }
    }
}

/// Records the run's outcome with a compare-and-set on the lease.
async fn record<T>(store: &Store, job: &Job, end: RunEnd<T>) -> (Result<T, BoxDynError>, JobOutcome) {
    let claimed = job.claimed();
    match end {
        RunEnd::Finished(Ok(response)) => {
            let mut outcome = JobOutcome::Succeeded;
            if !job.completed_in_handler() {
                match retry_db(|| store.complete(&claimed.lease)).await {
                    Ok(true) => {}
                    Ok(false) => {
                        outcome = JobOutcome::LeaseLost;
                        tracing::warn!("job finished but its lease was lost; its completion was not recorded");
                    }
                    Err(e) => tracing::error!(error = %e, "could not record completion; the lease will expire and the job run again"),
                }
            }
            tracing::debug!("job succeeded");
            (Ok(response), outcome)
        }
        RunEnd::Finished(Err(err)) => {
            let permanent = matches!(err.downcast_ref::<JobError>(), Some(JobError::Permanent(_)));
            let message = err.to_string();
            let outcome = log_failure(retry_db(|| store.fail(claimed, &message, permanent)).await, &message);
            (Err(err), outcome)
        }
        RunEnd::Panicked(message) => {
            let message = format!("handler panicked: {message}");
            let outcome = log_failure(retry_db(|| store.fail(claimed, &message, false)).await, &message);
            (Err(message.into()), outcome)
        }
        RunEnd::LeaseLost => (Err(QueueError::LeaseLost(claimed.lease.job_id).into()), JobOutcome::LeaseLost),
        RunEnd::Aborted => {
            match retry_db(|| store.release(&claimed.lease)).await {
                Ok(_) => tracing::info!("shutdown deadline: job released for another worker"),
                Err(e) => tracing::error!(error = %e, "could not release job; its lease will expire"),
            }
            (Err("aborted at shutdown deadline".into()), JobOutcome::Released)
        }
    }
}

fn log_failure(outcome: Result<FailOutcome, QueueError>, message: &str) -> JobOutcome {
    match outcome {
        Ok(FailOutcome::Retrying { run_at }) => {
            tracing::warn!(error = message, %run_at, "job failed; will retry");
            JobOutcome::Retrying
        }
        Ok(FailOutcome::Dead) => {
            tracing::error!(error = message, "job failed for good; it is dead and needs an operator");
            JobOutcome::Dead
        }
        Ok(FailOutcome::LeaseLost) => {
            tracing::warn!(error = message, "job failed after its lease was lost");
            JobOutcome::LeaseLost
        }
        Err(e) => {
            // Not recorded: the lease expires and the job runs again, as a retry would.
            tracing::error!(error = %e, "could not record failure; the lease will expire and the job run again");
            JobOutcome::Retrying
        }
    }
}

/// Retries a bookkeeping write a few times over a few seconds when the database is briefly
/// away, so a blip does not cost a whole lease period.
async fn retry_db<T, F, Fut>(mut op: F) -> Result<T, QueueError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, QueueError>>,
{
    let mut delay = Duration::from_millis(50);
    for _ in 0..6 {
        match op().await {
            Err(e) if e.is_transient() => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    op().await
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}
