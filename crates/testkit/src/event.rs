//! Generated events: the exact JSON bytes Stripe would send, plus the structured facts they
//! were built from (so the oracle never has to parse its own JSON).

use serde::{Deserialize, Serialize};
use serde_json::json;
use subsync_domain::{FeatureSummary, Input, Link, PaymentHealth, PriceRef, Snapshot, SubscriptionStatus};

use crate::catalog::CatalogPrice;

mod render;
use render::render_object;

/// Stripe API version an event is rendered for. Matters because `2025-03-31.basil` moved
/// `current_period_end` onto subscription items and the invoice's subscription under
/// `parent.subscription_details`; the worker must read both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ApiVersion {
    /// `2025-03-31.basil`: item-level periods, `invoice.parent.subscription_details`.
    Basil,
    /// `2024-06-20`: top-level `current_period_end`, top-level `invoice.subscription`.
    Legacy,
}

impl ApiVersion {
    /// The `api_version` string in the envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::Basil => "2025-03-31.basil",
            ApiVersion::Legacy => "2024-06-20",
        }
    }
}

/// One subscription item, as generated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFact {
    /// `si_…`
    pub item_id: String,
    /// The catalog price.
    pub price: CatalogPrice,
    /// The item's `quantity` (add-ons are granted per unit).
    #[serde(default = "one")]
    pub quantity: u32,
}

fn one() -> u32 {
    1
}

/// The structured content of a generated event: what the JSON says, in typed form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventFact {
    /// `entitlements.active_entitlement_summary.updated`: the customer's whole list of active
    /// Stripe Entitlements features.
    FeatureSummary {
        /// `cus_…`
        customer_id: String,
        /// The active features' lookup keys, sorted.
        lookup_keys: Vec<String>,
    },
    /// `checkout.session.completed` in subscription mode.
    CheckoutCompleted {
        /// `cs_test_…`
        session_id: String,
        /// `sub_…`
        subscription_id: String,
        /// `cus_…`
        customer_id: String,
        /// `client_reference_id`, if the app set it.
        client_reference_id: Option<String>,
        /// `metadata.app_user_id`, if the app set it.
        app_user_id: Option<String>,
        /// First invoice.
        invoice_id: String,
        /// Amount paid (pence).
        amount: i64,
        /// Buyer's email.
        email: String,
    },
    /// `customer.subscription.created|updated|deleted`.
    Subscription {
        /// `sub_…`
        subscription_id: String,
        /// `cus_…`
        customer_id: String,
        /// Status after the event.
        status: SubscriptionStatus,
        /// Status before, for `previous_attributes` on updates.
        previous_status: Option<SubscriptionStatus>,
        /// Items.
        items: Vec<ItemFact>,
        /// Cancels at period end.
        cancel_at_period_end: bool,
        /// Period start.
        current_period_start: i64,
        /// Period end.
        current_period_end: i64,
        /// `metadata.app_user_id` on the subscription, if set.
        app_user_id: Option<String>,
        /// Subscription creation time.
        subscription_created: i64,
        /// Latest invoice, if any.
        latest_invoice: Option<String>,
    },
    /// `invoice.paid` or `invoice.payment_failed`.
    Invoice {
        /// `in_…`
        invoice_id: String,
        /// `sub_…`
        subscription_id: String,
        /// `cus_…`
        customer_id: String,
        /// Paid or failed.
        paid: bool,
        /// The subscription item billed.
        item: ItemFact,
        /// Amount (pence).
        amount: i64,
        /// `subscription_create`, `subscription_cycle`, `subscription_update`.
        billing_reason: String,
        /// Payment attempts so far.
        attempt_count: u32,
        /// Billed period start.
        period_start: i64,
        /// Billed period end.
        period_end: i64,
        /// `metadata` of the subscription (copied into `subscription_details`).
        app_user_id: Option<String>,
    },
}

