//! The loop every `serve`/`worker` process runs for each duty: wait until it is due, take
//! its lease, run it while renewing the lease, record the result, give the lease back.
//!
//! "Due" is read from the shared row (`last_finished_at + every`), so however many processes
//! run the loop, a duty runs about once per interval, and a restart does not re-run a duty
//! that ran a minute ago. A failed run (e.g. Stripe is down) is recorded with its error and
//! the next one, an interval later, catches up from the checkpoint. A run whose lease is
//! lost (the process stalled past its ttl and another took over) is abandoned; a process
//! asked to stop abandons its run too and gives the lease back.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;

use crate::store::{self, RunRecord};
use subsync_queue::Store;

/// What a run is told: who runs it and when it started.
#[derive(Debug, Clone)]
pub struct DutyRun {
    /// The process running it.
    pub runner: String,
}

/// The work of a duty: what the run did (JSON, for operators) or why it failed.
pub type DutyTask = Arc<dyn Fn(DutyRun) -> BoxFuture<'static, Result<serde_json::Value, String>> + Send + Sync>;

/// A duty to run on a schedule.
#[derive(Clone)]
pub struct Duty {
    /// Its name (the row's key): `reconcile`, `prune`.
    pub name: &'static str,
    /// How often it runs.
    pub every: Duration,
    /// How long a lease lasts unless renewed (renewed every third of it while running).
    pub lease: Duration,
    /// How often a waiting process looks again (bounded by `every`).
    pub poll: Duration,
    /// The work.
    pub task: DutyTask,
}

impl std::fmt::Debug for Duty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Duty").field("name", &self.name).field("every", &self.every).finish_non_exhaustive()
    }
}

impl Duty {
    /// A duty running `task` every `every`, with a 60 s lease and a 30 s poll.
    pub fn new(name: &'static str, every: Duration, task: DutyTask) -> Self {
        Self { name, every, lease: Duration::from_secs(60), poll: Duration::from_secs(30), task }
    }
}

/// Runs `duty` for as long as `shutdown` is pending, as `holder` (unique per process).
pub async fn run_every(store: Store, duty: Duty, holder: String, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    let poll = duty.poll.min(duty.every).max(Duration::from_millis(10));
    loop {
        let wait = match due_in(&store, &duty).await {
            Ok(Duration::ZERO) => match turn(&store, &duty, &holder, &mut shutdown).await {
                Turn::Stop => return,
                Turn::Ran | Turn::Busy => poll,
            },
            Ok(wait) => wait.min(poll),
            Err(e) => {
                tracing::warn!(duty = duty.name, error = %e, "cannot read the duty's schedule; trying again");
                poll
            }
        };
        // A little jitter so processes started together do not all ask at once.
        let jitter = Duration::from_millis(fastrand::u64(0..=wait.as_millis().min(1000) as u64 / 10));
        tokio::select! {
            () = tokio::time::sleep(wait + jitter) => {}
            () = &mut shutdown => return,
        }
    }
}

/// How long until `duty` is due again (zero when due now).
async fn due_in(store: &Store, duty: &Duty) -> Result<Duration, subsync_queue::QueueError> {
    let Some(status) = store::get(store, duty.name).await? else { return Ok(Duration::ZERO) };
    let Some(finished) = status.last_finished_at else { return Ok(Duration::ZERO) };
    let every = chrono::Duration::from_std(duty.every).unwrap_or(chrono::Duration::MAX);
    let due = finished.checked_add_signed(every).unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
    Ok((due - Utc::now()).to_std().unwrap_or(Duration::ZERO))
}

enum Turn {
    Ran,
    Busy,
    Stop,
}

async fn turn(
    store: &Store,
    duty: &Duty,
    holder: &str,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Turn {
    let lease = match store::try_lease(store, duty.name, holder, duty.lease).await {
        Ok(Some(lease)) => lease,
        Ok(None) => return Turn::Busy,
        Err(e) => {
            tracing::warn!(duty = duty.name, error = %e, "cannot take the duty's lease; trying again");
            return Turn::Busy;
        }
    };
    // Another process may have finished a run between our check and our lease.
    if !matches!(due_in(store, duty).await, Ok(Duration::ZERO)) {
        release(lease).await;
        return Turn::Busy;
    }
    let started_at = Utc::now();
    tracing::info!(duty = duty.name, "duty started");
    let work = (duty.task)(DutyRun { runner: holder.to_owned() });
    let keep = keep_lease(&lease);
    let result = tokio::select! {
        result = work => result,
        lost = keep => Err(lost),
        () = shutdown.as_mut() => {
            tracing::info!(duty = duty.name, "duty abandoned: shutting down (the next run repeats its window)");
            release(lease).await;
            return Turn::Stop;
        }
    };
    let finished_at = Utc::now();
    match &result {
        Ok(summary) => tracing::info!(duty = duty.name, %summary, "duty finished"),
        Err(error) => tracing::warn!(duty = duty.name, %error, "duty failed"),
    }
    let record = RunRecord { runner: holder, started_at, finished_at, result: result.as_ref().map_err(String::as_str) };
    if let Err(e) = store::record_run(store, duty.name, &record).await {
        tracing::warn!(duty = duty.name, error = %e, "cannot record the duty's run");
    }
    release(lease).await;
    Turn::Ran
}

/// Renews `lease` every third of its ttl; resolves only if it is lost.
async fn keep_lease(lease: &store::Lease) -> String {
    let period = lease_period(lease);
    loop {
        tokio::time::sleep(period).await;
        match lease.renew().await {
            Ok(true) => {}
            Ok(false) => return format!("lost the {} lease (another process took it over)", lease.name()),
            Err(e) => tracing::warn!(duty = lease.name(), error = %e, "cannot renew the duty's lease"),
        }
    }
}

fn lease_period(lease: &store::Lease) -> Duration {
    (lease.ttl() / 3).max(Duration::from_millis(10))
}

async fn release(lease: store::Lease) {
    let name = lease.name().to_owned();
    if let Err(e) = lease.release().await {
        tracing::warn!(duty = %name, error = %e, "cannot release the duty's lease (it expires by itself)");
    }
}
