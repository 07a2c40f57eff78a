//! The operator actions that change jobs: retry and cancel (one job or every job matching a
//! filter) and replay. Each takes the [`Actor`] and appends its own audit entry, success or
//! failure, so the CLI, the API and the dashboard record the same thing and none can forget.
//!
//! Retry and cancel are the queue's own statements, so their entry is written right after,
//! with the result; a replay's new job and its entry commit in one transaction.

use subsync_eventlog::{Disposition, SyncJob};
use subsync_queue::{JobId, JobRecord, Selection, Store};

use super::{BULK_CHUNK, resolve_job};
use crate::audit::{self, Actor, AuditAction, NewEntry};
use crate::error::{AdminError, no_such_job};

/// Which job action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Back to pending with a fresh attempt budget.
    Retry,
    /// Never run.
    Cancel,
}

impl Action {
    /// The verb, for messages and logs.
    pub fn verb(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Cancel => "cancel",
        }
    }

    fn audit_one(self) -> AuditAction {
        match self {
            Action::Retry => AuditAction::Retry,
            Action::Cancel => AuditAction::Cancel,
        }
    }

    fn audit_bulk(self) -> AuditAction {
        match self {
            Action::Retry => AuditAction::BulkRetry,
            Action::Cancel => AuditAction::BulkCancel,
        }
    }

    async fn apply(self, store: &Store, selection: &Selection) -> Result<u64, AdminError> {
        Ok(match self {
            Action::Retry => store.retry(selection).await?,
            Action::Cancel => store.cancel(selection).await?,
        })
    }

    fn refusal(self, job: &JobRecord) -> String {
        match self {
            Action::Retry => format!(
                "job {} is {}: only dead or cancelled jobs, or pending jobs waiting for their next attempt, can be retried",
                job.id, job.state
            ),
            Action::Cancel => format!(
                "job {} is {}: only pending or dead jobs can be cancelled (a running job belongs to its worker until it finishes)",
                job.id, job.state
            ),
        }
    }
}

/// What an audit entry says about a failure: the operator-facing message (database details
/// stay in the server log, as in every other answer).
fn failure(e: &AdminError) -> Option<String> {
    Some(e.public_message())
}

/// Resolves every id (job id or event id) for `action`, all before anything changes. An id
/// that does not resolve fails the whole request and is recorded as a failed `action` on it.
pub async fn resolve_for_action(
    store: &Store,
    action: Action,
    ids: &[String],
    actor: &Actor,
) -> Result<Vec<JobRecord>, AdminError> {
    let mut jobs = Vec::with_capacity(ids.len());
    for id in ids {
        match resolve_job(store, id, None).await {
            Ok(job) => jobs.push(job),
            Err(e) => {
                let entry = NewEntry {
                    actor,
                    action: action.audit_one(),
                    target: id.trim().to_string(),
                    detail: None,
                    jobs: 0,
                    error: failure(&e),
                };
                audit::record_after(store, &entry).await;
                return Err(e);
            }
        }
    }
    Ok(jobs)
}

/// Applies `action` to one resolved job and records it. `Ok(false)` when the job's state
/// does not allow the action (recorded as failed, with the reason); `Err` when the database
/// failed (recorded too).
pub async fn act_on_job(store: &Store, action: Action, job: &JobRecord, actor: &Actor) -> Result<bool, AdminError> {
    let result = action.apply(store, &Selection::Ids(vec![job.id])).await;
    let (changed, error) = match &result {
        Ok(0) => (0, Some(action.refusal(job))),
        Ok(n) => (*n, None),
        Err(e) => (0, failure(e)),
    };
    let detail = match &job.unique_key {
        Some(key) => format!("event {key}; was {}", job.state),
        None => format!("was {}", job.state),
    };
    let entry = NewEntry {
        actor,
        action: action.audit_one(),
        target: job.id.to_string(),
        detail: Some(detail),
        jobs: changed,
        error,
    };
    audit::record_after(store, &entry).await;
    if changed > 0 {
        tracing::info!(action = action.verb(), job_id = %job.id, queue = %job.queue, group = %job.group_key, from_state = %job.state, actor = actor.name(), via = actor.via().as_str(), "operator action");
    }
    result.map(|n| n > 0)
}

