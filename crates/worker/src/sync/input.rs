//! Stripe event → domain input: what each handled event type means for a subscription.
//!
//! - `checkout.session.completed` / `async_payment_succeeded` (subscription mode) → a
//!   [`Link`] from the subscription to our user;
//! - `checkout.session.async_payment_failed` → ignored: access follows the subscription's
//!   status, which Stripe reports in its own event;
//! - `customer.subscription.*` → a [`Snapshot`] of the subscription;
//! - `invoice.paid` / `payment_succeeded` / `payment_failed` → [`PaymentHealth`];
//! - a thin event about a subscription → fetch it from Stripe's API (`super::fetched`);
//! - anything else (unhandled types, other thin events, payment-mode checkouts, invoices
//!   without a subscription) → ignored, with the reason recorded.

use subsync_domain::{FeatureSummary, Input, Link, PaymentHealth, PriceRef, Snapshot, SubscriptionStatus};
use subsync_queue::JobError;
use subsync_stripe::objects::{ActiveEntitlementSummary, CheckoutMode};
use subsync_stripe::{
    CheckoutSession, Envelope, EventKind, Expandable, Invoice, StripeObject, Subscription, app_user_id,
};

/// What to do with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Apply these inputs (never empty, all of one subscription) to its state, as one step.
    Apply(Vec<Input>),
    /// A thin event about this subscription: apply it as fetched from Stripe's API.
    FetchThin {
        /// `sub_…`
        subscription_id: String,
    },
    /// Replace a customer's Stripe Entitlements features, if this summary is the newest.
    Features(FeatureSummary),
    /// Record the event as skipped, with the reason.
    Ignore {
        /// The subscription it names, if any (for the outcome row).
        subscription_id: Option<String>,
        /// Why nothing is done.
        reason: String,
    },
}

fn ignore(subscription_id: Option<&str>, reason: impl Into<String>) -> Decision {
    Decision::Ignore { subscription_id: subscription_id.map(str::to_owned), reason: reason.into() }
}

