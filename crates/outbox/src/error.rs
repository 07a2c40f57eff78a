//! Errors of the outbox.

use subsync_queue::QueueError;
use thiserror::Error;

/// Why an outbox operation failed.
#[derive(Debug, Error)]
pub enum OutboxError {
    /// The database (or the queue inside it) failed; [`OutboxError::is_transient`] says
    /// whether a retry may help.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// A stored row could not be decoded, or a notification could not be encoded.
    #[error("corrupt outbox row: {0}")]
    Corrupt(String),
}

impl OutboxError {
    /// True when retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, OutboxError::Queue(e) if e.is_transient())
    }
}

impl From<sqlx::Error> for OutboxError {
    fn from(err: sqlx::Error) -> Self {
        OutboxError::Queue(QueueError::from(err))
    }
}
