//! Storage: one [`Driver`] interface, one implementation per database, and the [`Store`]
//! facade that the rest of subsync uses without knowing which database is behind it.
//!
//! The queue logic lives above the drivers (retry decisions, lease rescue, wake-ups); the
//! drivers only speak their SQL dialect. Both pass the same conformance suite
//! (`crates/queue/tests/conformance.rs`).

mod backup;
mod driver;
mod pg_batch;
mod postgres;
mod sqlite;
mod tx;
mod wake;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::QueueConfig;
use crate::dialect::{Dialect, Pool};
use crate::error::QueueError;
use crate::model::{
    ClaimedJob, EnqueueOutcome, FailOutcome, JobFilter, JobId, JobRecord, Lease, NewJob, Page, RunningGroup, StateCount,
};
use crate::schema::{self, Backend};

pub use backup::BackupSummary;
pub use driver::Selection;
pub(crate) use driver::{Driver, ExpiredLease, probe_size};
pub use pg_batch::PgJobBatch;
use tx::WakeScope;
pub use tx::{Savepoint, Tx};
pub use wake::WakeSubscription;

/// The driver behind a store, in its dialect.
type Db = Dialect<sqlite::SqliteDriver, postgres::PgDriver>;

/// Runs the same call on whichever driver is behind the store.
macro_rules! dispatch {
    ($self:expr, $d:ident => $call:expr) => {
        match &$self.inner.db {
            Dialect::Sqlite($d) => $call,
            Dialect::Postgres($d) => $call,
        }
    };
}

#[derive(Debug)]
struct Inner {
    db: Db,
    config: QueueConfig,
    wake: wake::Wake,
}

/// Options for [`Store::connect`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections in the pool (PostgreSQL; SQLite readers).
    pub max_connections: u32,
    /// How long to wait for a connection (and, on SQLite, for the write lock) before
    /// reporting the database unavailable.
    pub acquire_timeout: Duration,
    /// Queue settings.
    pub config: QueueConfig,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout: Duration::from_secs(5), config: QueueConfig::default() }
    }
}

