//! Tiers, the features each grants, and the price → tier mapping loaded from TOML.
//!
//! Tiers are data, not code: marketing renames plans and adds prices far more often than
//! the rules change, so the mapping lives in a config file validated at load time.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;
use toml::Spanned;

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

/// How many income sources a tier may submit for. Exists because "unlimited" must not be
/// encoded as a magic number that someone later compares against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceLimit {
    /// At most this many sources (0 = none).
    Limited(u32),
    /// No limit.
    #[default]
    Unlimited,
}

impl SourceLimit {
    /// Whether a user with `count` sources is within the limit.
    pub fn allows(self, count: u32) -> bool {
        match self {
            SourceLimit::Limited(max) => count <= max,
            SourceLimit::Unlimited => true,
        }
    }
}

impl Serialize for SourceLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SourceLimit::Limited(n) => s.serialize_u32(*n),
            SourceLimit::Unlimited => s.serialize_str("unlimited"),
        }
    }
}

impl<'de> Deserialize<'de> for SourceLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u32),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Count(n) => Ok(SourceLimit::Limited(n)),
            Raw::Word(w) if w == "unlimited" => Ok(SourceLimit::Unlimited),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "sources.max must be a non-negative integer or \"unlimited\", got {w:?}"
            ))),
        }
    }
}

/// Obligation features (`obligations.*`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObligationFeatures {
    /// See HMRC obligations (deadlines). Read access: every tier must grant it.
    pub view: bool,
}

/// Income Tax Self Assessment features (`itsa.*`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ItsaFeatures {
    /// Submit quarterly updates.
    pub quarterly: bool,
    /// Submit the final declaration.
    pub final_declaration: bool,
}

/// Income source features (`sources.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceFeatures {
    /// How many income sources may be submitted for.
    pub max: SourceLimit,
    /// UK property businesses allowed.
    pub uk_property: bool,
    /// Foreign property businesses allowed.
    pub foreign_property: bool,
}

impl Default for SourceFeatures {
    fn default() -> Self {
        Self { max: SourceLimit::Limited(0), uk_property: false, foreign_property: false }
    }
}

/// VAT features (`vat.*`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VatFeatures {
    /// Submit VAT returns.
    pub returns: bool,
}

/// Agent features (`agent.*`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentFeatures {
    /// How many clients an agent may act for (0 = not an agent).
    pub clients: u32,
}

/// The feature flags a tier grants: what the app checks before letting a user act.
/// Missing keys in TOML default to "not granted".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Features {
    /// Keep and read digital records. Read access: every tier must grant it.
    pub records: bool,
    /// Export records. Every tier must grant it (records must be kept for years).
    pub export: bool,
    /// `obligations.*`
    pub obligations: ObligationFeatures,
    /// `itsa.*`
    pub itsa: ItsaFeatures,
    /// `sources.*`
    pub sources: SourceFeatures,
    /// `vat.*`
    pub vat: VatFeatures,
    /// `agent.*`
    pub agent: AgentFeatures,
}

impl Features {
    /// Whether the never-removable read/export features are all granted.
    pub fn keeps_read_and_export(&self) -> bool {
        self.records && self.export && self.obligations.view
    }

