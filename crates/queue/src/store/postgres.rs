//! The PostgreSQL dialect: many intakes and workers on many machines share one database.
//!
//! Claims lock only the group rows they take (`FOR UPDATE SKIP LOCKED`), never a table.
//! Times come from the database clock (`now()`), so machines with skewed clocks agree.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, QueryBuilder, Row};
use uuid::Uuid;

use super::{Driver, ExpiredLease, PgJobBatch, Selection, StoreOptions, probe_size};
use crate::error::QueueError;
use crate::model::{
    ClaimedJob, EnqueueOutcome, FailOutcome, JobFilter, JobId, JobRecord, JobState, Lease, NewJob, Page, RunningGroup,
    StateCount,
};
use crate::schema::MIGRATIONS_TABLE;

#[derive(Debug)]
pub(crate) struct PgDriver {
    pool: PgPool,
}

const JOB_COLUMNS: &str = "id, queue, unique_key, group_key, payload, state, attempts, max_attempts, \
     run_at, created_at, started_at, finished_at, lease_owner, lease_expires_at, last_error";

impl PgDriver {
    pub(crate) async fn connect(url: &str, options: &StoreOptions) -> Result<Self, QueueError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| QueueError::InvalidUrl(e.to_string()))?
            .application_name("subsync");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(options.acquire_timeout)
            // No ping on every checkout: it is a round trip per transaction (a fifth of a
            // job's cost). A connection that died with the server fails its first statement
            // instead, is dropped from the pool, and that error is transient: the worker
            // retries with backoff, intake answers 503 and Stripe delivers again.
            .test_before_acquire(false)
            .connect_with(connect)
            .await?;
        Ok(Self { pool })
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Inserts `jobs[open]` in one statement (keys already taken are skipped) and marks their
    /// groups due; returns the ids it created. See [`PgJobBatch::ctes`] for the lock order.
    async fn insert_jobs(
        &self,
        conn: &mut PgConnection,
        jobs: &[(NewJob, JobId, u32)],
        open: &[usize],
    ) -> Result<Vec<Uuid>, QueueError> {
        let batch = PgJobBatch::new(open.iter().map(|&i| &jobs[i]));
        let sql = format!("WITH {} SELECT id FROM enqueued", PgJobBatch::ctes(1));
        let rows = batch.bind(sqlx::query(sqlx::AssertSqlSafe(sql))).fetch_all(&mut *conn).await?;
        rows.iter().map(|row| Ok(row.try_get::<Uuid, _>("id")?)).collect()
    }

    /// Groups a claim found without a due job had a stale lower-bound `next_run_at`: set it to
    /// the real next due time (or NULL). Lock first, count in a second statement: its fresh
    /// snapshot sees every enqueue that committed before we got the lock, and an enqueue
    /// still in flight lowers `next_run_at` itself after we let go.
    async fn recount_idle_groups(&self, queue: &str, groups: &[String]) -> Result<(), QueueError> {
        let mut tx = self.pool.begin().await?;
        let locked: Vec<String> = sqlx::query_scalar(
            "SELECT group_key FROM subsync_groups WHERE queue = $1 AND group_key = ANY($2) \
             AND running_job_id IS NULL FOR UPDATE SKIP LOCKED",
        )
        .bind(queue)
        .bind(groups)
        .fetch_all(&mut *tx)
        .await?;
        if !locked.is_empty() {
            sqlx::query(
                "UPDATE subsync_groups g SET next_run_at = \
                   (SELECT min(run_at) FROM subsync_jobs j \
                    WHERE j.queue = g.queue AND j.group_key = g.group_key AND j.state = 'pending') \
                 WHERE g.queue = $1 AND g.group_key = ANY($2)",
            )
            .bind(queue)
            .bind(&locked)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn decode_state(s: &str) -> Result<JobState, QueueError> {
    JobState::from_str(s).map_err(|_| QueueError::Corrupt(format!("unknown job state `{s}`")))
}

fn decode_job(row: &PgRow) -> Result<JobRecord, QueueError> {
    Ok(JobRecord {
        id: row.try_get("id")?,
        queue: row.try_get("queue")?,
        unique_key: row.try_get("unique_key")?,
        group_key: row.try_get("group_key")?,
        payload: row.try_get("payload")?,
        state: decode_state(row.try_get("state")?)?,
        attempts: row.try_get::<i32, _>("attempts")?.max(0) as u32,
        max_attempts: row.try_get::<i32, _>("max_attempts")?.max(0) as u32,
        run_at: row.try_get("run_at")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires_at: row.try_get("lease_expires_at")?,
        last_error: row.try_get("last_error")?,
    })
}

/// Appends `WHERE …` for a filter (always at least `WHERE TRUE`).
fn push_filter(qb: &mut QueryBuilder<sqlx::Postgres>, filter: &JobFilter) {
    qb.push(" WHERE TRUE");
    if !filter.states.is_empty() {
        let states: Vec<String> = filter.states.iter().map(|s| s.as_str().to_string()).collect();
        qb.push(" AND state = ANY(").push_bind(states).push(")");
    }
    if let Some(queue) = &filter.queue {
        qb.push(" AND queue = ").push_bind(queue.clone());
    }
    if let Some(group) = &filter.group_key {
        qb.push(" AND group_key = ").push_bind(group.clone());
    }
    if let Some(key) = &filter.unique_key {
        qb.push(" AND unique_key = ").push_bind(key.clone());
    }
    if let Some(after) = filter.created_after {
        qb.push(" AND created_at >= ").push_bind(after);
    }
    if let Some(before) = filter.created_before {
        qb.push(" AND created_at < ").push_bind(before);
    }
}

/// Appends the selection as a condition on `id` or on the filter.
fn push_selection(qb: &mut QueryBuilder<sqlx::Postgres>, selection: &Selection) {
    match selection {
        Selection::Ids(ids) => {
            qb.push(" WHERE id = ANY(").push_bind(ids.clone()).push(")");
        }
        Selection::Filter(filter) => push_filter(qb, filter),
    }
}

/// Frees a group after its running job left `running`, in the same statement. `next_run_at`
/// becomes `max(old, now)`: the old value was at most the claim time, so every pending job's
/// `run_at` is either already due (so "due now" is right) or later than both; enqueues and
/// retries only lower it. The group thus stays a correct lower bound and queues behind
/// groups that have waited longer; the next claim that finds it idle recounts it exactly.
const RELEASE_GROUP: &str = "UPDATE subsync_groups g SET running_job_id = NULL, \
       next_run_at = GREATEST(g.next_run_at, now()) FROM changed c \
     WHERE g.queue = c.queue AND g.group_key = c.group_key AND g.running_job_id = c.id";

impl Driver for PgDriver {
    type Conn = PgConnection;

    async fn enqueue(
        &self,
        conn: &mut PgConnection,
        job: &NewJob,
        id: JobId,
        max_attempts: u32,
    ) -> Result<EnqueueOutcome, QueueError> {
        let group = if job.group_key.is_empty() { id.to_string() } else { job.group_key.clone() };
        // Bounded: each pass either inserts, finds the existing row, or saw it vanish between
        // the two statements (its enqueuer rolled back, or it was pruned) and tries again.
        for _ in 0..5 {
            let inserted: Option<Uuid> = sqlx::query_scalar(
                "WITH ins AS ( \
                   INSERT INTO subsync_jobs (id, queue, unique_key, group_key, payload, max_attempts, run_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, now())) \
                   ON CONFLICT (queue, unique_key) DO NOTHING \
                   RETURNING id, run_at \
                 ), grp AS ( \
                   INSERT INTO subsync_groups (queue, group_key, next_run_at) \
                   SELECT $2, $4, run_at FROM ins \
                   ON CONFLICT (queue, group_key) \
                   DO UPDATE SET next_run_at = EXCLUDED.next_run_at \
                 WHERE subsync_groups.next_run_at IS NULL OR subsync_groups.next_run_at > EXCLUDED.next_run_at \
                 ) SELECT id FROM ins",
            )
            .bind(id)
            .bind(&job.queue)
            .bind(&job.unique_key)
            .bind(&group)
            .bind(&job.payload)
            .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
            .bind(job.run_at)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(job_id) = inserted {
                return Ok(EnqueueOutcome::Created { job_id });
            }
            let existing: Option<(Uuid, String)> =
                sqlx::query_as("SELECT id, state FROM subsync_jobs WHERE queue = $1 AND unique_key = $2")
                    .bind(&job.queue)
                    .bind(&job.unique_key)
                    .fetch_optional(&mut *conn)
                    .await?;
            if let Some((job_id, state)) = existing {
                return Ok(EnqueueOutcome::Duplicate { job_id, state: decode_state(&state)? });
            }
        }
        Err(QueueError::InvalidInput(
            "unique key kept appearing and vanishing; is the transaction REPEATABLE READ? enqueue needs READ COMMITTED"
                .into(),
        ))
    }

    async fn enqueue_many(
        &self,
        conn: &mut PgConnection,
        jobs: &[(NewJob, JobId, u32)],
    ) -> Result<Vec<EnqueueOutcome>, QueueError> {
        let mut outcomes: Vec<Option<EnqueueOutcome>> = vec![None; jobs.len()];
        // Bounded like `enqueue`: a pass leaves a job open only if its key vanished between
        // the insert and the lookup (the other enqueuer rolled back, or it was pruned).
        for _ in 0..5 {
            let open: Vec<usize> = (0..jobs.len()).filter(|&i| outcomes[i].is_none()).collect();
            if open.is_empty() {
                break;
            }
            let created = self.insert_jobs(conn, jobs, &open).await?;
            let mut lookups = Vec::new();
            for &i in &open {
                let id = jobs[i].1;
                if created.contains(&id) {
                    outcomes[i] = Some(EnqueueOutcome::Created { job_id: id });
                } else {
                    lookups.push(i);
                }
            }
            if lookups.is_empty() {
                break;
            }
            let queues: Vec<&str> = lookups.iter().map(|&i| jobs[i].0.queue.as_str()).collect();
            let keys: Vec<Option<&str>> = lookups.iter().map(|&i| jobs[i].0.unique_key.as_deref()).collect();
            let rows: Vec<(String, String, Uuid, String)> = sqlx::query_as(
                "SELECT j.queue, j.unique_key, j.id, j.state FROM subsync_jobs j \
                 JOIN unnest($1::text[], $2::text[]) AS k(queue, unique_key) \
                   ON j.queue = k.queue AND j.unique_key = k.unique_key",
            )
            .bind(&queues)
            .bind(&keys)
            .fetch_all(&mut *conn)
            .await?;
            for &i in &lookups {
                let (job, _, _) = &jobs[i];
                let found =
                    rows.iter().find(|(q, k, _, _)| *q == job.queue && Some(k.as_str()) == job.unique_key.as_deref());
                if let Some((_, _, job_id, state)) = found {
                    outcomes[i] = Some(EnqueueOutcome::Duplicate { job_id: *job_id, state: decode_state(state)? });
                }
            }
        }
        outcomes
            .into_iter()
            .map(|o| {
                o.ok_or_else(|| {
                    QueueError::InvalidInput(
                        "unique key kept appearing and vanishing; is the transaction REPEATABLE READ? enqueue needs READ COMMITTED".into(),
                    )
                })
            })
            .collect()
    }

    async fn complete(&self, conn: &mut PgConnection, lease: &Lease) -> Result<bool, QueueError> {
        let sql = format!(
            "WITH changed AS ( \
               UPDATE subsync_jobs SET state = 'succeeded', finished_at = now(), lease_expires_at = NULL, last_error = NULL \
               WHERE id = $1 AND lease_token = $2 AND state = 'running' RETURNING id, queue, group_key \
             ), grp AS ({RELEASE_GROUP}) SELECT count(*) FROM changed"
        );
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(lease.job_id)
            .bind(lease.token)
            .fetch_one(&mut *conn)
            .await?;
        Ok(n == 1)
    }

    async fn claim(
        &self,
        queue: &str,
        worker: &str,
        limit: u32,
        lease_for: Duration,
    ) -> Result<(Vec<ClaimedJob>, usize), QueueError> {
        // One autocommitted statement: lock free, due groups (skipping those another worker
        // is claiming), take the oldest due pending job of each (at most `limit`, oldest
        // first), mark them running. Groups probed beyond `limit` are only looked at.
        // The `= ANY(ARRAY(…))` keeps the group update on the primary key: a plain join is
        // planned as a scan of every group row, which grows with the number of subscriptions.
        // The claim commits asynchronously (no WAL flush wait; `set_config(…, true)` lasts
        // only for this statement's transaction). That is safe: a claim lost in a crash only
        // means the job is pending again, and nothing the handler does can outlive it: its
        // completion commits synchronously, which flushes the WAL up to and past the claim,
        // and if the claim was lost, the completion's lease check fails and rolls it back.
        let token = Uuid::new_v4();
        let rows = sqlx::query(
            "WITH g AS ( \
               SELECT group_key FROM subsync_groups \
               WHERE queue = $1 AND running_job_id IS NULL AND next_run_at <= now() \
               ORDER BY next_run_at LIMIT $2 FOR UPDATE SKIP LOCKED \
             ), heads AS ( \
               SELECT g.group_key, h.id, h.seq FROM g LEFT JOIN LATERAL ( \
                 SELECT j.id, j.seq FROM subsync_jobs j \
                 WHERE j.queue = $1 AND j.group_key = g.group_key AND j.state = 'pending' AND j.run_at <= now() \
                 ORDER BY j.seq LIMIT 1 \
               ) h ON TRUE \
             ), chosen AS ( \
               SELECT id FROM heads WHERE id IS NOT NULL ORDER BY seq LIMIT $3 \
             ), claimed AS ( \
               UPDATE subsync_jobs j SET state = 'running', attempts = j.attempts + 1, lease_owner = $4, \
                 lease_token = $5, lease_expires_at = now() + $6 * interval '1 millisecond', started_at = now() \
               FROM chosen WHERE j.id = chosen.id AND j.state = 'pending' \
               RETURNING j.id, j.group_key, j.unique_key, j.payload, j.attempts, j.max_attempts, j.created_at, j.seq \
             ), grp AS ( \
               UPDATE subsync_groups gg SET running_job_id = c.id FROM claimed c \
               WHERE gg.queue = $1 AND gg.group_key = ANY(ARRAY(SELECT group_key FROM claimed)) \
                 AND gg.group_key = c.group_key \
             ) SELECT heads.group_key AS locked_group, heads.id IS NOT NULL AS has_head, \
                      c.id, c.unique_key, c.payload, c.attempts, c.max_attempts, c.created_at \
               FROM heads LEFT JOIN claimed c ON c.group_key = heads.group_key \
               CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit \
               ORDER BY c.seq",
        )
        .bind(queue)
        .bind(i64::from(probe_size(limit)))
        .bind(i64::from(limit))
        .bind(worker)
        .bind(token)
        .bind(millis(lease_for))
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        let mut idle = Vec::new();
        for row in &rows {
            let group: String = row.try_get("locked_group")?;
            if !row.try_get::<bool, _>("has_head")? {
                idle.push(group);
                continue;
            }
            let Some(id) = row.try_get::<Option<Uuid>, _>("id")? else { continue };
            claimed.push(ClaimedJob {
                lease: Lease { job_id: id, token, queue: queue.to_string(), group_key: group },
                unique_key: row.try_get("unique_key")?,
                payload: row.try_get("payload")?,
                attempt: row.try_get::<i32, _>("attempts")?.max(0) as u32,
                max_attempts: row.try_get::<i32, _>("max_attempts")?.max(0) as u32,
                created_at: row.try_get("created_at")?,
            });
        }
        if !idle.is_empty() {
            self.recount_idle_groups(queue, &idle).await?;
        }
        Ok((claimed, idle.len()))
    }

    async fn heartbeat(&self, lease: &Lease, lease_for: Duration) -> Result<bool, QueueError> {
        Ok(sqlx::query(
            "UPDATE subsync_jobs SET lease_expires_at = now() + $3 * interval '1 millisecond' \
             WHERE id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .bind(lease.job_id)
        .bind(lease.token)
        .bind(millis(lease_for))
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    async fn fail(&self, lease: &Lease, error: &str, retry_in: Option<Duration>) -> Result<FailOutcome, QueueError> {
        let sql = format!(
            "WITH changed AS ( \
               UPDATE subsync_jobs SET \
                 state = CASE WHEN $3::bigint IS NULL THEN 'dead' ELSE 'pending' END, \
                 run_at = CASE WHEN $3::bigint IS NULL THEN run_at ELSE now() + $3 * interval '1 millisecond' END, \
                 finished_at = CASE WHEN $3::bigint IS NULL THEN now() ELSE NULL END, \
                 last_error = $4, lease_expires_at = NULL \
               WHERE id = $1 AND lease_token = $2 AND state = 'running' \
               RETURNING id, queue, group_key, state, run_at \
             ), grp AS ({RELEASE_GROUP}) SELECT state, run_at FROM changed"
        );
        let row: Option<(String, DateTime<Utc>)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(lease.job_id)
            .bind(lease.token)
            .bind(retry_in.map(millis))
            .bind(error)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            None => FailOutcome::LeaseLost,
            Some((state, _)) if state == "dead" => FailOutcome::Dead,
            Some((_, run_at)) => FailOutcome::Retrying { run_at },
        })
    }

    async fn release(&self, lease: &Lease) -> Result<bool, QueueError> {
        let sql = format!(
            "WITH changed AS ( \
               UPDATE subsync_jobs SET state = 'pending', attempts = GREATEST(attempts - 1, 0), \
                 run_at = now(), lease_expires_at = NULL \
               WHERE id = $1 AND lease_token = $2 AND state = 'running' RETURNING id, queue, group_key \
             ), grp AS ({RELEASE_GROUP}) SELECT count(*) FROM changed"
        );
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(lease.job_id)
            .bind(lease.token)
            .fetch_one(&self.pool)
            .await?;
        Ok(n == 1)
    }

    async fn expired_leases(&self, limit: u32) -> Result<Vec<ExpiredLease>, QueueError> {
        let rows = sqlx::query(
            "SELECT id, lease_token, queue, group_key, attempts, max_attempts FROM subsync_jobs \
             WHERE state = 'running' AND lease_expires_at < now() ORDER BY lease_expires_at LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ExpiredLease {
                    lease: Lease {
                        job_id: row.try_get("id")?,
                        token: row.try_get("lease_token")?,
                        queue: row.try_get("queue")?,
                        group_key: row.try_get("group_key")?,
                    },
                    attempts: row.try_get::<i32, _>("attempts")?.max(0) as u32,
                    max_attempts: row.try_get::<i32, _>("max_attempts")?.max(0) as u32,
                })
            })
            .collect()
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, QueueError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM subsync_jobs WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(decode_job).transpose()
    }

    async fn find_by_key(&self, queue: &str, key: &str) -> Result<Option<JobRecord>, QueueError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM subsync_jobs WHERE queue = $1 AND unique_key = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(queue).bind(key).fetch_optional(&self.pool).await?;
        row.as_ref().map(decode_job).transpose()
    }

    async fn list(&self, filter: &JobFilter, page: Page) -> Result<Vec<JobRecord>, QueueError> {
        let mut qb = QueryBuilder::new(format!("SELECT {JOB_COLUMNS} FROM subsync_jobs"));
        push_filter(&mut qb, filter);
        qb.push(" ORDER BY created_at DESC, seq DESC LIMIT ")
            .push_bind(i64::from(page.limit))
            .push(" OFFSET ")
            .push_bind(page.offset as i64);
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter().map(decode_job).collect()
    }

    async fn count(&self, filter: &JobFilter) -> Result<u64, QueueError> {
        let mut qb = QueryBuilder::new("SELECT count(*) FROM subsync_jobs");
        push_filter(&mut qb, filter);
        let n: i64 = qb.build_query_scalar().fetch_one(&self.pool).await?;
        Ok(n.max(0) as u64)
    }

    async fn retry(&self, selection: &Selection) -> Result<u64, QueueError> {
        let mut tx = self.pool.begin().await?;
        let mut qb = QueryBuilder::new(
            "WITH changed AS ( \
               UPDATE subsync_jobs SET state = 'pending', run_at = now(), finished_at = NULL, \
                 attempts = CASE WHEN state = 'pending' THEN attempts ELSE 0 END \
               WHERE id IN (SELECT id FROM subsync_jobs",
        );
        push_selection(&mut qb, selection);
        qb.push(
            " AND (state IN ('dead', 'cancelled') OR (state = 'pending' AND run_at > now())) \
               ORDER BY seq FOR UPDATE) \
               RETURNING queue, group_key \
             ), grp AS ( \
               INSERT INTO subsync_groups (queue, group_key, next_run_at) \
               SELECT DISTINCT queue, group_key, now() FROM changed \
               ON CONFLICT (queue, group_key) \
               DO UPDATE SET next_run_at = EXCLUDED.next_run_at \
                 WHERE subsync_groups.next_run_at IS NULL OR subsync_groups.next_run_at > EXCLUDED.next_run_at \
             ) SELECT count(*) FROM changed",
        );
        let n: i64 = qb.build_query_scalar().fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(n.max(0) as u64)
    }

    async fn cancel(&self, selection: &Selection) -> Result<u64, QueueError> {
        let mut qb = QueryBuilder::new(
            "UPDATE subsync_jobs SET state = 'cancelled', finished_at = now() \
             WHERE id IN (SELECT id FROM subsync_jobs",
        );
        push_selection(&mut qb, selection);
        qb.push(" AND state IN ('pending', 'dead'))");
        Ok(qb.build().execute(&self.pool).await?.rows_affected())
    }

    async fn counts(&self) -> Result<Vec<StateCount>, QueueError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT queue, state, count(*) FROM subsync_jobs GROUP BY queue, state ORDER BY queue, state",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(queue, state, count)| {
                Ok(StateCount { queue, state: decode_state(&state)?, count: count.max(0) as u64 })
            })
            .collect()
    }

    async fn oldest_due(&self, queue: Option<&str>) -> Result<Option<DateTime<Utc>>, QueueError> {
        Ok(sqlx::query_scalar(
            "SELECT min(run_at) FROM subsync_jobs \
             WHERE state = 'pending' AND run_at <= now() AND ($1::text IS NULL OR queue = $1)",
        )
        .bind(queue)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn running_groups(&self) -> Result<Vec<RunningGroup>, QueueError> {
        let rows = sqlx::query(
            "SELECT queue, group_key, id, lease_owner, lease_expires_at, started_at FROM subsync_jobs \
             WHERE state = 'running' ORDER BY started_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RunningGroup {
                    queue: row.try_get("queue")?,
                    group_key: row.try_get("group_key")?,
                    job_id: row.try_get("id")?,
                    lease_owner: row.try_get("lease_owner")?,
                    lease_expires_at: row.try_get("lease_expires_at")?,
                    started_at: row.try_get("started_at")?,
                })
            })
            .collect()
    }

    async fn prune(&self, before: DateTime<Utc>, include_dead: bool) -> Result<u64, QueueError> {
        let states: Vec<&str> =
            if include_dead { vec!["succeeded", "cancelled", "dead"] } else { vec!["succeeded", "cancelled"] };
        let mut total = 0u64;
        // In batches, so a large backlog never holds long locks.
        loop {
            let n = sqlx::query(
                "DELETE FROM subsync_jobs WHERE id IN ( \
                   SELECT id FROM subsync_jobs WHERE state = ANY($1) AND created_at < $2 AND finished_at < $2 \
                   LIMIT 5000)",
            )
            .bind(&states)
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected();
            total += n;
            if n < 5000 {
                break;
            }
        }
        // Only row columns in the condition: PostgreSQL re-checks them against the latest
        // version if an enqueue touched the row meanwhile (a subquery would use a stale
        // snapshot and could delete a group that just got a job). `next_run_at` is NULL only
        // when a recount under the row lock found no pending job.
        sqlx::query("DELETE FROM subsync_groups WHERE running_job_id IS NULL AND next_run_at IS NULL")
            .execute(&self.pool)
            .await?;
        Ok(total)
    }

    async fn applied_migrations(&self) -> Result<Option<Vec<i64>>, QueueError> {
        // `to_regclass` resolves the name through the search path, like the queries do.
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(MIGRATIONS_TABLE)
            .fetch_one(&self.pool)
            .await?;
        if !exists {
            return Ok(None);
        }
        let list = sqlx::AssertSqlSafe(format!("SELECT version FROM {MIGRATIONS_TABLE} WHERE success"));
        Ok(Some(sqlx::query_scalar(list).fetch_all(&self.pool).await?))
    }

    async fn ping(&self) -> Result<(), QueueError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
