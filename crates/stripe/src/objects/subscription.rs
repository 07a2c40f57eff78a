//! The subscription: the object whose state becomes our entitlement.

use serde::{Deserialize, Serialize};

use super::{Customer, Expandable, HasId, List, Metadata, ObjectRef, StripeObject, null_as_default, string_enum};

string_enum! {
    /// Stripe's subscription status; the main input to entitlement decisions.
    SubscriptionStatus {
        /// First payment not yet succeeded (up to 23 hours).
        Incomplete = "incomplete",
        /// First payment never succeeded; terminal.
        IncompleteExpired = "incomplete_expired",
        /// In a trial period.
        Trialing = "trialing",
        /// Paid up.
        Active = "active",
        /// Latest renewal payment failed; Stripe is retrying.
        PastDue = "past_due",
        /// Ended; terminal.
        Canceled = "canceled",
        /// Retries exhausted, left open without payment.
        Unpaid = "unpaid",
        /// Trial ended without a payment method (pause behaviour).
        Paused = "paused",
    }
}

/// A subscription as sent in `customer.subscription.*` events (or expanded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    /// `sub_…`.
    pub id: String,
    /// The paying customer.
    #[serde(default)]
    pub customer: Option<Expandable<Customer>>,
    /// Current status.
    pub status: SubscriptionStatus,
    /// Whether it will end at the end of the current period.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cancel_at_period_end: bool,
    /// When it is scheduled to end, if scheduled (Unix seconds).
    #[serde(default)]
    pub cancel_at: Option<i64>,
    /// When cancellation was requested (Unix seconds).
    #[serde(default)]
    pub canceled_at: Option<i64>,
    /// When it ended, if it has (Unix seconds).
    #[serde(default)]
    pub ended_at: Option<i64>,
    /// Trial start (Unix seconds).
    #[serde(default)]
    pub trial_start: Option<i64>,
    /// Trial end (Unix seconds).
    #[serde(default)]
    pub trial_end: Option<i64>,
    /// Creation time (Unix seconds).
    #[serde(default)]
    pub created: Option<i64>,
    /// Top-level period end, present only before API 2025-03-31.basil; use
    /// [`Subscription::current_period_end`] which also reads the items.
    #[serde(default, rename = "current_period_end")]
    pub legacy_current_period_end: Option<i64>,
    /// Top-level period start, present only before API 2025-03-31.basil.
    #[serde(default, rename = "current_period_start")]
    pub legacy_current_period_start: Option<i64>,
    /// Our metadata (e.g. `app_user_id`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Metadata,
    /// The subscribed prices.
    #[serde(default, deserialize_with = "null_as_default")]
    pub items: List<SubscriptionItem>,
}

/// One line of a subscription: a price and, on newer APIs, its billing period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionItem {
    /// `si_…`.
    pub id: String,
    /// The price subscribed to.
    #[serde(default)]
    pub price: Option<Price>,
    /// Quantity, if applicable.
    #[serde(default)]
    pub quantity: Option<u64>,
    /// Period end for this item (API 2025-03-31.basil and later; Unix seconds).
    #[serde(default)]
    pub current_period_end: Option<i64>,
    /// Period start for this item (API 2025-03-31.basil and later; Unix seconds).
    #[serde(default)]
    pub current_period_start: Option<i64>,
}

/// A price: what plan/tier a subscription grants is decided from its id or lookup key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// `price_…`.
    pub id: String,
    /// Stable name we assign in Stripe (survives price changes), if set.
    #[serde(default)]
    pub lookup_key: Option<String>,
    /// The product (`prod_…`), id or expanded.
    #[serde(default)]
    pub product: Option<Expandable<ObjectRef>>,
    /// Price metadata.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Metadata,
}

impl Subscription {
    /// When the paid-for period ends, whatever the API version: the top-level
    /// field (older APIs) if present, else the latest end among the items.
    pub fn current_period_end(&self) -> Option<i64> {
        self.legacy_current_period_end
            .or_else(|| self.items.data.iter().filter_map(|item| item.current_period_end).max())
    }

    /// When the current period started, read like [`Self::current_period_end`]
    /// (earliest start among the items on newer APIs).
    pub fn current_period_start(&self) -> Option<i64> {
        self.legacy_current_period_start
            .or_else(|| self.items.data.iter().filter_map(|item| item.current_period_start).min())
    }

    /// The customer id (`cus_…`), whether or not it was expanded.
    pub fn customer_id(&self) -> Option<&str> {
        self.customer.as_ref().map(Expandable::id)
    }

    /// The prices subscribed to, to map onto our plans.
    pub fn prices(&self) -> impl Iterator<Item = &Price> {
        self.items.data.iter().filter_map(|item| item.price.as_ref())
    }

    /// Each priced item's price and quantity (1 when Stripe sends none, as for a plan
    /// without per-unit billing): add-ons are granted per unit.
    pub fn priced_items(&self) -> impl Iterator<Item = (&Price, u64)> {
        self.items.data.iter().filter_map(|item| item.price.as_ref().map(|price| (price, item.quantity.unwrap_or(1))))
    }
}

impl HasId for Subscription {
    fn id(&self) -> &str {
        &self.id
    }
}

impl StripeObject for Subscription {
    const OBJECT: &'static str = "subscription";
}