    /// These features plus `extra` granted `times` times: a flag is granted when either
    /// grants it, a number grows by `extra`'s value × `times` (saturating; `unlimited` stays
    /// unlimited). How add-ons stack on a tier, and add-ons on each other.
    pub fn plus(&self, extra: &Features, times: u32) -> Features {
        let add = |a: u32, b: u32| a.saturating_add(b.saturating_mul(times));
        let flag = |a: bool, b: bool| a || (b && times > 0);
        Features {
            records: flag(self.records, extra.records),
            export: flag(self.export, extra.export),
            obligations: ObligationFeatures { view: flag(self.obligations.view, extra.obligations.view) },
            itsa: ItsaFeatures {
                quarterly: flag(self.itsa.quarterly, extra.itsa.quarterly),
                final_declaration: flag(self.itsa.final_declaration, extra.itsa.final_declaration),
            },
            sources: SourceFeatures {
                max: match (self.sources.max, extra.sources.max) {
                    (SourceLimit::Unlimited, _) => SourceLimit::Unlimited,
                    (_, SourceLimit::Unlimited) if times > 0 => SourceLimit::Unlimited,
                    (SourceLimit::Limited(a), SourceLimit::Limited(b)) => SourceLimit::Limited(add(a, b)),
                    (limited, SourceLimit::Unlimited) => limited,
                },
                uk_property: flag(self.sources.uk_property, extra.sources.uk_property),
                foreign_property: flag(self.sources.foreign_property, extra.sources.foreign_property),
            },
            vat: VatFeatures { returns: flag(self.vat.returns, extra.vat.returns) },
            agent: AgentFeatures { clients: add(self.agent.clients, extra.agent.clients) },
        }
    }

    /// Nothing granted: the identity of [`Features::plus`], the start of an add-on sum.
    pub fn none() -> Features {
        Features::default()
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

/// Why a tier config was rejected, located by file and (when known) line so an operator
/// can fix it without guessing.
#[derive(Debug, Error)]
#[error("{file}{}: {kind}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// File path, or `<string>` for [`TierConfig::from_toml_str`].
    pub file: String,
    /// 1-based line, when the problem can be pinned to one.
    pub line: Option<usize>,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

/// The specific config problem.
#[derive(Debug, Error)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    #[error("cannot read tier config: {0}")]
    Io(#[from] std::io::Error),
    /// TOML syntax or shape error (unknown key, wrong type…).
    #[error("invalid tier config: {0}")]
    Parse(String),
    /// A price mapping names a tier that is not defined.
    #[error("price mapping refers to unknown tier {0:?}")]
    UnknownTier(String),
    /// A price mapping names an add-on that has no `[addons.<name>]` table.
    #[error("price mapping refers to unknown add-on {0:?} (define it as [addons.{0}])")]
    UnknownAddon(String),
    /// A price entry must name exactly one of `tier` and `addon`.
    #[error("a price maps to either a `tier` (a plan) or an `addon` (grants on top of a tier), exactly one")]
    TierOrAddon,
    /// The same lookup_key or price id is mapped twice.
    #[error("duplicate price mapping for {what} {value:?} (first mapped on line {first_line})")]
    DuplicatePrice {
        /// `lookup_key` or `id`.
        what: &'static str,
        /// The duplicated value.
        value: String,
        /// Where it was first mapped.
        first_line: usize,
    },
    /// A price entry has neither `lookup_key` nor `id`.
    #[error("price mapping needs a lookup_key or an id")]
    EmptyPrice,
    /// No `free` tier.
    #[error("the \"free\" tier must be defined")]
    MissingFree,
    /// A tier removes read/export access.
    #[error(
        "tier {0:?} must grant records, obligations.view and export (tax records must stay readable and exportable)"
    )]
    ReadExportRemoved(String),
    /// `order` and `[tiers.*]` disagree.
    #[error("tier {0:?} must appear exactly once in `order` and have a [tiers.{0}] table")]
    OrderMismatch(String),
}

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
        Ok(Self { unmapped: raw.unmapped, order, features, addons, by_lookup_key, by_price_id })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, key: Option<&str>) -> PriceRef {
        PriceRef::new(id, key)
    }

    const MINIMAL: &str = r#"
