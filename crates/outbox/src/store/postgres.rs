//! The PostgreSQL dialect. Times are `timestamptz`.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use super::{ListFilter, NewRow, OutboxRow, OutboxStats, PendingChange};
use crate::PG_CHANNEL;
use crate::error::OutboxError;

const COLUMNS: &str =
    "seq, change_id, user_id, version, body, created_at, delivered_at, attempts, last_attempt_at, last_error";

pub(super) async fn insert(c: &mut PgConnection, row: &NewRow<'_>) -> Result<i64, OutboxError> {
    let seq = sqlx::query_scalar(
        "INSERT INTO subsync_outbox (change_id, user_id, version, body, created_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING seq",
    )
    .bind(row.change_id)
    .bind(row.user_id)
    .bind(row.version)
    .bind(row.body)
    .bind(row.at)
    .fetch_one(&mut *c)
    .await?;
    Ok(seq)
}

pub(super) async fn announce(c: &mut PgConnection, payload: &str) -> Result<(), OutboxError> {
    sqlx::query("SELECT pg_notify($1, $2)").bind(PG_CHANNEL).bind(payload).execute(&mut *c).await?;
    Ok(())
}

pub(super) async fn undelivered(
    pool: &PgPool,
    user_id: &str,
    up_to: i64,
    limit: i64,
) -> Result<Vec<PendingChange>, OutboxError> {
    let rows = sqlx::query(
        "SELECT seq, change_id, body, created_at, attempts FROM subsync_outbox \
         WHERE user_id = $1 AND seq <= $2 AND delivered_at IS NULL ORDER BY seq LIMIT $3",
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
                created_at: r.try_get("created_at")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect()
}

pub(super) async fn mark_delivered(pool: &PgPool, seq: i64, at: DateTime<Utc>) -> Result<bool, OutboxError> {
    let mut c = pool.acquire().await?;
    mark_delivered_in(&mut c, seq, at).await
}

pub(super) async fn mark_delivered_in(c: &mut PgConnection, seq: i64, at: DateTime<Utc>) -> Result<bool, OutboxError> {
    let done = sqlx::query(
        "UPDATE subsync_outbox SET delivered_at = $2, attempts = attempts + 1, last_attempt_at = $2 \
         WHERE seq = $1 AND delivered_at IS NULL",
    )
    .bind(seq)
    .bind(at)
    .execute(&mut *c)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn mark_failed(pool: &PgPool, seq: i64, at: DateTime<Utc>, error: &str) -> Result<(), OutboxError> {
    sqlx::query(
        "UPDATE subsync_outbox SET attempts = attempts + 1, last_attempt_at = $2, last_error = $3 \
         WHERE seq = $1 AND delivered_at IS NULL",
    )
    .bind(seq)
    .bind(at)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

fn decode(r: &PgRow) -> Result<OutboxRow, OutboxError> {
    Ok(OutboxRow {
        seq: r.try_get("seq")?,
        change_id: r.try_get("change_id")?,
        user_id: r.try_get("user_id")?,
        version: r.try_get("version")?,
        body: r.try_get("body")?,
        created_at: r.try_get("created_at")?,
        delivered_at: r.try_get("delivered_at")?,
        attempts: r.try_get("attempts")?,
        last_attempt_at: r.try_get("last_attempt_at")?,
        last_error: r.try_get("last_error")?,
    })
}

pub(super) async fn list(pool: &PgPool, f: &ListFilter) -> Result<Vec<OutboxRow>, OutboxError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM subsync_outbox \
         WHERE ($1::text IS NULL OR user_id = $1) AND (NOT $2 OR delivered_at IS NULL) \
         ORDER BY seq DESC LIMIT $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(f.user_id.as_deref())
        .bind(f.undelivered_only)
        .bind(i64::from(f.limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode).collect()
}

pub(super) async fn get(pool: &PgPool, change_id: &str) -> Result<Option<OutboxRow>, OutboxError> {
    let sql = format!("SELECT {COLUMNS} FROM subsync_outbox WHERE change_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(change_id).fetch_optional(pool).await?;
    row.as_ref().map(decode).transpose()
}

pub(super) async fn stats(pool: &PgPool) -> Result<OutboxStats, OutboxError> {
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE delivered_at IS NULL) AS undelivered, \
                count(*) FILTER (WHERE delivered_at IS NULL AND attempts > 0) AS failing, \
                min(created_at) FILTER (WHERE delivered_at IS NULL) AS oldest, \
                count(*) FILTER (WHERE delivered_at IS NOT NULL) AS delivered \
         FROM subsync_outbox",
    )
    .fetch_one(pool)
    .await?;
    Ok(OutboxStats {
        undelivered: row.try_get("undelivered")?,
        failing: row.try_get("failing")?,
        oldest_undelivered_at: row.try_get("oldest")?,
        delivered: row.try_get("delivered")?,
    })
}

pub(super) async fn prune(pool: &PgPool, before: DateTime<Utc>) -> Result<u64, OutboxError> {
    let done = sqlx::query("DELETE FROM subsync_outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1")
        .bind(before)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
