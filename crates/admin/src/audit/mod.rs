//! The audit log of operator actions, `subsync_audit`: who retried, cancelled, bulk-changed
//! or replayed which jobs, when, through which face (CLI, API, dashboard), and with what
//! result; plus dashboard sign-ins and sign-outs. This crate owns the table; every statement
//! on it is here, one SQL dialect per module (`sqlite.rs`, `postgres.rs`), routed with
//! [`subsync_queue::on_dialect!`].
//!
//! Append-only: there is no update or delete here, the migration's triggers refuse both (and
//! PostgreSQL's `TRUNCATE`), and `prune` never touches the table. Entries are written by the
//! operations in [`crate::ops`] themselves, so no caller can forget one.

mod actor;
mod postgres;
mod query;
mod sqlite;

use chrono::{DateTime, Utc};
use serde::Serialize;
use subsync_queue::{QueueError, Store, Tx, on_dialect};

pub use actor::{API_DEFAULT_ACTOR, Actor, ActorError, MAX_ACTOR_CHARS, Via, validate_actor_name};
pub use query::{AUDIT_PARAMS, AuditQuery, DEFAULT_LIST_LIMIT};

/// What was done, as stored in `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// One job back to pending.
    Retry,
    /// One job cancelled.
    Cancel,
    /// Every job matching a filter back to pending.
    BulkRetry,
    /// Every job matching a filter cancelled.
    BulkCancel,
    /// A stored event's sync run again as a new job.
    Replay,
    /// A dashboard session started.
    Login,
    /// A dashboard session ended.
    Logout,
}

impl AuditAction {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Retry => "retry",
            AuditAction::Cancel => "cancel",
            AuditAction::BulkRetry => "bulk_retry",
            AuditAction::BulkCancel => "bulk_cancel",
            AuditAction::Replay => "replay",
            AuditAction::Login => "login",
            AuditAction::Logout => "logout",
        }
    }
}

/// One entry to append. `error: None` records success.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    /// Who, and through which face.
    pub actor: &'a Actor,
    /// What.
    pub action: AuditAction,
    /// To what: a job id, an event id, a bulk filter's description, or empty (sign-in).
    pub target: String,
    /// Anything else worth keeping (how many jobs a bulk filter matched, the replay's job).
    pub detail: Option<String>,
    /// How many jobs the action changed or created.
    pub jobs: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// A stored entry, as the CLI, API and dashboard show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Increasing with every entry.
    pub id: i64,
    /// When it was recorded (UTC).
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// `cli`, `api` or `dashboard`.
    pub via: String,
    /// `retry`, `cancel`, `bulk_retry`, `bulk_cancel`, `replay`, `login` or `logout`.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// Anything else recorded.
    pub detail: Option<String>,
    /// Jobs changed or created.
    pub jobs: u64,
    /// True when the action succeeded.
    pub ok: bool,
    /// Why it failed.
    pub error: Option<String>,
}

/// Which entries to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only entries recorded at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only this actor (exact name).
    pub actor: Option<String>,
    /// At most this many (the caller bounds it; see [`MAX_LIST_LIMIT`]).
    pub limit: u32,
}

/// The most entries one listing returns.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// Appends `entry` inside the caller's transaction: it lands with the action's own writes,
/// or not at all.
pub async fn record_in(tx: &mut Tx, entry: &NewEntry<'_>) -> Result<(), QueueError> {
    on_dialect!(tx.conn(), insert(entry))
}

/// Appends `entry` in a transaction of its own (SQLite's writer lock is taken like every
/// other write's).
pub async fn record(store: &Store, entry: &NewEntry<'_>) -> Result<(), QueueError> {
    let mut tx = store.begin().await?;
    record_in(&mut tx, entry).await?;
    tx.commit().await
}

/// [`record`] for an action that has already happened: a failure to write the entry is
/// logged at error level with everything the entry would have said, and does not turn the
/// finished action into a failure (its caller must still learn what was done).
pub(crate) async fn record_after(store: &Store, entry: &NewEntry<'_>) {
    if let Err(e) = record(store, entry).await {
        tracing::error!(
            error = %e,
            actor = entry.actor.name(),
            via = entry.actor.via().as_str(),
            action = entry.action.as_str(),
            target = %entry.target,
            jobs = entry.jobs,
            ok = entry.error.is_none(),
            "cannot write the audit entry for an operator action"
        );
    }
}

/// Entries matching `filter`, newest first.
pub async fn list(store: &Store, filter: &AuditFilter) -> Result<Vec<AuditRecord>, QueueError> {
    if filter.limit == 0 || filter.limit > MAX_LIST_LIMIT {
        return Err(QueueError::InvalidInput(format!(
            "limit must be between 1 and {MAX_LIST_LIMIT}, got {}",
            filter.limit
        )));
    }
    on_dialect!(store.pool(), list(filter))
}

/// The most characters kept of an entry's target, detail or error: an operator may paste
/// anything as an id, and one entry must stay one readable row.
pub const MAX_TEXT_CHARS: usize = 1000;

/// `s`, cut to [`MAX_TEXT_CHARS`] characters (never inside a character).
fn cap(s: &str) -> &str {
    match s.char_indices().nth(MAX_TEXT_CHARS) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

fn to_u64(n: i64, what: &str) -> Result<u64, QueueError> {
    u64::try_from(n).map_err(|_| QueueError::Corrupt(format!("audit {what} {n}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        assert_eq!(cap("evt_1"), "evt_1");
        let long = "é".repeat(MAX_TEXT_CHARS + 5);
        assert_eq!(cap(&long).chars().count(), MAX_TEXT_CHARS);
        assert_eq!(AuditAction::BulkCancel.as_str(), "bulk_cancel");
    }
}