order = ["free", "pro"]
[tiers.free]
records = true
export = true
obligations.view = true
[tiers.pro]
records = true
export = true
obligations.view = true
vat.returns = true
"#;

    fn with_prices(prices: &str) -> Result<TierConfig, ConfigError> {
        TierConfig::from_toml_str(&format!("{MINIMAL}{prices}"))
    }

    #[test]
    fn default_config_is_valid_and_ranked() {
        let cfg = TierConfig::default_config();
        let names: Vec<_> = cfg.tiers().iter().map(TierName::as_str).collect();
        assert_eq!(names, ["free", "basic", "pro", "agent"]);
        for t in cfg.tiers() {
            assert!(cfg.features(t).unwrap().keeps_read_and_export(), "{t}");
        }
        let free = cfg.free_features();
        assert!(!free.itsa.quarterly && !free.vat.returns);
        let basic = cfg.features(&"basic".into()).unwrap();
        assert_eq!(basic.sources.max, SourceLimit::Limited(1));
        assert!(basic.itsa.quarterly && basic.itsa.final_declaration);
        assert!(!basic.sources.foreign_property && !basic.vat.returns);
        let pro = cfg.features(&"pro".into()).unwrap();
        assert_eq!(pro.sources.max, SourceLimit::Unlimited);
        assert!(pro.sources.foreign_property && pro.sources.uk_property && pro.vat.returns);
        assert_eq!(pro.agent.clients, 0);
        let agent = cfg.features(&"agent".into()).unwrap();
        assert_eq!(agent.agent.clients, 500);
        assert!(agent.vat.returns && agent.sources.foreign_property);
        for key in ["basic_monthly", "basic_yearly", "pro_monthly", "pro_yearly", "agent_monthly", "agent_yearly"] {
            let tier = cfg.tier_for_price(&p("price_x", Some(key))).unwrap();
            assert!(key.starts_with(tier.as_str()), "{key} -> {tier}");
        }
    }

    #[test]
    fn lookup_key_wins_over_id() {
        let cfg = with_prices(
            r#"
[[prices]]
lookup_key = "k_free"
tier = "free"
[[prices]]
id = "price_1"
tier = "pro"
"#,
        )
        .unwrap();
        assert_eq!(cfg.tier_for_price(&p("price_1", Some("k_free"))).unwrap(), TierName::free());
        // id mapping is the fallback when the lookup_key is absent or unmapped.
        assert_eq!(cfg.tier_for_price(&p("price_1", None)).unwrap().as_str(), "pro");
        assert_eq!(cfg.tier_for_price(&p("price_1", Some("other"))).unwrap().as_str(), "pro");
    }

    #[test]
    fn unmapped_price_is_an_error_naming_the_price() {
        let cfg = TierConfig::default_config();
        // Only when no price of the subscription maps (an unmapped extra beside a plan is
        // ignored instead: see `an_unmapped_extra_never_locks_out_a_paying_user`).
        let e = cfg.tier_for_prices(&[p("price_zz", Some("nope")), p("price_zy", None)]).unwrap_err();
        assert_eq!(e, UnmappedPrice { price_id: "price_zz".into(), lookup_key: Some("nope".into()) });
        assert!(e.to_string().contains("price_zz") && e.to_string().contains("nope"));
        let e = cfg.tier_for_price(&p("price_q", None)).unwrap_err();
        assert!(e.to_string().contains("<none>"));
    }

    #[test]
    fn an_unmapped_extra_never_locks_out_a_paying_user() {
        let cfg = TierConfig::default_config();
        let plan = p("price_agent", Some("agent_yearly"));
        let extra = p("price_extra_client", Some("extra_client"));
        let decided = cfg.plan_for_prices(&[extra.clone(), plan]).unwrap();
        assert_eq!(decided.tier.as_str(), "agent");
        assert_eq!(
            decided.ignored,
            vec![UnmappedPrice { price_id: "price_extra_client".into(), lookup_key: Some("extra_client".into()) }]
        );
        // Only unmapped prices: today's rule (an error for an operator) unless the file says free.
        assert!(cfg.plan_for_prices(std::slice::from_ref(&extra)).is_err());
        let lenient =
            TierConfig::from_toml_str(&DEFAULT_TIERS_TOML.replace("unmapped = \"dead\"", "unmapped = \"free\""))
                .unwrap();
        assert_eq!(lenient.unmapped_policy(), UnmappedPolicy::Free);
        let decided = lenient.plan_for_prices(std::slice::from_ref(&extra)).unwrap();
        assert_eq!((decided.tier, decided.ignored.len()), (TierName::free(), 1));
        let e = TierConfig::from_toml_str(&DEFAULT_TIERS_TOML.replace("unmapped = \"dead\"", "unmapped = \"grant\""))
            .unwrap_err();
        assert!(e.to_string().contains("expected `dead` or `free`") && e.line.is_some(), "{e}");
    }

    proptest::proptest! {
        /// Whatever unmapped extras a subscription carries, wherever they sit among its items,
        /// access is what its mapped prices alone grant.
        #[test]
        fn unmapped_extras_never_change_access(
            mapped in proptest::collection::vec(0usize..6, 1..4),
            extras in proptest::collection::vec(("[a-z_]{1,12}", proptest::option::of("[a-z_-]{1,12}")), 0..4),
            seed in 0u64..1000,
        ) {
            let cfg = TierConfig::default_config();
            let keys = ["basic_monthly", "basic_yearly", "pro_monthly", "pro_yearly", "agent_monthly", "agent_yearly"];
            let plan: Vec<PriceRef> = mapped.iter().map(|&i| p(&format!("price_{i}"), Some(keys[i]))).collect();
            let expected = cfg.tier_for_prices(&plan).unwrap();
            let mut items = plan.clone();
            for (n, (id, key)) in extras.iter().enumerate() {
                let key = key.as_deref().filter(|k| !keys.contains(k));
                let at = (seed as usize + n * 7) % (items.len() + 1);
                items.insert(at, p(&format!("price_extra_{id}"), key));
            }
            let decided = cfg.plan_for_prices(&items).unwrap();
            proptest::prop_assert_eq!(decided.tier, expected);
            proptest::prop_assert_eq!(decided.ignored.len(), extras.len());
        }
    }

    const ADDONS: &str = r#"
