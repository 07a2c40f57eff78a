//! Tests of the generator, delivery plans, signing, the oracle and the demo set.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;
use subsync_domain::{
    AccessPolicy, AccessReason, Input, Outcome, SubscriptionState, SubscriptionStatus, TierConfig, apply,
};
use subsync_testkit::*;

fn lifecycles(seed: u64, n: usize) -> Vec<Lifecycle> {
    generate_lifecycles(seed, n, &GeneratorOptions::default())
}

fn json(ev: &GeneratedEvent) -> Value {
    serde_json::from_slice(&ev.body).expect("body is JSON")
}

#[test]
fn deterministic_for_a_seed() {
    let a = lifecycles(42, 50);
    let b = lifecycles(42, 50);
    assert_eq!(a, b);
    let c = lifecycles(43, 50);
    assert_ne!(a, c);
    let plan = |seed| delivery_plan(&a, seed, &DeliveryOptions::default());
    assert_eq!(plan(7), plan(7));
    assert_ne!(plan(7), plan(8));
}

#[test]
fn every_event_is_a_well_formed_envelope_with_a_unique_id() {
    let lcs = lifecycles(1, 300);
    let mut ids = HashSet::new();
    let mut types = BTreeMap::new();
    for lc in &lcs {
        assert!(!lc.events.is_empty());
        for ev in &lc.events {
            assert!(ids.insert(ev.id.clone()), "duplicate id {}", ev.id);
            assert!(ev.id.starts_with("evt_"));
            let v = json(ev);
            assert_eq!(v["id"], ev.id.as_str());
            assert_eq!(v["object"], "event");
            assert_eq!(v["type"], ev.event_type.as_str());
            assert_eq!(v["created"], ev.created);
            assert_eq!(v["api_version"], lc.api_version.as_str());
            assert_eq!(v["livemode"], false);
            assert_eq!(v["pending_webhooks"], 1);
            assert!(v["request"]["id"].is_null() && v["request"]["idempotency_key"].is_null());
            assert!(v["data"]["object"]["id"].is_string());
            *types.entry(ev.event_type.clone()).or_insert(0) += 1;
        }
    }
    for ty in [
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_failed",
    ] {
        assert!(types.get(ty).copied().unwrap_or(0) > 0, "no {ty} in {types:?}");
    }
    let versions: HashSet<_> = lcs.iter().map(|l| l.api_version).collect();
    assert_eq!(versions.len(), 2, "both API versions appear");
}

#[test]
fn objects_use_the_right_locations_per_api_version() {
    for lc in lifecycles(2, 200) {
        for ev in &lc.events {
            let o = &json(ev)["data"]["object"];
            match (ev.event_type.as_str(), lc.api_version) {
                (t, ApiVersion::Basil) if t.starts_with("invoice.") => {
                    assert_eq!(o["parent"]["subscription_details"]["subscription"], lc.subscription_id.as_str());
                    assert!(o.get("subscription").is_none());
                    let line = &o["lines"]["data"][0];
                    assert_eq!(
                        line["parent"]["subscription_item_details"]["subscription"],
                        lc.subscription_id.as_str()
                    );
                }
                (t, ApiVersion::Legacy) if t.starts_with("invoice.") => {
                    assert_eq!(o["subscription"], lc.subscription_id.as_str());
                    assert!(o.get("parent").is_none());
                }
                (t, api) if t.starts_with("customer.subscription.") => {
                    assert_eq!(o["object"], "subscription");
                    let item = &o["items"]["data"][0];
                    assert!(item["price"]["lookup_key"].is_string());
                    if api == ApiVersion::Basil {
                        assert!(item["current_period_end"].is_i64());
                        assert!(o.get("current_period_end").is_none());
                    } else {
                        assert!(o["current_period_end"].is_i64());
                        assert!(item.get("current_period_end").is_none());
                    }
                }
                ("checkout.session.completed", _) => {
                    assert_eq!(o["object"], "checkout.session");
                    assert_eq!(o["mode"], "subscription");
                    assert_eq!(o["subscription"], lc.subscription_id.as_str());
                    assert_eq!(o["customer"], lc.customer_id.as_str());
                }
                (other, _) => panic!("unexpected type {other}"),
            }
        }
    }
}

