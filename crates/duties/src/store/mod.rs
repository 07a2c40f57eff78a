//! Every statement on `subsync_duties`, one SQL dialect per module, routed with
//! [`subsync_queue::on_dialect!`]. Nothing else in subsync names that table.

mod postgres;
mod sqlite;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use subsync_queue::{QueueError, Store, on_dialect};

/// A duty's row, as operators see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DutyStatus {
    /// The duty (`reconcile`, `prune`).
    pub name: String,
    /// The process running it now, if any (its lease has not expired).
    pub leader: Option<String>,
    /// When that lease expires unless renewed.
    pub lease_until: Option<DateTime<Utc>>,
    /// Where the duty got to (reconcile: its high-water mark, unix seconds).
    pub checkpoint: Option<i64>,
    /// When the last run started.
    pub last_started_at: Option<DateTime<Utc>>,
    /// When the last run ended.
    pub last_finished_at: Option<DateTime<Utc>>,
    /// When the last successful run ended (alert when it is old).
    pub last_success_at: Option<DateTime<Utc>>,
    /// Whether the last run succeeded.
    pub last_ok: Option<bool>,
    /// What the last run did (JSON), when it succeeded.
    pub last_result: Option<serde_json::Value>,
    /// Why the last run failed, when it did.
    pub last_error: Option<String>,
    /// Who ran it (a process, or `cli` for a manual run).
    pub last_runner: Option<String>,
    /// Runs recorded, and how many of them failed.
    pub runs: i64,
    /// Failed runs recorded.
    pub failures: i64,
}

/// One finished run, to record.
#[derive(Debug, Clone)]
pub struct RunRecord<'a> {
    /// Who ran it.
    pub runner: &'a str,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// What it did, or why it failed.
    pub result: Result<&'a serde_json::Value, &'a str>,
}

/// The right to run a duty, held by one process until released or expired.
#[derive(Debug)]
pub struct Lease {
    store: Store,
    name: String,
    holder: String,
    ttl: Duration,
}

fn until(ttl: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(60))
}

/// Takes `name`'s lease for `holder` for `ttl` if it is free (never taken, released, or
/// expired) or already `holder`'s; `None` when another process holds it. One conditional
/// update decides, so two processes never both get it.
pub async fn try_lease(store: &Store, name: &str, holder: &str, ttl: Duration) -> Result<Option<Lease>, QueueError> {
    let now = Utc::now();
    let taken: bool = on_dialect!(store.pool(), try_lease(name, holder, until(ttl), now))?;
    Ok(taken.then(|| Lease { store: store.clone(), name: name.to_owned(), holder: holder.to_owned(), ttl }))
}

impl Lease {
    /// Extends the lease by its ttl; `false` when it was lost (it expired and another
    /// process took it): the run must stop trusting it.
    pub async fn renew(&self) -> Result<bool, QueueError> {
        on_dialect!(self.store.pool(), renew(&self.name, &self.holder, until(self.ttl)))
    }

    /// Gives the lease back so the next due run can start at once.
    pub async fn release(self) -> Result<(), QueueError> {
        on_dialect!(self.store.pool(), release(&self.name, &self.holder))
    }

    /// Which duty it is for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long it lasts unless renewed.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// Every duty's row, by name.
pub async fn status(store: &Store) -> Result<Vec<DutyStatus>, QueueError> {
    on_dialect!(store.pool(), status(None))
}

/// One duty's row, if it ever ran or was leased.
pub async fn get(store: &Store, name: &str) -> Result<Option<DutyStatus>, QueueError> {
    Ok(on_dialect!(store.pool(), status(Some(name)))?.into_iter().next())
}

/// Moves `name`'s checkpoint forward to `value` (never back: a slower concurrent run that
/// started earlier cannot undo a later one's progress).
pub async fn advance_checkpoint(store: &Store, name: &str, value: i64) -> Result<(), QueueError> {
    on_dialect!(store.pool(), advance_checkpoint(name, value))
}

/// Records a finished run (scheduled or manual) as the duty's last run.
pub async fn record_run(store: &Store, name: &str, run: &RunRecord<'_>) -> Result<(), QueueError> {
    let result = match run.result {
        Ok(value) => Some(value.to_string()),
        Err(_) => None,
    };
    let error = run.result.err();
    on_dialect!(store.pool(), record_run(name, run, result.as_deref(), error))
}

fn parse_result(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}