[addons.extra_clients]
agent.clients = 10
[addons.foreign]
sources.foreign_property = true
sources.max = 1
[[prices]]
lookup_key = "extra_clients_10"
addon = "extra_clients"
[[prices]]
id = "price_foreign"
addon = "foreign"
"#;

    #[test]
    fn add_ons_stack_on_the_tier_times_their_quantity() {
        let cfg = TierConfig::from_toml_str(&format!("{DEFAULT_TIERS_TOML}{ADDONS}")).unwrap();
        let plan = p("price_agent", Some("agent_yearly"));
        let clients = p("price_ec", Some("extra_clients_10")).with_quantity(3);
        let decided = cfg.plan_for_prices(&[clients.clone(), plan]).unwrap();
        assert_eq!(decided.tier.as_str(), "agent", "an add-on is not a tier");
        assert_eq!(decided.addons.agent.clients, 30);
        let agent = cfg.features(&decided.tier).unwrap().plus(&decided.addons, 1);
        assert_eq!(agent.agent.clients, 530);
        // On a basic plan the add-on grants a flag and one more source; quantity 0 grants nothing.
        let basic = p("price_basic", Some("basic_monthly"));
        let decided = cfg.plan_for_prices(&[basic.clone(), p("price_foreign", None)]).unwrap();
        let features = cfg.features(&decided.tier).unwrap().plus(&decided.addons, 1);
        assert!(features.sources.foreign_property);
        assert_eq!(features.sources.max, SourceLimit::Limited(2));
        let none = cfg.plan_for_prices(&[basic, p("price_foreign", None).with_quantity(0)]).unwrap();
        assert_eq!(none.addons, Features::none());
        // An add-on alone pays for no tier: free, plus the add-on.
        let alone = cfg.plan_for_prices(&[clients]).unwrap();
        assert_eq!((alone.tier, alone.addons.agent.clients), (TierName::free(), 30));
    }

    #[test]
    fn plus_grants_flags_adds_numbers_and_keeps_unlimited() {
        let mut base = Features::none();
        base.sources.max = SourceLimit::Unlimited;
        let mut extra = Features::none();
        extra.sources.max = SourceLimit::Limited(5);
        extra.vat.returns = true;
        extra.agent.clients = u32::MAX;
        let sum = base.plus(&extra, 2);
        assert_eq!(sum.sources.max, SourceLimit::Unlimited);
        assert!(sum.vat.returns);
        assert_eq!(sum.agent.clients, u32::MAX, "saturates");
        assert_eq!(Features::none().plus(&extra, 0), Features::none());
    }

    #[test]
    fn a_price_maps_to_a_tier_or_an_add_on_that_exists() {
        let both = "[[prices]]\nlookup_key = \"x\"\ntier = \"pro\"\naddon = \"a\"\n";
        let e = TierConfig::from_toml_str(&format!("{DEFAULT_TIERS_TOML}[addons.a]\nvat.returns = true\n{both}"))
            .unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::TierOrAddon) && e.line.is_some(), "{e}");
        let neither = "[[prices]]\nlookup_key = \"x\"\n";
        let e = TierConfig::from_toml_str(&format!("{DEFAULT_TIERS_TOML}{neither}")).unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::TierOrAddon), "{e}");
        let unknown = "[[prices]]\nlookup_key = \"x\"\naddon = \"nope\"\n";
        let e = TierConfig::from_toml_str(&format!("{DEFAULT_TIERS_TOML}{unknown}")).unwrap_err();
        assert!(e.to_string().contains("unknown add-on \"nope\""), "{e}");
        let typo = "[addons.a]\nagent.client = 1\n";
        assert!(TierConfig::from_toml_str(&format!("{DEFAULT_TIERS_TOML}{typo}")).is_err(), "unknown feature keys");
    }

    #[test]
    fn near_misses_stay_unmapped_but_suggest_the_closest_key() {
        let cfg = TierConfig::default_config();
        for near in ["pro-monthly", "PRO_MONTHLY", " pro_monthly"] {
            assert!(cfg.tier_for_price(&p("price_x", Some(near))).is_err(), "{near:?} must not be fuzzy-matched");
            assert_eq!(cfg.closest_lookup_key(near), Some("pro_monthly"), "{near:?}");
        }
        assert_eq!(cfg.closest_lookup_key("extra_client"), None, "nothing close enough");
    }

    #[test]
    fn several_items_pick_the_highest_rank_in_any_order() {
        let cfg = TierConfig::default_config();
        let a = p("p1", Some("basic_monthly"));
        let b = p("p2", Some("agent_monthly"));
        let c = p("p3", Some("pro_yearly"));
        for items in
            [vec![a.clone(), b.clone(), c.clone()], vec![c.clone(), b.clone(), a.clone()], vec![b.clone(), a.clone()]]
        {
            assert_eq!(cfg.tier_for_prices(&items).unwrap().as_str(), "agent");
        }
        assert_eq!(cfg.tier_for_prices(&[a, c]).unwrap().as_str(), "pro");
        assert_eq!(cfg.tier_for_prices(&[]).unwrap(), TierName::free());
    }

    #[test]
    fn unknown_tier_is_rejected_with_line() {
        let e = with_prices("[[prices]]\nlookup_key = \"x\"\ntier = \"gold\"\n").unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::UnknownTier(ref t) if t == "gold"));
        let expected_line = MINIMAL.lines().count() + 3;
        assert_eq!(e.line, Some(expected_line));
        assert!(e.to_string().starts_with(&format!("<string>:{expected_line}:")), "{e}");
    }

    #[test]
    fn duplicate_mappings_are_rejected() {
        let e = with_prices(
            "[[prices]]\nlookup_key = \"x\"\ntier = \"pro\"\n[[prices]]\nlookup_key = \"x\"\ntier = \"free\"\n",
        )
        .unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::DuplicatePrice { what: "lookup_key", .. }));
        let e =
            with_prices("[[prices]]\nid = \"price_1\"\ntier = \"pro\"\n[[prices]]\nid = \"price_1\"\ntier = \"pro\"\n")
                .unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::DuplicatePrice { what: "id", .. }));
        // The same string as a lookup_key and as an id is not a duplicate.
        with_prices("[[prices]]\nid = \"same\"\ntier = \"pro\"\n[[prices]]\nlookup_key = \"same\"\ntier = \"pro\"\n")
            .unwrap();
    }

    #[test]
    fn empty_price_entry_is_rejected() {
        let e = with_prices("[[prices]]\ntier = \"pro\"\n").unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::EmptyPrice));
    }

    #[test]
    fn free_must_exist() {
        let e = TierConfig::from_toml_str(
            "order = [\"pro\"]\n[tiers.pro]\nrecords = true\nexport = true\nobligations.view = true\n",
        )
        .unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::MissingFree));
    }

    #[test]
    fn every_tier_must_keep_read_and_export() {
        for missing in ["records", "export", "obligations.view"] {
            let pro = ["records", "export", "obligations.view"]
                .iter()
                .filter(|k| **k != missing)
                .map(|k| format!("{k} = true\n"))
                .collect::<String>();
            let text = format!(
                "order = [\"free\", \"pro\"]\n[tiers.free]\nrecords = true\nexport = true\nobligations.view = true\n[tiers.pro]\n{pro}"
            );
            let e = TierConfig::from_toml_str(&text).unwrap_err();
            assert!(matches!(e.kind, ConfigErrorKind::ReadExportRemoved(ref t) if t == "pro"), "{e}");
            assert!(e.line.is_some());
        }
    }

    #[test]
    fn order_must_match_tiers() {
        let e = TierConfig::from_toml_str(&MINIMAL.replace("[\"free\", \"pro\"]", "[\"free\"]")).unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::OrderMismatch(ref t) if t == "pro"));
        let e = TierConfig::from_toml_str(&MINIMAL.replace("[\"free\", \"pro\"]", "[\"free\", \"pro\", \"pro\"]"))
            .unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::OrderMismatch(_)));
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn syntax_and_unknown_keys_report_lines() {
        let e = TierConfig::from_toml_str(&format!("{MINIMAL}vat.retruns = true\n")).unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::Parse(_)));
        assert!(e.line.is_some(), "{e}");
        let e = TierConfig::from_toml_str("order = [\n").unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::Parse(_)));
        let e =
            TierConfig::from_toml_str(&MINIMAL.replace("vat.returns = true", "sources.max = \"lots\"")).unwrap_err();
        assert!(e.to_string().contains("unlimited"), "{e}");
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("subsync-domain-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tiers.toml");
        std::fs::write(&path, format!("{MINIMAL}[[prices]]\nid = \"p\"\ntier = \"nope\"\n")).unwrap();
        let e = TierConfig::load(&path).unwrap_err();
        assert!(e.to_string().starts_with(&path.display().to_string()), "{e}");
        assert!(e.line.is_some());
        let e = TierConfig::load(dir.join("missing.toml")).unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::Io(_)));
        std::fs::write(&path, MINIMAL).unwrap();
        assert_eq!(TierConfig::load(&path).unwrap().tiers().len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn source_limit_round_trips() {
        assert!(SourceLimit::Limited(1).allows(1) && !SourceLimit::Limited(1).allows(2));
        assert!(SourceLimit::Unlimited.allows(u32::MAX));
        let json = serde_json::to_string(&[SourceLimit::Limited(3), SourceLimit::Unlimited]).unwrap();
        assert_eq!(json, "[3,\"unlimited\"]");
        let back: Vec<SourceLimit> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, [SourceLimit::Limited(3), SourceLimit::Unlimited]);
    }
}
