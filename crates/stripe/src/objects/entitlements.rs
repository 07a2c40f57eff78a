//! Stripe Entitlements: the summary of a customer's active features, which Stripe sends whole
//! (`entitlements.active_entitlement_summary.updated`) whenever it changes.

use serde::{Deserialize, Serialize};

use super::{Expandable, List, ObjectRef, StripeObject};

/// A customer's active entitlements, as Stripe computes them from the customer's
/// subscriptions and the features attached to their products.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveEntitlementSummary {
    /// The customer (`cus_…`).
    pub customer: String,
    /// The active entitlements; an embedded list, whole unless `has_more`.
    #[serde(default)]
    pub entitlements: List<ActiveEntitlement>,
    /// Live or test mode.
    #[serde(default)]
    pub livemode: bool,
}

/// One active feature of a customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveEntitlement {
    /// `ent_…`.
    pub id: String,
    /// The feature's `lookup_key`: what the tier file's `[stripe_features]` maps.
    pub lookup_key: String,
    /// The feature (`feat_…`), id or expanded.
    #[serde(default)]
    pub feature: Option<Expandable<ObjectRef>>,
}

impl ActiveEntitlementSummary {
    /// The lookup keys of the active features, sorted and without repeats.
    pub fn lookup_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.entitlements.data.iter().map(|e| e.lookup_key.clone()).collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

impl StripeObject for ActiveEntitlementSummary {
    const OBJECT: &'static str = "entitlements.active_entitlement_summary";
}
