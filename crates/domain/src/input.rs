//! The inputs the state machine ([`crate::state::apply`]) accepts, one per relevant Stripe
//! event: a user link, a subscription snapshot, or a payment outcome.

use serde::{Deserialize, Serialize};

use crate::access::{SubscriptionStatus, UnixSeconds};
use crate::tiers::PriceRef;

/// Links a user to a customer and subscription; built from `checkout.session.completed`
/// (or a customer's metadata). May arrive before or after the subscription's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// `sub_…`
    pub subscription_id: String,
    /// `cus_…`
    pub customer_id: String,
    /// `metadata.app_user_id` of the session or customer.
    pub app_user_id: Option<String>,
    /// The checkout session's `client_reference_id`.
    pub client_reference_id: Option<String>,
    /// Event `created` (unix seconds).
    pub event_created: UnixSeconds,
}

/// A subscription's state as of one event; built from `customer.subscription.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// `sub_…`
    pub subscription_id: String,
    /// `cus_…`
    pub customer_id: String,
    /// Stripe status.
    pub status: SubscriptionStatus,
    /// Prices of all subscription items.
    pub prices: Vec<PriceRef>,
    /// Whether it cancels at the period end.
    pub cancel_at_period_end: bool,
    /// End of the current period (items' `current_period_end` on new API versions,
    /// top-level on old ones), if known.
    pub current_period_end: Option<UnixSeconds>,
    /// The subscription's `metadata.app_user_id`.
    pub app_user_id: Option<String>,
    /// Event `created` (unix seconds).
    pub event_created: UnixSeconds,
    /// Event id (`evt_…`), the final tie-break.
    pub event_id: String,
    /// Set when the snapshot was fetched from Stripe's API rather than carried by an event:
    /// our clock at the fetch (unix nanoseconds); `event_created` is then Stripe's `Date`
    /// response header. See [`crate::OrderKey`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_at: Option<i64>,
}

/// Outcome of an invoice payment; built from `invoice.paid` / `invoice.payment_failed`.
/// Recorded for support and dunning, but never changes the tier by itself (status does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentHealth {
    /// `sub_…` the invoice belongs to.
    pub subscription_id: String,
    /// `true` for `invoice.paid`, `false` for `invoice.payment_failed`.
    pub paid: bool,
    /// Event `created` (unix seconds).
    pub event_created: UnixSeconds,
    /// `in_…`
    pub invoice_id: String,
}

/// Any input to [`apply`]; one per relevant Stripe event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Input {
    /// From `checkout.session.completed`.
    Link(Link),
    /// From `customer.subscription.*`.
    Snapshot(Snapshot),
    /// From `invoice.paid` / `invoice.payment_failed`.
    Payment(PaymentHealth),
}

impl Input {
    /// The subscription this input belongs to: the key the worker serializes on.
    pub fn subscription_id(&self) -> &str {
        match self {
            Input::Link(l) => &l.subscription_id,
            Input::Snapshot(s) => &s.subscription_id,
            Input::Payment(p) => &p.subscription_id,
        }
    }
}

impl From<Link> for Input {
    fn from(v: Link) -> Self {
        Input::Link(v)
    }
}
impl From<Snapshot> for Input {
    fn from(v: Snapshot) -> Self {
        Input::Snapshot(v)
    }
}
impl From<PaymentHealth> for Input {
    fn from(v: PaymentHealth) -> Self {
        Input::Payment(v)
    }
}

/// A customer's active Stripe Entitlements features as of one event
/// (`entitlements.active_entitlement_summary.updated`): Stripe sends the whole list each time,
/// so the newest summary replaces the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSummary {
    /// `cus_…`.
    pub customer_id: String,
    /// The active features' lookup keys, sorted, without repeats.
    pub lookup_keys: Vec<String>,
    /// The event's `created`.
    pub event_created: UnixSeconds,
    /// The event's id.
    pub event_id: String,
}

impl FeatureSummary {
    /// Whether this summary replaces one stored from event `event_id` created at `created`:
    /// a later second wins, then the greater event id (so any delivery order ends the same).
    pub fn supersedes(&self, created: UnixSeconds, event_id: &str) -> bool {
        (self.event_created, self.event_id.as_str()) > (created, event_id)
    }
}
