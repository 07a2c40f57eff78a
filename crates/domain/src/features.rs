//! The features a tier or an add-on grants, and how grants combine (add-ons stack on a
//! tier: flags are granted, numbers add up).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

    /// Every feature by its dotted name (the tier file's spelling), in a fixed order: what an
    /// application may ask about, and the list an unknown name is answered with.
    pub const NAMES: [&'static str; 10] = [
        "records",
        "export",
        "obligations.view",
        "itsa.quarterly",
        "itsa.final_declaration",
        "sources.max",
        "sources.uk_property",
        "sources.foreign_property",
        "vat.returns",
        "agent.clients",
    ];

    /// One feature by its dotted name, or `None` for a name that is not a feature, so
    /// applications ask "may this user do X" without knowing the struct's layout.
    pub fn get(&self, name: &str) -> Option<FeatureValue> {
        Some(match name {
            "records" => FeatureValue::Flag(self.records),
            "export" => FeatureValue::Flag(self.export),
            "obligations.view" => FeatureValue::Flag(self.obligations.view),
            "itsa.quarterly" => FeatureValue::Flag(self.itsa.quarterly),
            "itsa.final_declaration" => FeatureValue::Flag(self.itsa.final_declaration),
            "sources.max" => match self.sources.max {
                SourceLimit::Limited(n) => FeatureValue::Count(n),
                SourceLimit::Unlimited => FeatureValue::Unlimited,
            },
            "sources.uk_property" => FeatureValue::Flag(self.sources.uk_property),
            "sources.foreign_property" => FeatureValue::Flag(self.sources.foreign_property),
            "vat.returns" => FeatureValue::Flag(self.vat.returns),
            "agent.clients" => FeatureValue::Count(self.agent.clients),
            _ => return None,
        })
    }
}

/// The value of one feature: a flag, or a number of things allowed (`sources.max`,
/// `agent.clients`). Exists so a check API can answer both kinds the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureValue {
    /// Granted or not.
    Flag(bool),
    /// At most this many (0: not granted).
    Count(u32),
    /// No limit.
    Unlimited,
}

impl FeatureValue {
    /// Whether the feature is granted at all: a true flag, or a limit above zero.
    pub fn allowed(self) -> bool {
        match self {
            FeatureValue::Flag(on) => on,
            FeatureValue::Count(n) => n > 0,
            FeatureValue::Unlimited => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every leaf of the serialized struct, dotted: the names a tier file can set.
    fn leaves(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    leaves(&name, v, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }

    #[test]
    fn names_cover_every_field_and_each_resolves() {
        let json = serde_json::to_value(Features::default()).expect("features serialize");
        let mut fields = Vec::new();
        leaves("", &json, &mut fields);
        fields.sort();
        let mut names: Vec<String> = Features::NAMES.iter().map(|n| (*n).to_owned()).collect();
        names.sort();
        assert_eq!(fields, names, "Features::NAMES must list every field, so `get` answers for each");
        for name in Features::NAMES {
            assert!(Features::default().get(name).is_some(), "{name} resolves");
        }
        assert_eq!(Features::default().get("itsa"), None, "a group is not a feature");
        assert_eq!(Features::default().get("vat.return"), None);
    }

    #[test]
    fn values_and_allowed() {
        let mut f = Features::none();
        f.itsa.quarterly = true;
        f.sources.max = SourceLimit::Limited(3);
        assert_eq!(f.get("itsa.quarterly"), Some(FeatureValue::Flag(true)));
        assert_eq!(f.get("itsa.final_declaration"), Some(FeatureValue::Flag(false)));
        assert_eq!(f.get("sources.max"), Some(FeatureValue::Count(3)));
        assert_eq!(f.get("agent.clients"), Some(FeatureValue::Count(0)));
        assert!(f.get("sources.max").is_some_and(FeatureValue::allowed));
        assert!(!f.get("agent.clients").is_some_and(FeatureValue::allowed));
        f.sources.max = SourceLimit::Unlimited;
        assert_eq!(f.get("sources.max"), Some(FeatureValue::Unlimited));
        assert!(FeatureValue::Unlimited.allowed());
    }
}
