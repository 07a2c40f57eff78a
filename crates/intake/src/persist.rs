//! Storing an event and its sync job in one transaction.
//!
//! Two keys make a duplicate delivery, however late, a no-op: the job's unique key (the
//! Stripe event id) within the queue's retention window, and the `subsync_events` primary
//! key (the same id), both written with `ON CONFLICT DO NOTHING`.

use serde_json::json;
use subsync_queue::{Backend, Conn, NewJob, QueueError, Store, Tx};
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

/// Stores `records` in one transaction and commits; results in the same order.
pub async fn store_batch(store: &Store, records: &[&EventRecord]) -> Result<Vec<Stored>, QueueError> {
    let mut tx = store.begin().await?;
    let stored = if store.backend() == Backend::Postgres && records.len() > 1 {
        store_all_postgres(store, &mut tx, records).await?
    } else {
        let mut stored = Vec::with_capacity(records.len());
        for record in records {
            stored.push(store_one(store, &mut tx, record).await?);
        }
        stored
    };
    tx.commit().await?;
    Ok(stored)
}

/// The same as [`store_one`] for each record, in four statements for the whole batch
/// (jobs, their lookups, events, theirs): a round trip costs PostgreSQL more than a row.
async fn store_all_postgres(store: &Store, tx: &mut Tx, records: &[&EventRecord]) -> Result<Vec<Stored>, QueueError> {
    let handled: Vec<usize> = (0..records.len()).filter(|&i| records[i].disposition == Disposition::Handled).collect();
    let jobs = handled.iter().map(|&i| sync_job(records[i])).collect();
    let mut job_ids: Vec<Option<Uuid>> = vec![None; records.len()];
    for (&i, outcome) in handled.iter().zip(store.enqueue_many(tx, jobs).await?) {
        job_ids[i] = Some(outcome.job_id());
    }
    let Conn::Postgres(c) = tx.conn() else {
        return Err(QueueError::InvalidInput("PostgreSQL batch on another backend".into()));
    };
    let column =
        |f: &dyn Fn(&EventRecord) -> Option<String>| -> Vec<Option<String>> { records.iter().map(|r| f(r)).collect() };
    let mut inserted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO subsync_events (event_id, event_type, created, livemode, api_version, object_kind, \
           group_key, disposition, payload, job_id) \
         SELECT event_id, event_type, created, livemode, api_version, object_kind, group_key, disposition, payload, job_id \
         FROM unnest($1::text[], $2::text[], $3::int8[], $4::bool[], $5::text[], $6::text[], $7::text[], \
                     $8::text[], $9::text[], $10::uuid[]) WITH ORDINALITY \
           AS t(event_id, event_type, created, livemode, api_version, object_kind, group_key, disposition, payload, job_id, ord) \
         ORDER BY event_id, ord \
         ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
    )
    .bind(column(&|r| Some(r.event_id.clone())))
    .bind(column(&|r| Some(r.event_type.clone())))
    .bind(records.iter().map(|r| r.created).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.livemode).collect::<Vec<_>>())
    .bind(column(&|r| r.api_version.clone()))
    .bind(column(&|r| Some(r.object_kind.to_string())))
    .bind(column(&|r| Some(r.group_key.clone())))
    .bind(column(&|r| Some(r.disposition.as_str().to_string())))
    .bind(column(&|r| Some(r.payload.clone())))
    .bind(&job_ids)
    .fetch_all(&mut *c)
    .await?;
    // The first copy of an id in the batch is the new one; every other is a redelivery.
    let mut fresh = vec![false; records.len()];
    for (i, r) in records.iter().enumerate() {
        if let Some(at) = inserted.iter().position(|id| *id == r.event_id) {
            inserted.swap_remove(at);
            fresh[i] = true;
        }
    }
    let again: Vec<&str> = (0..records.len()).filter(|&i| !fresh[i]).map(|i| records[i].event_id.as_str()).collect();
    let recorded: Vec<(String, Option<Uuid>)> = if again.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as("SELECT event_id, job_id FROM subsync_events WHERE event_id = ANY($1)")
            .bind(&again)
            .fetch_all(&mut *c)
            .await?
    };
    Ok((0..records.len())
        .map(|i| {
            if fresh[i] {
                return Stored { duplicate: false, job_id: job_ids[i] };
            }
            let first = recorded.iter().find(|(id, _)| *id == records[i].event_id).and_then(|(_, job)| *job);
            Stored { duplicate: true, job_id: first.or(job_ids[i]) }
        })
        .collect())
}

/// The sync job for a handled event: deduplicated on the event id, serialized per subscription.
fn sync_job(record: &EventRecord) -> NewJob {
    NewJob::new(SYNC_QUEUE, json!({ "event_id": record.event_id }))
        .with_unique_key(&record.event_id)
        .with_group(&record.group_key)
}

async fn store_one(store: &Store, tx: &mut Tx, record: &EventRecord) -> Result<Stored, QueueError> {
    // The job first: its unique key (the event id) answers "seen before?" within the
    // retention window, and the event row is then written already pointing at its job.
    let job_id = if record.disposition == Disposition::Handled {
        Some(store.enqueue(tx, sync_job(record)).await?.job_id())
    } else {
        None
    };
    if insert_event(tx, record, job_id).await? {
        return Ok(Stored { duplicate: false, job_id });
    }
    // The event row exists: a redelivery. Answer with the job it recorded.
    Ok(Stored { duplicate: true, job_id: existing_job(tx, &record.event_id).await?.or(job_id) })
}

async fn insert_event(tx: &mut Tx, r: &EventRecord, job_id: Option<Uuid>) -> Result<bool, QueueError> {
    let done = match tx.conn() {
        Conn::Sqlite(c) => sqlx::query(
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
        .rows_affected(),
        Conn::Postgres(c) => sqlx::query(
            "INSERT INTO subsync_events (event_id, event_type, created, livemode, api_version, object_kind, \
               group_key, disposition, payload, job_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (event_id) DO NOTHING",
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
        .bind(job_id)
        .execute(c)
        .await?
        .rows_affected(),
    };
    Ok(done == 1)
}

async fn existing_job(tx: &mut Tx, event_id: &str) -> Result<Option<Uuid>, QueueError> {
    match tx.conn() {
        Conn::Sqlite(c) => {
            let id: Option<String> = sqlx::query_scalar("SELECT job_id FROM subsync_events WHERE event_id = ?1")
                .bind(event_id)
                .fetch_one(c)
                .await?;
            id.map(|s| Uuid::parse_str(&s).map_err(|_| QueueError::Corrupt(format!("event job id `{s}`")))).transpose()
        }
        Conn::Postgres(c) => Ok(sqlx::query_scalar("SELECT job_id FROM subsync_events WHERE event_id = $1")
            .bind(event_id)
            .fetch_one(c)
            .await?),
    }
}
