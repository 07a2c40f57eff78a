//! The SQLite dialect: embedded, zero set-up, one machine.
//!
//! Durability first: WAL with `synchronous = FULL`, so an acknowledged enqueue survives a
//! power cut. SQLite has one writer at a time; writers in this process queue on an async
//! mutex and then take the lock at `BEGIN IMMEDIATE` (other processes wait in the busy
//! timeout), so a transaction never fails half-way on a lock upgrade.
//! Times are milliseconds since the epoch from this machine's clock.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, SqliteConnection};
use tokio::sync::{Mutex, OwnedMutexGuard};
use uuid::Uuid;

use super::{Driver, ExpiredLease, Selection, StoreOptions, probe_size};
use crate::error::QueueError;
use crate::model::{
    ClaimedJob, EnqueueOutcome, FailOutcome, JobFilter, JobId, JobRecord, JobState, Lease, NewJob, Page, RunningGroup,
    StateCount,
};
use crate::schema::MIGRATIONS_TABLE;

#[derive(Debug)]
pub(crate) struct SqliteDriver {
    pool: SqlitePool,
    writer: Arc<Mutex<()>>,
    acquire_timeout: Duration,
}

const JOB_COLUMNS: &str = "id, queue, unique_key, group_key, payload, state, attempts, max_attempts, \
     run_at, created_at, started_at, finished_at, lease_owner, lease_expires_at, last_error";

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

fn to_time(ms: i64) -> Result<DateTime<Utc>, QueueError> {
    Utc.timestamp_millis_opt(ms).single().ok_or_else(|| QueueError::Corrupt(format!("timestamp {ms} out of range")))
}

fn to_time_opt(ms: Option<i64>) -> Result<Option<DateTime<Utc>>, QueueError> {
    ms.map(to_time).transpose()
}

fn parse_id(s: &str) -> Result<Uuid, QueueError> {
    Uuid::parse_str(s).map_err(|_| QueueError::Corrupt(format!("job id `{s}` is not a UUID")))
}

fn decode_state(s: &str) -> Result<JobState, QueueError> {
    JobState::from_str(s).map_err(|_| QueueError::Corrupt(format!("unknown job state `{s}`")))
}

fn decode_payload(s: &str) -> Result<serde_json::Value, QueueError> {
    serde_json::from_str(s).map_err(|e| QueueError::Corrupt(format!("payload is not JSON: {e}")))
}

fn decode_job(row: &SqliteRow) -> Result<JobRecord, QueueError> {
    Ok(JobRecord {
        id: parse_id(row.try_get("id")?)?,
        queue: row.try_get("queue")?,
        unique_key: row.try_get("unique_key")?,
        group_key: row.try_get("group_key")?,
        payload: decode_payload(row.try_get("payload")?)?,
        state: decode_state(row.try_get("state")?)?,
        attempts: row.try_get::<i64, _>("attempts")?.max(0) as u32,
        max_attempts: row.try_get::<i64, _>("max_attempts")?.max(0) as u32,
        run_at: to_time(row.try_get("run_at")?)?,
        created_at: to_time(row.try_get("created_at")?)?,
        started_at: to_time_opt(row.try_get("started_at")?)?,
        finished_at: to_time_opt(row.try_get("finished_at")?)?,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires_at: to_time_opt(row.try_get("lease_expires_at")?)?,
        last_error: row.try_get("last_error")?,
    })
}

fn push_filter(qb: &mut QueryBuilder<sqlx::Sqlite>, filter: &JobFilter) {
    qb.push(" WHERE 1");
    if !filter.states.is_empty() {
        qb.push(" AND state IN (");
        let mut list = qb.separated(", ");
        for state in &filter.states {
            list.push_bind(state.as_str());
        }
        qb.push(")");
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
        qb.push(" AND created_at >= ").push_bind(after.timestamp_millis());
    }
    if let Some(before) = filter.created_before {
        qb.push(" AND created_at < ").push_bind(before.timestamp_millis());
    }
}

fn push_selection(qb: &mut QueryBuilder<sqlx::Sqlite>, selection: &Selection) {
    match selection {
        Selection::Ids(ids) => {
            qb.push(" WHERE id IN (");
            let mut list = qb.separated(", ");
            for id in ids {
                list.push_bind(id.to_string());
            }
            if ids.is_empty() {
                qb.push("NULL");
            }
            qb.push(")");
        }
        Selection::Filter(filter) => push_filter(qb, filter),
    }
}

