//! The SQLite dialect. Times are INTEGER milliseconds since the epoch.

use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use subsync_queue::QueueError;

use super::{DutyStatus, RunRecord, parse_result};

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.and_then(|ms| Utc.timestamp_millis_opt(ms).single())
}

async fn ensure(pool: &SqlitePool, name: &str) -> Result<(), QueueError> {
    sqlx::query("INSERT INTO subsync_duties (name) VALUES (?1) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn try_lease(
    pool: &SqlitePool,
    name: &str,
    holder: &str,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, QueueError> {
    ensure(pool, name).await?;
    let done = sqlx::query(
        "UPDATE subsync_duties SET leader = ?2, lease_until = ?3 \
         WHERE name = ?1 AND (leader IS NULL OR lease_until IS NULL OR lease_until < ?4 OR leader = ?2)",
    )
    .bind(name)
    .bind(holder)
    .bind(ms(until))
    .bind(ms(now))
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn renew(
    pool: &SqlitePool,
    name: &str,
    holder: &str,
    until: DateTime<Utc>,
) -> Result<bool, QueueError> {
    let done = sqlx::query("UPDATE subsync_duties SET lease_until = ?3 WHERE name = ?1 AND leader = ?2")
        .bind(name)
        .bind(holder)
        .bind(ms(until))
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn release(pool: &SqlitePool, name: &str, holder: &str) -> Result<(), QueueError> {
    sqlx::query("UPDATE subsync_duties SET leader = NULL, lease_until = NULL WHERE name = ?1 AND leader = ?2")
        .bind(name)
        .bind(holder)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn status(pool: &SqlitePool, name: Option<&str>) -> Result<Vec<DutyStatus>, QueueError> {
    let rows = sqlx::query(
        "SELECT name, leader, lease_until, checkpoint, last_started_at, last_finished_at, last_success_at, last_ok, \
                last_result, last_error, last_runner, runs, failures \
         FROM subsync_duties WHERE ?1 IS NULL OR name = ?1 ORDER BY name",
    )
    .bind(name)
    .fetch_all(pool)
    .await?;
    rows.iter().map(decode).collect()
}

fn decode(row: &SqliteRow) -> Result<DutyStatus, QueueError> {
    let lease_until = time(row.try_get("lease_until")?);
    Ok(DutyStatus {
        name: row.try_get("name")?,
        leader: row.try_get::<Option<String>, _>("leader")?.filter(|_| lease_until.is_some_and(|t| t > Utc::now())),
        lease_until,
        checkpoint: row.try_get("checkpoint")?,
        last_started_at: time(row.try_get("last_started_at")?),
        last_finished_at: time(row.try_get("last_finished_at")?),
        last_success_at: time(row.try_get("last_success_at")?),
        last_ok: row.try_get::<Option<i64>, _>("last_ok")?.map(|v| v != 0),
        last_result: parse_result(row.try_get("last_result")?),
        last_error: row.try_get("last_error")?,
        last_runner: row.try_get("last_runner")?,
        runs: row.try_get("runs")?,
        failures: row.try_get("failures")?,
    })
}

pub(super) async fn advance_checkpoint(pool: &SqlitePool, name: &str, value: i64) -> Result<(), QueueError> {
    sqlx::query(
        "INSERT INTO subsync_duties (name, checkpoint) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET checkpoint = MAX(COALESCE(checkpoint, excluded.checkpoint), excluded.checkpoint)",
    )
    .bind(name)
    .bind(value)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn record_run(
    pool: &SqlitePool,
    name: &str,
    run: &RunRecord<'_>,
    result: Option<&str>,
    error: Option<&str>,
) -> Result<(), QueueError> {
    sqlx::query(
        "INSERT INTO subsync_duties (name, last_started_at, last_finished_at, last_ok, last_result, last_error, \
                                     last_runner, runs, failures, last_success_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?9) \
         ON CONFLICT (name) DO UPDATE SET last_started_at = excluded.last_started_at, \
             last_finished_at = excluded.last_finished_at, last_ok = excluded.last_ok, \
             last_result = excluded.last_result, last_error = excluded.last_error, \
             last_runner = excluded.last_runner, runs = runs + 1, failures = failures + excluded.failures, \
             last_success_at = COALESCE(excluded.last_success_at, last_success_at)",
    )
    .bind(name)
    .bind(ms(run.started_at))
    .bind(ms(run.finished_at))
    .bind(i64::from(error.is_none()))
    .bind(result)
    .bind(error)
    .bind(run.runner)
    .bind(i64::from(error.is_some()))
    .bind(error.is_none().then(|| ms(run.finished_at)))
    .execute(pool)
    .await?;
    Ok(())
}
