//! Which events the worker acts on. One list here, so the intake (which may
//! acknowledge ignored events without queueing them) and the worker (which
//! dispatches on them) cannot disagree.

/// An event's meaning to subsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `checkout.session.completed`: a customer finished Checkout.
    CheckoutSessionCompleted,
    /// `checkout.session.async_payment_succeeded`: a delayed payment (e.g. Bacs) cleared.
    CheckoutSessionAsyncPaymentSucceeded,
    /// `checkout.session.async_payment_failed`: a delayed payment failed.
    CheckoutSessionAsyncPaymentFailed,
    /// `customer.subscription.created`.
    SubscriptionCreated,
    /// `customer.subscription.updated`.
    SubscriptionUpdated,
    /// `customer.subscription.deleted`: the subscription has ended.
    SubscriptionDeleted,
    /// `customer.subscription.paused`.
    SubscriptionPaused,
    /// `customer.subscription.resumed`.
    SubscriptionResumed,
    /// `customer.subscription.pending_update_applied`.
    SubscriptionPendingUpdateApplied,
    /// `customer.subscription.pending_update_expired`.
    SubscriptionPendingUpdateExpired,
    /// `customer.subscription.trial_will_end`: three days before a trial ends.
    SubscriptionTrialWillEnd,
    /// `invoice.paid`.
    InvoicePaid,
    /// `invoice.payment_succeeded`.
    InvoicePaymentSucceeded,
    /// `invoice.payment_failed`.
    InvoicePaymentFailed,
    /// `entitlements.active_entitlement_summary.updated`: a customer's full list of active
    /// Stripe Entitlements features changed.
    EntitlementSummaryUpdated,
    /// A snapshot event subsync does not act on; acknowledged and dropped or stored.
    Ignored,
    /// A thin (v2) event: carries no object, so it is stored and marked unsupported.
    Thin,
}

/// Handled snapshot types and their kinds; the single source of truth.
const HANDLED: [(&str, EventKind); 15] = [
    ("checkout.session.completed", EventKind::CheckoutSessionCompleted),
    ("checkout.session.async_payment_succeeded", EventKind::CheckoutSessionAsyncPaymentSucceeded),
    ("checkout.session.async_payment_failed", EventKind::CheckoutSessionAsyncPaymentFailed),
    ("customer.subscription.created", EventKind::SubscriptionCreated),
    ("customer.subscription.updated", EventKind::SubscriptionUpdated),
    ("customer.subscription.deleted", EventKind::SubscriptionDeleted),
    ("customer.subscription.paused", EventKind::SubscriptionPaused),
    ("customer.subscription.resumed", EventKind::SubscriptionResumed),
    ("customer.subscription.pending_update_applied", EventKind::SubscriptionPendingUpdateApplied),
    ("customer.subscription.pending_update_expired", EventKind::SubscriptionPendingUpdateExpired),
    ("customer.subscription.trial_will_end", EventKind::SubscriptionTrialWillEnd),
    ("invoice.paid", EventKind::InvoicePaid),
    ("invoice.payment_succeeded", EventKind::InvoicePaymentSucceeded),
    ("invoice.payment_failed", EventKind::InvoicePaymentFailed),
    ("entitlements.active_entitlement_summary.updated", EventKind::EntitlementSummaryUpdated),
];

impl EventKind {
    /// Classifies a snapshot event's `type` (thin events are classified by
    /// [`crate::Envelope::kind`], which knows the envelope shape).
    pub fn from_type(event_type: &str) -> EventKind {
        HANDLED.iter().find(|(name, _)| *name == event_type).map_or(EventKind::Ignored, |(_, kind)| *kind)
    }

    /// Whether the worker has a handler for it.
    pub fn handled(self) -> bool {
        !matches!(self, EventKind::Ignored | EventKind::Thin)
    }

    /// The Stripe event type for handled kinds (e.g. to configure which
    /// events the webhook endpoint subscribes to); `None` otherwise.
    pub fn event_type(self) -> Option<&'static str> {
        HANDLED.iter().find(|(_, kind)| *kind == self).map(|(name, _)| *name)
    }

    /// Every event type the worker handles, for endpoint configuration and docs.
    pub fn handled_event_types() -> impl Iterator<Item = &'static str> {
        HANDLED.iter().map(|(name, _)| *name)
    }
}
