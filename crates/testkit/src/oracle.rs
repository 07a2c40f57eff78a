//! The oracle: what every user's entitlement must be once all events are processed.
//!
//! Applies each lifecycle's events in true order through `subsync_domain::apply`. Because
//! the domain is order-independent, a correct pipeline (any delivery order, duplicates,
//! concurrency) must end with exactly these entitlements.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use subsync_domain::{
    AccessPolicy, DomainError, Entitlement, FeatureSummary, Features, Outcome, SubscriptionState, SubscriptionStatus,
    TierConfig, TierName, UnixSeconds, apply,
};

use crate::generator::Lifecycle;

/// The expected end state for one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedEntitlement {
    /// Tier in force at the evaluation instant.
    pub tier: TierName,
    /// The subscription that grants it (the highest-tier one if the user has several).
    pub subscription_id: String,
    /// That subscription's final status.
    pub status: Option<SubscriptionStatus>,
    /// The full entitlement (features, `access_until`, reason).
    pub entitlement: Entitlement,
}

/// Final domain state per subscription id, applying events in true order.
pub fn final_states(
    lifecycles: &[Lifecycle],
    cfg: &TierConfig,
    policy: &AccessPolicy,
) -> Result<BTreeMap<String, SubscriptionState>, DomainError> {
    let mut states: BTreeMap<String, SubscriptionState> = BTreeMap::new();
    for lc in lifecycles {
        for ev in &lc.events {
            let Some(input) = ev.domain_input() else { continue };
            let key = input.subscription_id().to_owned();
            let outcome = apply(states.get(&key), &input, cfg, policy, ev.created)?;
            if let Outcome::Applied { new_state, .. } = outcome {
                states.insert(key, new_state);
            }
        }
    }
    Ok(states)
}

/// The newest Stripe Entitlements summary per customer: the greatest (`created`, event id),
/// whatever order the events came in.
pub fn final_feature_summaries(lifecycles: &[Lifecycle]) -> BTreeMap<String, FeatureSummary> {
    let mut out: BTreeMap<String, FeatureSummary> = BTreeMap::new();
    for summary in lifecycles.iter().flat_map(|lc| &lc.events).filter_map(|ev| ev.feature_summary()) {
        let newest = out.get(&summary.customer_id).is_none_or(|s| summary.supersedes(s.event_created, &s.event_id));
        if newest {
            out.insert(summary.customer_id.clone(), summary);
        }
    }
    out
}

/// Expected entitlement per user id at `now`. A user with several subscriptions gets the
/// highest-ranked tier among them (ties: the smallest subscription id), plus the add-ons of
/// every other subscription of theirs that grants access. A subscription whose user is not
/// known yet is keyed by its customer id, as the domain resolves it. When the tier file uses
/// Stripe's Entitlements, the newest summary of each of the user's customers grants on top.
pub fn expected_entitlements(
    lifecycles: &[Lifecycle],
    cfg: &TierConfig,
    policy: &AccessPolicy,
    now: UnixSeconds,
) -> Result<BTreeMap<String, ExpectedEntitlement>, DomainError> {
    let mut out: BTreeMap<String, ExpectedEntitlement> = BTreeMap::new();
    let mut addons: BTreeMap<String, Vec<(String, Features)>> = BTreeMap::new();
    let mut customers: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for (sub_id, state) in final_states(lifecycles, cfg, policy)? {
        let Some(user) = state.user() else { continue };
        let entitlement = state.entitlement(cfg, policy, now)?;
        addons.entry(user.user_id.clone()).or_default().push((sub_id.clone(), entitlement.addons.clone()));
        customers.entry(user.user_id.clone()).or_default().extend(state.customer_id().map(str::to_owned));
        let candidate = ExpectedEntitlement {
            tier: entitlement.tier.clone(),
            subscription_id: sub_id,
            status: state.status().cloned(),
            entitlement,
        };
        match out.get(&user.user_id) {
            Some(existing) if cfg.rank(&candidate.tier) <= cfg.rank(&existing.tier) => {}
            _ => {
                out.insert(user.user_id, candidate);
            }
        }
    }
    for (user, expected) in &mut out {
        for (sub_id, extra) in addons.get(user).into_iter().flatten() {
            if *sub_id != expected.subscription_id {
                expected.entitlement.features = expected.entitlement.features.plus(extra, 1);
            }
        }
    }
    if cfg.feature_source().uses_stripe_entitlements() {
        let summaries = final_feature_summaries(lifecycles);
        for (user, expected) in &mut out {
            let keys: Vec<&str> = customers
                .get(user)
                .into_iter()
                .flatten()
                .filter_map(|c| summaries.get(c))
                .flat_map(|s| s.lookup_keys.iter().map(String::as_str))
                .collect();
            expected.entitlement.features = expected.entitlement.features.plus(&cfg.stripe_grants(keys), 1);
        }
    }
    Ok(out)
}