/// Retries or cancels one job, found by id or event id, and records it. A job in a state the
/// action does not apply to is a conflict that says which state it is in, rather than a
/// silent no-op.
pub async fn act_on_one(
    store: &Store,
    action: Action,
    id_or_key: &str,
    actor: &Actor,
) -> Result<JobRecord, AdminError> {
    let job = resolve_for_action(store, action, &[id_or_key.to_string()], actor).await?.remove(0);
    if !act_on_job(store, action, &job, actor).await? {
        return Err(AdminError::Conflict(action.refusal(&job)));
    }
    store.get(job.id).await?.ok_or_else(|| no_such_job(id_or_key))
}

/// Applies `action` to `ids` (the snapshot of a filter the operator confirmed, described by
/// `filter`) in chunks of [`BULK_CHUNK`], calling `progress(done, total, changed)` after each
/// chunk, and records one entry with the filter, how many matched and how many changed (also
/// when a chunk fails part-way). Returns how many jobs changed.
pub async fn apply_bulk(
    store: &Store,
    action: Action,
    ids: &[JobId],
    filter: &str,
    actor: &Actor,
    mut progress: impl FnMut(usize, usize, u64),
) -> Result<u64, AdminError> {
    let mut changed = 0;
    let mut done = 0;
    let mut failed = None;
    for chunk in ids.chunks(BULK_CHUNK) {
        match action.apply(store, &Selection::Ids(chunk.to_vec())).await {
            Ok(n) => changed += n,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
        done += chunk.len();
        progress(done, ids.len(), changed);
    }
    let entry = NewEntry {
        actor,
        action: action.audit_bulk(),
        target: filter.to_string(),
        detail: Some(format!("matched {}", ids.len())),
        jobs: changed,
        error: failed.as_ref().and_then(failure),
    };
    audit::record_after(store, &entry).await;
    tracing::info!(
        action = action.verb(),
        matched = ids.len(),
        changed,
        filter,
        actor = actor.name(),
        via = actor.via().as_str(),
        "operator bulk action"
    );
    match failed {
        Some(e) => Err(e),
        None => Ok(changed),
    }
}

/// Runs a stored event's sync again as a new job (kept apart from the unique-key
/// deduplication) and records it: the job and its audit entry commit together. A refusal
/// (unknown event, nothing to sync) or a failure is recorded as failed. Returns the new job.
pub async fn replay_event(store: &Store, event_id: &str, actor: &Actor) -> Result<JobId, AdminError> {
    let result = replay_in_one_transaction(store, event_id, actor).await;
    if let Err(e) = &result {
        let entry = NewEntry {
            actor,
            action: AuditAction::Replay,
            target: event_id.to_string(),
            detail: None,
            jobs: 0,
            error: failure(e),
        };
        audit::record_after(store, &entry).await;
    }
    result
}

async fn replay_in_one_transaction(store: &Store, event_id: &str, actor: &Actor) -> Result<JobId, AdminError> {
    let event = subsync_eventlog::get(store, event_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no stored event with id `{event_id}`")))?;
    if event.disposition != Disposition::Handled {
        return Err(AdminError::Conflict(format!(
            "event `{event_id}` is {}: there is no sync to replay",
            event.disposition
        )));
    }
    let mut tx = store.begin().await?;
    let job_id = store.enqueue(&mut tx, SyncJob::replay(&event.event_id, &event.group_key)).await?.job_id();
    let entry = NewEntry {
        actor,
        action: AuditAction::Replay,
        target: event.event_id.clone(),
        detail: Some(format!("replay job {job_id}")),
        jobs: 1,
        error: None,
    };
    audit::record_in(&mut tx, &entry).await?;
    tx.commit().await?;
    tracing::info!(event_id, %job_id, actor = actor.name(), via = actor.via().as_str(), "operator replay");
    Ok(job_id)
}
