//! What a handler receives and returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::de::DeserializeOwned;

use crate::error::QueueError;
use crate::model::{ClaimedJob, JobId};
use crate::store::{Store, Tx};

/// A claimed job as a handler sees it: the arguments, and the means to complete the job in
/// the handler's own transaction.
#[derive(Debug, Clone)]
pub struct Job {
    claimed: Arc<ClaimedJob>,
    store: Store,
    completed: Arc<AtomicBool>,
}

impl Job {
    pub(crate) fn new(claimed: ClaimedJob, store: Store) -> Self {
        Self { claimed: Arc::new(claimed), store, completed: Arc::new(AtomicBool::new(false)) }
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.claimed.lease.job_id
    }

    /// Everything the worker knows about the claim (lease, attempt, key, payload).
    pub fn claimed(&self) -> &ClaimedJob {
        &self.claimed
    }

    /// The job's arguments as JSON.
    pub fn payload(&self) -> &serde_json::Value {
        &self.claimed.payload
    }

    /// The arguments decoded; a payload that does not decode is a permanent error (running it
    /// again cannot help).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.claimed.payload.clone())
            .map_err(|e| JobError::permanent(format!("job payload does not decode: {e}")))
    }

    /// The group (subscription id) this job serializes on.
    pub fn group_key(&self) -> &str {
        &self.claimed.lease.group_key
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.claimed.attempt
    }

    /// Marks the job succeeded inside `tx`: the handler's writes and the completion commit
    /// together, so re-running the job after a crash can never apply its effect twice.
    /// Returns [`QueueError::LeaseLost`] when another worker owns the job now; the handler
    /// must then roll back (drop `tx`).
    pub async fn complete_in(&self, tx: &mut Tx) -> Result<(), QueueError> {
        self.store.complete_in(tx, &self.claimed.lease).await?;
        let completed = self.completed.clone();
        tx.on_commit(move || completed.store(true, Ordering::SeqCst));
        Ok(())
    }

    /// True once a transaction that completed this job has committed.
    pub(crate) fn completed_in_handler(&self) -> bool {
        self.completed.load(Ordering::SeqCst)
    }
}

/// A handler's failure, saying whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Try again later, with backoff (a timeout, the database briefly away).
    #[error("{0}")]
    Retry(String),
    /// Trying again cannot help until someone changes something (bad payload, a price with
    /// no tier mapping): the job goes straight to `dead` for an operator.
    #[error("{0}")]
    Permanent(String),
}

impl JobError {
    /// A failure worth retrying.
    pub fn retry(msg: impl Into<String>) -> Self {
        JobError::Retry(msg.into())
    }

    /// A failure that needs an operator.
    pub fn permanent(msg: impl Into<String>) -> Self {
        JobError::Permanent(msg.into())
    }
}

impl From<QueueError> for JobError {
    fn from(err: QueueError) -> Self {
        match err {
            QueueError::InvalidInput(_) | QueueError::Corrupt(_) => JobError::Permanent(err.to_string()),
            _ => JobError::Retry(err.to_string()),
        }
    }
}
