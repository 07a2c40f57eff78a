//! The product's core promise: whatever order Stripe delivers a subscription's events in,
//! and however often, the final state and entitlement equal those of the true order.

use std::collections::BTreeMap;

use proptest::prelude::*;
use subsync_domain::{AccessPolicy, Outcome, SubscriptionState, TierConfig, apply};
use subsync_testkit::*;

fn replay<'a>(
    events: impl IntoIterator<Item = &'a GeneratedEvent>,
    cfg: &TierConfig,
    policy: &AccessPolicy,
) -> BTreeMap<String, SubscriptionState> {
    let mut states: BTreeMap<String, SubscriptionState> = BTreeMap::new();
    for ev in events {
        let Some(input) = ev.domain_input() else { continue };
        let key = input.subscription_id().to_owned();
        match apply(states.get(&key), &input, cfg, policy, ev.created).unwrap() {
            Outcome::Applied { new_state, .. } => {
                states.insert(key, new_state);
            }
            Outcome::Stale { .. } | Outcome::Unchanged => {}
        }
    }
    states
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Delivery plans (shuffled, with duplicates) end in the true-order states and
    /// entitlements (add-ons and their quantities included), for every user, at several
    /// instants.
    #[test]
    fn any_delivery_plan_matches_true_order(
        gen_seed in any::<u64>(),
        plan_seed in any::<u64>(),
        count in 1usize..6,
        duplicate_ratio in 0.0f64..0.6,
        grace_days in 0u32..10,
    ) {
        let cfg = TierConfig::from_toml_str(&format!("{}{}", subsync_domain::DEFAULT_TIERS_TOML, ADDON_TIERS_TOML))
            .unwrap();
        let policy = AccessPolicy::with_grace_days(grace_days);
        let lcs = generate_lifecycles(gen_seed, count, &GeneratorOptions {
            past_due_ratio: 0.4,
            plan_change_ratio: 0.3,
            cancel_at_period_end_ratio: 0.2,
            addon_ratio: 0.4,
            summary_ratio: 0.4,
            ..GeneratorOptions::default()
        });
        let truth = final_states(&lcs, &cfg, &policy).unwrap();
        let plan = delivery_plan(&lcs, plan_seed, &DeliveryOptions {
            duplicate_ratio,
            shuffle: true,
            concurrent_pairs: plan_seed % 2 == 0,
        });
        let got = replay(plan.iter().map(|d| d.event(&lcs).unwrap()), &cfg, &policy);
        prop_assert_eq!(&got, &truth);
        // Feature summaries: keeping the newest as they arrive ends at the true newest.
        let mut newest: BTreeMap<String, subsync_domain::FeatureSummary> = BTreeMap::new();
        for summary in plan.iter().filter_map(|d| d.event(&lcs).unwrap().feature_summary()) {
            if newest.get(&summary.customer_id).is_none_or(|s| summary.supersedes(s.event_created, &s.event_id)) {
                newest.insert(summary.customer_id.clone(), summary);
            }
        }
        prop_assert_eq!(newest, final_feature_summaries(&lcs));
        let start = GeneratorOptions::default().start;
        for now in [start, start + 45 * 86_400, start + 100 * 86_400, start + 400 * 86_400] {
            let expected = expected_entitlements(&lcs, &cfg, &policy, now).unwrap();
            for (sub, state) in &got {
                let e = state.entitlement(&cfg, &policy, now).unwrap();
                let user = state.user().unwrap().user_id;
                prop_assert_eq!(&expected[&user].subscription_id, sub);
                prop_assert_eq!(&expected[&user].entitlement, &e);
            }
        }
    }

    /// Arbitrary permutations of one lifecycle, with arbitrary repeats.
    #[test]
    fn any_permutation_with_duplicates_of_one_lifecycle(
        gen_seed in any::<u64>(),
        perm in Just(()).prop_perturb(|_, mut rng| rng.next_u64()),
        repeats in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let cfg = TierConfig::default_config();
        let policy = AccessPolicy::default();
        let lcs = generate_lifecycles(gen_seed, 1, &GeneratorOptions {
            past_due_ratio: 0.5,
            ..GeneratorOptions::default()
        });
        let truth = final_states(&lcs, &cfg, &policy).unwrap();
        let events = &lcs[0].events;
        let mut order: Vec<&GeneratedEvent> = events.iter().collect();
        order.extend(repeats.iter().map(|i| &events[i.index(events.len())]));
        fastrand::Rng::with_seed(perm).shuffle(&mut order);
        prop_assert_eq!(replay(order, &cfg, &policy), truth);
    }
}
