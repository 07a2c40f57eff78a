//! Errors of the read API and the runtime, sorted by what the caller can do about them.

use subsync_queue::QueueError;
use thiserror::Error;

/// Why a worker operation failed.
#[derive(Debug, Error)]
pub enum WorkerError {
    /// The database refused or could not be reached; [`WorkerError::is_transient`] says
    /// whether trying again later may help.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// A stored row could not be decoded (e.g. a state JSON that no longer parses): a bug or
    /// a manual edit, never fixed by retrying.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The caller passed something we cannot serve (e.g. a page limit of 0).
    #[error("{0}")]
    InvalidInput(String),
    /// The apalis worker stopped with an error.
    #[error("worker runtime failed: {0}")]
    Runtime(String),
}

impl WorkerError {
    /// True when retrying the same call later may succeed (connection trouble, lock timeouts).
    pub fn is_transient(&self) -> bool {
        matches!(self, WorkerError::Queue(e) if e.is_transient())
    }
}

impl From<sqlx::Error> for WorkerError {
    fn from(err: sqlx::Error) -> Self {
        WorkerError::Queue(QueueError::from(err))
    }
}
