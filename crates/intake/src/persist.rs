//! Storing an event and its sync job atomically (one statement on PostgreSQL, one transaction on SQLite).
//!
//! Two keys make a duplicate delivery, however late, a no-op: the job's unique key (the
//! Stripe event id) within the queue's retention window, and the `subsync_events` primary
//! key (the same id), both written with `ON CONFLICT DO NOTHING`.

use serde_json::json;
use sqlx::{Row, SqliteConnection};
use subsync_queue::{Backend, Conn, NewJob, PgJobBatch, QueueError, Store, Tx};
use uuid::Uuid;

/// The queue the worker consumes; its jobs carry `{"event_id": …}`.
pub const SYNC_QUEUE: &str = "stripe";

/// What the worker will do with an event, decided at intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// A subscription sync job is enqueued.
    Handled,
    /// Stored for the record; no job (the worker has nothing to do for this type).
    Ignored,
    /// Stored but not understood (thin `v2.core.event` events).
    Unsupported,
}

impl Disposition {
    /// Stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Handled => "handled",
            Disposition::Ignored => "ignored",
            Disposition::Unsupported => "unsupported",
        }
    }
}

/// A verified, parsed webhook ready to store.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// `evt_…`.
    pub event_id: String,
    /// e.g. `customer.subscription.updated`.
    pub event_type: String,
    /// `event.created`, unix seconds (absent on thin events).
    pub created: Option<i64>,
    /// Live or test mode.
    pub livemode: bool,
    /// Stripe API version of the payload.
    pub api_version: Option<String>,
    /// `event` or `v2.core.event`.
    pub object_kind: &'static str,
    /// Subscription id, else customer id, else empty.
    pub group_key: String,
    /// Handled, ignored or unsupported.
    pub disposition: Disposition,
    /// The raw body, exactly as signed.
    pub payload: String,
}

/// The result of storing one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// The event was already stored (a redelivery): nothing new was written.
    pub duplicate: bool,
    /// The event's sync job (the first one, for a duplicate); none for ignored events.
    pub job_id: Option<Uuid>,
}

/// Stores `records` atomically and durably; results in the same order. On PostgreSQL that is
/// one autocommitted statement for the whole batch; on SQLite one transaction (its writes are
/// in-process, so statements cost no round trips).
pub async fn store_batch(store: &Store, records: &[&EventRecord]) -> Result<Vec<Stored>, QueueError> {
    if store.backend() == Backend::Postgres {
        return store_all_postgres(store, records).await;
    }
    let mut tx = store.begin().await?;
    let mut stored = Vec::with_capacity(records.len());
    for record in records {
        stored.push(store_one(store, &mut tx, record).await?);
    }
    tx.commit().await?;
    Ok(stored)
}

/// The events and their sync jobs in one statement ([`subsync_queue::PgJobBatch`]): atomic as
/// a transaction, without BEGIN and COMMIT round trips; then one lookup for redeliveries.
/// Events and jobs are written in event id order (job keys are the event ids), so concurrent
/// batches that share events wait for each other instead of deadlocking.
async fn store_all_postgres(store: &Store, records: &[&EventRecord]) -> Result<Vec<Stored>, QueueError> {
    let pool =
        store.postgres_pool().ok_or_else(|| QueueError::InvalidInput("PostgreSQL batch on another backend".into()))?;
    let handled = |r: &EventRecord| r.disposition == Disposition::Handled;
    let jobs = store.pg_job_batch(records.iter().filter(|r| handled(r)).map(|r| sync_job(r)).collect())?;
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

/// The sync job for a handled event: deduplicated on the event id, serialized per subscription.
fn sync_job(record: &EventRecord) -> NewJob {
    NewJob::new(SYNC_QUEUE, json!({ "event_id": record.event_id }))
        .with_unique_key(&record.event_id)
        .with_group(&record.group_key)
}

/// SQLite's path, one record inside the batch's transaction (PostgreSQL stores a whole batch
/// in one statement: [`store_all_postgres`]).
async fn store_one(store: &Store, tx: &mut Tx, record: &EventRecord) -> Result<Stored, QueueError> {
    // The job first: its unique key (the event id) answers "seen before?" within the
    // retention window, and the event row is then written already pointing at its job.
    let job_id = if record.disposition == Disposition::Handled {
        Some(store.enqueue(tx, sync_job(record)).await?.job_id())
    } else {
        None
    };
    let Conn::Sqlite(c) = tx.conn() else {
        return Err(QueueError::InvalidInput("the per-record path is SQLite's".into()));
    };
    if insert_event(c, record, job_id).await? {
        return Ok(Stored { duplicate: false, job_id });
    }
    // The event row exists: a redelivery. Answer with the job it recorded.
    Ok(Stored { duplicate: true, job_id: existing_job(c, &record.event_id).await?.or(job_id) })
}

async fn insert_event(c: &mut SqliteConnection, r: &EventRecord, job_id: Option<Uuid>) -> Result<bool, QueueError> {
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
    .bind(chrono::Utc::now().timestamp_millis())
    .bind(job_id.map(|id| id.to_string()))
    .execute(c)
    .await?
    .rows_affected();
    Ok(done == 1)
}

async fn existing_job(c: &mut SqliteConnection, event_id: &str) -> Result<Option<Uuid>, QueueError> {
    let id: Option<String> =
        sqlx::query_scalar("SELECT job_id FROM subsync_events WHERE event_id = ?1").bind(event_id).fetch_one(c).await?;
    id.map(|s| Uuid::parse_str(&s).map_err(|_| QueueError::Corrupt(format!("event job id `{s}`")))).transpose()
}
