//! What a notification says: the wire format applications receive (docs/integrating.md).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use subsync_queue::NewJob;

use crate::NOTIFY_QUEUE;

/// The `type` of every notification subsync sends today.
pub const NOTIFICATION_TYPE: &str = "entitlement.updated";

/// Attempts before a delivery job is dead. Far more than can happen: the deliverer gives up
/// by age (`--notify-give-up-after`, 3 days by default), not by count.
const DELIVERY_ATTEMPTS: u32 = 100_000;

/// What a user may do, as a notification states it: the stored decision (before the
/// read-time lapse rule, which a timed lapse job applies on time and notifies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntitlementState {
    /// The tier (`free` when the user has nothing).
    pub tier: String,
    /// Its features: booleans and numeric limits, e.g. `{"itsa.quarterly": true, "sources.max": 3}`.
    pub features: serde_json::Value,
    /// The granting subscription's Stripe status.
    pub status: Option<String>,
    /// Why the user has this access (`active`, `past_due_grace`, `period_ended`, …).
    pub reason: String,
    /// When this grant lapses without any further event (exclusive); `null`: not scheduled.
    pub access_until: Option<DateTime<Utc>>,
    /// The granting subscription's current period end.
    pub period_end: Option<DateTime<Utc>>,
}

impl EntitlementState {
    /// Whether `other` differs in what the application acts on: tier, features or
    /// `access_until` (a status or reason change alone is not notified).
    pub fn differs_for_app(&self, other: &EntitlementState) -> bool {
        self.tier != other.tier || self.features != other.features || self.access_until != other.access_until
    }
}

/// What caused a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeCause {
    /// A Stripe event (or a fetched snapshot stored as one).
    Event {
        /// Its id (`evt_…`, or `fetch_…` for a snapshot fetched from Stripe's API).
        event_id: String,
    },
    /// A grant's `access_until` passed, with no Stripe event.
    Lapse {
        /// The instant that passed.
        access_until: DateTime<Utc>,
    },
}

/// A change to append: the worker fills it inside the change's transaction.
#[derive(Debug, Clone)]
pub struct NewChange {
    /// The user.
    pub user_id: String,
    /// The entitlement's `version` after the change (the read API's version).
    pub version: i64,
    /// What the user had.
    pub previous: EntitlementState,
    /// What the user has now.
    pub current: EntitlementState,
    /// Why.
    pub cause: ChangeCause,
    /// When the change was written.
    pub at: DateTime<Utc>,
}

/// The body of a notification, as signed and POSTed (Standard Webhooks) and as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Always [`NOTIFICATION_TYPE`] today.
    #[serde(rename = "type")]
    pub kind: String,
    /// The change's id, also the `webhook-id` header: the receiver's idempotency key.
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The entitlement's version after the change: grows per user; a receiver ignores a
    /// notification whose version is not above the last one it applied.
    pub version: i64,
    /// What the user had.
    pub previous: EntitlementState,
    /// What the user has now.
    pub current: EntitlementState,
    /// Why it changed.
    pub cause: ChangeCause,
    /// When the change was written.
    pub at: DateTime<Utc>,
}

/// The payload of a delivery job on [`NOTIFY_QUEUE`]: deliver the user's undelivered
/// changes up to and including `seq`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryJob {
    /// The change this job was created for.
    pub change_id: String,
    /// Its place in the outbox.
    pub seq: i64,
    /// Its user (the job's group).
    pub user_id: String,
}

impl DeliveryJob {
    /// The job: unique on the change, grouped by user (one delivery per user at a time).
    pub(crate) fn into_job(self) -> NewJob {
        let key = self.change_id.clone();
        let group = self.user_id.clone();
        NewJob::new(NOTIFY_QUEUE, serde_json::json!(self))
            .with_unique_key(key)
            .with_group(group)
            .with_max_attempts(DELIVERY_ATTEMPTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(tier: &str) -> EntitlementState {
        EntitlementState {
            tier: tier.into(),
            features: serde_json::json!({"itsa.quarterly": true}),
            status: Some("active".into()),
            reason: "active".into(),
            access_until: None,
            period_end: None,
        }
    }

    #[test]
    fn only_tier_features_and_access_until_are_changes_for_the_app() {
        let a = state("pro");
        let mut b = a.clone();
        b.status = Some("past_due".into());
        b.reason = "past_due_grace".into();
        assert!(!a.differs_for_app(&b));
        b.access_until = Some(Utc::now());
        assert!(a.differs_for_app(&b));
        assert!(a.differs_for_app(&state("basic")));
    }

    #[test]
    fn causes_are_tagged_by_kind() {
        let cause = ChangeCause::Event { event_id: "evt_1".into() };
        assert_eq!(
            serde_json::to_value(&cause).expect("json"),
            serde_json::json!({"kind": "event", "event_id": "evt_1"})
        );
    }

    #[test]
    fn a_delivery_job_is_unique_per_change_and_grouped_by_user() {
        let job = DeliveryJob { change_id: "chg_1".into(), seq: 7, user_id: "u1".into() }.into_job();
        assert_eq!(job.queue, NOTIFY_QUEUE);
        assert_eq!(job.unique_key.as_deref(), Some("chg_1"));
        assert_eq!(job.group_key, "u1");
    }
}
