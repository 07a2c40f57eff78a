//! Seeding entitlements for other crates' tests and benchmarks (feature `testing`): rows go
//! through the real upsert, so the version rule is the production one.

use chrono::{DateTime, Utc};
use subsync_domain::{Features, TierConfig, TierName};
use subsync_queue::Store;

use crate::error::WorkerError;
use crate::store::{self, StoredEntitlement};

/// An entitlement to store, as the worker would decide it.
#[derive(Debug, Clone)]
pub struct Seed {
    /// The user.
    pub user_id: String,
    /// The tier granted until `access_until`.
    pub tier: String,
    /// Its features.
    pub features: Features,
    /// The granting subscription's Stripe status.
    pub status: Option<String>,
    /// The access reason (`active`, `past_due_grace`, `cancels_at_period_end`, …).
    pub reason: String,
    /// When the grant lapses (exclusive).
    pub access_until: Option<DateTime<Utc>>,
    /// The period end.
    pub period_end: Option<DateTime<Utc>>,
    /// The event named as the last change.
    pub event_id: String,
}

impl Seed {
    /// An active grant of `tier` (features from the default tier file).
    pub fn active(user_id: &str, tier: &str) -> Self {
        let features = TierConfig::default_config().features(&TierName::new(tier)).cloned().unwrap_or_default();
        Self {
            user_id: user_id.to_owned(),
            tier: tier.to_owned(),
            features,
            status: Some("active".into()),
            reason: "active".into(),
            access_until: None,
            period_end: None,
            event_id: "evt_seed".into(),
        }
    }

    /// The same grant ending at `until` with `reason` (`past_due_grace`, `cancels_at_period_end`).
    pub fn until(mut self, until: DateTime<Utc>, reason: &str) -> Self {
        self.access_until = Some(until);
        self.reason = reason.to_owned();
        self
    }
}

/// Stores `seed` through the worker's upsert and returns the row's version after it.
pub async fn put_entitlement(store: &Store, seed: &Seed) -> Result<i64, WorkerError> {
    let free = TierConfig::default_config().free_features();
    let json = |f: &Features| serde_json::to_value(f).map_err(|e| WorkerError::Corrupt(e.to_string()));
    let now = Utc::now();
    let row = StoredEntitlement {
        user_id: seed.user_id.clone(),
        user_source: "link_metadata".into(),
        tier: seed.tier.clone(),
        features: json(&seed.features)?,
        lapse_tier: TierName::FREE.into(),
        lapse_features: json(&free)?,
        subscription_id: format!("sub_{}", seed.user_id),
        status: seed.status.clone(),
        reason: seed.reason.clone(),
        plan_tier: Some(seed.tier.clone()),
        access_until: seed.access_until,
        period_end: seed.period_end,
        updated_at: now,
        evaluated_at: now,
        last_event_id: seed.event_id.clone(),
    };
    let mut tx = store.begin().await?;
    let version = store::upsert_entitlement(&mut tx, &row).await?;
    tx.commit().await?;
    Ok(version)
}

/// Removes a user's entitlement the way the worker does when no subscription is left.
pub async fn remove_entitlement(store: &Store, user_id: &str) -> Result<(), WorkerError> {
    let mut tx = store.begin().await?;
    store::delete_entitlement(&mut tx, user_id).await?;
    tx.commit().await?;
    Ok(())
}
