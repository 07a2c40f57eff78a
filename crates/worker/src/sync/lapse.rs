//! Timed lapses: a grant with an `access_until` (the end of a `past_due` grace period, the
//! period end of a subscription that cancels then) ends at that instant with no Stripe event.
//! Readers apply that at read time already (`entitlements::effective`); this job makes the
//! stored entitlement follow at the same instant, so history records the change (cause
//! `lapse`) and the application is notified.
//!
//! The job rides the sync queue, due at `access_until`, grouped with the granting
//! subscription's other jobs (so it never runs beside one of them) and unique per user and
//! instant (scheduling it again on every event is a no-op). When it runs it recomputes the
//! user at `max(now, access_until)`: if a later event already changed the grant, nothing
//! changes and nothing is written but the job's completion.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use subsync_eventlog::SYNC_QUEUE;
use subsync_queue::{Job, JobError, NewJob, Tx, Work};
use tracing::Instrument;

use super::refresh::{Cause, CauseKind, refresh_user};
use super::{SyncContext, job_error};
use crate::store::{self, StoredEntitlement};

/// The payload of a lapse job on the sync queue: `{"lapse": {"user_id": …, "access_until_ms": …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LapseJob {
    /// The user whose grant lapses.
    pub user_id: String,
    /// The grant's `access_until`, unix milliseconds.
    pub access_until_ms: i64,
}

/// The sync queue's two kinds of job.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum SyncTask {
    /// `{"lapse": {…}}`.
    Lapse {
        /// The lapse.
        lapse: LapseJob,
    },
    /// `{"event_id": …}`.
    Event(subsync_eventlog::SyncJob),
}

impl LapseJob {
    /// The job for `user_id`'s grant lapsing at `at`, serialized with `group`'s jobs.
    pub fn job(user_id: &str, at: DateTime<Utc>, group: &str) -> NewJob {
        let ms = at.timestamp_millis();
        let payload = serde_json::json!({ "lapse": LapseJob { user_id: user_id.to_owned(), access_until_ms: ms } });
        NewJob::new(SYNC_QUEUE, payload)
            .with_unique_key(format!("lapse:{user_id}:{ms}"))
            .with_group(group)
            .with_run_at(at)
    }

    fn at(&self) -> Result<DateTime<Utc>, JobError> {
        Utc.timestamp_millis_opt(self.access_until_ms)
            .single()
            .ok_or_else(|| JobError::permanent(format!("lapse instant {} is out of range", self.access_until_ms)))
    }
}

/// Schedules the lapse of a grant just written, if it has one still ahead.
pub(super) async fn schedule(
    tx: &mut Tx,
    ctx: &SyncContext,
    row: &StoredEntitlement,
    now: DateTime<Utc>,
) -> Result<(), JobError> {
    // The job falls due on the queue's clock (the database's wall clock): only a context
    // evaluating at that clock schedules one (see `SyncContext::with_clock`).
    if !ctx.on_wall_clock() {
        return Ok(());
    }
    let Some(at) = row.access_until.filter(|at| *at > now) else { return Ok(()) };
    let group = if row.subscription_id.is_empty() { row.user_id.as_str() } else { row.subscription_id.as_str() };
    ctx.store().enqueue(tx, LapseJob::job(&row.user_id, at, group)).await?;
    Ok(())
}

/// Runs a lapse job: recomputes the user at `max(now, access_until)` and completes the job,
/// in one transaction.
pub(super) async fn run(job: &Job, ctx: &SyncContext, lapse: &LapseJob) -> Result<(), JobError> {
    let span = tracing::info_span!("lapse", user_id = %lapse.user_id, job_id = %job.id(), subscription_id = %job.group_key(), attempt = job.attempt());
    async {
        let access_until = lapse.at()?;
        let now = ctx.now().max(access_until);
        let change = Arc::new(std::sync::Mutex::new(None));
        let work: Work = {
            let (ctx, job, lapse, change) = (ctx.clone(), job.clone(), lapse.clone(), Arc::clone(&change));
            Box::new(move |tx| {
                Box::pin(async move {
                    store::lock_users(tx, &[lapse.user_id.as_str()]).await.map_err(job_error)?;
                    let cause = Cause {
                        kind: CauseKind::Lapse(access_until),
                        job_id: job.id(),
                        subscription_id: job.group_key(),
                        at: Utc::now(),
                    };
                    let changed = refresh_user(tx, &ctx, &lapse.user_id, &cause, now).await?;
                    job.complete_in(tx).await?;
                    if let Some(observer) = &ctx.observer {
                        observer.releasing(&job);
                    }
                    *change.lock().unwrap_or_else(|p| p.into_inner()) = changed;
                    Ok(())
                })
            })
        };
        ctx.committer.run(job.group_key(), work).await?;
        let change = change.lock().unwrap_or_else(|p| p.into_inner()).take();
        match change {
            Some(c) => tracing::info!(from = %c.from, to = %c.to, "grant lapsed"),
            None => tracing::debug!("lapse found nothing to change"),
        }
        Ok(())
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lapse_job_is_due_at_the_instant_unique_per_user_and_grouped_by_subscription() {
        let at = Utc.timestamp_millis_opt(1_800_000_000_000).single().expect("time");
        let job = LapseJob::job("u1", at, "sub_1");
        assert_eq!(job.queue, SYNC_QUEUE);
        assert_eq!(job.unique_key.as_deref(), Some("lapse:u1:1800000000000"));
        assert_eq!(job.group_key, "sub_1");
        assert_eq!(job.run_at, Some(at));
    }

    #[test]
    fn the_sync_queue_tells_its_two_payloads_apart() {
        let lapse: SyncTask =
            serde_json::from_value(serde_json::json!({"lapse": {"user_id": "u1", "access_until_ms": 5}}))
                .expect("lapse");
        assert!(matches!(lapse, SyncTask::Lapse { lapse } if lapse.user_id == "u1"));
        let event: SyncTask = serde_json::from_value(serde_json::json!({"event_id": "evt_1"})).expect("event");
        assert!(matches!(event, SyncTask::Event(e) if e.event_id == "evt_1"));
        assert!(serde_json::from_value::<SyncTask>(serde_json::json!({"nope": 1})).is_err());
    }
}