/// The JSON says the same thing as the structured facts the oracle uses.
#[test]
fn body_agrees_with_the_domain_input() {
    for lc in lifecycles(3, 200) {
        for ev in &lc.events {
            let v = json(ev);
            let o = &v["data"]["object"];
            let Some(input) = ev.domain_input() else {
                let summary = ev.feature_summary().expect("a feature summary");
                assert_eq!(o["customer"], summary.customer_id.as_str());
                continue;
            };
            match input {
                Input::Link(l) => {
                    assert_eq!(o["customer"], l.customer_id.as_str());
                    assert_eq!(o["client_reference_id"].as_str(), l.client_reference_id.as_deref());
                    assert_eq!(o["metadata"]["app_user_id"].as_str(), l.app_user_id.as_deref());
                    assert!(l.app_user_id.is_some() || l.client_reference_id.is_some());
                    for id in [&l.app_user_id, &l.client_reference_id].into_iter().flatten() {
                        assert_eq!(id, &lc.user_id);
                    }
                }
                Input::Snapshot(s) => {
                    assert_eq!(o["id"], s.subscription_id.as_str());
                    assert_eq!(o["status"], s.status.as_str());
                    assert_eq!(o["cancel_at_period_end"], s.cancel_at_period_end);
                    assert_eq!(o["metadata"]["app_user_id"].as_str(), s.app_user_id.as_deref());
                    let item = &o["items"]["data"][0];
                    assert_eq!(item["price"]["id"], s.prices[0].id.as_str());
                    assert_eq!(item["price"]["lookup_key"].as_str(), s.prices[0].lookup_key.as_deref());
                    let end = match lc.api_version {
                        ApiVersion::Basil => &item["current_period_end"],
                        ApiVersion::Legacy => &o["current_period_end"],
                    };
                    assert_eq!(end.as_i64(), s.current_period_end);
                }
                Input::Payment(p) => {
                    assert_eq!(o["id"], p.invoice_id.as_str());
                    assert_eq!(o["status"], if p.paid { "paid" } else { "open" });
                    assert_eq!(ev.event_type == "invoice.paid", p.paid);
                }
            }
        }
    }
}

#[test]
fn lifecycles_are_in_true_order_and_map_to_the_default_config() {
    let cfg = TierConfig::default_config();
    for lc in lifecycles(4, 300) {
        let first = &lc.events[0];
        assert_eq!(first.event_type, "checkout.session.completed");
        assert_eq!(lc.events[1].event_type, "customer.subscription.created");
        assert_eq!(lc.events[1].created, first.created, "the race pair shares a second");
        let mut last_snapshot: Option<(i64, u8)> = None;
        for w in lc.events.windows(2) {
            assert!(w[0].created <= w[1].created);
        }
        for ev in &lc.events {
            if let Some(Input::Snapshot(s)) = ev.domain_input() {
                cfg.tier_for_prices(&s.prices).expect("default config maps every price");
                let rank = s.status.tie_break_rank();
                if let Some((t, r)) = last_snapshot {
                    assert!(t < s.event_created || rank > r, "same-second snapshots must rise in rank");
                }
                last_snapshot = Some((s.event_created, rank));
            }
        }
    }
}

