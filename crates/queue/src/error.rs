//! Errors a queue caller can act on.

use thiserror::Error;

/// Everything that can go wrong in the queue, sorted by what the caller should do about it.
#[derive(Debug, Error)]
pub enum QueueError {
    /// The database could not be reached or refused the work. Transient: retry later
    /// (the intake answers 503 so Stripe retries).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database error (a bug, a constraint, corrupt data).
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Applying the schema failed.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The caller passed something the queue cannot accept; the message says what.
    #[error("{0}")]
    InvalidInput(String),
    /// A database URL we cannot use.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// The lease presented is no longer the job's lease: another worker owns it now.
    #[error("lease lost for job {0}: the job was taken over or changed by someone else")]
    LeaseLost(uuid::Uuid),
    /// A stored row could not be decoded (e.g. unknown state text).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The apalis worker running a queue's jobs stopped with an error.
    #[error("worker runtime failed: {0}")]
    Runtime(String),
}

impl QueueError {
    /// True when retrying the same call later may succeed (connection trouble, lock timeouts).
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Unavailable(_))
    }

    /// True when the transaction lost a race with another (PostgreSQL deadlock `40P01` or
    /// serialization failure `40001`) and was rolled back: running it again at once is the
    /// documented answer; the database itself is fine.
    pub fn is_conflict(&self) -> bool {
        match self {
            QueueError::Unavailable(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("40P01" | "40001"))
            }
            _ => false,
        }
    }
}

impl From<sqlx::Error> for QueueError {
    fn from(err: sqlx::Error) -> Self {
        if is_unavailable(&err) { QueueError::Unavailable(err) } else { QueueError::Database(err) }
    }
}

/// Connection-level failures and lock timeouts: the database is not serving us right now.
fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            // SQLite: 5 SQLITE_BUSY, 6 SQLITE_LOCKED, 10 SQLITE_IOERR, 13 SQLITE_FULL, 14 CANTOPEN
            // (extended codes keep the primary code in the low byte).
            if let Ok(n) = code.parse::<i32>() {
                return matches!(n & 0xff, 5 | 6 | 10 | 13 | 14);
            }
            // PostgreSQL: class 08 connection exception, 53 insufficient resources,
            // 57P01..57P03 admin shutdown / crash shutdown / cannot connect now,
            // 40001/40P01 serialization failure / deadlock (retry is the documented answer).
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(code, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
        }
        _ => false,
    }
}
