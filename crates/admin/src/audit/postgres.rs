//! The PostgreSQL dialect of `subsync_audit`. `at` is the database's `now()` (the
//! transaction's start), so entries written by several hosts share one clock.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use subsync_queue::QueueError;

use super::{AuditFilter, AuditRecord, NewEntry, cap, to_u64};

pub(super) async fn insert(c: &mut PgConnection, e: &NewEntry<'_>) -> Result<(), QueueError> {
    let jobs = i64::try_from(e.jobs).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO subsync_audit (actor, via, action, target, detail, jobs, ok, error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
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

pub(super) async fn list(pool: &PgPool, f: &AuditFilter) -> Result<Vec<AuditRecord>, QueueError> {
    let rows = sqlx::query(
        "SELECT id, at, actor, via, action, target, detail, jobs, ok, error FROM subsync_audit \
         WHERE ($1::timestamptz IS NULL OR at >= $1) AND ($2::text IS NULL OR actor = $2) \
         ORDER BY at DESC, id DESC LIMIT $3",
    )
    .bind(f.since)
    .bind(&f.actor)
    .bind(i64::from(f.limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(record).collect()
}

fn record(row: &PgRow) -> Result<AuditRecord, QueueError> {
    Ok(AuditRecord {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
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