/// One webhook event: what a sender posts (`body`) plus typed facts for oracles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratedEvent {
    /// `evt_…`, unique.
    pub id: String,
    /// Stripe event type, e.g. `customer.subscription.updated`.
    pub event_type: String,
    /// Envelope `created` (unix seconds).
    pub created: i64,
    /// API version the body is rendered for.
    pub api_version: ApiVersion,
    /// The exact JSON bytes of the envelope.
    pub body: Vec<u8>,
    /// What the event says, typed.
    pub fact: EventFact,
}

impl GeneratedEvent {
    /// Renders an event from its facts. Deterministic: same inputs, same bytes.
    pub fn render(id: String, event_type: &str, created: i64, api_version: ApiVersion, fact: EventFact) -> Self {
        let (object, previous) = render_object(&fact, api_version, created);
        let mut data = json!({ "object": object });
        if let Some(prev) = previous {
            data["previous_attributes"] = prev;
        }
        let envelope = json!({
            "id": id,
            "object": "event",
            "api_version": api_version.as_str(),
            "created": created,
            "data": data,
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "type": event_type,
        });
        // Serializing a `Value` cannot fail (string keys only).
        let body = serde_json::to_vec(&envelope).unwrap_or_default();
        Self { id, event_type: event_type.to_owned(), created, api_version, body, fact }
    }

    /// The subscription this event concerns (for a feature summary: its customer, which is
    /// what such an event is serialized on).
    pub fn subscription_id(&self) -> &str {
        match &self.fact {
            EventFact::CheckoutCompleted { subscription_id, .. }
            | EventFact::Subscription { subscription_id, .. }
            | EventFact::Invoice { subscription_id, .. } => subscription_id,
            EventFact::FeatureSummary { customer_id, .. } => customer_id,
        }
    }

    /// The customer's Stripe Entitlements summary this event carries, if it is one.
    pub fn feature_summary(&self) -> Option<FeatureSummary> {
        match &self.fact {
            EventFact::FeatureSummary { customer_id, lookup_keys } => Some(FeatureSummary {
                customer_id: customer_id.clone(),
                lookup_keys: lookup_keys.clone(),
                event_created: self.created,
                event_id: self.id.clone(),
            }),
            _ => None,
        }
    }

    /// The subscription input the worker should derive from this event, built from the typed
    /// facts (not by parsing `body`), so it is an independent reference; `None` for a
    /// customer's feature summary ([`GeneratedEvent::feature_summary`]).
    pub fn domain_input(&self) -> Option<Input> {
        Some(match &self.fact {
            EventFact::FeatureSummary { .. } => return None,
            EventFact::CheckoutCompleted { subscription_id, customer_id, client_reference_id, app_user_id, .. } => {
                Input::Link(Link {
                    subscription_id: subscription_id.clone(),
                    customer_id: customer_id.clone(),
                    app_user_id: app_user_id.clone(),
                    client_reference_id: client_reference_id.clone(),
                    event_created: self.created,
                })
            }
            EventFact::Subscription {
                subscription_id,
                customer_id,
                status,
                items,
                cancel_at_period_end,
                current_period_end,
                app_user_id,
                ..
            } => Input::Snapshot(Snapshot {
                subscription_id: subscription_id.clone(),
                customer_id: customer_id.clone(),
                status: status.clone(),
                prices: items
                    .iter()
                    .map(|i| PriceRef::new(i.price.id.clone(), Some(&i.price.lookup_key)).with_quantity(i.quantity))
                    .collect(),
                cancel_at_period_end: *cancel_at_period_end,
                current_period_end: Some(*current_period_end),
                app_user_id: app_user_id.clone(),
                event_created: self.created,
                event_id: self.id.clone(),
                fetched_at: None,
            }),
            EventFact::Invoice { invoice_id, subscription_id, paid, .. } => Input::Payment(PaymentHealth {
                subscription_id: subscription_id.clone(),
                paid: *paid,
                event_created: self.created,
                invoice_id: invoice_id.clone(),
            }),
        })
    }
}
