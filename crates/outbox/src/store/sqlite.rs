//! The SQLite dialect. Times are INTEGER unix milliseconds.

use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::{ListFilter, NewRow, OutboxRow, OutboxStats, PendingChange};
use crate::error::OutboxError;

const COLUMNS: &str =
    "seq, change_id, user_id, version, body, created_at, delivered_at, attempts, last_attempt_at, last_error";

fn time(ms: i64) -> Result<DateTime<Utc>, OutboxError> {
    Utc.timestamp_millis_opt(ms).single().ok_or_else(|| OutboxError::Corrupt(format!("timestamp {ms} out of range")))
}

fn time_opt(ms: Option<i64>) -> Result<Option<DateTime<Utc>>, OutboxError> {
    ms.map(time).transpose()
}

pub(super) async fn insert(c: &mut SqliteConnection, row: &NewRow<'_>) -> Result<i64, OutboxError> {
    let seq = sqlx::query_scalar(
        "INSERT INTO subsync_outbox (change_id, user_id, version, body, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) RETURNING seq",
    )
    .bind(row.change_id)
    .bind(row.user_id)
    .bind(row.version)
    .bind(row.body)
    .bind(row.at.timestamp_millis())
    .fetch_one(&mut *c)
    .await?;
    Ok(seq)
}

pub(super) async fn announce(_c: &mut SqliteConnection, _payload: &str) -> Result<(), OutboxError> {
    Ok(())
}

pub(super) async fn undelivered(
    pool: &SqlitePool,
    user_id: &str,
    up_to: i64,
    limit: i64,
) -> Result<Vec<PendingChange>, OutboxError> {
    let rows = sqlx::query(
        "SELECT seq, change_id, body, created_at, attempts FROM subsync_outbox \
         WHERE user_id = ?1 AND seq <= ?2 AND delivered_at IS NULL ORDER BY seq LIMIT ?3",
    )
    .bind(user_id)
    .bind(up_to)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PendingChange {
                seq: r.try_get("seq")?,
                change_id: r.try_get("change_id")?,
                body: r.try_get("body")?,
                created_at: time(r.try_get("created_at")?)?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect()
}

pub(super) async fn mark_delivered(pool: &SqlitePool, seq: i64, at: DateTime<Utc>) -> Result<bool, OutboxError> {
    let mut c = pool.acquire().await?;
    mark_delivered_in(&mut c, seq, at).await
}

pub(super) async fn mark_delivered_in(
    c: &mut SqliteConnection,
    seq: i64,
    at: DateTime<Utc>,
) -> Result<bool, OutboxError> {
    let done = sqlx::query(
        "UPDATE subsync_outbox SET delivered_at = ?2, attempts = attempts + 1, last_attempt_at = ?2 \
         WHERE seq = ?1 AND delivered_at IS NULL",
    )
    .bind(seq)
    .bind(at.timestamp_millis())
    .execute(&mut *c)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn mark_failed(
    pool: &SqlitePool,
    seq: i64,
    at: DateTime<Utc>,
    error: &str,
) -> Result<(), OutboxError> {
    sqlx::query(
        "UPDATE subsync_outbox SET attempts = attempts + 1, last_attempt_at = ?2, last_error = ?3 \
         WHERE seq = ?1 AND delivered_at IS NULL",
    )
    .bind(seq)
    .bind(at.timestamp_millis())
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

fn decode(r: &SqliteRow) -> Result<OutboxRow, OutboxError> {
    Ok(OutboxRow {
        seq: r.try_get("seq")?,
        change_id: r.try_get("change_id")?,
        user_id: r.try_get("user_id")?,
        version: r.try_get("version")?,
        body: r.try_get("body")?,
        created_at: time(r.try_get("created_at")?)?,
        delivered_at: time_opt(r.try_get("delivered_at")?)?,
        attempts: r.try_get("attempts")?,
        last_attempt_at: time_opt(r.try_get("last_attempt_at")?)?,
        last_error: r.try_get("last_error")?,
    })
}

pub(super) async fn list(pool: &SqlitePool, f: &ListFilter) -> Result<Vec<OutboxRow>, OutboxError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM subsync_outbox \
         WHERE (?1 IS NULL OR user_id = ?1) AND (NOT ?2 OR delivered_at IS NULL) \
         ORDER BY seq DESC LIMIT ?3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(f.user_id.as_deref())
        .bind(f.undelivered_only)
        .bind(i64::from(f.limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode).collect()
}

pub(super) async fn get(pool: &SqlitePool, change_id: &str) -> Result<Option<OutboxRow>, OutboxError> {
    let sql = format!("SELECT {COLUMNS} FROM subsync_outbox WHERE change_id = ?1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(change_id).fetch_optional(pool).await?;
    row.as_ref().map(decode).transpose()
}

pub(super) async fn stats(pool: &SqlitePool) -> Result<OutboxStats, OutboxError> {
    let row = sqlx::query(
        "SELECT coalesce(sum(delivered_at IS NULL), 0) AS undelivered, \
                coalesce(sum(delivered_at IS NULL AND attempts > 0), 0) AS failing, \
                min(CASE WHEN delivered_at IS NULL THEN created_at END) AS oldest, \
                coalesce(sum(delivered_at IS NOT NULL), 0) AS delivered \
         FROM subsync_outbox",
    )
    .fetch_one(pool)
    .await?;
    Ok(OutboxStats {
        undelivered: row.try_get("undelivered")?,
        failing: row.try_get("failing")?,
        oldest_undelivered_at: time_opt(row.try_get("oldest")?)?,
        delivered: row.try_get("delivered")?,
    })
}

pub(super) async fn prune(pool: &SqlitePool, before: DateTime<Utc>) -> Result<u64, OutboxError> {
    let done = sqlx::query("DELETE FROM subsync_outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?1")
        .bind(before.timestamp_millis())
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
