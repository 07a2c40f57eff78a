//! Tiers, the features each grants, and the price → tier mapping loaded from TOML.
//!
//! Tiers are data, not code: marketing renames plans and adds prices far more often than
//! the rules change, so the mapping lives in a config file validated at load time.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use toml::Spanned;

pub use crate::features::{
    AgentFeatures, FeatureValue, Features, ItsaFeatures, ObligationFeatures, SourceFeatures, SourceLimit, VatFeatures,
};
pub use error::{ConfigError, ConfigErrorKind};
pub use policy::{FeatureSource, UnmappedPolicy};

/// The default tier configuration shipped with the crate, so a fresh install works and
/// tests share one source of truth with production.
pub const DEFAULT_TIERS_TOML: &str = include_str!("../tiers.default.toml");

/// Name of a tier as declared in the config (`free`, `basic`, …). A newtype rather than an
/// enum because the set of tiers is driven by config.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TierName(String);

impl TierName {
    /// The name every config must define: the floor everyone falls back to.
    pub const FREE: &'static str = "free";

    /// Builds a tier name; exists so callers never depend on the inner representation.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The `free` tier, the access floor.
    pub fn free() -> Self {
        Self(Self::FREE.to_owned())
    }

    /// The name as text, for storage and logs.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the `free` floor.
    pub fn is_free(&self) -> bool {
        self.0 == Self::FREE
    }
}

impl fmt::Display for TierName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TierName {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// A price on a subscription item, as the worker extracts it from Stripe. Exists so the
/// domain never sees Stripe JSON.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PriceRef {
    /// Stripe price id (`price_…`).
    pub id: String,
    /// The price's `lookup_key`, if set. Preferred for mapping: it survives price changes.
    pub lookup_key: Option<String>,
    /// The subscription item's `quantity`: how many times an add-on's grant applies (a tier
    /// is a tier whatever the quantity). States stored before quantities were read have 1.
    #[serde(default = "one")]
    pub quantity: u32,
}

fn one() -> u32 {
    1
}

impl PriceRef {
    /// A price on an item of quantity 1.
    pub fn new(id: impl Into<String>, lookup_key: Option<&str>) -> Self {
        Self { id: id.into(), lookup_key: lookup_key.map(str::to_owned), quantity: 1 }
    }

    /// The same price on an item of `quantity`.
    pub fn with_quantity(mut self, quantity: u32) -> Self {
        self.quantity = quantity;
        self
    }
}

/// A price the config does not map. A permanent error by design: guessing would silently
/// grant or deny paid access, so an operator must add the mapping and retry.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[error(
    "Stripe price {price_id} (lookup_key {}) is not mapped to a tier; add it to the tier config and retry",
    lookup_key.as_deref().unwrap_or("<none>")
)]
pub struct UnmappedPrice {
    /// The unmapped price id.
    pub price_id: String,
    /// Its lookup_key, if any.
    pub lookup_key: Option<String>,
}

/// The tier a subscription's prices pay for, and the prices that played no part in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanTier {
    /// The highest-ranked tier among the mapped prices (`free` when none is mapped and the
    /// tier file says `unmapped = "free"`, or when there are no prices).
    pub tier: TierName,
    /// Prices the tier file does not map, ignored for access: a warning for operators.
    pub ignored: Vec<UnmappedPrice>,
    /// What the subscription's add-on prices grant on top of the tier, quantities applied.
    pub addons: Features,
}

/// What one price is mapped to: a tier (the plan) or an add-on (grants on top of a tier).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Grant {
    Tier(TierName),
    Addon(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    unmapped: UnmappedPolicy,
    #[serde(default)]
    source: FeatureSource,
    #[serde(default)]
    stripe_features: BTreeMap<String, Features>,
    order: Vec<Spanned<String>>,
    tiers: BTreeMap<String, Spanned<Features>>,
    #[serde(default)]
    addons: BTreeMap<String, Spanned<Features>>,
    #[serde(default)]
    prices: Vec<RawPrice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    lookup_key: Option<Spanned<String>>,
    id: Option<Spanned<String>>,
    tier: Option<Spanned<String>>,
    addon: Option<Spanned<String>>,
}

/// The validated tier configuration: tiers in rank order, their features, and the price
/// mapping. Immutable after load so every decision made with it is reproducible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierConfig {
    unmapped: UnmappedPolicy,
    source: FeatureSource,
    stripe_features: BTreeMap<String, Features>,
    order: Vec<TierName>,
    features: BTreeMap<TierName, Features>,
    addons: BTreeMap<String, Features>,
    by_lookup_key: BTreeMap<String, Grant>,
    by_price_id: BTreeMap<String, Grant>,
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() + 1
}

impl TierConfig {
    /// The embedded default (`tiers.default.toml`): free, basic, pro, agent.
    ///
    /// # Panics
    /// Only if the embedded file is invalid, which a unit test rules out.
    pub fn default_config() -> Self {
        match Self::parse(DEFAULT_TIERS_TOML, "tiers.default.toml") {
            Ok(cfg) => cfg,
            Err(e) => panic!("embedded tiers.default.toml is invalid: {e}"),
        }
    }

