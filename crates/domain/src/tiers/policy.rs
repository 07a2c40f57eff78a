//! The tier file's two switches: what an entirely unmapped subscription gets, and where
//! features come from.

use serde::Deserialize;

/// What to do with a subscription none of whose prices the tier file maps (`unmapped = …`).
/// A subscription with at least one mapped price never needs this: its unmapped extras (an
/// add-on nobody mapped) are ignored for access and reported as a warning instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnmappedPolicy {
    /// The sync job fails permanently (`dead`) naming the price, for an operator to map it
    /// and retry: guessing would silently grant or deny paid access. The default.
    #[default]
    Dead,
    /// The subscription grants `free` (and the unmapped prices are reported as a warning).
    Free,
}

/// Where a user's features come from (`source = …` in the tier file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureSource {
    /// The subscriptions' prices, through `[[prices]]`, tiers and add-ons. The default.
    #[default]
    Prices,
    /// Stripe's own Entitlements: the customer's active features (the
    /// `entitlements.active_entitlement_summary.updated` event), through `[stripe_features]`,
    /// on top of `free`. Prices then decide nothing and need no mapping.
    StripeEntitlements,
    /// Both, united: the price-based tier and add-ons plus the Stripe features.
    Both,
}

impl FeatureSource {
    /// Whether subscriptions' prices decide the tier.
    pub fn uses_prices(self) -> bool {
        self != FeatureSource::StripeEntitlements
    }

    /// Whether Stripe entitlement summaries grant features.
    pub fn uses_stripe_entitlements(self) -> bool {
        self != FeatureSource::Prices
    }
}
