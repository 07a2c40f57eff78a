//! The queue's vocabulary: what goes in, what comes out, and what operators see.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::QueueError;

/// A job's identity. UUID v7, so ids sort by creation time and never need parsing as anything else.
pub type JobId = Uuid;

/// Where a job is in its life. Stored as lowercase text so operators can read it in SQL.
///
/// `pending` → `running` → `succeeded`; a failure goes back to `pending` (with a later `run_at`)
/// until attempts run out or the error is permanent, then `dead`. Operators may move `pending`
/// to `cancelled`, and `dead`/`cancelled` back to `pending` (retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its `run_at` and for its group to be free.
    Pending,
    /// Claimed by a worker that holds a lease on it.
    Running,
    /// Done; its effect is committed.
    Succeeded,
    /// Gave up: attempts exhausted or a permanent error. Needs an operator.
    Dead,
    /// Stopped by an operator before it ran.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order; for counts and filters.
    pub const ALL: [JobState; 5] =
        [JobState::Pending, JobState::Running, JobState::Succeeded, JobState::Dead, JobState::Cancelled];

    /// The text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Finished states never run again unless an operator retries them.
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Dead | JobState::Cancelled)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = QueueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| {
            QueueError::InvalidInput(format!(
                "unknown job state `{s}` (expected one of: pending, running, succeeded, dead, cancelled)"
            ))
        })
    }
}

/// A job to enqueue. Built with [`NewJob::new`] and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Queue name; workers consume one queue each.
    pub queue: String,
    /// Deduplication key (here the Stripe `event.id`): a second enqueue with the same key
    /// in the same queue returns the first job instead of creating another.
    pub unique_key: Option<String>,
    /// Serialization key (here the Stripe subscription id). Jobs of one group never run at
    /// the same time; empty means "no group": the job is serialized only with itself.
    pub group_key: String,
    /// The job's arguments, as JSON.
    pub payload: serde_json::Value,
    /// Attempts before the job goes `dead`; `None` takes the queue's default.
    pub max_attempts: Option<u32>,
    /// Earliest time to run; `None` means now (database clock).
    pub run_at: Option<DateTime<Utc>>,
}

impl NewJob {
    /// A job for `queue` carrying `payload`, with no key, no group and default attempts.
    pub fn new(queue: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            queue: queue.into(),
            unique_key: None,
            group_key: String::new(),
            payload,
            max_attempts: None,
            run_at: None,
        }
    }

    /// Deduplicate on `key` within the queue.
    pub fn with_unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// Serialize with every other job of `group`.
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.group_key = group.into();
        self
    }

    /// Override the queue's default attempt budget.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Do not run before `at`.
    pub fn with_run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), QueueError> {
        if self.queue.trim().is_empty() {
            return Err(QueueError::InvalidInput("queue name must not be empty".into()));
        }
        if self.unique_key.as_deref().is_some_and(|k| k.is_empty()) {
            return Err(QueueError::InvalidInput("unique key must not be empty (use None for no key)".into()));
        }
        if self.max_attempts == Some(0) {
            return Err(QueueError::InvalidInput("max_attempts must be at least 1".into()));
        }
        Ok(())
    }
}

/// What an enqueue did. Never an error for a duplicate: callers answer the sender the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum EnqueueOutcome {
    /// A new job was written.
    Created {
        /// The new job.
        job_id: JobId,
    },
    /// A job with this unique key already exists (within the retention window).
    Duplicate {
        /// The first job for the key.
        job_id: JobId,
        /// Where that job is now.
        state: JobState,
    },
}

impl EnqueueOutcome {
    /// The id of the job that carries the key, new or old.
    pub fn job_id(&self) -> JobId {
        match self {
            EnqueueOutcome::Created { job_id } | EnqueueOutcome::Duplicate { job_id, .. } => *job_id,
        }
    }

    /// True when nothing new was stored.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, EnqueueOutcome::Duplicate { .. })
    }
}