/// Reads the event's object as `T`; a malformed object is permanent (the bytes never change).
fn object<T: StripeObject>(env: &Envelope) -> Result<T, JobError> {
    env.object::<T>()
        .map_err(|e| JobError::permanent(format!("event {} ({}): {} [{}]", env.id, env.event_type, e, e.code())))
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

impl Decision {
    /// The subscription snapshot an event carried, if this decision applies one.
    pub(crate) fn event_snapshot(&self) -> Option<&Snapshot> {
        match self {
            Decision::Apply(inputs) => inputs.iter().find_map(|i| match i {
                Input::Snapshot(s) if s.fetched_at.is_none() => Some(s),
                _ => None,
            }),
            _ => None,
        }
    }
}

/// Decides what an event means (a stored fetch is read by [`super::fetched::stored_fetch`]).
/// Errors are permanent: the stored bytes cannot change.
pub(crate) fn decide(env: &Envelope) -> Result<Decision, JobError> {
    if env.is_thin() {
        return Ok(match (env.thin_subscription(), env.related_object()) {
            (Some(id), _) => Decision::FetchThin { subscription_id: id.to_owned() },
            (None, Some(related)) => {
                ignore(None, format!("thin event about a {} object: not acted on", related.object_type))
            }
            (None, None) => ignore(None, "thin event without a related object: nothing to fetch"),
        });
    }
    let kind = env.kind();
    if !kind.handled() {
        return Ok(ignore(None, format!("event type {} is not handled", env.event_type)));
    }
    let created = env.created.ok_or_else(|| JobError::permanent(format!("event {} has no `created` time", env.id)))?;
    match kind {
        EventKind::CheckoutSessionCompleted | EventKind::CheckoutSessionAsyncPaymentSucceeded => {
            let session: CheckoutSession = object(env)?;
            Ok(link(&session, created))
        }
        EventKind::CheckoutSessionAsyncPaymentFailed => {
            let session: CheckoutSession = object(env)?;
            Ok(ignore(
                session.subscription_id(),
                "async payment failed: access follows the subscription's status events",
            ))
        }
        EventKind::SubscriptionCreated
        | EventKind::SubscriptionUpdated
        | EventKind::SubscriptionDeleted
        | EventKind::SubscriptionPaused
        | EventKind::SubscriptionResumed
        | EventKind::SubscriptionPendingUpdateApplied
        | EventKind::SubscriptionPendingUpdateExpired
        | EventKind::SubscriptionTrialWillEnd => {
            let sub: Subscription = object(env)?;
            Ok(Decision::Apply(vec![Input::Snapshot(snapshot(&sub, created, &env.id, None))]))
        }
        EventKind::InvoicePaid | EventKind::InvoicePaymentSucceeded | EventKind::InvoicePaymentFailed => {
            let invoice: Invoice = object(env)?;
            let Some(subscription_id) = invoice.subscription_id() else {
                return Ok(ignore(None, format!("invoice {} does not belong to a subscription", invoice.id)));
            };
            Ok(Decision::Apply(vec![Input::Payment(PaymentHealth {
                subscription_id: subscription_id.to_owned(),
                paid: kind != EventKind::InvoicePaymentFailed,
                event_created: created,
                invoice_id: invoice.id.clone(),
            })]))
        }
        EventKind::EntitlementSummaryUpdated => {
            let summary: ActiveEntitlementSummary = object(env)?;
            if summary.entitlements.has_more {
                // Only the first page is embedded: acting on it would drop the rest.
                return Ok(ignore(
                    None,
                    format!(
                        "the entitlement summary of {} lists more features than the event carries (has_more); \
                         reading them all needs the Stripe API",
                        summary.customer
                    ),
                ));
            }
            Ok(Decision::Features(FeatureSummary {
                lookup_keys: summary.lookup_keys(),
                customer_id: summary.customer,
                event_created: created,
                event_id: env.id.clone(),
            }))
        }
        EventKind::Ignored | EventKind::Thin => Ok(ignore(None, "not handled")),
    }
}

/// The link a checkout session makes from its subscription to our user.
pub(crate) fn link(session: &CheckoutSession, created: i64) -> Decision {
    let subscription_mode = session.mode.as_ref().is_none_or(|m| *m == CheckoutMode::Subscription);
    let Some(subscription_id) = session.subscription_id().filter(|_| subscription_mode) else {
        return ignore(None, format!("checkout session {} did not create a subscription", session.id));
    };
    // The session's metadata names our user; an expanded customer's metadata may too.
    let customer_user = match &session.customer {
        Some(Expandable::Object(customer)) => app_user_id(&customer.metadata),
        _ => None,
    };
    Decision::Apply(vec![Input::Link(Link {
        subscription_id: subscription_id.to_owned(),
        customer_id: session.customer_id().unwrap_or_default().to_owned(),
        app_user_id: non_empty(app_user_id(&session.metadata).or(customer_user)),
        client_reference_id: non_empty(session.client_reference_id.as_deref()),
        event_created: created,
    })])
}

/// A subscription's snapshot as of `created` (an event's, or Stripe's `Date` when fetched at
/// `fetched_at`), keyed by `event_id`.
pub(crate) fn snapshot(sub: &Subscription, created: i64, event_id: &str, fetched_at: Option<i64>) -> Snapshot {
    Snapshot {
        subscription_id: sub.id.clone(),
        customer_id: sub.customer_id().unwrap_or_default().to_owned(),
        status: SubscriptionStatus::parse(sub.status.as_str()),
        prices: sub
            .priced_items()
            .map(|(p, quantity)| {
                PriceRef::new(p.id.clone(), p.lookup_key.as_deref())
                    .with_quantity(u32::try_from(quantity).unwrap_or(u32::MAX))
            })
            .collect(),
        cancel_at_period_end: sub.cancel_at_period_end,
        current_period_end: sub.current_period_end(),
        app_user_id: non_empty(app_user_id(&sub.metadata)),
        event_created: created,
        event_id: event_id.to_owned(),
        fetched_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(event_type: &str, object: serde_json::Value) -> Envelope {
        let body =
            json!({"id": "evt_1", "object": "event", "type": event_type, "created": 100, "data": {"object": object}});
        Envelope::parse(body.to_string().as_bytes()).expect("valid envelope")
    }

    #[test]
    fn checkout_links_metadata_and_client_reference() {
        let e = env(
            "checkout.session.completed",
            json!({"id": "cs_1", "object": "checkout.session", "mode": "subscription", "subscription": "sub_1",
                   "customer": "cus_1", "client_reference_id": " usr_a ", "metadata": {"app_user_id": "usr_b"}}),
        );
        let Decision::Apply(inputs) = decide(&e).unwrap() else { panic!("expected a link") };
        let [Input::Link(l)] = inputs.as_slice() else { panic!("expected one link") };
        assert_eq!(l.subscription_id, "sub_1");
        assert_eq!(l.customer_id, "cus_1");
        assert_eq!(l.client_reference_id.as_deref(), Some("usr_a"));
        assert_eq!(l.app_user_id.as_deref(), Some("usr_b"));
        assert_eq!(l.event_created, 100);
    }

    #[test]
    fn payment_mode_checkout_and_unhandled_types_are_ignored() {
        let e = env("checkout.session.completed", json!({"id": "cs_1", "mode": "payment", "customer": "cus_1"}));
        assert!(matches!(decide(&e).unwrap(), Decision::Ignore { .. }));
        let e = env("charge.succeeded", json!({"id": "ch_1"}));
        assert!(matches!(decide(&e).unwrap(), Decision::Ignore { .. }));
    }

    #[test]
    fn invoice_without_subscription_is_ignored_and_failed_payment_is_unpaid() {
        let e = env("invoice.paid", json!({"id": "in_1", "object": "invoice"}));
        assert!(matches!(decide(&e).unwrap(), Decision::Ignore { .. }));
        let e = env("invoice.payment_failed", json!({"id": "in_1", "object": "invoice", "subscription": "sub_1"}));
        let Decision::Apply(inputs) = decide(&e).unwrap() else { panic!("expected a payment") };
        let [Input::Payment(p)] = inputs.as_slice() else { panic!("expected one payment") };
        assert!(!p.paid);
        assert_eq!(p.subscription_id, "sub_1");
    }

    #[test]
    fn wrong_object_is_permanent() {
        let e = env("customer.subscription.updated", json!({"id": "in_1", "object": "invoice"}));
        assert!(matches!(decide(&e), Err(JobError::Permanent(_))));
    }
}
