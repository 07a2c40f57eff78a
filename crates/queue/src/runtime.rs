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

/// Claims a worker may have in flight at once. A claim is one round trip; with two, the
/// next claim is already on its way while the previous one's jobs start, so a single slow
/// claim does not leave freed slots idle (the claim loop was the drain bottleneck).
const CLAIMS_IN_FLIGHT: usize = 2;

/// Jobs claimed but not yet handed to the service. Once `closed`, a claim that lands late
/// gives its jobs back instead of leaving them here until their leases expire.
#[derive(Debug, Default)]
struct Claimed {
    jobs: VecDeque<ClaimedJob>,
    closed: bool,
}

/// The subsync queue as an apalis [`Backend`]. Emits `Task<Job>`; pair it with a handler
/// `async fn(Job) -> Result<(), JobError>`.
pub struct QueueBackend {
    store: Store,
    options: WorkerOptions,
    inflight: Arc<InFlight>,
    stream: Option<BoxStream<'static, Result<Task<Job>, QueueError>>>,
    buffered: Arc<std::sync::Mutex<Claimed>>,
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
        let (reports_tx, reports) = tokio::sync::mpsc::unbounded_channel();
        let state = Claimer {
            store: self.store.clone(),
            options: self.options.clone(),
            inflight: self.inflight.clone(),
            buffered: self.buffered.clone(),
            wake: self.store.subscribe(),
            last_rescue: None,
            reports_tx,
            reports,
            claims: 0,
            reserved: 0,
            idle: false,
            backoff: INITIAL_BACKOFF,
            paused_until: None,
        };
        futures::stream::unfold(state, |mut claimer| async move {
            let next = claimer.next().await;
            Some((next, claimer))
        })
        .boxed()
    }
}

/// First delay after a failed claim; doubles up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How a claim task ended, told to the claim loop.
struct ClaimReport {
    /// Slots the claim had reserved.
    reserved: usize,
    outcome: Result<usize, QueueError>,
}

/// The claim loop's state.
struct Claimer {
    store: Store,
    options: WorkerOptions,
    inflight: Arc<InFlight>,
    buffered: Arc<std::sync::Mutex<Claimed>>,
    wake: crate::store::WakeSubscription,
    last_rescue: Option<tokio::time::Instant>,
    reports_tx: tokio::sync::mpsc::UnboundedSender<ClaimReport>,
    reports: tokio::sync::mpsc::UnboundedReceiver<ClaimReport>,
    /// Claims in flight.
    claims: usize,
    /// Slots promised to claims in flight (their jobs may already sit in `buffered`).
    reserved: usize,
    /// The last claim found nothing: wait for a wake-up before claiming again.
    idle: bool,
    backoff: Duration,
    /// After a failed claim: no new claim before then.
    paused_until: Option<tokio::time::Instant>,
}

impl Claimer {
    fn pop_buffered(&self) -> Option<ClaimedJob> {
        self.buffered.lock().ok()?.jobs.pop_front()
    }

    async fn next(&mut self) -> Result<Task<Job>, QueueError> {
        loop {
            if let Some(claimed) = self.pop_buffered() {
                self.inflight.running.fetch_add(1, Ordering::SeqCst);
                let job_id = claimed.lease.job_id;
                let job = Job::new(claimed, self.store.clone());
                return Ok(TaskBuilder::new(job).task_id(TaskId::Uuid(job_id)).build());
            }
            self.maybe_rescue().await;
            self.launch_claims();
            if self.claims == 0 {
                if self.idle {
                    self.wake.wait(self.options.poll_interval).await;
                    self.idle = false;
                } else if let Some(until) = self.paused_until.take() {
                    tokio::time::sleep_until(until).await;
                } else {
                    // Every slot is taken: wait for one to free up.
                    let _ = tokio::time::timeout(self.options.poll_interval, self.inflight.freed.notified()).await;
                }
                continue;
            }
            tokio::select! {
                Some(report) = self.reports.recv() => self.on_report(report),
                () = self.inflight.freed.notified() => {}
            }
        }
    }

    /// Starts claims for free slots, at most [`CLAIMS_IN_FLIGHT`] at once. Each claim task
    /// puts its jobs in `buffered` itself, so a claim that lands after the stream is gone
    /// still gives its jobs back.
    fn launch_claims(&mut self) {
        if self.idle || self.paused_until.is_some_and(|t| t > tokio::time::Instant::now()) {
            return;
        }
        self.paused_until = None;
        while self.claims < CLAIMS_IN_FLIGHT {
            let running = self.inflight.running.load(Ordering::SeqCst);
            let free = self.options.concurrency.saturating_sub(running + self.reserved);
            if free == 0 {
                return;
            }
            let limit = free.min(self.options.batch.max(1) as usize);
            self.claims += 1;
            self.reserved += limit;
            let (store, buffered, reports) = (self.store.clone(), self.buffered.clone(), self.reports_tx.clone());
            let (queue, worker) = (self.options.queue.clone(), self.options.worker_id.clone());
            tokio::spawn(async move {
                let outcome = match store.claim(&queue, &worker, limit as u32).await {
                    Ok(jobs) => {
                        let n = jobs.len();
                        let late = match buffered.lock() {
                            Ok(mut b) if !b.closed => {
                                b.jobs.extend(jobs);
                                Vec::new()
                            }
                            _ => jobs,
                        };
                        for job in late {
                            if let Err(e) = store.release(&job.lease).await {
                                tracing::warn!(error = %e, job_id = %job.lease.job_id, "could not give back a job claimed during shutdown; its lease will expire");
                            }
                        }
                        Ok(n)
                    }
                    Err(e) => Err(e),
                };
                let _ = reports.send(ClaimReport { reserved: limit, outcome });
            });
        }
    }

    fn on_report(&mut self, report: ClaimReport) {
        self.claims -= 1;
        self.reserved -= report.reserved;
        match report.outcome {
            Ok(0) => self.idle = true,
            Ok(_) => {
                self.idle = false;
                self.backoff = INITIAL_BACKOFF;
            }
            Err(e) => {
                // The database is away: keep the worker alive and try again with backoff.
                tracing::warn!(error = %e, queue = %self.options.queue, "claim failed; retrying");
                self.paused_until = Some(tokio::time::Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    async fn maybe_rescue(&mut self) {
        let due = self.last_rescue.is_none_or(|at| at.elapsed() >= self.options.rescue_interval);
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
            if let Ok(mut buf) = self.buffered.lock() {
                buf.closed = false;
            }
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
            Ok(mut buf) => {
                buf.closed = true;
                buf.jobs.drain(..).collect()
            }
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
                    Err(e) => {
                        tracing::error!(error = %e, "could not record completion; the lease will expire and the job run again")
                    }
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
