//! The Checkout Session: how a new subscription is linked to our user.

use serde::{Deserialize, Serialize};

use super::{Customer, Expandable, HasId, Metadata, StripeObject, Subscription, null_as_default, string_enum};

string_enum! {
    /// What the session sells; only `subscription` sessions create subscriptions.
    CheckoutMode {
        /// One-off payment.
        Payment = "payment",
        /// Saves a payment method only.
        Setup = "setup",
        /// Starts a subscription.
        Subscription = "subscription",
    }
}

string_enum! {
    /// The session's lifecycle state.
    CheckoutStatus {
        /// Still in progress.
        Open = "open",
        /// The customer completed it (payment may still be pending).
        Complete = "complete",
        /// Expired unfinished.
        Expired = "expired",
    }
}

string_enum! {
    /// Whether the money arrived: `complete` with `unpaid` means an async
    /// payment (e.g. Bacs) is still clearing.
    PaymentStatus {
        /// Funds received.
        Paid = "paid",
        /// Not (yet) paid.
        Unpaid = "unpaid",
        /// Nothing to pay now (e.g. a free trial).
        NoPaymentRequired = "no_payment_required",
    }
}

/// A Checkout Session as sent in `checkout.session.*` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckoutSession {
    /// `cs_…`.
    pub id: String,
    /// What it sells.
    #[serde(default)]
    pub mode: Option<CheckoutMode>,
    /// The subscription created (subscription mode, once complete).
    #[serde(default)]
    pub subscription: Option<Expandable<Subscription>>,
    /// The customer, once known.
    #[serde(default)]
    pub customer: Option<Expandable<Customer>>,
    /// Our reference passed when creating the session (our user id).
    #[serde(default)]
    pub client_reference_id: Option<String>,
    /// Our metadata.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Metadata,
    /// Lifecycle state.
    #[serde(default)]
    pub status: Option<CheckoutStatus>,
    /// Payment state.
    #[serde(default)]
    pub payment_status: Option<PaymentStatus>,
    /// Creation time (Unix seconds).
    #[serde(default)]
    pub created: Option<i64>,
}

impl CheckoutSession {
    /// The subscription id (`sub_…`), whether or not it was expanded.
    pub fn subscription_id(&self) -> Option<&str> {
        self.subscription.as_ref().map(Expandable::id)
    }

    /// The customer id (`cus_…`), whether or not it was expanded.
    pub fn customer_id(&self) -> Option<&str> {
        self.customer.as_ref().map(Expandable::id)
    }

    /// Our user id: `client_reference_id` if set, else `metadata.app_user_id`.
    pub fn app_user_id(&self) -> Option<&str> {
        self.client_reference_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .or_else(|| super::app_user_id(&self.metadata))
    }
}

impl HasId for CheckoutSession {
    fn id(&self) -> &str {
        &self.id
    }
}

impl StripeObject for CheckoutSession {
    const OBJECT: &'static str = "checkout.session";
}
