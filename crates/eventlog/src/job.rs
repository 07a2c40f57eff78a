//! The sync job a stored event queues: where it runs and what its payload says.

use serde::{Deserialize, Serialize};
use subsync_queue::NewJob;

/// The queue the worker consumes: one job per stored, handled Stripe event.
pub const SYNC_QUEUE: &str = "stripe";

/// The payload of a sync job: `{"event_id": "evt_…"}`, plus `"replay": true` when an
/// operator re-enqueued the event. The worker reads the event itself from the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncJob {
    /// The Stripe event to apply (primary key of the event log).
    pub event_id: String,
    /// Set by an operator replay; only logged (a replay is as idempotent as any re-run).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replay: bool,
}

impl SyncJob {
    /// The job for a newly stored event: deduplicated on the event id (a redelivery within
    /// the queue's retention window creates nothing), serialized per subscription.
    pub fn sync(event_id: &str, group_key: &str) -> NewJob {
        Self { event_id: event_id.to_owned(), replay: false }.into_job(group_key).with_unique_key(event_id)
    }

    /// An operator's deliberate re-run: outside the unique-key deduplication (the event was
    /// seen before, that is the point), still serialized with its subscription's other jobs.
    pub fn replay(event_id: &str, group_key: &str) -> NewJob {
        Self { event_id: event_id.to_owned(), replay: true }.into_job(group_key)
    }

    fn into_job(self, group_key: &str) -> NewJob {
        let payload = serde_json::json!(self);
        NewJob::new(SYNC_QUEUE, payload).with_group(group_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_job_is_keyed_on_its_event_and_grouped_by_subscription() {
        let job = SyncJob::sync("evt_1", "sub_1");
        assert_eq!(job.queue, SYNC_QUEUE);
        assert_eq!(job.unique_key.as_deref(), Some("evt_1"));
        assert_eq!(job.group_key, "sub_1");
        assert_eq!(job.payload, serde_json::json!({ "event_id": "evt_1" }));
    }

    #[test]
    fn a_replay_has_no_unique_key_and_says_so() {
        let job = SyncJob::replay("evt_1", "sub_1");
        assert_eq!(job.unique_key, None);
        assert_eq!(job.group_key, "sub_1");
        let decoded: SyncJob = serde_json::from_value(job.payload).expect("payload");
        assert_eq!(decoded, SyncJob { event_id: "evt_1".into(), replay: true });
    }

    #[test]
    fn a_payload_without_replay_decodes_as_a_first_run() {
        let decoded: SyncJob = serde_json::from_value(serde_json::json!({ "event_id": "evt_9" })).expect("payload");
        assert!(!decoded.replay);
    }
}
