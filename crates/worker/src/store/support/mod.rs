//! The reads behind the per-user support view (`crate::support`): find a user by any id
//! Stripe or the app uses, the user's subscriptions, and what happened to their events. One
//! function per statement in each dialect, like the rest of the store.

mod postgres;
mod sqlite;

use chrono::{DateTime, Utc};
use subsync_queue::{Store, on_dialect};

use super::EventOutcomeRow;
use crate::error::WorkerError;

/// A subscription as the support view lists it (its state decoded by the caller).
#[derive(Debug, Clone)]
pub(crate) struct SubscriptionLine {
    pub subscription_id: String,
    pub customer_id: Option<String>,
    pub status: Option<String>,
    pub state: serde_json::Value,
    pub last_event_id: String,
    pub updated_at: DateTime<Utc>,
}

/// The user a subscription id or a customer id belongs to, if any subscription names it.
pub(crate) async fn user_of(store: &Store, id: &str) -> Result<Option<String>, WorkerError> {
    on_dialect!(store.pool(), user_of(id))
}

/// Every subscription attributed to `user_id`, by id.
pub(crate) async fn subscriptions_of(store: &Store, user_id: &str) -> Result<Vec<SubscriptionLine>, WorkerError> {
    on_dialect!(store.pool(), subscriptions_of(user_id))
}

/// The newest `limit` outcomes of events about `subscription_id`.
pub(crate) async fn outcomes_of(
    store: &Store,
    subscription_id: &str,
    limit: u32,
) -> Result<Vec<EventOutcomeRow>, WorkerError> {
    on_dialect!(store.pool(), outcomes_of(subscription_id, limit))
}