/// The proof that a worker holds a job: every state change is a compare-and-set on it, so a
/// worker that lost its lease cannot overwrite what another worker did since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The leased job.
    pub job_id: JobId,
    /// Random per claim; the compare-and-set token.
    pub token: Uuid,
    /// The job's queue.
    pub queue: String,
    /// The job's group, released when the job leaves `running`.
    pub group_key: String,
}

/// A job handed to a worker: its arguments plus the lease under which it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimedJob {
    /// The lease to present for heartbeats and completion.
    pub lease: Lease,
    /// Deduplication key, if any.
    pub unique_key: Option<String>,
    /// The job's arguments.
    pub payload: serde_json::Value,
    /// Which attempt this is, starting at 1.
    pub attempt: u32,
    /// The attempt budget.
    pub max_attempts: u32,
    /// When the job was enqueued.
    pub created_at: DateTime<Utc>,
}

/// Everything stored about a job, for operators.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    /// Identity.
    pub id: JobId,
    /// Queue name.
    pub queue: String,
    /// Deduplication key.
    pub unique_key: Option<String>,
    /// Serialization group.
    pub group_key: String,
    /// Arguments.
    pub payload: serde_json::Value,
    /// Current state.
    pub state: JobState,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempt budget.
    pub max_attempts: u32,
    /// Earliest next run.
    pub run_at: DateTime<Utc>,
    /// Enqueue time.
    pub created_at: DateTime<Utc>,
    /// Start of the latest attempt.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a finished state.
    pub finished_at: Option<DateTime<Utc>>,
    /// Worker holding (or that last held) the lease.
    pub lease_owner: Option<String>,
    /// When the current lease runs out (running jobs only).
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The latest failure, kept until the job succeeds.
    pub last_error: Option<String>,
}

/// A filter for listing, counting and bulk operations. Empty fields match everything.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobFilter {
    /// Only these states.
    #[serde(default)]
    pub states: Vec<JobState>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this group.
    pub group_key: Option<String>,
    /// Only this unique key.
    pub unique_key: Option<String>,
    /// Enqueued at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Enqueued before.
    pub created_before: Option<DateTime<Utc>>,
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// Rows to return (1..=1000).
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
}

impl Default for Page {
    fn default() -> Self {
        Self { limit: 50, offset: 0 }
    }
}

impl Page {
    /// The largest page we serve: a listing must stay cheap for the database.
    pub const MAX_LIMIT: u32 = 1000;

    pub(crate) fn validate(&self) -> Result<(), QueueError> {
        if self.limit == 0 || self.limit > Self::MAX_LIMIT {
            return Err(QueueError::InvalidInput(format!("page limit must be between 1 and {}", Self::MAX_LIMIT)));
        }
        if self.offset > i64::MAX as u64 {
            return Err(QueueError::InvalidInput("page offset is too large".into()));
        }
        Ok(())
    }
}

/// Jobs per queue and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateCount {
    /// Queue name.
    pub queue: String,
    /// State.
    pub state: JobState,
    /// How many jobs.
    pub count: u64,
}

/// A group that is running a job right now: who holds which subscription.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunningGroup {
    /// Queue name.
    pub queue: String,
    /// The group (subscription id).
    pub group_key: String,
    /// The running job.
    pub job_id: JobId,
    /// Its worker.
    pub lease_owner: Option<String>,
    /// When the lease runs out unless renewed.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// When the attempt started.
    pub started_at: Option<DateTime<Utc>>,
}

/// What happened to a job whose handler failed, or whose lease expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FailOutcome {
    /// Back to pending; runs again at `run_at`.
    Retrying {
        /// The next attempt's earliest time.
        run_at: DateTime<Utc>,
    },
    /// No attempts left or a permanent error.
    Dead,
    /// The lease was no longer ours: another worker took the job, or an operator moved it.
    LeaseLost,
}
