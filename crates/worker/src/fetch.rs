//! Asking Stripe "what is this subscription now?": the port the worker fetches through.
//!
//! The worker never guesses when Stripe can answer. It fetches a subscription when an event
//! cannot be ordered by Stripe's clock (two different snapshots in one `created` second),
//! when a thin event names one, and, in [`RefetchMode::Always`], for every subscription
//! event. The HTTP client lives in `subsync-stripe-api`; the binary adapts it to
//! [`SubscriptionFetcher`], so this crate stays free of HTTP and tests can fetch from memory.

use std::str::FromStr;

use futures::future::BoxFuture;
use serde_json::Value;
use thiserror::Error;

/// A subscription as Stripe's API returned it.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedObject {
    /// The subscription object (its customer may be expanded).
    pub object: Value,
    /// Stripe's `Date` response header (unix seconds): the snapshot is true as of then.
    pub date: i64,
}

/// Why a fetch failed, sorted by what the job should do.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum FetchError {
    /// Worth retrying later (Stripe down, rate limited after retries, a timeout).
    #[error("Stripe API unavailable: {0}")]
    Unavailable(String),
    /// Retrying will not help (the key is refused, the subscription does not exist in this
    /// account or mode).
    #[error("Stripe API refused: {0}")]
    Refused(String),
}

/// Fetches subscriptions from Stripe's API (implemented by the binary over the API client).
pub trait SubscriptionFetcher: Send + Sync + 'static {
    /// `GET /v1/subscriptions/{id}`, with the customer expanded.
    fn subscription<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<FetchedObject, FetchError>>;
}

/// When the worker fetches a subscription instead of trusting the event's copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RefetchMode {
    /// Only when the stored state cannot order the event (same-second conflict) or the
    /// event is thin.
    #[default]
    OnConflict,
    /// Every subscription event is applied as a fresh fetch ("process as refresh"): one API
    /// call per event, always Stripe's current state.
    Always,
}

impl FromStr for RefetchMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "conflict" | "on-conflict" => Ok(RefetchMode::OnConflict),
            "always" => Ok(RefetchMode::Always),
            other => Err(format!("refetch mode must be `conflict` or `always`, not {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_refuse_anything_else() {
        assert_eq!("always".parse::<RefetchMode>(), Ok(RefetchMode::Always));
        assert_eq!("conflict".parse::<RefetchMode>(), Ok(RefetchMode::OnConflict));
        assert!("sometimes".parse::<RefetchMode>().unwrap_err().contains("conflict"));
    }
}
