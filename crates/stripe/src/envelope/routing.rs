//! Which subscription an event concerns, so the queue can serialize work per
//! subscription (Stripe does not deliver in order, and two events for the same
//! subscription processed concurrently could overwrite each other).

use serde_json::Value;

/// The serialization group of an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GroupKey {
    /// `sub_…`: the event concerns this subscription.
    Subscription(String),
    /// `cus_…`: no subscription is named, but the customer is.
    Customer(String),
    /// Nothing to group by (thin events, unrelated objects).
    None,
}

impl GroupKey {
    /// The queue's group string: the raw id (`sub_…` and `cus_…` prefixes keep
    /// the two kinds apart), or `""` for no group.
    pub fn as_queue_group(&self) -> String {
        match self {
            GroupKey::Subscription(id) | GroupKey::Customer(id) => id.clone(),
            GroupKey::None => String::new(),
        }
    }

    /// The subscription id, if this event names one.
    pub fn subscription_id(&self) -> Option<&str> {
        match self {
            GroupKey::Subscription(id) => Some(id),
            _ => None,
        }
    }
}

const CHECKOUT_TYPES: [&str; 3] =
    ["checkout.session.completed", "checkout.session.async_payment_succeeded", "checkout.session.async_payment_failed"];

/// Routing rules, in order:
/// 1. the three `checkout.session.*` completion events with `mode ==
///    "subscription"` → `data.object.subscription`;
/// 2. `customer.subscription.*` → `data.object.id`;
/// 3. `invoice.*` → `parent.subscription_details.subscription` (API
///    2025-03-31.basil and later), else top-level `subscription` (older APIs);
/// 4. otherwise the customer: `data.object.customer`, or `data.object.id`
///    when the object is a customer;
/// 5. otherwise none.
///
/// Ids may be plain strings or expanded objects with an `id`. When a rule's
/// field is absent (e.g. a payment-mode checkout), later rules apply.
pub(crate) fn group_key(event_type: &str, object: &Value) -> GroupKey {
    let subscription = if CHECKOUT_TYPES.contains(&event_type) {
        if object.get("mode").and_then(Value::as_str) == Some("subscription") {
            id_of(object.get("subscription"))
        } else {
            None
        }
    } else if event_type.starts_with("customer.subscription.") {
        id_of(object.get("id"))
    } else if event_type.starts_with("invoice.") {
        invoice_subscription(object)
    } else {
        None
    };
    if let Some(id) = subscription {
        return GroupKey::Subscription(id.to_owned());
    }
    if let Some(id) = id_of(object.get("customer")) {
        return GroupKey::Customer(id.to_owned());
    }
    if object.get("object").and_then(Value::as_str) == Some("customer")
        && let Some(id) = id_of(object.get("id"))
    {
        return GroupKey::Customer(id.to_owned());
    }
    GroupKey::None
}

/// An invoice's subscription under either API shape; shared with
/// [`crate::objects::Invoice`] semantics.
fn invoice_subscription(invoice: &Value) -> Option<&str> {
    let new = invoice.get("parent").and_then(|p| p.get("subscription_details")).and_then(|d| d.get("subscription"));
    id_of(new).or_else(|| id_of(invoice.get("subscription")))
}

/// A non-empty id given either as a string or as an expanded object's `id`.
fn id_of(value: Option<&Value>) -> Option<&str> {
    let id = match value? {
        Value::String(s) => s.as_str(),
        Value::Object(map) => map.get("id")?.as_str()?,
        _ => return None,
    };
    (!id.is_empty()).then_some(id)
}
