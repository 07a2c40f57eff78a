use super::*;
use crate::access::DAY;
use crate::identity::IdentitySource;
use proptest::prelude::*;

const T0: i64 = 1_767_225_600;
const SUB: &str = "sub_1";
const CUS: &str = "cus_1";

fn cfg() -> TierConfig {
    TierConfig::default_config()
}

fn policy() -> AccessPolicy {
    AccessPolicy::default()
}

fn snap(event_id: &str, created: i64, status: &str, key: &str) -> Snapshot {
    Snapshot {
        subscription_id: SUB.into(),
        customer_id: CUS.into(),
        status: SubscriptionStatus::parse(status),
        prices: vec![PriceRef::new(format!("price_{key}"), Some(key))],
        cancel_at_period_end: false,
        current_period_end: Some(created + 30 * DAY),
        app_user_id: None,
        event_created: created,
        event_id: event_id.into(),
        fetched_at: None,
    }
}

fn link(created: i64, app_user: Option<&str>, client_ref: Option<&str>) -> Link {
    Link {
        subscription_id: SUB.into(),
        customer_id: CUS.into(),
        app_user_id: app_user.map(Into::into),
        client_reference_id: client_ref.map(Into::into),
        event_created: created,
    }
}

fn pay(created: i64, paid: bool, invoice: &str) -> PaymentHealth {
    PaymentHealth { subscription_id: SUB.into(), paid, event_created: created, invoice_id: invoice.into() }
}

fn run(inputs: &[Input]) -> SubscriptionState {
    replay(None, inputs, &cfg(), &policy(), T0).unwrap().unwrap()
}

fn step(state: Option<&SubscriptionState>, input: impl Into<Input>) -> Outcome {
    apply(state, &input.into(), &cfg(), &policy(), T0 + 1000).unwrap()
}

fn applied(o: Outcome) -> (SubscriptionState, Option<TierChange>) {
    match o {
        Outcome::Applied { new_state, tier_change } => (new_state, tier_change),
        other => panic!("expected Applied, got {other:?}"),
    }
}

fn tier_at(s: &SubscriptionState, now: i64) -> String {
    s.entitlement(&cfg(), &policy(), now).unwrap().tier.to_string()
}

#[test]
fn first_snapshot_applies_and_reports_tier_change() {
    let (s, change) = applied(step(None, snap("evt_a", T0, "active", "pro_monthly")));
    assert_eq!(change, Some(TierChange { from: TierName::free(), to: "pro".into() }));
    assert_eq!(s.status(), Some(&SubscriptionStatus::Active));
    assert_eq!(s.customer_id(), Some(CUS));
    let e = s.entitlement(&cfg(), &policy(), T0).unwrap();
    assert_eq!(e.tier.as_str(), "pro");
    assert!(e.features.vat.returns && e.features.records && e.features.export);
    assert_eq!(e.plan_tier, Some("pro".into()));
}