    /// Parses and validates config text; errors name `<string>` as the file.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text, "<string>")
    }

    /// Reads, parses and validates a config file; errors name the file and line.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: None,
            kind: ConfigErrorKind::Io(e),
        })?;
        Self::parse(&text, &file)
    }

    /// Parses config text, naming `file` in errors (for callers that read the file themselves).
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let err = |line: Option<usize>, kind| ConfigError { file: file.to_owned(), line, kind };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            err(line, ConfigErrorKind::Parse(e.message().trim().to_owned()))
        })?;

        let mut order = Vec::with_capacity(raw.order.len());
        for name in &raw.order {
            let tier = TierName::new(name.get_ref().clone());
            if order.contains(&tier) || !raw.tiers.contains_key(tier.as_str()) {
                return Err(err(Some(line_of(text, name.span().start)), ConfigErrorKind::OrderMismatch(tier.0)));
            }
            order.push(tier);
        }
        let mut features = BTreeMap::new();
        for (name, feats) in raw.tiers {
            let line = Some(line_of(text, feats.span().start));
            if !order.iter().any(|t| t.as_str() == name) {
                return Err(err(line, ConfigErrorKind::OrderMismatch(name)));
            }
            if !feats.get_ref().keeps_read_and_export() {
                return Err(err(line, ConfigErrorKind::ReadExportRemoved(name)));
            }
            features.insert(TierName::new(name), feats.into_inner());
        }
        if !features.contains_key(&TierName::free()) {
            return Err(err(None, ConfigErrorKind::MissingFree));
        }

        let addons: BTreeMap<String, Features> =
            raw.addons.into_iter().map(|(name, grant)| (name, grant.into_inner())).collect();
        let mut by_lookup_key = BTreeMap::new();
        let mut by_price_id = BTreeMap::new();
        let mut first_lines: BTreeMap<(&'static str, String), usize> = BTreeMap::new();
        for price in raw.prices {
            let (grant, grant_line) = match (price.tier, price.addon) {
                (Some(tier), None) => {
                    let line = line_of(text, tier.span().start);
                    let tier = TierName::new(tier.into_inner());
                    if !features.contains_key(&tier) {
                        return Err(err(Some(line), ConfigErrorKind::UnknownTier(tier.0)));
                    }
                    (Grant::Tier(tier), line)
                }
                (None, Some(addon)) => {
                    let line = line_of(text, addon.span().start);
                    let addon = addon.into_inner();
                    if !addons.contains_key(&addon) {
                        return Err(err(Some(line), ConfigErrorKind::UnknownAddon(addon)));
                    }
                    (Grant::Addon(addon), line)
                }
                (tier, addon) => {
                    let at = tier.or(addon).map(|v| line_of(text, v.span().start));
                    let at = at.or_else(|| {
                        price.lookup_key.as_ref().or(price.id.as_ref()).map(|v| line_of(text, v.span().start))
                    });
                    return Err(err(at, ConfigErrorKind::TierOrAddon));
                }
            };
            if price.lookup_key.is_none() && price.id.is_none() {
                return Err(err(Some(grant_line), ConfigErrorKind::EmptyPrice));
            }
            for (what, value, map) in
                [("lookup_key", price.lookup_key, &mut by_lookup_key), ("id", price.id, &mut by_price_id)]
            {
                let Some(value) = value else { continue };
                let line = line_of(text, value.span().start);
                let value = value.into_inner();
                if let Some(first_line) = first_lines.get(&(what, value.clone())) {
                    return Err(err(
                        Some(line),
                        ConfigErrorKind::DuplicatePrice { what, value, first_line: *first_line },
                    ));
                }
                first_lines.insert((what, value.clone()), line);
                map.insert(value, grant.clone());
            }
        }
        Ok(Self {
            unmapped: raw.unmapped,
            source: raw.source,
            stripe_features: raw.stripe_features,
            order,
            features,
            addons,
            by_lookup_key,
            by_price_id,
        })
    }

    /// All tiers, lowest rank first.
    pub fn tiers(&self) -> &[TierName] {
        &self.order
    }

    /// A tier's rank (0 = lowest), or `None` if the tier is not defined.
    pub fn rank(&self, tier: &TierName) -> Option<usize> {
        self.order.iter().position(|t| t == tier)
    }

    /// The features a tier grants, or `None` if the tier is not defined.
    pub fn features(&self, tier: &TierName) -> Option<&Features> {
        self.features.get(tier)
    }

    /// The `free` tier's features (validation guarantees the tier exists).
    pub fn free_features(&self) -> Features {
        self.features.get(&TierName::free()).cloned().unwrap_or_default()
    }

    /// What one price is mapped to: its lookup_key mapping if there is one, else its id
    /// mapping, else [`UnmappedPrice`].
    fn grant_for_price(&self, price: &PriceRef) -> Result<&Grant, UnmappedPrice> {
        let by_key = price.lookup_key.as_ref().and_then(|k| self.by_lookup_key.get(k));
        by_key
            .or_else(|| self.by_price_id.get(&price.id))
            .ok_or_else(|| UnmappedPrice { price_id: price.id.clone(), lookup_key: price.lookup_key.clone() })
    }

    /// The tier one price grants; an add-on price grants `free` on its own (its features
    /// come on top of whatever tier the user has).
    pub fn tier_for_price(&self, price: &PriceRef) -> Result<TierName, UnmappedPrice> {
        Ok(match self.grant_for_price(price)? {
            Grant::Tier(tier) => tier.clone(),
            Grant::Addon(_) => TierName::free(),
        })
    }

    /// The add-ons defined in the tier file, by name, with what one unit grants.
    pub fn addons(&self) -> &BTreeMap<String, Features> {
        &self.addons
    }

    /// The tier a subscription's prices grant: the highest-ranked among its mapped items.
    /// Unmapped prices beside a mapped one (an add-on nobody mapped) are ignored for access,
    /// so they can never lock a paying user out; they come back in [`PlanTier::ignored`].
    /// When no price maps, the tier file's [`UnmappedPolicy`] decides: an error naming the
    /// first unmapped price (the default), or `free`. No prices means nothing is paid for:
    /// `free`.
    pub fn plan_for_prices(&self, prices: &[PriceRef]) -> Result<PlanTier, UnmappedPrice> {
        if !self.source.uses_prices() {
            // Stripe's Entitlements decide the features; prices need no mapping.
            return Ok(PlanTier { tier: TierName::free(), ignored: Vec::new(), addons: Features::none() });
        }
        let mut best: Option<TierName> = None;
        let mut ignored = Vec::new();
        let mut addons = Features::none();
        for price in prices {
            match self.grant_for_price(price) {
                Ok(Grant::Tier(tier)) => {
                    if best.as_ref().is_none_or(|b| self.rank(tier) > self.rank(b)) {
                        best = Some(tier.clone());
                    }
                }
                Ok(Grant::Addon(name)) => {
                    if let Some(grant) = self.addons.get(name) {
                        addons = addons.plus(grant, price.quantity);
                    }
                    // An add-on alone pays for no tier, but it is mapped: the floor is `free`.
                    best.get_or_insert_with(TierName::free);
                }
                Err(unmapped) => ignored.push(unmapped),
            }
        }
        match best {
            Some(tier) => Ok(PlanTier { tier: self.higher(&TierName::free(), &tier).clone(), ignored, addons }),
            None if ignored.is_empty() || self.unmapped == UnmappedPolicy::Free => {
                Ok(PlanTier { tier: TierName::free(), ignored, addons })
            }
            None => Err(ignored.swap_remove(0)),
        }
    }

    /// [`TierConfig::plan_for_prices`]'s tier.
    pub fn tier_for_prices(&self, prices: &[PriceRef]) -> Result<TierName, UnmappedPrice> {
        self.plan_for_prices(prices).map(|plan| plan.tier)
    }

    /// Where users' features come from: prices, Stripe's Entitlements, or both.
    pub fn feature_source(&self) -> FeatureSource {
        self.source
    }

    /// What the Stripe features with these lookup keys grant together (`[stripe_features]`);
    /// keys the file does not map grant nothing (see [`TierConfig::unmapped_stripe_features`]).
    pub fn stripe_grants<'a>(&self, lookup_keys: impl IntoIterator<Item = &'a str>) -> Features {
        lookup_keys
            .into_iter()
            .filter_map(|key| self.stripe_features.get(key))
            .fold(Features::none(), |sum, grant| sum.plus(grant, 1))
    }

    /// The lookup keys among `lookup_keys` that `[stripe_features]` does not map.
    pub fn unmapped_stripe_features<'a>(&self, lookup_keys: &'a [String]) -> Vec<&'a str> {
        lookup_keys.iter().map(String::as_str).filter(|k| !self.stripe_features.contains_key(*k)).collect()
    }

    /// What the tier file does with a subscription none of whose prices map.
    pub fn unmapped_policy(&self) -> UnmappedPolicy {
        self.unmapped
    }

    /// The mapped lookup key closest to `key` (edit distance, at most a third of its length
    /// and at least 2), to suggest in a warning. Only ever a suggestion: a near miss such as
    /// `pro-monthly` stays unmapped.
    pub fn closest_lookup_key(&self, key: &str) -> Option<&str> {
        let norm = |k: &str| k.trim().to_lowercase();
        let key = norm(key);
        let budget = (key.chars().count() / 3).max(2);
        self.by_lookup_key
            .keys()
            .map(|k| (strsim::levenshtein(&norm(k), &key), k))
            .filter(|(d, _)| *d <= budget)
            .min()
            .map(|(_, k)| k.as_str())
    }

    /// The higher-ranked of two tiers (ties and unknown tiers keep `a`). Used to combine
    /// several subscriptions of one user.
    pub fn higher<'a>(&self, a: &'a TierName, b: &'a TierName) -> &'a TierName {
        if self.rank(b) > self.rank(a) { b } else { a }
    }
}

mod error;
mod policy;
#[cfg(test)]
mod tests;
