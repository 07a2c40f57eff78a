//! The invoice: renewal payments succeed or fail here.

use serde::{Deserialize, Serialize};

use super::{Customer, Expandable, HasId, List, Metadata, StripeObject, Subscription, null_as_default, string_enum};

string_enum! {
    /// The invoice's state.
    InvoiceStatus {
        /// Being prepared.
        Draft = "draft",
        /// Finalized, awaiting payment.
        Open = "open",
        /// Paid.
        Paid = "paid",
        /// Written off.
        Uncollectible = "uncollectible",
        /// Cancelled.
        Void = "void",
    }
}

/// An invoice as sent in `invoice.*` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    /// `in_…`.
    pub id: String,
    /// The customer billed.
    #[serde(default)]
    pub customer: Option<Expandable<Customer>>,
    /// State.
    #[serde(default)]
    pub status: Option<InvoiceStatus>,
    /// Top-level subscription, present only before API 2025-03-31.basil; use
    /// [`Invoice::subscription_id`] which also reads `parent`.
    #[serde(default, rename = "subscription")]
    pub legacy_subscription: Option<Expandable<Subscription>>,
    /// What generated the invoice (API 2025-03-31.basil and later).
    #[serde(default)]
    pub parent: Option<InvoiceParent>,
    /// Why it was created: `subscription_create`, `subscription_cycle`, `manual`…
    #[serde(default)]
    pub billing_reason: Option<String>,
    /// Start of the usage period it covers (Unix seconds).
    #[serde(default)]
    pub period_start: Option<i64>,
    /// End of the usage period it covers (Unix seconds).
    #[serde(default)]
    pub period_end: Option<i64>,
    /// Legacy boolean (removed in API 2025-03-31.basil; use `status`).
    #[serde(default)]
    pub paid: Option<bool>,
    /// Amount due, in the currency's minor unit.
    #[serde(default)]
    pub amount_due: Option<i64>,
    /// Amount paid, in the currency's minor unit.
    #[serde(default)]
    pub amount_paid: Option<i64>,
    /// Amount still owed, in the currency's minor unit.
    #[serde(default)]
    pub amount_remaining: Option<i64>,
    /// ISO currency code, lowercase.
    #[serde(default)]
    pub currency: Option<String>,
    /// The lines (first page), whose periods tell what was paid for.
    #[serde(default, deserialize_with = "null_as_default")]
    pub lines: List<InvoiceLine>,
    /// Invoice metadata.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Metadata,
}

/// `invoice.parent` (API 2025-03-31.basil and later).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceParent {
    /// Present when a subscription generated the invoice.
    #[serde(default)]
    pub subscription_details: Option<SubscriptionDetails>,
}

/// `invoice.parent.subscription_details`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionDetails {
    /// The subscription that generated the invoice.
    #[serde(default)]
    pub subscription: Option<Expandable<Subscription>>,
    /// The subscription's metadata at finalization time.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Metadata,
}

/// One invoice line: its period says which dates a payment covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceLine {
    /// `il_…`.
    #[serde(default)]
    pub id: Option<String>,
    /// Amount in the currency's minor unit.
    #[serde(default)]
    pub amount: Option<i64>,
    /// Service period.
    #[serde(default)]
    pub period: Option<Period>,
}

/// A service period (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// Start.
    #[serde(default)]
    pub start: Option<i64>,
    /// End.
    #[serde(default)]
    pub end: Option<i64>,
}

impl Invoice {
    /// The subscription this invoice bills, whatever the API version:
    /// `parent.subscription_details.subscription`, else top-level `subscription`.
    pub fn subscription_id(&self) -> Option<&str> {
        self.parent
            .as_ref()
            .and_then(|p| p.subscription_details.as_ref())
            .and_then(|d| d.subscription.as_ref())
            .map(Expandable::id)
            .filter(|id| !id.is_empty())
            .or_else(|| self.legacy_subscription.as_ref().map(Expandable::id).filter(|id| !id.is_empty()))
    }

    /// The customer id (`cus_…`), whether or not it was expanded.
    pub fn customer_id(&self) -> Option<&str> {
        self.customer.as_ref().map(Expandable::id)
    }

    /// Whether it is paid, on any API version (`status`, else legacy `paid`).
    pub fn is_paid(&self) -> bool {
        match &self.status {
            Some(status) => *status == InvoiceStatus::Paid,
            None => self.paid == Some(true),
        }
    }

    /// The latest line period end: how far a paid invoice extends access.
    pub fn lines_period_end(&self) -> Option<i64> {
        self.lines.data.iter().filter_map(|line| line.period.and_then(|p| p.end)).max()
    }
}

impl HasId for Invoice {
    fn id(&self) -> &str {
        &self.id
    }
}

impl StripeObject for Invoice {
    const OBJECT: &'static str = "invoice";
}
