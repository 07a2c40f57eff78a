//! The PostgreSQL dialect. A whole batch of events and their sync jobs is ONE autocommitted
//! statement (the queue's [`subsync_queue::PgJobBatch`] CTEs insert the jobs and the event
//! insert joins on them): atomic as a transaction, without BEGIN and COMMIT round trips.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use subsync_queue::{PgJobBatch, QueueError, Store};
use uuid::Uuid;

use super::parse_disposition;
use crate::job::{SYNC_QUEUE, SyncJob};
use crate::record::{Disposition, EventRecord, Stored, StoredEvent};

/// The events and their sync jobs in one statement, then one lookup for redeliveries.
/// Events and jobs are written in event id order (job keys are the event ids), so concurrent
/// batches that share events wait for each other instead of deadlocking.
pub(super) async fn store_batch(
    store: &Store,
    pool: &PgPool,
    records: &[&EventRecord],
) -> Result<Vec<Stored>, QueueError> {
    let handled = |r: &EventRecord| r.disposition == Disposition::Handled;
    let jobs = store.pg_job_batch(
        records.iter().filter(|r| handled(r)).map(|r| SyncJob::sync(&r.event_id, &r.group_key)).collect(),
    )?;
    let column =
        |f: &dyn Fn(&EventRecord) -> Option<String>| -> Vec<Option<String>> { records.iter().map(|r| f(r)).collect() };
    let sql = format!(
        "WITH input AS ( \
           SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::bool[], $5::text[], $6::text[], $7::text[], \
                     $8::text[], $9::text[], $10::bool[]) WITH ORDINALITY \
             AS t(event_id, event_type, created, livemode, api_version, object_kind, group_key, disposition, payload, \
                  handled, ord) \
         ), {jobs}, stored AS ( \
           INSERT INTO subsync_events (event_id, event_type, created, livemode, api_version, object_kind, \
             group_key, disposition, payload, job_id) \
           SELECT i.event_id, i.event_type, i.created, i.livemode, i.api_version, i.object_kind, i.group_key, \
                  i.disposition, i.payload, \
                  CASE WHEN i.handled THEN COALESCE(e.id, (SELECT j.id FROM subsync_jobs j \
                    WHERE j.queue = '{SYNC_QUEUE}' AND j.unique_key = i.event_id)) END \
           FROM input i LEFT JOIN enqueued e ON i.handled AND e.queue = '{SYNC_QUEUE}' AND e.unique_key = i.event_id \
           ORDER BY i.event_id, i.ord \
           ON CONFLICT (event_id) DO NOTHING RETURNING event_id, job_id \
         ) SELECT event_id, job_id, (SELECT count(*) FROM enqueued) AS jobs_created FROM stored",
        jobs = PgJobBatch::ctes(11)
    );
    let query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(column(&|r| Some(r.event_id.clone())))
        .bind(column(&|r| Some(r.event_type.clone())))
        .bind(records.iter().map(|r| r.created).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.livemode).collect::<Vec<_>>())
        .bind(column(&|r| r.api_version.clone()))
        .bind(column(&|r| Some(r.object_kind.to_string())))
        .bind(column(&|r| Some(r.group_key.clone())))
        .bind(column(&|r| Some(r.disposition.as_str().to_string())))
        .bind(column(&|r| Some(r.payload.clone())))
        .bind(records.iter().map(|r| handled(r)).collect::<Vec<_>>());
    let rows = jobs.bind(query).fetch_all(pool).await?;
    let mut inserted = Vec::with_capacity(rows.len());
    let mut jobs_created = 0i64;
    for row in &rows {
        inserted.push((row.try_get::<String, _>("event_id")?, row.try_get::<Option<Uuid>, _>("job_id")?));
        jobs_created = row.try_get("jobs_created")?;
    }
    if jobs_created > 0 {
        store.jobs_enqueued();
    }
    // The first copy of an id in the batch is the new one; every other is a redelivery.
    let mut outcome: Vec<Option<Stored>> = vec![None; records.len()];
    for (i, r) in records.iter().enumerate() {
        if let Some(at) = inserted.iter().position(|(id, _)| *id == r.event_id) {
            let (_, job_id) = inserted.swap_remove(at);
            outcome[i] = Some(Stored { duplicate: false, job_id });
        }
    }
    let again: Vec<&str> =
        (0..records.len()).filter(|&i| outcome[i].is_none()).map(|i| records[i].event_id.as_str()).collect();
    if !again.is_empty() {
        // A fresh statement: it sees the first copies, committed by now (by this statement, or
        // by the concurrent one whose insert this one waited for).
        let recorded: Vec<(String, Option<Uuid>)> =
            sqlx::query_as("SELECT event_id, job_id FROM subsync_events WHERE event_id = ANY($1)")
                .bind(&again)
                .fetch_all(pool)
                .await?;
        for (i, r) in records.iter().enumerate() {
            if outcome[i].is_none() {
                let first = recorded.iter().find(|(id, _)| *id == r.event_id).and_then(|(_, job)| *job);
                outcome[i] = Some(Stored { duplicate: true, job_id: first });
            }
        }
    }
    Ok(outcome.into_iter().map(|o| o.unwrap_or(Stored { duplicate: true, job_id: None })).collect())
}

pub(super) async fn get(pool: &PgPool, event_id: &str) -> Result<Option<StoredEvent>, QueueError> {
    let row = sqlx::query(
        "SELECT event_id, event_type, created, livemode, api_version, object_kind, group_key, disposition, \
           payload, job_id FROM subsync_events WHERE event_id = $1",
    )
    .bind(event_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(decode).transpose()
}

fn decode(row: &PgRow) -> Result<StoredEvent, QueueError> {
    Ok(StoredEvent {
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        created: row.try_get("created")?,
        livemode: row.try_get("livemode")?,
        api_version: row.try_get("api_version")?,
        object_kind: row.try_get("object_kind")?,
        group_key: row.try_get("group_key")?,
        disposition: parse_disposition(row.try_get("disposition")?)?,
        job_id: row.try_get("job_id")?,
        payload: row.try_get("payload")?,
    })
}

pub(super) async fn prune(pool: &PgPool, before: DateTime<Utc>) -> Result<u64, QueueError> {
    let done = sqlx::query(
        "DELETE FROM subsync_events e WHERE received_at < $1 \
         AND (job_id IS NULL OR NOT EXISTS (SELECT 1 FROM subsync_jobs j WHERE j.id = e.job_id))",
    )
    .bind(before)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