#[test]
fn newer_applies_older_is_stale_same_is_unchanged() {
    let (s1, _) = applied(step(None, snap("evt_a", T0, "active", "basic_monthly")));
    let (s2, change) = applied(step(Some(&s1), snap("evt_b", T0 + 10, "active", "pro_monthly")));
    assert_eq!(change, Some(TierChange { from: "basic".into(), to: "pro".into() }));
    match step(Some(&s2), snap("evt_a", T0, "active", "basic_monthly")) {
        Outcome::Stale { reason: StaleReason::OlderSnapshot { stored, incoming } } => {
            assert_eq!(stored.event_id, "evt_b");
            assert_eq!(incoming.event_id, "evt_a");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(step(Some(&s2), snap("evt_b", T0 + 10, "active", "pro_monthly")), Outcome::Unchanged);
}

#[test]
fn every_input_is_idempotent() {
    let inputs: Vec<Input> = vec![
        link(T0, Some("usr_1"), Some("usr_1")).into(),
        snap("evt_a", T0, "incomplete", "basic_monthly").into(),
        snap("evt_b", T0 + 1, "active", "basic_monthly").into(),
        pay(T0 + 1, true, "in_1").into(),
        snap("evt_c", T0 + 50, "past_due", "basic_monthly").into(),
    ];
    let mut state: Option<SubscriptionState> = None;
    for input in &inputs {
        if let Outcome::Applied { new_state, .. } = step(state.as_ref(), input.clone()) {
            state = Some(new_state);
        }
        assert_eq!(step(state.as_ref(), input.clone()), Outcome::Unchanged, "{input:?}");
    }
}

#[test]
fn equal_second_tie_break_by_status_rank() {
    // created (incomplete) and updated (active) in the same second: active wins either way.
    let a = snap("evt_z_created", T0, "incomplete", "pro_monthly");
    let b = snap("evt_a_updated", T0, "active", "pro_monthly");
    for order in [[a.clone(), b.clone()], [b.clone(), a.clone()]] {
        let s = run(&order.map(Input::from));
        assert_eq!(s.status(), Some(&SubscriptionStatus::Active));
    }
    // A terminal status wins over active in the same second.
    let c = snap("evt_a", T0, "canceled", "pro_monthly");
    let d = snap("evt_z", T0, "active", "pro_monthly");
    for order in [[c.clone(), d.clone()], [d.clone(), c.clone()]] {
        let s = run(&order.map(Input::from));
        assert_eq!(s.status(), Some(&SubscriptionStatus::Canceled));
    }
    // Same second, same rank: the greater event id wins.
    let e = snap("evt_b", T0, "active", "basic_monthly");
    let f = snap("evt_a", T0, "trialing", "pro_monthly");
    for order in [[e.clone(), f.clone()], [f.clone(), e.clone()]] {
        let s = run(&order.map(Input::from));
        assert_eq!(s.current().unwrap().key.event_id, "evt_b");
        assert_eq!(tier_at(&s, T0), "basic");
    }
    // A later second always beats rank.
    let g = snap("evt_a", T0, "canceled", "pro_monthly");
    let h = snap("evt_b", T0 + 1, "incomplete", "pro_monthly");
    assert_eq!(run(&[h.clone().into(), g.clone().into()]).status(), Some(&SubscriptionStatus::Incomplete));
}

#[test]
fn identity_falls_back_to_customer_and_upgrades() {
    let (s, _) = applied(step(None, snap("evt_a", T0, "active", "basic_monthly")));
    assert_eq!(s.user(), Some(UserRef { user_id: CUS.into(), source: IdentitySource::CustomerId }));
    let (s, change) = applied(step(Some(&s), link(T0, None, Some("ref_7"))));
    assert_eq!(change, None);
    assert_eq!(s.user().unwrap().user_id, "ref_7");
    assert_eq!(s.user().unwrap().source, IdentitySource::ClientReferenceId);
    let (s, _) = applied(step(Some(&s), link(T0, Some("usr_7"), None)));
    assert_eq!(s.user().unwrap().user_id, "usr_7");
    assert_eq!(s.user().unwrap().source, IdentitySource::LinkMetadata);
    // A later, weaker link does not displace the explicit app_user_id.
    let (s, _) = applied(step(Some(&s), link(T0 + 99, None, Some("ref_other"))));
    assert_eq!(s.user().unwrap().user_id, "usr_7");
    // Subscription metadata is the strongest source.
    let mut with_meta = snap("evt_b", T0 + 5, "active", "basic_monthly");
    with_meta.app_user_id = Some("usr_meta".into());
    let (s, _) = applied(step(Some(&s), with_meta));
    assert_eq!(s.user().unwrap().source, IdentitySource::SubscriptionMetadata);
    // ... and a newer snapshot without metadata does not erase it.
    let (s, _) = applied(step(Some(&s), snap("evt_c", T0 + 9, "active", "basic_monthly")));
    assert_eq!(s.user().unwrap().user_id, "usr_meta");
    // Empty strings are not identities.
    let (s2, _) = applied(step(None, link(T0, Some(""), Some("  "))));
    assert_eq!(s2.user().unwrap().source, IdentitySource::CustomerId);
}

#[test]
fn link_before_or_after_state_gives_the_same_result() {
    let l: Input = link(T0, Some("usr_1"), Some("usr_1")).into();
    let a: Input = snap("evt_a", T0, "incomplete", "pro_monthly").into();
    let b: Input = snap("evt_b", T0 + 1, "active", "pro_monthly").into();
    let reference = run(&[l.clone(), a.clone(), b.clone()]);
    for order in [
        [a.clone(), l.clone(), b.clone()],
        [a.clone(), b.clone(), l.clone()],
        [b.clone(), a.clone(), l.clone()],
        [b.clone(), l.clone(), a.clone()],
    ] {
        assert_eq!(run(&order), reference);
    }
    assert_eq!(reference.user().unwrap().user_id, "usr_1");
    // A link alone creates a state without access.
    let (only_link, change) = applied(step(None, l));
    assert_eq!(change, None);
    let e = only_link.entitlement(&cfg(), &policy(), T0).unwrap();
    assert_eq!((e.tier, e.reason), (TierName::free(), AccessReason::NoSubscription));
    assert!(e.features.records && e.features.export && e.features.obligations.view);
}

#[test]
fn payments_are_recorded_but_do_not_change_the_tier() {
    let (s, _) = applied(step(None, snap("evt_a", T0, "active", "pro_monthly")));
    let (s, change) = applied(step(Some(&s), pay(T0 + 100, false, "in_2")));
    assert_eq!(change, None);
    assert_eq!(tier_at(&s, T0 + 200), "pro");
    assert!(!s.last_payment().unwrap().paid);
    match step(Some(&s), pay(T0 + 50, true, "in_1")) {
        Outcome::Stale { reason: StaleReason::OlderPayment { .. } } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(step(Some(&s), pay(T0 + 100, false, "in_2")), Outcome::Unchanged);
    // Same second: paid beats failed, whatever the order.
    let x: Input = pay(T0 + 300, false, "in_3").into();
    let y: Input = pay(T0 + 300, true, "in_3").into();
    assert!(run(&[x.clone(), y.clone()]).last_payment().unwrap().paid);
    assert!(run(&[y, x]).last_payment().unwrap().paid);
    // A payment alone creates a state with no user and no access.
    let (p, _) = applied(step(None, pay(T0, true, "in_1")));
    assert_eq!(p.user(), None);
    assert_eq!(tier_at(&p, T0), "free");
}

#[test]
fn unmapped_price_is_a_permanent_error_unless_stale() {
    let mut bad = snap("evt_b", T0 + 10, "active", "mystery");
    bad.prices = vec![PriceRef::new("price_mystery", Some("mystery"))];
    let err = apply(None, &bad.clone().into(), &cfg(), &policy(), T0).unwrap_err();
    assert_eq!(
        err,
        DomainError::UnmappedPrice(UnmappedPrice {
            price_id: "price_mystery".into(),
            lookup_key: Some("mystery".into())
        })
    );
    assert!(err.to_string().contains("price_mystery"));
    // Stale snapshots never need a mapping.
    let (s, _) = applied(step(None, snap("evt_c", T0 + 20, "active", "pro_monthly")));
    assert!(matches!(step(Some(&s), bad.clone()), Outcome::Stale { .. }));
    // After the operator adds the mapping, the retry applies.
    let fixed = TierConfig::from_toml_str(&format!(
        "{}\n[[prices]]\nid = \"price_mystery\"\ntier = \"agent\"\n",
        crate::DEFAULT_TIERS_TOML
    ))
    .unwrap();
    let o = apply(None, &bad.into(), &fixed, &policy(), T0 + 10).unwrap();
    let (s, _) = applied(o);
    assert_eq!(s.entitlement(&fixed, &policy(), T0).unwrap().tier.as_str(), "agent");
    // ...and evaluating with a config that lost the mapping is an error, not a denial.
    assert!(s.entitlement(&cfg(), &policy(), T0).is_err());
}

#[test]
fn mismatched_subscription_is_rejected() {
    let (s, _) = applied(step(None, snap("evt_a", T0, "active", "pro_monthly")));
    let mut other = snap("evt_b", T0 + 1, "active", "pro_monthly");
    other.subscription_id = "sub_other".into();
    assert!(matches!(
        apply(Some(&s), &other.into(), &cfg(), &policy(), T0),
        Err(DomainError::SubscriptionMismatch { .. })
    ));
}

#[test]
fn past_due_grace_is_measured_from_entering_past_due_in_any_order() {
    let active: Input = snap("evt_1", T0, "active", "pro_monthly").into();
    let pd1: Input = snap("evt_2", T0 + DAY, "past_due", "pro_monthly").into();
    let pd2: Input = snap("evt_3", T0 + 3 * DAY, "past_due", "pro_monthly").into();
    for order in [
        [active.clone(), pd1.clone(), pd2.clone()],
        [pd2.clone(), pd1.clone(), active.clone()],
        [pd2.clone(), active.clone(), pd1.clone()],
    ] {
        let s = run(&order);
        assert_eq!(s.past_due_since(), Some(T0 + DAY));
        assert_eq!(tier_at(&s, T0 + 8 * DAY - 1), "pro");
        let e = s.entitlement(&cfg(), &policy(), T0 + 8 * DAY).unwrap();
        assert_eq!((e.tier.as_str(), e.reason), ("free", AccessReason::GraceExpired));
    }
    // An older past_due snapshot arriving late is Applied (it moves the grace start) but
    // does not replace the current snapshot.
    let s = run(std::slice::from_ref(&pd2));
    assert_eq!(s.past_due_since(), Some(T0 + 3 * DAY));
    let (s, _) = applied(step(Some(&s), pd1.clone()));
    assert_eq!(s.past_due_since(), Some(T0 + DAY));
    assert_eq!(s.current().unwrap().key.event_id, "evt_3");

    // A recovery between two failures splits the episodes, even when it arrives last.
    let recovered: Input = snap("evt_r", T0 + 2 * DAY, "active", "pro_monthly").into();
    for order in [[pd1.clone(), recovered.clone(), pd2.clone()], [pd2.clone(), pd1.clone(), recovered.clone()]] {
        let s = run(&order);
        assert_eq!(s.past_due_since(), Some(T0 + 3 * DAY));
    }
    // Not past_due → no since.
    assert_eq!(run(&[pd1, recovered]).past_due_since(), None);
}

#[test]
fn cancel_at_period_end_lapses_at_period_end() {
    let mut s1 = snap("evt_1", T0, "active", "pro_monthly");
    s1.cancel_at_period_end = true;
    s1.current_period_end = Some(T0 + 30 * DAY);
    let s = run(&[s1.into()]);
    let e = s.entitlement(&cfg(), &policy(), T0 + 30 * DAY - 1).unwrap();
    assert_eq!((e.tier.as_str(), e.access_until), ("pro", Some(T0 + 30 * DAY)));
    assert_eq!(tier_at(&s, T0 + 30 * DAY), "free");
    // tier_change is computed at `now`.
    let mut s2 = snap("evt_2", T0 + 40 * DAY, "canceled", "pro_monthly");
    s2.cancel_at_period_end = true;
    let (_, change) = applied(apply(Some(&s), &s2.into(), &cfg(), &policy(), T0 + 40 * DAY).unwrap());
    assert_eq!(change, None, "already free at the period end");
}

#[test]
fn state_round_trips_through_json() {
    let mut s = snap("evt_b", T0 + 1, "past_due", "pro_monthly");
    s.app_user_id = Some("usr_1".into());
    let state = run(&[
        link(T0, Some("usr_1"), Some("ref")).into(),
        snap("evt_a", T0, "active", "pro_monthly").into(),
        s.into(),
        pay(T0 + 1, false, "in_1").into(),
    ]);
    let json = serde_json::to_string(&state).unwrap();
    let back: SubscriptionState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, state);
}

// ---- property: any permutation, with duplicates, of any inputs gives the same state ----

fn arb_status() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "incomplete",
        "incomplete_expired",
        "trialing",
        "active",
        "past_due",
        "canceled",
        "unpaid",
        "paused",
        "mystery_status",
    ])
}