/// The queue's handle on its database. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Connects to `url` (`sqlite:path`, `sqlite::memory:`, `postgres://…`) and checks it
    /// answers. Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, QueueError> {
        let db = if url.starts_with("sqlite:") {
            Dialect::Sqlite(sqlite::SqliteDriver::connect(url, &options).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres(postgres::PgDriver::connect(url, &options).await?)
        } else {
            return Err(QueueError::InvalidUrl(format!(
                "`{}` is neither `sqlite:<path>` nor `postgres://…`",
                redact_url(url)
            )));
        };
        let wake = match &db {
            Dialect::Sqlite(_) => wake::Wake::local(),
            Dialect::Postgres(pg) => wake::Wake::postgres(pg.pool().clone()),
        };
        Ok(Self { inner: Arc::new(Inner { db, config: options.config, wake }) })
    }

    /// Applies every embedded migration not yet applied. Safe to run from several processes.
    pub async fn migrate(&self) -> Result<(), QueueError> {
        let migrator = schema::migrator(self.backend());
        match &self.inner.db {
            Dialect::Sqlite(d) => migrator.run(d.pool()).await?,
            Dialect::Postgres(d) => migrator.run(d.pool()).await?,
        }
        Ok(())
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match &self.inner.db {
            Dialect::Sqlite(_) => Backend::Sqlite,
            Dialect::Postgres(_) => Backend::Postgres,
        }
    }

    /// The queue settings this store was opened with.
    pub fn config(&self) -> &QueueConfig {
        &self.inner.config
    }

    /// The connection pool in its dialect, for the tables other crates keep beside the queue
    /// (read with [`on_dialect!`](crate::on_dialect)).
    pub fn pool(&self) -> Pool<'_> {
        match &self.inner.db {
            Dialect::Sqlite(d) => Dialect::Sqlite(d.pool()),
            Dialect::Postgres(d) => Dialect::Postgres(d.pool()),
        }
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`, serialized in-process first) so a transaction that reads before it writes
    /// can never fail half-way with `SQLITE_BUSY`.
    pub async fn begin(&self) -> Result<Tx, QueueError> {
        let (inner, writer) = match &self.inner.db {
            Dialect::Sqlite(d) => {
                let (tx, guard) = d.begin_write().await?;
                (Dialect::Sqlite(tx), Some(guard))
            }
            Dialect::Postgres(d) => (Dialect::Postgres(d.pool().begin().await?), None),
        };
        Ok(Tx {
            inner,
            store: self.clone(),
            wake: WakeScope::None,
            on_commit: Vec::new(),
            _writer: writer,
            savepoints: 0,
        })
    }

    /// Enqueues a job in the caller's transaction: the job exists if and only if the caller
    /// commits. Concurrent enqueues of one unique key create exactly one job and never fail.
    pub async fn enqueue(&self, tx: &mut Tx, job: NewJob) -> Result<EnqueueOutcome, QueueError> {
        let (job, id, max_attempts) = self.prepare(job)?;
        let outcome = match (&self.inner.db, &mut tx.inner) {
            (Dialect::Sqlite(d), Dialect::Sqlite(t)) => d.enqueue(t, &job, id, max_attempts).await?,
            (Dialect::Postgres(d), Dialect::Postgres(t)) => d.enqueue(t, &job, id, max_attempts).await?,
            _ => return Err(mixed_backends()),
        };
        if !outcome.is_duplicate() {
            tx.wake = WakeScope::Everywhere;
        }
        Ok(outcome)
    }

    /// Enqueues several jobs in the caller's transaction, as [`Store::enqueue`] does each one;
    /// outcomes in input order. On PostgreSQL this is two statements whatever the number of
    /// jobs (the insert is [`PgJobBatch`]'s, so its tests cover that SQL too). A key repeated
    /// within `jobs` creates one job; the later copies come back as duplicates of it. If any
    /// job is invalid, nothing is enqueued.
    pub async fn enqueue_many(&self, tx: &mut Tx, jobs: Vec<NewJob>) -> Result<Vec<EnqueueOutcome>, QueueError> {
        let prepared = jobs.into_iter().map(|job| self.prepare(job)).collect::<Result<Vec<_>, _>>()?;
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        let outcomes = match (&self.inner.db, &mut tx.inner) {
            (Dialect::Sqlite(d), Dialect::Sqlite(t)) => d.enqueue_many(t, &prepared).await?,
            (Dialect::Postgres(d), Dialect::Postgres(t)) => d.enqueue_many(t, &prepared).await?,
            _ => return Err(mixed_backends()),
        };
        if outcomes.iter().any(|o| !o.is_duplicate()) {
            tx.wake = WakeScope::Everywhere;
        }
        Ok(outcomes)
    }

    /// Validates `jobs` and lays them out for a caller that enqueues inside its own single
    /// PostgreSQL statement (see [`PgJobBatch`]): one round trip for its rows and their jobs.
    /// After that statement commits, call [`Store::jobs_enqueued`] if it created jobs.
    pub fn pg_job_batch(&self, jobs: Vec<NewJob>) -> Result<PgJobBatch, QueueError> {
        if !matches!(self.inner.db, Dialect::Postgres(_)) {
            return Err(QueueError::InvalidInput("PgJobBatch is for PostgreSQL stores only".into()));
        }
        let prepared = jobs.into_iter().map(|job| self.prepare(job)).collect::<Result<Vec<_>, _>>()?;
        Ok(PgJobBatch::new(&prepared))
    }

    /// Checks a job and fixes what every enqueue path needs: its id (UUID v7, so ids sort by
    /// creation) and its attempt budget (the job's own, else the configured default).
    fn prepare(&self, job: NewJob) -> Result<(NewJob, JobId, u32), QueueError> {
        job.validate()?;
        let max_attempts = job.max_attempts.unwrap_or(self.inner.config.retry.max_attempts);
        Ok((job, uuid::Uuid::now_v7(), max_attempts))
    }

    /// Jobs were enqueued by a statement that has committed outside a [`Tx`] (a
    /// [`PgJobBatch`]): wake this process's workers now and other processes' soon.
    pub fn jobs_enqueued(&self) {
        self.inner.wake.poke();
    }

    /// Enqueues in a transaction of its own and commits.
    pub async fn enqueue_one(&self, job: NewJob) -> Result<EnqueueOutcome, QueueError> {
        if let Dialect::Postgres(d) = &self.inner.db {
            // One statement writes the job and its group: autocommit is atomic and saves the
            // BEGIN/COMMIT round trips.
            let (job, id, max_attempts) = self.prepare(job)?;
            let mut conn = d.pool().acquire().await?;
            let outcome = d.enqueue(&mut conn, &job, id, max_attempts).await?;
            if !outcome.is_duplicate() {
                self.inner.wake.poke();
            }
            return Ok(outcome);
        }
        let mut tx = self.begin().await?;
        let outcome = self.enqueue(&mut tx, job).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Marks a running job succeeded inside the caller's transaction, so the job's effect and
    /// its completion commit together (exactly-once effect). Fails with
    /// [`QueueError::LeaseLost`] if another worker owns the job now: roll back then.
    pub async fn complete_in(&self, tx: &mut Tx, lease: &Lease) -> Result<(), QueueError> {
        let done = match (&self.inner.db, &mut tx.inner) {
            (Dialect::Sqlite(d), Dialect::Sqlite(t)) => d.complete(t, lease).await?,
            (Dialect::Postgres(d), Dialect::Postgres(t)) => d.complete(t, lease).await?,
            _ => return Err(mixed_backends()),
        };
        if !done {
            return Err(QueueError::LeaseLost(lease.job_id));
        }
        // The group is free once this commits. This worker has a free slot then and claims
        // next itself, so a local wake-up is enough (a NOTIFY per completion would cost the
        // database a global lock at every commit).
        tx.wake = tx.wake.max(WakeScope::Local);
        Ok(())
    }

    /// Marks a running job succeeded in a transaction of its own. `false` when the lease was
    /// no longer ours (e.g. the handler already completed it in its own transaction).
    pub async fn complete(&self, lease: &Lease) -> Result<bool, QueueError> {
        let mut tx = self.begin().await?;
        let done = match self.complete_in(&mut tx, lease).await {
            Ok(()) => true,
            Err(QueueError::LeaseLost(_)) => false,
            Err(e) => return Err(e),
        };
        tx.commit().await?;
        Ok(done)
    }

    /// Claims up to `limit` due jobs of `queue` for `worker`, one per group.
    pub async fn claim(&self, queue: &str, worker: &str, limit: u32) -> Result<Vec<ClaimedJob>, QueueError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lease = self.inner.config.lease;
        let mut claimed = Vec::new();
        // A released group keeps a lower-bound `next_run_at` and is probed once more before
        // it drops out; keep going past such groups so they never hide due work. Bounded.
        for _ in 0..8 {
            let want = limit - claimed.len() as u32;
            let (jobs, idle) = dispatch!(self, d => d.claim(queue, worker, want, lease).await)?;
            claimed.extend(jobs);
            if idle == 0 || claimed.len() as u32 >= limit {
                break;
            }
        }
        Ok(claimed)
    }

    /// Renews a lease; `false` means the job is no longer ours and its handler should stop.
    pub async fn heartbeat(&self, lease: &Lease) -> Result<bool, QueueError> {
        let lease_for = self.inner.config.lease;
        dispatch!(self, d => d.heartbeat(lease, lease_for).await)
    }

    /// Records a failed attempt of `job`: retried with backoff, or dead when `permanent` or
    /// when the attempt budget is spent.
    pub async fn fail(&self, job: &ClaimedJob, error: &str, permanent: bool) -> Result<FailOutcome, QueueError> {
        let retry_in = self.retry_delay(job.attempt, job.max_attempts, permanent);
        let outcome = dispatch!(self, d => d.fail(&job.lease, error, retry_in).await)?;
        self.wake_after_release();
        Ok(outcome)
    }

    /// Gives a claimed job back without counting the attempt (graceful shutdown).
    pub async fn release(&self, lease: &Lease) -> Result<bool, QueueError> {
        let released = dispatch!(self, d => d.release(lease).await)?;
        self.wake_after_release();
        Ok(released)
    }

    /// Takes back jobs whose worker stopped renewing its lease: each counts as a failed
    /// attempt (retried with backoff, or dead when out of attempts). Returns how many.
    pub async fn rescue_expired(&self, limit: u32) -> Result<u64, QueueError> {
        let expired = dispatch!(self, d => d.expired_leases(limit).await)?;
        let mut rescued = 0;
        for job in expired {
            let retry_in = self.retry_delay(job.attempts, job.max_attempts, false);
            let outcome = dispatch!(self, d => d.fail(&job.lease, "lease expired: the worker stopped renewing it (crashed, killed or cut off)", retry_in).await)?;
            if outcome != FailOutcome::LeaseLost {
                rescued += 1;
                tracing::warn!(job_id = %job.lease.job_id, group = %job.lease.group_key, ?outcome, "recovered job from an expired lease");
            }
        }
        if rescued > 0 {
            self.wake_after_release();
        }
        Ok(rescued)
    }

    fn retry_delay(&self, attempt: u32, max_attempts: u32, permanent: bool) -> Option<Duration> {
        if permanent || attempt >= max_attempts { None } else { Some(self.inner.config.retry.delay_after(attempt)) }
    }

    /// One job, by id.
    pub async fn get(&self, id: JobId) -> Result<Option<JobRecord>, QueueError> {
        dispatch!(self, d => d.get(id).await)
    }

    /// The job that holds `key` in `queue`.
    pub async fn find_by_key(&self, queue: &str, key: &str) -> Result<Option<JobRecord>, QueueError> {
        dispatch!(self, d => d.find_by_key(queue, key).await)
    }

    /// A page of jobs matching `filter`, newest first.
    pub async fn list(&self, filter: &JobFilter, page: Page) -> Result<Vec<JobRecord>, QueueError> {
        page.validate()?;
        dispatch!(self, d => d.list(filter, page).await)
    }

    /// How many jobs match `filter`.
    pub async fn count(&self, filter: &JobFilter) -> Result<u64, QueueError> {
        dispatch!(self, d => d.count(filter).await)
    }

    /// Retries the selected jobs (see [`Driver::retry`]); wakes workers.
    pub async fn retry(&self, selection: &Selection) -> Result<u64, QueueError> {
        let n = dispatch!(self, d => d.retry(selection).await)?;
        if n > 0 {
            self.inner.wake.poke();
        }
        Ok(n)
    }

    /// Cancels the selected pending or dead jobs.
    pub async fn cancel(&self, selection: &Selection) -> Result<u64, QueueError> {
        dispatch!(self, d => d.cancel(selection).await)
    }

    /// Jobs per queue and state.
    pub async fn counts(&self) -> Result<Vec<StateCount>, QueueError> {
        dispatch!(self, d => d.counts().await)
    }

    /// How long the oldest due job has been waiting (zero when none is due).
    pub async fn oldest_due_age(&self, queue: Option<&str>) -> Result<Duration, QueueError> {
        let oldest = dispatch!(self, d => d.oldest_due(queue).await)?;
        Ok(oldest.and_then(|at| (Utc::now() - at).to_std().ok()).unwrap_or_default())
    }

    /// Who holds which group now.
    pub async fn running_groups(&self) -> Result<Vec<RunningGroup>, QueueError> {
        dispatch!(self, d => d.running_groups().await)
    }

    /// Deletes finished jobs past the retention window. Unique keys of jobs inside the window
    /// stay, so a late duplicate is still recognised.
    pub async fn prune(&self, include_dead: bool) -> Result<u64, QueueError> {
        let retention = chrono::Duration::from_std(self.inner.config.retention)
            .map_err(|_| QueueError::InvalidInput("retention is too long".into()))?;
        self.prune_before(Utc::now() - retention, include_dead).await
    }

    /// Deletes finished jobs that finished before `before`.
    pub async fn prune_before(&self, before: DateTime<Utc>, include_dead: bool) -> Result<u64, QueueError> {
        dispatch!(self, d => d.prune(before, include_dead).await)
    }

    /// How the database's schema compares with the migrations this binary embeds. Reads
    /// only: it creates nothing, not even the migrations table, so it is safe on any
    /// database (operator commands check it instead of migrating).
    pub async fn schema_status(&self) -> Result<schema::SchemaStatus, QueueError> {
        let applied = dispatch!(self, d => d.applied_migrations().await)?;
        Ok(schema::status(self.backend(), applied.as_deref()))
    }

    /// Writes a consistent hot copy of the embedded SQLite database to `dest` (a new file)
    /// and checks the copy opens whole. A PostgreSQL database is backed up with its own
    /// tools (`pg_dump`, or the provider's snapshots): that is refused with a message saying so.
    pub async fn backup_to(&self, dest: &std::path::Path) -> Result<BackupSummary, QueueError> {
        match &self.inner.db {
            Dialect::Sqlite(d) => backup::sqlite_backup(d.pool(), dest).await,
            Dialect::Postgres(_) => Err(QueueError::InvalidInput(
                "this is a PostgreSQL database: back it up with pg_dump (e.g. `pg_dump -Fc -f subsync.dump \"$DATABASE_URL\"`) \
                 or your provider's snapshots; `subsync backup` copies the embedded SQLite database"
                    .into(),
            )),
        }
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), QueueError> {
        dispatch!(self, d => d.ping().await)
    }

    /// Wake-ups for a worker: fires after jobs are enqueued, retried or released (in this
    /// process, and on PostgreSQL in any process via LISTEN/NOTIFY).
    pub fn subscribe(&self) -> WakeSubscription {
        self.inner.wake.subscribe()
    }

    fn wake_after_release(&self) {
        // A group was freed: the same group's next job may be due now.
        self.inner.wake.poke();
    }
}

fn mixed_backends() -> QueueError {
    QueueError::InvalidInput("transaction belongs to a different database than the store".into())
}

/// Hides the password in a database URL before it reaches a log or an error message.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/subsync"), "postgres://app:***@db:5432/subsync");
        assert_eq!(redact_url("postgres://db/subsync"), "postgres://db/subsync");
        assert_eq!(redact_url("sqlite:subsync.db"), "sqlite:subsync.db");
    }
}
