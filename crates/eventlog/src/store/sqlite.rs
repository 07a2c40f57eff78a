//! The SQLite dialect. Times are INTEGER milliseconds; job ids TEXT. A batch is one
//! transaction holding the single write lock, so per-record statements cost no round trips.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};
use subsync_queue::{Conn, QueueError, Store, Tx};
use uuid::Uuid;

use super::parse_disposition;
use crate::job::SyncJob;
use crate::record::{Disposition, EventRecord, Stored, StoredEvent};

pub(super) async fn store_batch(store: &Store, records: &[&EventRecord]) -> Result<Vec<Stored>, QueueError> {
    let mut tx = store.begin().await?;
    let mut stored = Vec::with_capacity(records.len());
    for record in records {
        stored.push(store_one(store, &mut tx, record).await?);
    }
    tx.commit().await?;
    Ok(stored)
}

/// One record inside the batch's transaction.
async fn store_one(store: &Store, tx: &mut Tx, record: &EventRecord) -> Result<Stored, QueueError> {
    // The job first: its unique key (the event id) answers "seen before?" within the
    // retention window, and the event row is then written already pointing at its job.
    let job_id = if record.disposition == Disposition::Handled {
        Some(store.enqueue(tx, SyncJob::sync(&record.event_id, &record.group_key)).await?.job_id())
    } else {
        None
    };
    let Conn::Sqlite(c) = tx.conn() else {
        return Err(QueueError::InvalidInput("a SQLite store opened a non-SQLite transaction".into()));
    };
    if insert(c, record, job_id).await? {
        return Ok(Stored { duplicate: false, job_id });
    }
    // The event row exists: a redelivery. Answer with the job it recorded.
    Ok(Stored { duplicate: true, job_id: existing_job(c, &record.event_id).await?.or(job_id) })
}

async fn insert(c: &mut SqliteConnection, r: &EventRecord, job_id: Option<Uuid>) -> Result<bool, QueueError> {
    let done = sqlx::query(
        "INSERT INTO subsync_events (event_id, event_type, created, livemode, api_version, object_kind, \
           group_key, disposition, payload, received_at, job_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&r.event_id)
    .bind(&r.event_type)
    .bind(r.created)
    .bind(r.livemode)
    .bind(&r.api_version)
    .bind(r.object_kind)
    .bind(&r.group_key)
    .bind(r.disposition.as_str())
    .bind(&r.payload)
    .bind(Utc::now().timestamp_millis())
    .bind(job_id.map(|id| id.to_string()))
    .execute(c)
    .await?
    .rows_affected();
    Ok(done == 1)
}

async fn existing_job(c: &mut SqliteConnection, event_id: &str) -> Result<Option<Uuid>, QueueError> {
    let id: Option<String> =
        sqlx::query_scalar("SELECT job_id FROM subsync_events WHERE event_id = ?1").bind(event_id).fetch_one(c).await?;
    parse_job_id(id)
}

fn parse_job_id(id: Option<String>) -> Result<Option<Uuid>, QueueError> {
    id.map(|s| Uuid::parse_str(&s).map_err(|_| QueueError::Corrupt(format!("event job id `{s}`")))).transpose()
}

pub(super) async fn get(pool: &SqlitePool, event_id: &str) -> Result<Option<StoredEvent>, QueueError> {
    let row = sqlx::query(
        "SELECT event_id, event_type, created, livemode, api_version, object_kind, group_key, disposition, \
           payload, job_id FROM subsync_events WHERE event_id = ?1",
    )
    .bind(event_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(decode).transpose()
}

fn decode(row: &SqliteRow) -> Result<StoredEvent, QueueError> {
    Ok(StoredEvent {
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        created: row.try_get("created")?,
        livemode: row.try_get("livemode")?,
        api_version: row.try_get("api_version")?,
        object_kind: row.try_get("object_kind")?,
        group_key: row.try_get("group_key")?,
        disposition: parse_disposition(row.try_get("disposition")?)?,
        job_id: parse_job_id(row.try_get("job_id")?)?,
        payload: row.try_get("payload")?,
    })
}

pub(super) async fn prune(pool: &SqlitePool, before: DateTime<Utc>) -> Result<u64, QueueError> {
    let done = sqlx::query(
        "DELETE FROM subsync_events WHERE received_at < ?1 \
         AND (job_id IS NULL OR NOT EXISTS (SELECT 1 FROM subsync_jobs j WHERE j.id = subsync_events.job_id))",
    )
    .bind(before.timestamp_millis())
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
