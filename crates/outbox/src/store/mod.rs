//! Every statement on `subsync_outbox`, one SQL dialect per module, routed with
//! [`subsync_queue::on_dialect!`]. Nothing else in subsync names that table.

mod postgres;
mod sqlite;

use chrono::{DateTime, Utc};
use serde::Serialize;
use subsync_queue::{Store, Tx, on_dialect};

use crate::change::{DeliveryJob, NOTIFICATION_TYPE, NewChange, Notification};
use crate::error::OutboxError;

/// The most rows [`list`] returns.
pub const MAX_LIST: u32 = 1000;

/// What [`append`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The change's id (`chg_…`), the notification's `webhook-id`.
    pub change_id: String,
    /// Its place in the outbox.
    pub seq: i64,
}

/// Appends `change` to the outbox inside `tx` (the transaction that made the change), with
/// its delivery job: both commit with the change or not at all.
pub async fn append(store: &Store, tx: &mut Tx, change: NewChange) -> Result<Appended, OutboxError> {
    let change_id = format!("chg_{}", uuid::Uuid::now_v7().simple());
    let notification = Notification {
        kind: NOTIFICATION_TYPE.to_owned(),
        id: change_id.clone(),
        user_id: change.user_id,
        version: change.version,
        previous: change.previous,
        current: change.current,
        cause: change.cause,
        at: change.at,
    };
    let body = serde_json::to_string(&notification).map_err(|e| OutboxError::Corrupt(e.to_string()))?;
    let row = NewRow {
        change_id: &change_id,
        user_id: &notification.user_id,
        version: notification.version,
        body: &body,
        at: notification.at,
    };
    let seq: i64 = on_dialect!(tx.conn(), insert(&row))?;
    let job = DeliveryJob { change_id: change_id.clone(), seq, user_id: notification.user_id.clone() };
    store.enqueue(tx, job.into_job()).await?;
    Ok(Appended { change_id, seq })
}

/// On PostgreSQL, `NOTIFY`s [`crate::PG_CHANNEL`] with `{"user_id", "version", "change_id"}`
/// when `tx` commits (nothing if it rolls back); a no-op on SQLite, which has no listeners.
pub async fn announce(tx: &mut Tx, user_id: &str, version: i64, change_id: Option<&str>) -> Result<(), OutboxError> {
    let payload = serde_json::json!({ "user_id": user_id, "version": version, "change_id": change_id }).to_string();
    on_dialect!(tx.conn(), announce(&payload))
}

/// A row to insert.
pub(crate) struct NewRow<'a> {
    pub change_id: &'a str,
    pub user_id: &'a str,
    pub version: i64,
    pub body: &'a str,
    pub at: DateTime<Utc>,
}

/// An undelivered change, as the deliverer sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChange {
    /// Its place in the outbox.
    pub seq: i64,
    /// `chg_…`: the `webhook-id`.
    pub change_id: String,
    /// The exact body to sign and send.
    pub body: String,
    /// When the change was written (the deliverer gives up on old ones).
    pub created_at: DateTime<Utc>,
    /// POSTs tried so far.
    pub attempts: i32,
}

/// `user_id`'s undelivered changes with `seq <= up_to`, oldest first, at most `limit`.
pub async fn undelivered(
    store: &Store,
    user_id: &str,
    up_to: i64,
    limit: u32,
) -> Result<Vec<PendingChange>, OutboxError> {
    on_dialect!(store.pool(), undelivered(user_id, up_to, i64::from(limit)))
}

/// Marks a change delivered (a 2xx answer); `false` if it already was.
pub async fn mark_delivered(store: &Store, seq: i64, at: DateTime<Utc>) -> Result<bool, OutboxError> {
    on_dialect!(store.pool(), mark_delivered(seq, at))
}

/// [`mark_delivered`] inside `tx`, so the delivery job's completion commits with it.
pub async fn mark_delivered_in(tx: &mut Tx, seq: i64, at: DateTime<Utc>) -> Result<bool, OutboxError> {
    on_dialect!(tx.conn(), mark_delivered_in(seq, at))
}

/// Records a failed POST of a change: one more attempt, and why.
pub async fn mark_failed(store: &Store, seq: i64, at: DateTime<Utc>, error: &str) -> Result<(), OutboxError> {
    on_dialect!(store.pool(), mark_failed(seq, at, error))
}

/// One outbox row, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxRow {
    /// Its place in the outbox.
    pub seq: i64,
    /// `chg_…`: the `webhook-id`.
    pub change_id: String,
    /// The user.
    pub user_id: String,
    /// The entitlement's version after the change.
    pub version: i64,
    /// The notification's body.
    pub body: String,
    /// When the change was written.
    pub created_at: DateTime<Utc>,
    /// When a 2xx answer came back.
    pub delivered_at: Option<DateTime<Utc>>,
    /// POSTs tried.
    pub attempts: i32,
    /// When the last one was tried.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Why the last one failed.
    pub last_error: Option<String>,
}

/// Which rows [`list`] returns (newest first).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this user's.
    pub user_id: Option<String>,
    /// Only those not delivered yet.
    pub undelivered_only: bool,
    /// At most this many (1..=[`MAX_LIST`]).
    pub limit: u32,
}

/// Outbox rows, newest first.
pub async fn list(store: &Store, filter: &ListFilter) -> Result<Vec<OutboxRow>, OutboxError> {
    if filter.limit == 0 || filter.limit > MAX_LIST {
        return Err(OutboxError::Queue(subsync_queue::QueueError::InvalidInput(format!(
            "limit must be between 1 and {MAX_LIST}"
        ))));
    }
    on_dialect!(store.pool(), list(filter))
}

/// One change by id.
pub async fn get(store: &Store, change_id: &str) -> Result<Option<OutboxRow>, OutboxError> {
    on_dialect!(store.pool(), get(change_id))
}

/// The outbox at a glance, for metrics and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxStats {
    /// Changes not delivered yet.
    pub undelivered: i64,
    /// Of those, how many have failed at least once.
    pub failing: i64,
    /// When the oldest undelivered change was written: the lag is now minus this.
    pub oldest_undelivered_at: Option<DateTime<Utc>>,
    /// Changes delivered, in all.
    pub delivered: i64,
}

/// Counts undelivered, failing and delivered changes.
pub async fn stats(store: &Store) -> Result<OutboxStats, OutboxError> {
    on_dialect!(store.pool(), stats())
}

/// Deletes changes delivered before `before`; returns how many. Undelivered changes are
/// never pruned.
pub async fn prune(store: &Store, before: DateTime<Utc>) -> Result<u64, OutboxError> {
    on_dialect!(store.pool(), prune(before))
}
