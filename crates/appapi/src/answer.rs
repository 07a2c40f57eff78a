//! What the API answers: a user's entitlement now, or one feature of it, and the ETag that
//! lets an application revalidate instead of re-reading.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subsync_domain::{FeatureValue, Features};
use subsync_worker::EntitlementRow;

/// Where an answer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// subsync holds an entitlement for the user.
    Stored,
    /// subsync has never seen the user (or no longer holds anything for them): the lowest
    /// tier of the tier file, so an application never has to special-case a 404.
    Default,
}

/// The lowest tier, answered for users subsync does not know.
#[derive(Debug, Clone)]
pub struct DefaultTier {
    /// Its name (`free`).
    pub tier: String,
    /// Its features, from the tier file.
    pub features: Features,
}

/// `GET /v1/users/{user_id}/entitlements`.
#[derive(Debug, Clone, Serialize)]
pub struct EntitlementAnswer {
    /// The user asked about.
    pub user_id: String,
    /// `stored` or `default`.
    pub source: Source,
    /// The tier in force now (the lapse rule applied).
    pub tier: String,
    /// Its features.
    pub features: Features,
    /// The granting subscription's Stripe status (`null` for the default).
    pub status: Option<String>,
    /// Why (`active`, `past_due_grace`, `grace_expired`, …; `no_subscription` for the default).
    pub reason: String,
    /// When the current grant lapses without any further event (exclusive).
    pub access_until: Option<DateTime<Utc>>,
    /// The granting subscription's current period end.
    pub period_end: Option<DateTime<Utc>>,
    /// True when `access_until` has passed: `tier` is the lapse tier.
    pub lapsed: bool,
    /// Grows with every change of the stored decision (0 for the default).
    pub version: i64,
    /// When subsync decided the stored entitlement (`null` for the default).
    pub evaluated_at: Option<DateTime<Utc>>,
}

impl EntitlementAnswer {
    /// The answer for a stored row (already evaluated at the request's instant).
    pub fn stored(row: EntitlementRow) -> Self {
        Self {
            user_id: row.user_id,
            source: Source::Stored,
            tier: row.tier,
            features: row.features,
            status: row.status,
            reason: row.reason,
            access_until: row.access_until,
            period_end: row.period_end,
            lapsed: row.lapsed,
            version: row.version,
            evaluated_at: Some(row.evaluated_at),
        }
    }

    /// The answer for a user subsync holds nothing for.
    pub fn default_for(user_id: &str, default: &DefaultTier) -> Self {
        Self {
            user_id: user_id.to_owned(),
            source: Source::Default,
            tier: default.tier.clone(),
            features: default.features.clone(),
            status: None,
            reason: "no_subscription".to_owned(),
            access_until: None,
            period_end: None,
            lapsed: false,
            version: 0,
            evaluated_at: None,
        }
    }

    /// A weak ETag over what identifies this answer's content: the user, the version and the
    /// lapse state (a lapse changes the answer without a write), and for the default the
    /// tier's features (a new tier file changes them). Weak, because `evaluated_at` may move
    /// on a write that changed nothing the application acts on. `scope` separates the
    /// entitlement from each feature answer.
    pub fn etag(&self, scope: &str) -> String {
        let mut h = Sha256::new();
        for part in [scope, &self.user_id, &self.version.to_string(), if self.lapsed { "lapsed" } else { "live" }] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        if self.source == Source::Default {
            h.update(b"default\0");
            h.update(serde_json::to_vec(&(&self.tier, &self.features)).unwrap_or_default());
        }
        let digest = h.finalize();
        format!("W/\"{}\"", hex::encode(&digest[..16]))
    }

    /// One feature of this answer, or `None` for a name that is not a feature.
    pub fn feature(&self, name: &str) -> Option<FeatureAnswer> {
        let value = self.features.get(name)?;
        let limit = match value {
            FeatureValue::Flag(_) => Limit::None,
            FeatureValue::Count(n) => Limit::Count(n),
            FeatureValue::Unlimited => Limit::Unlimited,
        };
        Some(FeatureAnswer {
            user_id: self.user_id.clone(),
            feature: name.to_owned(),
            allowed: value.allowed(),
            limit,
            tier: self.tier.clone(),
            source: self.source,
            version: self.version,
        })
    }
}

/// A numeric feature's limit: `null` for a flag, a number, or `"unlimited"` (the tier file's
/// spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A flag has no limit.
    None,
    /// At most this many.
    Count(u32),
    /// No limit.
    Unlimited,
}

impl Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Limit::None => s.serialize_none(),
            Limit::Count(n) => s.serialize_u32(*n),
            Limit::Unlimited => s.serialize_str("unlimited"),
        }
    }
}

/// `GET /v1/users/{user_id}/features/{feature}`.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureAnswer {
    /// The user asked about.
    pub user_id: String,
    /// The dotted feature name asked about.
    pub feature: String,
    /// Whether the user may use it now: a granted flag, or a limit above zero.
    pub allowed: bool,
    /// See [`Limit`].
    pub limit: Limit,
    /// The tier the answer comes from.
    pub tier: String,
    /// `stored` or `default`.
    pub source: Source,
    /// The entitlement's version.
    pub version: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use subsync_domain::TierConfig;

    fn free() -> DefaultTier {
        DefaultTier { tier: "free".into(), features: TierConfig::default_config().free_features() }
    }

    #[test]
    fn etags_change_with_version_lapse_user_and_scope() {
        let mut a = EntitlementAnswer::default_for("usr_1", &free());
        a.source = Source::Stored;
        a.version = 7;
        let base = a.etag("entitlements");
        assert!(base.starts_with("W/\"") && base.ends_with('"'), "{base}");
        assert_eq!(base, a.etag("entitlements"), "stable");
        assert_ne!(base, a.etag("feature:itsa.quarterly"));
        let mut lapsed = a.clone();
        lapsed.lapsed = true;
        assert_ne!(base, lapsed.etag("entitlements"), "a lapse changes the ETag");
        let mut newer = a.clone();
        newer.version = 8;
        assert_ne!(base, newer.etag("entitlements"));
        let mut other = a.clone();
        other.user_id = "usr_2".into();
        assert_ne!(base, other.etag("entitlements"));
        // The default depends on the tier file's features.
        let d = EntitlementAnswer::default_for("usr_1", &free());
        let mut richer = free();
        richer.features.vat.returns = true;
        assert_ne!(d.etag("entitlements"), EntitlementAnswer::default_for("usr_1", &richer).etag("entitlements"));
    }

    #[test]
    fn features_answer_flags_and_limits() {
        let mut d = free();
        d.features.sources.max = subsync_domain::SourceLimit::Limited(2);
        let a = EntitlementAnswer::default_for("usr_1", &d);
        let q = a.feature("itsa.quarterly").expect("a feature");
        assert!(!q.allowed);
        assert_eq!(serde_json::to_value(&q).unwrap()["limit"], serde_json::Value::Null);
        let s = a.feature("sources.max").expect("a feature");
        assert!(s.allowed);
        assert_eq!(serde_json::to_value(&s).unwrap()["limit"], 2);
        assert!(a.feature("nope").is_none());
    }
}