#[test]
fn delivery_plans_cover_every_event() {
    let lcs = lifecycles(5, 40);
    let total: usize = lcs.iter().map(|l| l.events.len()).sum();
    for shuffle in [true, false] {
        let opts = DeliveryOptions { duplicate_ratio: 0.3, shuffle, concurrent_pairs: true };
        let plan = delivery_plan(&lcs, 9, &opts);
        let originals: HashSet<_> = plan.iter().filter(|d| !d.duplicate).map(|d| (d.lifecycle, d.event)).collect();
        assert_eq!(originals.len(), total);
        assert_eq!(plan.iter().filter(|d| !d.duplicate).count(), total);
        let dups = plan.iter().filter(|d| d.duplicate).count();
        assert!(dups > 0 && dups < total, "{dups}");
        for d in plan.iter().filter(|d| d.duplicate) {
            assert!(originals.contains(&(d.lifecycle, d.event)));
        }
        // Each lifecycle's checkout/created race pair is adjacent and flagged.
        for (i, d) in plan.iter().enumerate() {
            if d.concurrent_with_next {
                let a = d.event(&lcs).unwrap();
                let b = plan[i + 1].event(&lcs).unwrap();
                let mut tys = [a.event_type.as_str(), b.event_type.as_str()];
                tys.sort();
                assert_eq!(tys, ["checkout.session.completed", "customer.subscription.created"]);
                assert_eq!(d.lifecycle, plan[i + 1].lifecycle);
            }
        }
        assert_eq!(plan.iter().filter(|d| d.concurrent_with_next).count(), lcs.len());
    }
    // Without shuffling or pairs, originals are in global true order.
    let plan =
        delivery_plan(&lcs, 1, &DeliveryOptions { duplicate_ratio: 0.0, shuffle: false, concurrent_pairs: false });
    let times: Vec<i64> = plan.iter().map(|d| d.event(&lcs).unwrap().created).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

fn replay_plan(lcs: &[Lifecycle], plan: &[Delivery], cfg: &TierConfig) -> BTreeMap<String, SubscriptionState> {
    let policy = AccessPolicy::default();
    let mut states: BTreeMap<String, SubscriptionState> = BTreeMap::new();
    for d in plan {
        let ev = d.event(lcs).unwrap();
        let Some(input) = ev.domain_input() else { continue };
        let key = input.subscription_id().to_owned();
        if let Outcome::Applied { new_state, .. } = apply(states.get(&key), &input, cfg, &policy, ev.created).unwrap() {
            states.insert(key, new_state);
        }
    }
    states
}

#[test]
fn oracle_attributes_users_and_ends_in_the_last_true_status() {
    let cfg = TierConfig::default_config();
    let policy = AccessPolicy::default();
    let lcs = lifecycles(6, 200);
    let now = GeneratorOptions::default().start + 200 * 86_400;
    let expected = expected_entitlements(&lcs, &cfg, &policy, now).unwrap();
    assert_eq!(expected.len(), lcs.len());
    let mut tiers = HashSet::new();
    for lc in &lcs {
        let exp = &expected[&lc.user_id];
        assert_eq!(exp.subscription_id, lc.subscription_id);
        let last_status = lc
            .events
            .iter()
            .rev()
            .find_map(|e| match &e.fact {
                EventFact::Subscription { status, .. } => Some(status.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(exp.status.as_ref(), Some(&last_status), "{}", lc.subscription_id);
        assert!(exp.entitlement.features.records && exp.entitlement.features.export);
        tiers.insert(exp.tier.clone());
    }
    assert!(tiers.len() >= 3, "varied outcomes: {tiers:?}");
    // Any delivery plan ends in the oracle's states.
    let truth = final_states(&lcs, &cfg, &policy).unwrap();
    let plan = delivery_plan(&lcs, 77, &DeliveryOptions { duplicate_ratio: 0.5, ..Default::default() });
    assert_eq!(replay_plan(&lcs, &plan, &cfg), truth);
}

#[test]
fn sign_header_matches_stripe() {
    // Vector produced by the official stripe-python SDK (tests/official-stripe/sign.py).
    assert_eq!(
        sign_header("whsec_test_secret", 1_700_000_000, br#"{"id":"evt_1"}"#),
        "t=1700000000,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a"
    );
    assert_ne!(
        signature_hex("whsec_test_secret", 1_700_000_001, br#"{"id":"evt_1"}"#),
        signature_hex("whsec_test_secret", 1_700_000_000, br#"{"id":"evt_1"}"#)
    );
}

#[test]
fn demo_is_out_of_order_with_a_duplicate_and_ends_as_described() {
    let events = demo_events();
    assert_eq!(events, demo_events(), "deterministic");
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len() + 1, "exactly one duplicate");
    let dup = events.iter().filter(|e| ids.iter().filter(|i| **i == e.id).count() == 2).collect::<Vec<_>>();
    assert_eq!(dup[0].body, dup[1].body);
    assert!(events.windows(2).any(|w| w[0].created > w[1].created), "out of order");
    let (lcs, plan) = demo_plan();
    assert!(plan.iter().any(|d| d.concurrent_with_next));

    let cfg = TierConfig::default_config();
    let policy = AccessPolicy::default();
    let exp = expected_entitlements(&lcs, &cfg, &policy, DEMO_NOW).unwrap();
    let get = |u: &str| (exp[u].tier.to_string(), exp[u].entitlement.reason);
    assert_eq!(get("usr_alice"), ("basic".into(), AccessReason::Active));
    assert_eq!(get("usr_bob"), ("pro".into(), AccessReason::CancelsAtPeriodEnd));
    assert_eq!(get("usr_carol"), ("basic".into(), AccessReason::PastDueGrace));
    assert_eq!(exp["usr_carol"].status, Some(SubscriptionStatus::PastDue));
    // Carol's grace ends 7 days after her renewal failed; Bob's access at his period end.
    let later = expected_entitlements(&lcs, &cfg, &policy, DEMO_NOW + 3 * 86_400).unwrap();
    assert_eq!(later["usr_carol"].tier.as_str(), "free");
    let much_later = expected_entitlements(&lcs, &cfg, &policy, DEMO_BASE + 31 * 86_400).unwrap();
    assert_eq!(much_later["usr_bob"].tier.as_str(), "free");
    assert_eq!(much_later["usr_alice"].tier.as_str(), "basic");
    // Delivering in the demo's order gives the oracle's states.
    assert_eq!(replay_plan(&lcs, &plan, &cfg), final_states(&lcs, &cfg, &policy).unwrap());
}

#[test]
fn add_ons_are_bought_resized_and_dropped_and_the_oracle_stacks_them() {
    let options = GeneratorOptions { addon_ratio: 0.3, ..GeneratorOptions::default() };
    let lcs = generate_lifecycles(11, 200, &options);
    let addon = addon_price();
    let mut quantities = HashSet::new();
    let mut dropped = false;
    for lc in &lcs {
        let mut had = false;
        for ev in &lc.events {
            if let Some(Input::Snapshot(s)) = ev.domain_input() {
                let item = s.prices.iter().find(|p| p.id == addon.id);
                if let Some(item) = item {
                    quantities.insert(item.quantity);
                }
                dropped |= had && item.is_none();
                had = item.is_some();
            }
        }
    }
    assert!(quantities.len() >= 3, "several quantities sold: {quantities:?}");
    assert!(dropped, "some add-on is dropped again");

    let tiers = TierConfig::from_toml_str(&format!("{}{}", subsync_domain::DEFAULT_TIERS_TOML, ADDON_TIERS_TOML))
        .expect("tier file");
    let now = options.start + 40 * 86_400;
    let expected = expected_entitlements(&lcs, &tiers, &AccessPolicy::default(), now).expect("oracle");
    let raised = expected
        .values()
        .filter(|e| e.entitlement.features.agent.clients > tiers.features(&e.tier).expect("tier").agent.clients)
        .count();
    assert!(raised > 0, "some users hold more clients than their tier grants, through add-ons");
}

#[test]
fn feature_summaries_are_generated_and_the_oracle_grants_them() {
    let options = GeneratorOptions { summary_ratio: 0.4, ..GeneratorOptions::default() };
    let lcs = generate_lifecycles(12, 200, &options);
    let summaries: Vec<_> = lcs.iter().flat_map(|lc| &lc.events).filter_map(|ev| ev.feature_summary()).collect();
    assert!(summaries.len() > 20, "{} summaries", summaries.len());
    let same_second =
        summaries.windows(2).any(|w| w[0].customer_id == w[1].customer_id && w[0].event_created == w[1].event_created);
    assert!(same_second, "some customer gets two summaries in one second");
    let text = |source: &str| {
        let base = subsync_domain::DEFAULT_TIERS_TOML.replace("source = \"prices\"", &format!("source = \"{source}\""));
        TierConfig::from_toml_str(&format!("{base}{STRIPE_FEATURES_TOML}")).expect("tier file")
    };
    let now = options.start + 40 * 86_400;
    let policy = AccessPolicy::default();
    let prices = expected_entitlements(&lcs, &text("prices"), &policy, now).expect("oracle");
    let both = expected_entitlements(&lcs, &text("both"), &policy, now).expect("oracle");
    let changed = both.iter().filter(|(user, e)| prices[*user].entitlement.features != e.entitlement.features).count();
    assert!(changed > 0, "Stripe features change some users' features");
}
