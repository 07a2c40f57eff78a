//! Forgetting old events: an event row is kept while its job exists (the queue keeps jobs,
//! and so their unique keys, for the retention window) and for the same window otherwise.

use chrono::{DateTime, Utc};
use subsync_queue::{QueueError, Store};

/// Deletes events received before `before` whose sync job no longer exists (or that never
/// had one). Returns how many.
pub async fn prune_events(store: &Store, before: DateTime<Utc>) -> Result<u64, QueueError> {
    let n = if let Some(pool) = store.sqlite_pool() {
        sqlx::query(
            "DELETE FROM subsync_events WHERE received_at < ?1 \
             AND (job_id IS NULL OR NOT EXISTS (SELECT 1 FROM subsync_jobs j WHERE j.id = subsync_events.job_id))",
        )
        .bind(before.timestamp_millis())
        .execute(pool)
        .await?
        .rows_affected()
    } else if let Some(pool) = store.postgres_pool() {
        sqlx::query(
            "DELETE FROM subsync_events e WHERE received_at < $1 \
             AND (job_id IS NULL OR NOT EXISTS (SELECT 1 FROM subsync_jobs j WHERE j.id = e.job_id))",
        )
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected()
    } else {
        0
    };
    Ok(n)
}
