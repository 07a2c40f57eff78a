//! Every statement on `subsync_events`, one SQL dialect per module (`sqlite.rs`,
//! `postgres.rs`), routed with [`subsync_queue::on_dialect!`]. Nothing else in subsync names
//! that table.
//!
//! Two keys make a duplicate delivery, however late, a no-op: the job's unique key (the
//! Stripe event id) within the queue's retention window, and the table's primary key (the
//! same id), both written with `ON CONFLICT DO NOTHING`.

mod postgres;
mod sqlite;

use chrono::{DateTime, Utc};
use subsync_queue::{Dialect, QueueError, Store, on_dialect};

use crate::record::{EventRecord, Stored, StoredEvent};

/// Stores `records` with their sync jobs, atomically and durably; results in the same order.
/// On PostgreSQL that is one autocommitted statement for the whole batch; on SQLite one
/// transaction (its statements cost no round trips).
pub async fn store_batch(store: &Store, records: &[&EventRecord]) -> Result<Vec<Stored>, QueueError> {
    match store.pool() {
        Dialect::Postgres(pool) => postgres::store_batch(store, pool, records).await,
        Dialect::Sqlite(_) => sqlite::store_batch(store, records).await,
    }
}

/// The stored event `event_id`, if any (event rows never change once written, so this reads
/// on the pool, outside any transaction).
pub async fn get(store: &Store, event_id: &str) -> Result<Option<StoredEvent>, QueueError> {
    on_dialect!(store.pool(), get(event_id))
}

/// Deletes events received before `before` whose sync job no longer exists (or that never
/// had one): an event is kept at least as long as its job, and so its unique key. Returns
/// how many.
pub async fn prune(store: &Store, before: DateTime<Utc>) -> Result<u64, QueueError> {
    on_dialect!(store.pool(), prune(before))
}

fn parse_disposition(text: &str) -> Result<crate::Disposition, QueueError> {
    crate::Disposition::parse(text).ok_or_else(|| QueueError::Corrupt(format!("event disposition `{text}`")))
}
