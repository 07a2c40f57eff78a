//! [`LeaseLayer`]: renews a job's lease while its handler runs, aborts the handler if the
//! lease is lost, and records the outcome with a compare-and-set on the lease.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_core::error::BoxDynError;
use apalis_core::task::Task;
use futures::FutureExt;
use tokio::sync::watch;
use tower_layer::Layer;
use tower_service::Service;

use super::{InFlight, JobObserver, JobOutcome};
use crate::error::QueueError;
use crate::job::{Job, JobError};
use crate::model::FailOutcome;
use crate::store::Store;

/// Holds a job's lease for the length of its handler and records the outcome.
#[derive(Clone)]
pub struct LeaseLayer {
    pub(super) store: Store,
    pub(super) inflight: Arc<InFlight>,
    pub(super) abort: watch::Receiver<bool>,
    pub(super) observer: Option<Arc<dyn JobObserver>>,
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