/// Frees a group; `next_run_at` becomes `max(old, now)`, still a lower bound (see the
/// PostgreSQL driver); the next claim that finds the group idle recounts it.
async fn release_group(conn: &mut SqliteConnection, lease: &Lease) -> Result<(), QueueError> {
    sqlx::query(
        "UPDATE subsync_groups SET running_job_id = NULL, next_run_at = max(coalesce(next_run_at, ?4), ?4) \
         WHERE queue = ?1 AND group_key = ?2 AND running_job_id = ?3",
    )
    .bind(&lease.queue)
    .bind(&lease.group_key)
    .bind(lease.job_id.to_string())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks groups due by `at` (never later than they already are). A group already due as
/// early is not rewritten: a busy subscription's enqueues cost no group write.
async fn mark_group_due(conn: &mut SqliteConnection, queue: &str, group: &str, at: i64) -> Result<(), QueueError> {
    sqlx::query(
        "INSERT INTO subsync_groups (queue, group_key, next_run_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (queue, group_key) DO UPDATE SET next_run_at = excluded.next_run_at \
         WHERE next_run_at IS NULL OR excluded.next_run_at < next_run_at",
    )
    .bind(queue)
    .bind(group)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl SqliteDriver {
    pub(crate) async fn connect(url: &str, options: &StoreOptions) -> Result<Self, QueueError> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| QueueError::InvalidUrl(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(options.acquire_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.clamp(2, 8))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(Self { pool, writer: Arc::new(Mutex::new(())), acquire_timeout: options.acquire_timeout })
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction holding both the in-process writer lock and SQLite's write lock.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<(sqlx::Transaction<'static, sqlx::Sqlite>, OwnedMutexGuard<()>), QueueError> {
        let guard = tokio::time::timeout(self.acquire_timeout, self.writer.clone().lock_owned())
            .await
            .map_err(|_| QueueError::Unavailable(sqlx::Error::PoolTimedOut))?;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok((tx, guard))
    }
}

impl Driver for SqliteDriver {
    type Conn = SqliteConnection;

    async fn enqueue(
        &self,
        conn: &mut SqliteConnection,
        job: &NewJob,
        id: JobId,
        max_attempts: u32,
    ) -> Result<EnqueueOutcome, QueueError> {
        let now = now_ms();
        let run_at = job.run_at.map(|t| t.timestamp_millis()).unwrap_or(now);
        let group = if job.group_key.is_empty() { id.to_string() } else { job.group_key.clone() };
        let payload = serde_json::to_string(&job.payload)
            .map_err(|e| QueueError::InvalidInput(format!("payload cannot be serialized: {e}")))?;
        let inserted = sqlx::query(
            "INSERT INTO subsync_jobs (id, queue, unique_key, group_key, payload, max_attempts, run_at, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (queue, unique_key) DO NOTHING",
        )
        .bind(id.to_string())
        .bind(&job.queue)
        .bind(&job.unique_key)
        .bind(&group)
        .bind(payload)
        .bind(i64::from(max_attempts))
        .bind(run_at)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            mark_group_due(conn, &job.queue, &group, run_at).await?;
            return Ok(EnqueueOutcome::Created { job_id: id });
        }
        // We hold the write lock, so the conflicting row is committed and visible.
        let (existing, state): (String, String) =
            sqlx::query_as("SELECT id, state FROM subsync_jobs WHERE queue = ?1 AND unique_key = ?2")
                .bind(&job.queue)
                .bind(&job.unique_key)
                .fetch_one(&mut *conn)
                .await?;
        Ok(EnqueueOutcome::Duplicate { job_id: parse_id(&existing)?, state: decode_state(&state)? })
    }

    async fn complete(&self, conn: &mut SqliteConnection, lease: &Lease) -> Result<bool, QueueError> {
        let done = sqlx::query(
            "UPDATE subsync_jobs SET state = 'succeeded', finished_at = ?3, lease_expires_at = NULL, last_error = NULL \
             WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",
        )
        .bind(lease.job_id.to_string())
        .bind(lease.token.to_string())
        .bind(now_ms())
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        if done {
            release_group(conn, lease).await?;
        }
        Ok(done)
    }

    async fn claim(
        &self,
        queue: &str,
        worker: &str,
        limit: u32,
        lease_for: Duration,
    ) -> Result<(Vec<ClaimedJob>, usize), QueueError> {
        let now = now_ms();
        // Cheap read first: most polls of an idle queue end here without taking the write lock.
        let any_due: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM subsync_groups WHERE queue = ?1 AND running_job_id IS NULL \
             AND next_run_at IS NOT NULL AND next_run_at <= ?2 LIMIT 1",
        )
        .bind(queue)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if any_due.is_none() {
            return Ok((Vec::new(), 0));
        }
        let (mut tx, _guard) = self.begin_write().await?;
        let now = now_ms();
        let groups: Vec<String> = sqlx::query_scalar(
            "SELECT group_key FROM subsync_groups \
             WHERE queue = ?1 AND running_job_id IS NULL AND next_run_at IS NOT NULL AND next_run_at <= ?2 \
             ORDER BY next_run_at LIMIT ?3",
        )
        .bind(queue)
        .bind(now)
        .bind(i64::from(probe_size(limit)))
        .fetch_all(&mut *tx)
        .await?;
        let token = Uuid::new_v4();
        let mut claimed = Vec::with_capacity(groups.len());
        let mut idle = 0;
        for group in &groups {
            if claimed.len() as u32 >= limit {
                break;
            }
            let row = sqlx::query(
                "UPDATE subsync_jobs SET state = 'running', attempts = attempts + 1, lease_owner = ?3, \
                   lease_token = ?4, lease_expires_at = ?5, started_at = ?6 \
                 WHERE seq = (SELECT seq FROM subsync_jobs WHERE queue = ?1 AND group_key = ?2 \
                              AND state = 'pending' AND run_at <= ?6 ORDER BY seq LIMIT 1) \
                 RETURNING id, unique_key, payload, attempts, max_attempts, created_at",
            )
            .bind(queue)
            .bind(group)
            .bind(worker)
            .bind(token.to_string())
            .bind(now.saturating_add(millis(lease_for)))
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                Some(row) => {
                    let id: String = row.try_get("id")?;
                    sqlx::query("UPDATE subsync_groups SET running_job_id = ?3 WHERE queue = ?1 AND group_key = ?2")
                        .bind(queue)
                        .bind(group)
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                    claimed.push(ClaimedJob {
                        lease: Lease {
                            job_id: parse_id(&id)?,
                            token,
                            queue: queue.to_string(),
                            group_key: group.clone(),
                        },
                        unique_key: row.try_get("unique_key")?,
                        payload: decode_payload(row.try_get("payload")?)?,
                        attempt: row.try_get::<i64, _>("attempts")?.max(0) as u32,
                        max_attempts: row.try_get::<i64, _>("max_attempts")?.max(0) as u32,
                        created_at: to_time(row.try_get("created_at")?)?,
                    });
                }
                None => {
                    idle += 1;
                    // `next_run_at` was a lower bound: store the real next due time.
                    sqlx::query(
                        "UPDATE subsync_groups SET next_run_at = \
                           (SELECT min(run_at) FROM subsync_jobs \
                            WHERE queue = ?1 AND group_key = ?2 AND state = 'pending') \
                         WHERE queue = ?1 AND group_key = ?2",
                    )
                    .bind(queue)
                    .bind(group)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok((claimed, idle))
    }

    async fn heartbeat(&self, lease: &Lease, lease_for: Duration) -> Result<bool, QueueError> {
        let (mut tx, _guard) = self.begin_write().await?;
        let renewed = sqlx::query(
            "UPDATE subsync_jobs SET lease_expires_at = ?3 \
             WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",
        )
        .bind(lease.job_id.to_string())
        .bind(lease.token.to_string())
        .bind(now_ms().saturating_add(millis(lease_for)))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(renewed)
    }

    async fn fail(&self, lease: &Lease, error: &str, retry_in: Option<Duration>) -> Result<FailOutcome, QueueError> {
        let (mut tx, _guard) = self.begin_write().await?;
        let now = now_ms();
        let (state, run_at, finished_at) = match retry_in {
            Some(delay) => ("pending", Some(now.saturating_add(millis(delay))), None),
            None => ("dead", None, Some(now)),
        };
        let row: Option<i64> = sqlx::query_scalar(
            "UPDATE subsync_jobs SET state = ?3, run_at = COALESCE(?4, run_at), finished_at = ?5, \
               last_error = ?6, lease_expires_at = NULL \
             WHERE id = ?1 AND lease_token = ?2 AND state = 'running' RETURNING run_at",
        )
        .bind(lease.job_id.to_string())
        .bind(lease.token.to_string())
        .bind(state)
        .bind(run_at)
        .bind(finished_at)
        .bind(error)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(run_at) = row else {
            return Ok(FailOutcome::LeaseLost);
        };
        release_group(&mut tx, lease).await?;
        tx.commit().await?;
        Ok(match retry_in {
            Some(_) => FailOutcome::Retrying { run_at: to_time(run_at)? },
            None => FailOutcome::Dead,
        })
    }

    async fn release(&self, lease: &Lease) -> Result<bool, QueueError> {
        let (mut tx, _guard) = self.begin_write().await?;
        let released = sqlx::query(
            "UPDATE subsync_jobs SET state = 'pending', attempts = max(attempts - 1, 0), run_at = ?3, \
               lease_expires_at = NULL \
             WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",
        )
        .bind(lease.job_id.to_string())
        .bind(lease.token.to_string())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if released {
            release_group(&mut tx, lease).await?;
        }
        tx.commit().await?;
        Ok(released)
    }

    async fn expired_leases(&self, limit: u32) -> Result<Vec<ExpiredLease>, QueueError> {
        let rows = sqlx::query(
            "SELECT id, lease_token, queue, group_key, attempts, max_attempts FROM subsync_jobs \
             WHERE state = 'running' AND lease_expires_at < ?1 ORDER BY lease_expires_at LIMIT ?2",
        )
        .bind(now_ms())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ExpiredLease {
                    lease: Lease {
                        job_id: parse_id(row.try_get("id")?)?,
                        token: parse_id(row.try_get("lease_token")?)?,
                        queue: row.try_get("queue")?,
                        group_key: row.try_get("group_key")?,
                    },
                    attempts: row.try_get::<i64, _>("attempts")?.max(0) as u32,
                    max_attempts: row.try_get::<i64, _>("max_attempts")?.max(0) as u32,
                })
            })
            .collect()
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, QueueError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM subsync_jobs WHERE id = ?1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_optional(&self.pool).await?;
        row.as_ref().map(decode_job).transpose()
    }

    async fn find_by_key(&self, queue: &str, key: &str) -> Result<Option<JobRecord>, QueueError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM subsync_jobs WHERE queue = ?1 AND unique_key = ?2");
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
        let (mut tx, _guard) = self.begin_write().await?;
        let now = now_ms();
        let mut qb = QueryBuilder::new("UPDATE subsync_jobs SET state = 'pending', run_at = ");
        qb.push_bind(now)
            .push(", finished_at = NULL, attempts = CASE WHEN state = 'pending' THEN attempts ELSE 0 END")
            .push(" WHERE seq IN (SELECT seq FROM subsync_jobs");
        push_selection(&mut qb, selection);
        qb.push(" AND (state IN ('dead', 'cancelled') OR (state = 'pending' AND run_at > ")
            .push_bind(now)
            .push("))) RETURNING queue, group_key");
        let rows: Vec<(String, String)> = qb.build_query_as().fetch_all(&mut *tx).await?;
        let mut groups: Vec<&(String, String)> = rows.iter().collect();
        groups.sort();
        groups.dedup();
        for (queue, group) in groups {
            mark_group_due(&mut tx, queue, group, now).await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    async fn cancel(&self, selection: &Selection) -> Result<u64, QueueError> {
        let (mut tx, _guard) = self.begin_write().await?;
        let mut qb = QueryBuilder::new("UPDATE subsync_jobs SET state = 'cancelled', finished_at = ");
        qb.push_bind(now_ms()).push(" WHERE seq IN (SELECT seq FROM subsync_jobs");
        push_selection(&mut qb, selection);
        qb.push(" AND state IN ('pending', 'dead'))");
        let n = qb.build().execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n)
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
        let ms: Option<i64> = sqlx::query_scalar(
            "SELECT min(run_at) FROM subsync_jobs \
             WHERE state = 'pending' AND run_at <= ?1 AND (?2 IS NULL OR queue = ?2)",
        )
        .bind(now_ms())
        .bind(queue)
        .fetch_one(&self.pool)
        .await?;
        to_time_opt(ms)
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
                    job_id: parse_id(row.try_get("id")?)?,
                    lease_owner: row.try_get("lease_owner")?,
                    lease_expires_at: to_time_opt(row.try_get("lease_expires_at")?)?,
                    started_at: to_time_opt(row.try_get("started_at")?)?,
                })
            })
            .collect()
    }

    async fn prune(&self, before: DateTime<Utc>, include_dead: bool) -> Result<u64, QueueError> {
        let before = before.timestamp_millis();
        let states = if include_dead { "('succeeded', 'cancelled', 'dead')" } else { "('succeeded', 'cancelled')" };
        let delete = format!(
            "DELETE FROM subsync_jobs WHERE seq IN (SELECT seq FROM subsync_jobs \
             WHERE state IN {states} AND created_at < ?1 AND finished_at < ?1 LIMIT 5000)"
        );
        let mut total = 0u64;
        // In batches, so the write lock is never held for long.
        loop {
            let (mut tx, _guard) = self.begin_write().await?;
            let n =
                sqlx::query(sqlx::AssertSqlSafe(delete.clone())).bind(before).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            total += n;
            if n < 5000 {
                break;
            }
        }
        let (mut tx, _guard) = self.begin_write().await?;
        sqlx::query("DELETE FROM subsync_groups WHERE running_job_id IS NULL AND next_run_at IS NULL")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(total)
    }

    async fn applied_migrations(&self) -> Result<Option<Vec<i64>>, QueueError> {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)")
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
