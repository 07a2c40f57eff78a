//! The storage interface every database implements ([`Driver`]), like River's driver: the
//! queue logic above it (retry decisions, lease rescue, wake-ups) never sees SQL, and one
//! conformance suite (`crates/queue/tests/conformance.rs`) holds every implementation to it.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::QueueError;
use crate::model::{
    ClaimedJob, EnqueueOutcome, FailOutcome, JobFilter, JobId, JobRecord, Lease, NewJob, Page, RunningGroup, StateCount,
};

/// A running job whose lease ran out: the worker died or lost the database.
#[derive(Debug, Clone)]
pub(crate) struct ExpiredLease {
    pub lease: Lease,
    pub attempts: u32,
    pub max_attempts: u32,
}

/// How many free groups a claim for `limit` jobs looks at: more than it takes, so groups that
/// just went idle (and are probed once more before they drop out) never hide due work.
pub(crate) fn probe_size(limit: u32) -> u32 {
    limit.saturating_mul(2).saturating_add(16)
}

/// Which jobs an operator action applies to.
#[derive(Debug, Clone)]
pub enum Selection {
    /// These jobs.
    Ids(Vec<JobId>),
    /// Every job matching the filter.
    Filter(JobFilter),
}

/// The storage interface every database implements. The queue never issues SQL itself.
///
/// Every state change of a running job is a compare-and-set on `(job id, lease token, state =
/// running)`; a group is released in the same transaction as its running job's state change.
pub(crate) trait Driver: Send + Sync {
    /// The connection type a caller's transaction runs on.
    type Conn: Send;

    /// Inserts a job unless its unique key exists; marks its group due. Runs in the caller's
    /// transaction.
    fn enqueue(
        &self,
        conn: &mut Self::Conn,
        job: &NewJob,
        id: JobId,
        max_attempts: u32,
    ) -> impl Future<Output = Result<EnqueueOutcome, QueueError>> + Send;

    /// Enqueues several jobs in the caller's transaction; outcomes in input order. A key
    /// repeated within `jobs` creates one job and reports the later ones as duplicates.
    /// By default one [`Driver::enqueue`] per job; a dialect may do it in fewer statements.
    fn enqueue_many(
        &self,
        conn: &mut Self::Conn,
        jobs: &[(NewJob, JobId, u32)],
    ) -> impl Future<Output = Result<Vec<EnqueueOutcome>, QueueError>> + Send {
        async move {
            let mut outcomes = Vec::with_capacity(jobs.len());
            for (job, id, max_attempts) in jobs {
                outcomes.push(self.enqueue(conn, job, *id, *max_attempts).await?);
            }
            Ok(outcomes)
        }
    }

    /// Marks a running job succeeded and frees its group, in the caller's transaction.
    /// `false` when the lease is no longer the job's.
    fn complete(&self, conn: &mut Self::Conn, lease: &Lease) -> impl Future<Output = Result<bool, QueueError>> + Send;

    /// Claims up to `limit` jobs: the oldest due pending job of each free, due group. Also
    /// returns how many groups it found idle (a stale lower-bound `next_run_at`, now
    /// corrected).
    fn claim(
        &self,
        queue: &str,
        worker: &str,
        limit: u32,
        lease_for: Duration,
    ) -> impl Future<Output = Result<(Vec<ClaimedJob>, usize), QueueError>> + Send;

    /// Extends a lease; `false` when it is no longer ours.
    fn heartbeat(&self, lease: &Lease, lease_for: Duration) -> impl Future<Output = Result<bool, QueueError>> + Send;

    /// Records a failed attempt: back to pending after `retry_in`, or dead when `None`.
    fn fail(
        &self,
        lease: &Lease,
        error: &str,
        retry_in: Option<Duration>,
    ) -> impl Future<Output = Result<FailOutcome, QueueError>> + Send;

    /// Gives a job back untouched (shutdown before it ran to the end): pending now, and the
    /// attempt it started is not counted.
    fn release(&self, lease: &Lease) -> impl Future<Output = Result<bool, QueueError>> + Send;

    /// Running jobs whose lease has run out.
    fn expired_leases(&self, limit: u32) -> impl Future<Output = Result<Vec<ExpiredLease>, QueueError>> + Send;

    /// One job.
    fn get(&self, id: JobId) -> impl Future<Output = Result<Option<JobRecord>, QueueError>> + Send;

    /// The job holding a unique key.
    fn find_by_key(&self, queue: &str, key: &str)
    -> impl Future<Output = Result<Option<JobRecord>, QueueError>> + Send;

    /// A page of jobs matching the filter, newest first.
    fn list(&self, filter: &JobFilter, page: Page) -> impl Future<Output = Result<Vec<JobRecord>, QueueError>> + Send;

    /// How many jobs match the filter.
    fn count(&self, filter: &JobFilter) -> impl Future<Output = Result<u64, QueueError>> + Send;

    /// Dead or cancelled → pending with a fresh attempt budget; pending in backoff → due now.
    /// Returns how many jobs changed.
    fn retry(&self, selection: &Selection) -> impl Future<Output = Result<u64, QueueError>> + Send;

    /// Pending or dead → cancelled. Running jobs are left alone.
    fn cancel(&self, selection: &Selection) -> impl Future<Output = Result<u64, QueueError>> + Send;

    /// Jobs per queue and state.
    fn counts(&self) -> impl Future<Output = Result<Vec<StateCount>, QueueError>> + Send;

    /// The `run_at` of the oldest pending job that is due now.
    fn oldest_due(&self, queue: Option<&str>)
    -> impl Future<Output = Result<Option<DateTime<Utc>>, QueueError>> + Send;

    /// Groups with a running job.
    fn running_groups(&self) -> impl Future<Output = Result<Vec<RunningGroup>, QueueError>> + Send;

    /// Deletes finished jobs older than `before` (succeeded and cancelled; dead too when
    /// asked), and group rows with nothing left. Returns jobs deleted.
    fn prune(&self, before: DateTime<Utc>, include_dead: bool) -> impl Future<Output = Result<u64, QueueError>> + Send;

    /// The migration versions recorded as applied; `None` when the migrations table does not
    /// exist. Reads only: creates nothing.
    fn applied_migrations(&self) -> impl Future<Output = Result<Option<Vec<i64>>, QueueError>> + Send;

    /// A round trip, for readiness probes.
    fn ping(&self) -> impl Future<Output = Result<(), QueueError>> + Send;
}
