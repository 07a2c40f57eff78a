//! The Stripe price catalog the generator sells from. Its lookup keys match the default
//! tier config (`subsync_domain::DEFAULT_TIERS_TOML`), so generated traffic always maps.

use serde::{Deserialize, Serialize};

/// Billing interval of a price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Interval {
    /// Monthly (30-day periods in generated data).
    Month,
    /// Yearly (365-day periods).
    Year,
}

impl Interval {
    /// Stripe's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Month => "month",
            Interval::Year => "year",
        }
    }

    /// Period length used by the generator.
    pub fn period_secs(self) -> i64 {
        match self {
            Interval::Month => 30 * 86_400,
            Interval::Year => 365 * 86_400,
        }
    }
}

/// One recurring price.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CatalogPrice {
    /// `price_…`
    pub id: String,
    /// The `lookup_key` the tier config maps.
    pub lookup_key: String,
    /// `prod_…`
    pub product: String,
    /// Unit amount in pence (GBP, VAT inclusive).
    pub amount: i64,
    /// Billing interval.
    pub interval: Interval,
}

const CATALOG: [(&str, &str, &str, i64, Interval); 6] = [
    ("price_1QsBasicMonthly0000001", "basic_monthly", "prod_SsBasic000001", 900, Interval::Month),
    ("price_1QsBasicYearly00000001", "basic_yearly", "prod_SsBasic000001", 9000, Interval::Year),
    ("price_1QsProMonthly000000001", "pro_monthly", "prod_SsPro00000001", 1900, Interval::Month),
    ("price_1QsProYearly0000000001", "pro_yearly", "prod_SsPro00000001", 19000, Interval::Year),
    ("price_1QsAgentMonthly0000001", "agent_monthly", "prod_SsAgent000001", 9900, Interval::Month),
    ("price_1QsAgentYearly00000001", "agent_yearly", "prod_SsAgent000001", 99000, Interval::Year),
];

/// Every price the generator may sell, cheapest tier first.
pub fn catalog() -> Vec<CatalogPrice> {
    CATALOG
        .iter()
        .map(|(id, key, product, amount, interval)| CatalogPrice {
            id: (*id).to_owned(),
            lookup_key: (*key).to_owned(),
            product: (*product).to_owned(),
            amount: *amount,
            interval: *interval,
        })
        .collect()
}

/// The catalog price with this lookup key.
pub fn price(lookup_key: &str) -> Option<CatalogPrice> {
    catalog().into_iter().find(|p| p.lookup_key == lookup_key)
}

/// The add-on the generator may sell beside a plan: extra client slots, billed per unit.
/// The default tier file does not map it; [`ADDON_TIERS_TOML`] does.
pub fn addon_price() -> CatalogPrice {
    CatalogPrice {
        id: "price_1QsExtraClients00001".to_owned(),
        lookup_key: "extra_clients_monthly".to_owned(),
        product: "prod_SsExtraClients1".to_owned(),
        amount: 500,
        interval: Interval::Month,
    }
}

/// Appended to the default tier file, maps [`addon_price`] to an add-on: 5 more clients and
/// one more income source per unit.
pub const ADDON_TIERS_TOML: &str = r#"
[addons.extra_clients]
agent.clients = 5
sources.max = 1

[[prices]]
lookup_key = "extra_clients_monthly"
addon = "extra_clients"
"#;

/// The Stripe Entitlements features (lookup keys) the generator's summaries list.
pub const STRIPE_FEATURE_KEYS: [&str; 3] = ["itsa_quarterly", "vat_returns", "extra_sources"];

/// Appended to the default tier file (with `source = "both"`), maps [`STRIPE_FEATURE_KEYS`].
pub const STRIPE_FEATURES_TOML: &str = r#"
[stripe_features.itsa_quarterly]
itsa.quarterly = true

[stripe_features.vat_returns]
vat.returns = true

[stripe_features.extra_sources]
sources.max = 2
"#;
