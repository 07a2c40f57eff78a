//! Who a subscription belongs to, merged from every source that names the user.
//!
//! Stripe tells us the user in several places that arrive in any order (subscription
//! metadata, checkout session, customer). Each source is kept as a "newest wins" register,
//! and the user is derived from the registers by a fixed preference, so the result is the
//! same whatever order the facts arrive in.

use serde::{Deserialize, Serialize};

use crate::access::UnixSeconds;
use crate::order::OrderKey;

/// Where the resolved user id came from, weakest first; kept so callers can tell a real
/// app user id from a fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentitySource {
    /// The Stripe customer id (`cus_…`): nothing better is known yet.
    CustomerId,
    /// The checkout session's `client_reference_id`.
    ClientReferenceId,
    /// `metadata.app_user_id` on the checkout session or the customer.
    LinkMetadata,
    /// `metadata.app_user_id` on the subscription itself.
    SubscriptionMetadata,
}

/// The user a subscription's entitlement belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserRef {
    /// The user id (an app user id, or the Stripe customer id as a fallback).
    pub user_id: String,
    /// Where it came from.
    pub source: IdentitySource,
}

/// A value seen in a link, stamped with the link's event time. Ordered by (time, value) so
/// "newest wins, ties by greatest value" is a deterministic max.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct LinkStamp {
    pub(crate) created: UnixSeconds,
    pub(crate) value: String,
}

/// A value seen in a subscription snapshot, ordered like snapshots themselves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct SnapshotStamp {
    pub(crate) key: OrderKey,
    pub(crate) value: String,
}

/// The identity registers stored per subscription. Every update is a max, so merging is
/// commutative, associative and idempotent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `metadata.app_user_id` of the newest snapshot that carried one.
    subscription_app_user: Option<SnapshotStamp>,
    /// Newest `app_user_id` from a link (checkout session or customer metadata).
    link_app_user: Option<LinkStamp>,
    /// Newest `client_reference_id` from a link.
    client_reference: Option<LinkStamp>,
    /// Newest customer id from a link.
    link_customer: Option<LinkStamp>,
}

fn keep_max<T: Ord>(slot: &mut Option<T>, candidate: Option<T>) {
    if let Some(c) = candidate
        && slot.as_ref().is_none_or(|cur| c > *cur)
    {
        *slot = Some(c);
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|v| !v.trim().is_empty())
}

impl Identity {
    pub(crate) fn observe_snapshot(&mut self, key: &OrderKey, app_user_id: Option<&str>) {
        keep_max(
            &mut self.subscription_app_user,
            non_empty(app_user_id).map(|v| SnapshotStamp { key: key.clone(), value: v.to_owned() }),
        );
    }

    pub(crate) fn observe_link(
        &mut self,
        created: UnixSeconds,
        customer_id: Option<&str>,
        app_user_id: Option<&str>,
        client_reference_id: Option<&str>,
    ) {
        let stamp = |v: Option<&str>| non_empty(v).map(|v| LinkStamp { created, value: v.to_owned() });
        keep_max(&mut self.link_app_user, stamp(app_user_id));
        keep_max(&mut self.client_reference, stamp(client_reference_id));
        keep_max(&mut self.link_customer, stamp(customer_id));
    }

    /// Customer id known from links (the snapshot's customer id takes precedence).
    pub(crate) fn link_customer(&self) -> Option<&str> {
        self.link_customer.as_ref().map(|s| s.value.as_str())
    }

    /// Resolves the user: subscription metadata, then link metadata, then
    /// `client_reference_id`, then the given customer id. A stronger source is never
    /// displaced by a weaker one, whatever arrives later.
    pub fn resolve(&self, customer_id: Option<&str>) -> Option<UserRef> {
        let pick = |v: &str, source| UserRef { user_id: v.to_owned(), source };
        if let Some(s) = &self.subscription_app_user {
            return Some(pick(&s.value, IdentitySource::SubscriptionMetadata));
        }
        if let Some(s) = &self.link_app_user {
            return Some(pick(&s.value, IdentitySource::LinkMetadata));
        }
        if let Some(s) = &self.client_reference {
            return Some(pick(&s.value, IdentitySource::ClientReferenceId));
        }
        non_empty(customer_id).map(|c| pick(c, IdentitySource::CustomerId))
    }
}
