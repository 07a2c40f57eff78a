//! The claim loop: [`QueueBackend`] claims due jobs, never more than there are free slots,
//! with up to two claims in flight, and hands them to apalis as a stream.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::watch;

use super::{AbortHandle, InFlight, LeaseLayer, WorkerOptions};
use crate::error::QueueError;
use crate::job::Job;
use crate::model::ClaimedJob;
use crate::store::Store;

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
        AbortHandle { tx: self.abort.clone(), inflight: self.inflight.clone() }
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
            let inflight = self.inflight.clone();
            inflight.giving_back.fetch_add(1, Ordering::SeqCst);
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
                inflight.giving_back.fetch_sub(1, Ordering::SeqCst);
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
        let (store, inflight) = (self.store.clone(), self.inflight.clone());
        inflight.giving_back.fetch_add(1, Ordering::SeqCst);
        let mut fut = Box::pin(async move {
            let mut result = Ok(());
            for job in leftovers {
                if let Err(e) = store.release(&job.lease).await {
                    result = Err(e);
                    break;
                }
            }
            inflight.giving_back.fetch_sub(1, Ordering::SeqCst);
            result
        });
        match fut.as_mut().poll(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => {
                // Finish the release in the background (the worker's `settled` waits for it);
                // closing must not block on it.
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
