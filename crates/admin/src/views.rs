//! Read-only windows onto data that other crates own (entitlements, stored Stripe events).
//! The admin crate defines the traits so it does not depend on those crates; `subsync serve`
//! passes implementations in. Rows are JSON objects so a new column needs no change here.

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
}

/// Stored Stripe events, to see exactly what a job was asked to process.
pub trait EventsView: Send + Sync {
    /// The stored event (as received), `None` when unknown.
    fn get<'a>(&'a self, event_id: &'a str) -> BoxFuture<'a, Result<Option<serde_json::Value>, ViewError>>;
}
