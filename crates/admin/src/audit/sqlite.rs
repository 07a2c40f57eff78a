//! The SQLite dialect of `subsync_audit`. Times are INTEGER unix milliseconds, `ok` 0 or 1.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};
use subsync_queue::QueueError;

use super::{AuditFilter, AuditRecord, NewEntry, cap, to_u64};

pub(super) async fn insert(c: &mut SqliteConnection, e: &NewEntry<'_>) -> Result<(), QueueError> {
    let jobs = i64::try_from(e.jobs).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO subsync_audit (at, actor, via, action, target, detail, jobs, ok, error) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .bind(Utc::now().timestamp_millis())
    .bind(e.actor.name())
    .bind(e.actor.via().as_str())
    .bind(e.action.as_str())
    .bind(cap(&e.target))
    .bind(e.detail.as_deref().map(cap))
    .bind(jobs)
    .bind(e.error.is_none())
    .bind(e.error.as_deref().map(cap))
    .execute(c)
    .await?;
    Ok(())
}

pub(super) async fn list(pool: &SqlitePool, f: &AuditFilter) -> Result<Vec<AuditRecord>, QueueError> {
    let rows = sqlx::query(
        "SELECT id, at, actor, via, action, target, detail, jobs, ok, error FROM subsync_audit \
         WHERE (?1 IS NULL OR at >= ?1) AND (?2 IS NULL OR actor = ?2) \
         ORDER BY at DESC, id DESC LIMIT ?3",
    )
    .bind(f.since.map(|t| t.timestamp_millis()))
    .bind(&f.actor)
    .bind(i64::from(f.limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(record).collect()
}

fn record(row: &SqliteRow) -> Result<AuditRecord, QueueError> {
    let at: i64 = row.try_get("at")?;
    Ok(AuditRecord {
        id: row.try_get("id")?,
        at: DateTime::from_timestamp_millis(at).ok_or_else(|| QueueError::Corrupt(format!("audit time {at}")))?,
        actor: row.try_get("actor")?,
        via: row.try_get("via")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        detail: row.try_get("detail")?,
        jobs: to_u64(row.try_get("jobs")?, "job count")?,
        ok: row.try_get("ok")?,
        error: row.try_get("error")?,
    })
}
