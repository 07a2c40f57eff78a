//! A read-only window onto entitlements, which the worker crate owns: the admin crate
//! defines the trait so it does not depend on the worker; `subsync serve` passes an
//! implementation in. (Stored events need no such window: the event log crate sits below
//! the admin crate, which reads it directly.)

use chrono::{DateTime, Utc};
use thiserror::Error;

/// A boxed, sendable future: trait objects cannot have `async fn` methods yet.
pub use futures::future::BoxFuture;

/// Why a view could not answer.
#[derive(Debug, Error)]
pub enum ViewError {
    /// Transient (database away): the client may retry.
    #[error("view unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("view failed: {0}")]
    Failed(String),
}

/// Entitlements as the product sees them (user → tier, status, period end…), for the
/// "why can't this customer file?" question.
pub trait EntitlementsView: Send + Sync {
    /// A page of entitlements; each row a JSON object.
    fn list(&self, limit: u32, offset: u64) -> BoxFuture<'_, Result<Vec<serde_json::Value>, ViewError>>;
    /// One user's entitlement, `None` when the user has none.
    fn get<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Option<serde_json::Value>, ViewError>>;
    /// Prices the tier file does not map, seen on events synced since `since`, most frequent
    /// first; each row a JSON object with at least `price_id`, `lookup_key`, `events`,
    /// `subscriptions`, `effect` (`ignored`, `free`, `dead`) and `example_event_id`.
    fn unmapped_prices(&self, since: DateTime<Utc>) -> BoxFuture<'_, Result<Vec<serde_json::Value>, ViewError>>;
    /// One user's whole story for support, found by user, customer (`cus_…`) or subscription
    /// (`sub_…`) id: `None` when nothing matches. The object has `user_id`, `found_by`,
    /// `entitlement` (or null), `features` (`[{feature, allowed, value}]`), `subscriptions`,
    /// `history` and `events` (`[{event_id, event_type, outcome, reason, at, …}]`).
    fn support<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<serde_json::Value>, ViewError>>;
}