fn arb_input() -> impl Strategy<Value = Input> {
    let key = prop::sample::select(vec!["basic_monthly", "pro_monthly", "pro_yearly", "agent_monthly"]);
    let user = prop::option::of(prop::sample::select(vec!["usr_a", "usr_b"]));
    // Few distinct seconds and event ids so ties are common.
    let t = 0i64..6;
    prop_oneof![
        (t.clone(), arb_status(), key, 0u8..4, any::<bool>(), user.clone()).prop_map(
            |(t, status, key, id, cancel, user)| {
                let mut s = snap(&format!("evt_{id}"), T0 + t * DAY, status, key);
                s.cancel_at_period_end = cancel;
                s.app_user_id = user.map(Into::into);
                Input::from(s)
            }
        ),
        (t.clone(), user.clone(), prop::option::of(prop::sample::select(vec!["ref_a", "ref_b"])))
            .prop_map(|(t, u, r)| Input::from(link(T0 + t, u, r))),
        (t, any::<bool>(), prop::sample::select(vec!["in_1", "in_2"])).prop_map(|(t, paid, inv)| Input::from(pay(
            T0 + t,
            paid,
            inv
        ))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_order_any_duplicates_same_state(
        inputs in prop::collection::vec(arb_input(), 1..12),
        perm_seed in any::<u64>(),
        dups in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        // Snapshots sharing an event id must be the same event: keep the first of each.
        let mut seen = std::collections::BTreeSet::new();
        let inputs: Vec<Input> = inputs
            .into_iter()
            .filter(|i| match i {
                Input::Snapshot(s) => seen.insert(s.event_id.clone()),
                _ => true,
            })
            .collect();
        let reference = run(&inputs);
        let mut shuffled = inputs.clone();
        for d in &dups {
            shuffled.push(inputs[d.index(inputs.len())].clone());
        }
        // Deterministic Fisher–Yates from the seed.
        let mut x = perm_seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            let j = (x % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        let other = run(&shuffled);
        prop_assert_eq!(&other, &reference);
        for now in [T0, T0 + 3 * DAY, T0 + 9 * DAY, T0 + 60 * DAY] {
            prop_assert_eq!(
                other.entitlement(&cfg(), &policy(), now).unwrap(),
                reference.entitlement(&cfg(), &policy(), now).unwrap()
            );
        }
    }
}

fn fetched(mut s: Snapshot, date: i64, at_nanos: i64) -> Snapshot {
    s.event_created = date;
    s.fetched_at = Some(at_nanos);
    s
}

#[test]
fn same_second_snapshots_that_differ_are_a_conflict_only_against_events() {
    let cfg = cfg();
    let state = replay(None, [&Input::Snapshot(snap("evt_a", 100, "past_due", "basic_monthly"))], &cfg, &policy(), 100)
        .unwrap()
        .unwrap();
    // Same second, different status: Stripe's clock cannot order them.
    assert!(state.same_second_conflict(&snap("evt_b", 100, "active", "basic_monthly")));
    // A redelivery, an agreeing snapshot, another second, or a fetched one: no conflict.
    assert!(!state.same_second_conflict(&snap("evt_a", 100, "past_due", "basic_monthly")));
    assert!(!state.same_second_conflict(&snap("evt_c", 100, "past_due", "basic_monthly")));
    assert!(!state.same_second_conflict(&snap("evt_d", 101, "active", "basic_monthly")));
    assert!(!state.same_second_conflict(&fetched(snap("evt_e", 100, "active", "basic_monthly"), 100, 1)));
}

#[test]
fn a_fetched_snapshot_beats_events_of_its_second_and_earlier_fetches() {
    let cfg = cfg();
    let p = policy();
    let past_due = Input::Snapshot(snap("evt_z", 100, "past_due", "basic_monthly"));
    // The rank alone would keep `past_due` (it outranks `active` in one second).
    let recovered = Input::Snapshot(fetched(snap("evt_a", 0, "active", "basic_monthly"), 100, 5));
    let state = replay(None, [&past_due, &recovered], &cfg, &p, 100).unwrap().unwrap();
    assert_eq!(state.status(), Some(&SubscriptionStatus::Active));
    // A later fetch in the same second wins over an earlier one, whatever the rank says.
    let later = Input::Snapshot(fetched(snap("evt_a", 0, "canceled", "basic_monthly"), 100, 6));
    let state = replay(Some(state), [&later, &recovered], &cfg, &p, 100).unwrap().unwrap();
    assert_eq!(state.status(), Some(&SubscriptionStatus::Canceled));
    // An event of the next second is newer than any fetch of this one.
    let next = Input::Snapshot(snap("evt_n", 101, "active", "basic_monthly"));
    let state = replay(Some(state), [&next], &cfg, &p, 101).unwrap().unwrap();
    assert_eq!(state.status(), Some(&SubscriptionStatus::Active));
}

#[test]
fn states_stored_before_fetching_existed_still_read() {
    let old = r#"{"created":100,"status_rank":3,"event_id":"evt_a"}"#;
    let key: OrderKey = serde_json::from_str(old).unwrap();
    assert_eq!(key.fetched_at, None);
    assert_eq!(serde_json::to_string(&key).unwrap(), old);
}

#[test]
fn apply_all_reports_applied_when_any_input_changes_and_the_tier_change_across_them() {
    let cfg = cfg();
    let p = policy();
    let first = Input::Snapshot(snap("evt_a", T0, "active", "pro_monthly"));
    let state = replay(None, [&first], &cfg, &p, T0).unwrap().unwrap();
    // A stale event followed by a fresh fetch that cancels: applied, and the change is told.
    let stale = Input::Snapshot(snap("evt_0", T0 - 5, "active", "pro_monthly"));
    let cancel = Input::Snapshot(fetched(snap("evt_0", 0, "canceled", "pro_monthly"), T0 + 1, 1));
    match apply_all(Some(&state), &[stale.clone(), cancel], &cfg, &p, T0 + 1).unwrap() {
        Outcome::Applied { new_state, tier_change } => {
            assert_eq!(new_state.status(), Some(&SubscriptionStatus::Canceled));
            assert_eq!(tier_change.map(|c| c.to), Some(TierName::free()));
        }
        other => panic!("expected applied, got {other:?}"),
    }
    // Nothing new: the first stale reason, or unchanged.
    assert!(matches!(apply_all(Some(&state), &[stale], &cfg, &p, T0).unwrap(), Outcome::Stale { .. }));
    assert_eq!(apply_all(Some(&state), &[first], &cfg, &p, T0).unwrap(), Outcome::Unchanged);
}
