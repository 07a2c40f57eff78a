//! The sync worker end to end, per event type: events stored the way the intake stores
//! them, run by the real worker runtime, checked in the tables the app and operators read.
//! Every test runs on SQLite and on PostgreSQL (`SUBSYNC_TEST_POSTGRES_URL`).

mod support;

use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use subsync_domain::{AccessPolicy, SubscriptionStatus as S, TierConfig};

use subsync_queue::both_backends;
use subsync_queue::{JobState, Selection, Store};
use subsync_testkit::{CatalogPrice, Interval};
use subsync_worker::{SyncContext, entitlements};
use support::{
    Backend, DAY, Sub, T0, TestDb, at, default_worker, deliver, fast_config, replay, retype, spawn_worker,
    wait_finished, worker_config,
};

const STEP: Duration = Duration::from_secs(20);

both_backends!(90;
    checkout_and_subscription_grant_the_tier,
    subscription_before_checkout_moves_the_user,
    stale_snapshot_is_recorded_as_skipped,
    past_due_grace_lapses_at_read_time,
    cancel_at_period_end_and_deletion,
    invoices_and_ignored_events,
    unmapped_price_is_dead_until_the_mapping_is_fixed,
    an_unmapped_add_on_beside_a_plan_grants_the_plan_with_a_warning,
    a_mapped_add_on_times_its_quantity_raises_the_feature,
    stripe_entitlement_summaries_alone_grant_the_mapped_features,
    rerunning_jobs_changes_nothing,
    checkout_and_created_race_without_retries,
    missing_event_row_is_permanent,
    slow_job_times_out_and_is_retried,
    shutdown_releases_in_flight_jobs,
);

fn ent_now() -> chrono::DateTime<chrono::Utc> {
    at(T0 + 2 * DAY)
}

async fn checkout_and_subscription_grant_the_tier(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let sub = Sub::new("a1", "pro_monthly");
    let events = [
        sub.checkout("evt_a1_checkout", T0, Some("usr_alice"), Some("usr_alice")),
        sub.event("evt_a1_created", "created", T0, S::Incomplete, false),
        sub.event("evt_a1_active", "updated", T0 + 1, S::Active, false),
        sub.invoice("evt_a1_paid", T0 + 1, "in_a1", true),
    ];
    let mut jobs = Vec::new();
    for e in &events {
        jobs.push(deliver(&t.store, &e.body).await.expect("handled event has a job"));
    }
    let w = default_worker(&t.store, ent_now());
    for id in &jobs {
        let job = wait_finished(&t.store, *id, STEP).await;
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    }
    w.stop().await;

    let e = entitlements::get_at(&t.store, "usr_alice", ent_now()).await.unwrap().expect("alice has an entitlement");
    assert_eq!(e.tier, "pro");
    assert_eq!(e.subscription_id, "sub_a1");
    assert_eq!(e.status.as_deref(), Some("active"));
    assert_eq!(e.reason, "active");
    assert_eq!(e.plan_tier.as_deref(), Some("pro"));
    assert_eq!(e.user_source, "link_metadata");
    assert!(e.features.vat.returns && e.features.itsa.quarterly, "pro unlocks VAT and ITSA: {:?}", e.features);
    assert_eq!(e.access_until, None);
    assert_eq!(e.period_end, Some(at(T0 + 30 * DAY)));
    assert!(!e.lapsed);
    // Listed too, and serializable for `subsync entitlements list --json`.
    let all = entitlements::list_at(&t.store, 10, 0, ent_now()).await.unwrap();
    assert_eq!(all.len(), 1);
    let json = serde_json::to_value(&all[0]).unwrap();
    assert_eq!(json["tier"], "pro");
    assert_eq!(json["features"]["vat"]["returns"], true);

    let history = entitlements::history(&t.store, "usr_alice").await.unwrap();
    let lines: Vec<_> =
        history.iter().map(|h| (h.from_tier.as_str(), h.to_tier.as_str(), h.cause_event_id.as_str())).collect();
    assert_eq!(lines, vec![("free", "pro", "evt_a1_active")]);
    for e in &events {
        let o = entitlements::event_outcome(&t.store, &e.id).await.unwrap().expect("outcome recorded");
        assert_eq!(o.outcome, "applied", "{o:?}");
        assert_eq!(o.subscription_id.as_deref(), Some("sub_a1"));
    }
    t.close().await;
}

async fn subscription_before_checkout_moves_the_user(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let sub = Sub::new("b1", "basic_yearly").legacy();
    let w = default_worker(&t.store, ent_now());
    // Stripe delivers the subscription first: the user is only known by the customer id.
    let created = sub.event("evt_b1_created", "created", T0, S::Active, false);
    let job = deliver(&t.store, &created.body).await.unwrap();
    assert_eq!(wait_finished(&t.store, job, STEP).await.state, JobState::Succeeded);
    let by_customer = entitlements::get_at(&t.store, "cus_b1", ent_now()).await.unwrap().expect("keyed by customer");
    assert_eq!((by_customer.tier.as_str(), by_customer.user_source.as_str()), ("basic", "customer_id"));
    assert_eq!(by_customer.period_end, Some(at(T0 + 30 * DAY)), "legacy API: top-level current_period_end");

    // The checkout names our user: the entitlement moves to the app user id.
    let checkout = sub.checkout("evt_b1_checkout", T0, Some("usr_bob"), None);
    let job = deliver(&t.store, &checkout.body).await.unwrap();
    assert_eq!(wait_finished(&t.store, job, STEP).await.state, JobState::Succeeded);
    w.stop().await;

    assert!(entitlements::get(&t.store, "cus_b1").await.unwrap().is_none(), "the customer-id row moved away");
    let bob = entitlements::get_at(&t.store, "usr_bob", ent_now()).await.unwrap().expect("bob");
    assert_eq!((bob.tier.as_str(), bob.user_source.as_str()), ("basic", "client_reference_id"));
    let tiers = |h: Vec<entitlements::HistoryRow>| {
        h.into_iter().map(|h| (h.from_tier, h.to_tier, h.cause_event_id)).collect::<Vec<_>>()
    };
    assert_eq!(
        tiers(entitlements::history(&t.store, "cus_b1").await.unwrap()),
        vec![
            ("free".into(), "basic".into(), "evt_b1_created".into()),
            ("basic".into(), "free".into(), "evt_b1_checkout".into())
        ]
    );
    assert_eq!(
        tiers(entitlements::history(&t.store, "usr_bob").await.unwrap()),
        vec![("free".into(), "basic".into(), "evt_b1_checkout".into())]
    );
    t.close().await;
}

async fn stale_snapshot_is_recorded_as_skipped(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let mut sub = Sub::new("c1", "agent_monthly");
    sub.meta_user = Some("usr_carl".into());
    let newer = sub.event("evt_c1_new", "updated", T0 + 100, S::Active, false);
    let older = sub.event("evt_c1_old", "updated", T0 + 50, S::PastDue, false);
    let j1 = deliver(&t.store, &newer.body).await.unwrap();
    let j2 = deliver(&t.store, &older.body).await.unwrap();
    let w = default_worker(&t.store, ent_now());
    for j in [j1, j2] {
        let job = wait_finished(&t.store, j, STEP).await;
        assert_eq!((job.state, job.attempts), (JobState::Succeeded, 1), "a stale event is not an error");
    }
    w.stop().await;
    let o = entitlements::event_outcome(&t.store, "evt_c1_old").await.unwrap().unwrap();
    assert_eq!(o.outcome, "stale");
    assert!(o.reason.as_deref().unwrap_or("").contains("evt_c1_new"), "reason names the stored snapshot: {o:?}");
    let e = entitlements::get_at(&t.store, "usr_carl", ent_now()).await.unwrap().unwrap();
    assert_eq!((e.tier.as_str(), e.status.as_deref()), ("agent", Some("active")));
    assert_eq!(entitlements::history(&t.store, "usr_carl").await.unwrap().len(), 1);
    t.close().await;
}

async fn past_due_grace_lapses_at_read_time(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let mut sub = Sub::new("d1", "pro_yearly");
    sub.meta_user = Some("usr_dora".into());
    let active = sub.event("evt_d1_active", "created", T0, S::Active, false);
    let failed = sub.invoice("evt_d1_failed", T0 + 10 * DAY, "in_d1_2", false);
    let past_due = sub.event("evt_d1_past_due", "updated", T0 + 10 * DAY, S::PastDue, false);
    let now = at(T0 + 11 * DAY);
    let mut jobs = Vec::new();
    for e in [&active, &failed, &past_due] {
        jobs.push(deliver(&t.store, &e.body).await.unwrap());
    }
    let w = default_worker(&t.store, now);
    for j in jobs {
        assert_eq!(wait_finished(&t.store, j, STEP).await.state, JobState::Succeeded);
    }
    w.stop().await;
    let grace_end = at(T0 + 17 * DAY);
    let e = entitlements::get_at(&t.store, "usr_dora", now).await.unwrap().unwrap();
    assert_eq!((e.tier.as_str(), e.reason.as_str(), e.lapsed), ("pro", "past_due_grace", false));
    assert_eq!(e.access_until, Some(grace_end));
    // Nothing arrives when the grace period ends: reads compute it.
    let later = entitlements::get_at(&t.store, "usr_dora", grace_end).await.unwrap().unwrap();
    assert_eq!((later.tier.as_str(), later.reason.as_str(), later.lapsed), ("free", "grace_expired", true));
    assert_eq!(later.stored_tier, "pro");
    assert_eq!(later.features, TierConfig::default_config().free_features());
    assert!(later.features.records && later.features.export, "read and export access is never removed");
    // The wall clock is far past January 2026: plain `get` sees the lapse too.
    assert_eq!(entitlements::get(&t.store, "usr_dora").await.unwrap().unwrap().tier, "free");
    let state = entitlements::subscription_state(&t.store, "sub_d1").await.unwrap().unwrap();
    assert_eq!(state.last_payment().map(|p| p.paid), Some(false));
    t.close().await;
}

async fn cancel_at_period_end_and_deletion(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let mut sub = Sub::new("e1", "basic_monthly");
    sub.meta_user = Some("usr_eve".into());
    let now = at(T0 + 5 * DAY);
    let w = default_worker(&t.store, now);
    let steps = [
        sub.event("evt_e1_active", "created", T0, S::Active, false),
        sub.event("evt_e1_cancels", "updated", T0 + 3 * DAY, S::Active, true),
    ];
    for e in &steps {
        let j = deliver(&t.store, &e.body).await.unwrap();
        assert_eq!(wait_finished(&t.store, j, STEP).await.state, JobState::Succeeded);
    }
    let e = entitlements::get_at(&t.store, "usr_eve", now).await.unwrap().unwrap();
    assert_eq!((e.tier.as_str(), e.reason.as_str()), ("basic", "cancels_at_period_end"));
    assert_eq!(e.access_until, Some(at(T0 + 30 * DAY)));
    let after = entitlements::get_at(&t.store, "usr_eve", at(T0 + 30 * DAY)).await.unwrap().unwrap();
    assert_eq!((after.tier.as_str(), after.reason.as_str()), ("free", "period_ended"));

    let deleted = sub.event("evt_e1_deleted", "deleted", T0 + 30 * DAY, S::Canceled, true);
    let j = deliver(&t.store, &deleted.body).await.unwrap();
    assert_eq!(wait_finished(&t.store, j, STEP).await.state, JobState::Succeeded);
    w.stop().await;
    let e = entitlements::get_at(&t.store, "usr_eve", now).await.unwrap().unwrap();
    assert_eq!((e.tier.as_str(), e.status.as_deref(), e.reason.as_str()), ("free", Some("canceled"), "inactive"));
    let history: Vec<_> = entitlements::history(&t.store, "usr_eve")
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.from_tier, h.to_tier))
        .collect();
    assert_eq!(history, vec![("free".into(), "basic".into()), ("basic".into(), "free".into())]);
    t.close().await;
}

async fn invoices_and_ignored_events(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let mut sub = Sub::new("f1", "pro_monthly");
    sub.meta_user = Some("usr_finn".into());
    let active = sub.event("evt_f1_active", "created", T0, S::Active, false);
    let failed = sub.invoice("evt_f1_failed", T0 + 30 * DAY, "in_f1_2", false);
    let succeeded_body =
        retype(&sub.invoice("x", T0 + 32 * DAY, "in_f1_2", true), "evt_f1_succeeded", "invoice.payment_succeeded");
    let paid = sub.invoice("evt_f1_paid", T0 + 32 * DAY, "in_f1_2", true);
    // A checkout whose async (Bacs) payment failed: recorded as ignored.
    let async_failed = retype(
        &sub.checkout("x", T0, Some("usr_finn"), None),
        "evt_f1_async_failed",
        "checkout.session.async_payment_failed",
    );
    // A one-off invoice with no subscription: handled type, nothing to sync.
    let mut one_off: serde_json::Value = serde_json::from_slice(&paid.body).unwrap();
    one_off["id"] = "evt_f1_one_off".into();
    one_off["data"]["object"]["id"] = "in_one_off".into();
    one_off["data"]["object"]["parent"] = serde_json::Value::Null;
    let one_off = serde_json::to_vec(&one_off).unwrap();
    // An unhandled type: stored as ignored by the intake, no job at all.
    let mut charge: serde_json::Value = serde_json::from_slice(&paid.body).unwrap();
    charge["id"] = "evt_f1_charge".into();
    charge["type"] = "charge.succeeded".into();
    assert_eq!(deliver(&t.store, &serde_json::to_vec(&charge).unwrap()).await, None);

    let bodies: Vec<&[u8]> = vec![&active.body, &failed.body, &succeeded_body, &paid.body, &async_failed, &one_off];
    let mut jobs = Vec::new();
    for body in bodies {
        jobs.push(deliver(&t.store, body).await.unwrap());
    }
    let w = default_worker(&t.store, at(T0 + 33 * DAY));
    for j in jobs {
        assert_eq!(wait_finished(&t.store, j, STEP).await.state, JobState::Succeeded);
    }
    w.stop().await;
    let outcome = |id: &'static str| {
        let store = t.store.clone();
        async move {
            entitlements::event_outcome(&store, id).await.unwrap().unwrap_or_else(|| panic!("{id} has an outcome"))
        }
    };
    assert_eq!(outcome("evt_f1_failed").await.outcome, "applied");
    assert_eq!(outcome("evt_f1_succeeded").await.outcome, "applied");
    assert_eq!(outcome("evt_f1_paid").await.outcome, "unchanged", "same invoice, same second: already recorded");
    let o = outcome("evt_f1_async_failed").await;
    assert_eq!((o.outcome.as_str(), o.subscription_id.as_deref()), ("ignored", Some("sub_f1")));
    let o = outcome("evt_f1_one_off").await;
    assert_eq!(o.outcome, "ignored");
    assert!(o.reason.unwrap_or_default().contains("in_one_off"));
    let state = entitlements::subscription_state(&t.store, "sub_f1").await.unwrap().unwrap();
    let last = state.last_payment().unwrap();
    assert!(last.paid);
    assert_eq!(last.invoice_id, "in_f1_2");
    // Payments never change the tier by themselves.
    let e = entitlements::get_at(&t.store, "usr_finn", at(T0 + 33 * DAY)).await.unwrap().unwrap();
    assert_eq!(e.tier, "pro");
    assert_eq!(entitlements::history(&t.store, "usr_finn").await.unwrap().len(), 1);
    t.close().await;
}

async fn unmapped_price_is_dead_until_the_mapping_is_fixed(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let mut sub = Sub::new("g1", "enterprise_monthly");
    sub.meta_user = Some("usr_gina".into());
    let created = sub.event("evt_g1_created", "created", T0, S::Active, false);
    let job = deliver(&t.store, &created.body).await.unwrap();
    let w = default_worker(&t.store, ent_now());
    let dead = wait_finished(&t.store, job, STEP).await;
    w.stop().await;
    assert_eq!((dead.state, dead.attempts), (JobState::Dead, 1), "permanent: no retries burnt");
    let error = dead.last_error.unwrap_or_default();
    assert!(
        error.contains("price_enterprise_monthly") && error.contains("enterprise_monthly"),
        "names the price: {error}"
    );
    assert!(entitlements::get(&t.store, "usr_gina").await.unwrap().is_none(), "nothing granted or denied");
    let seen = entitlements::unmapped_prices(&t.store, at(T0 - DAY)).await.unwrap();
    assert_eq!(seen.len(), 1, "the dead job's price is listed for operators: {seen:?}");
    assert_eq!((seen[0].price_id.as_str(), seen[0].effect.as_str()), ("price_enterprise_monthly", "dead"));
    assert!(entitlements::event_outcome(&t.store, "evt_g1_created").await.unwrap().is_none());

    // The operator maps the price and retries the dead job.
    let toml = format!(
        "{}\n[[prices]]\nlookup_key = \"enterprise_monthly\"\ntier = \"agent\"\n",
        subsync_domain::DEFAULT_TIERS_TOML
    );
    let tiers = TierConfig::from_toml_str(&toml).expect("fixed config");
    let ctx = SyncContext::new(t.store.clone(), tiers.clone(), AccessPolicy::default()).with_clock(ent_now);
    let w = spawn_worker(ctx, worker_config(2));
    assert_eq!(t.store.retry(&Selection::Ids(vec![job])).await.unwrap(), 1);
    let done = wait_finished(&t.store, job, STEP).await;
    w.stop().await;
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    let e = entitlements::get_at(&t.store, "usr_gina", ent_now()).await.unwrap().unwrap();
    assert_eq!(e.tier, "agent");
    t.close().await;
}

/// `entitlements.active_entitlement_summary.updated` for `customer`, listing `keys`.
fn summary_event(id: &str, customer: &str, created: i64, keys: &[&str]) -> Vec<u8> {
    let data: Vec<serde_json::Value> = keys
        .iter()
        .enumerate()
        .map(|(n, key)| {
            serde_json::json!({ "id": format!("ent_{n}"), "object": "entitlements.active_entitlement", "lookup_key": key })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "id": id, "object": "event", "type": "entitlements.active_entitlement_summary.updated",
        "created": created, "livemode": false, "api_version": "2025-03-31.basil",
        "data": { "object": {
            "object": "entitlements.active_entitlement_summary", "customer": customer, "livemode": false,
            "entitlements": { "object": "list", "data": data, "has_more": false, "url": "/v1/entitlements/active_entitlements" }
        } }
    }))
    .expect("json")
}

async fn stripe_entitlement_summaries_alone_grant_the_mapped_features(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let toml = format!(
        "{}\n[stripe_features.itsa_quarterly]\nitsa.quarterly = true\n[stripe_features.vat]\nvat.returns = true\n",
        subsync_domain::DEFAULT_TIERS_TOML.replace("source = \"prices\"", "source = \"stripe_entitlements\"")
    );
    let tiers = TierConfig::from_toml_str(&toml).expect("tier file using Stripe's Entitlements");
    let ctx = SyncContext::new(t.store.clone(), tiers, AccessPolicy::default()).with_clock(ent_now);
    let w = spawn_worker(ctx, worker_config(2));
    // The newer summary arrives first, the older one late: the newer stays.
    let newer = summary_event("evt_s2", "cus_s1", T0 + 20, &["itsa_quarterly", "unknown_feature"]);
    let older = summary_event("evt_s1", "cus_s1", T0 + 10, &["itsa_quarterly", "vat"]);
    for body in [newer, older] {
        let job = deliver(&t.store, &body).await.expect("a job");
        assert_eq!(wait_finished(&t.store, job, STEP).await.state, JobState::Succeeded);
    }
    let e = entitlements::get_at(&t.store, "cus_s1", ent_now()).await.unwrap().expect("the customer's entitlement");
    assert_eq!(e.tier, "free");
    assert!(e.features.itsa.quarterly && !e.features.vat.returns, "the newer summary's features: {:?}", e.features);
    let applied = entitlements::event_outcome(&t.store, "evt_s2").await.unwrap().expect("outcome");
    assert_eq!(applied.outcome, "applied");
    assert!(applied.reason.unwrap_or_default().contains("unknown_feature"), "unmapped Stripe features are named");
    assert_eq!(entitlements::event_outcome(&t.store, "evt_s1").await.unwrap().expect("outcome").outcome, "stale");

    // A subscription of the customer, its price mapped by nothing: no dead job under Stripe's
    // Entitlements, and its user gets the customer's features; the stand-in row goes.
    let mut sub = Sub::new("s1", "enterprise_monthly");
    sub.customer = "cus_s1".into();
    sub.meta_user = Some("usr_sam".into());
    let job = deliver(&t.store, &sub.event("evt_s1_created", "created", T0 + 30, S::Active, false).body).await.unwrap();
    assert_eq!(wait_finished(&t.store, job, STEP).await.state, JobState::Succeeded);
    let e = entitlements::get_at(&t.store, "usr_sam", ent_now()).await.unwrap().expect("the user's entitlement");
    assert!(e.features.itsa.quarterly, "{:?}", e.features);
    assert!(entitlements::get(&t.store, "cus_s1").await.unwrap().is_none(), "the customer no longer stands for a user");
    // A later summary without the feature takes it away.
    let job = deliver(&t.store, &summary_event("evt_s3", "cus_s1", T0 + 40, &[])).await.unwrap();
    assert_eq!(wait_finished(&t.store, job, STEP).await.state, JobState::Succeeded);
    w.stop().await;
    let e = entitlements::get_at(&t.store, "usr_sam", ent_now()).await.unwrap().expect("the user's entitlement");
    assert!(!e.features.itsa.quarterly);
    t.close().await;
}

/// The "extra client" add-on price (`extra_client`), mapped by no default tier file.
fn extra_client_price() -> CatalogPrice {
    CatalogPrice {
        id: "price_extra_client".into(),
        lookup_key: "extra_client".into(),
        product: "prod_extra_client".into(),
        amount: 500,
        interval: Interval::Year,
    }
}

async fn a_mapped_add_on_times_its_quantity_raises_the_feature(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let toml = format!(
        "{}\n[addons.extra_client]\nagent.clients = 1\n[[prices]]\nlookup_key = \"extra_client\"\naddon = \"extra_client\"\n",
        subsync_domain::DEFAULT_TIERS_TOML
    );
    let tiers = TierConfig::from_toml_str(&toml).expect("tier file with an add-on");
    let mut sub = Sub::new("y1", "agent_yearly");
    sub.meta_user = Some("usr_yara".into());
    sub.extras.push((extra_client_price(), 3));
    let created = sub.event("evt_y1_created", "created", T0, S::Active, false);
    let job = deliver(&t.store, &created.body).await.unwrap();
    let ctx = SyncContext::new(t.store.clone(), tiers, AccessPolicy::default()).with_clock(ent_now);
    let w = spawn_worker(ctx, worker_config(2));
    let done = wait_finished(&t.store, job, STEP).await;
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    let e = entitlements::get_at(&t.store, "usr_yara", ent_now()).await.unwrap().expect("an entitlement");
    assert_eq!(e.tier, "agent");
    assert_eq!(e.features.agent.clients, 500 + 3, "the agent tier's 500 clients + 1 per add-on unit × 3");
    let outcome = entitlements::event_outcome(&t.store, "evt_y1_created").await.unwrap().expect("an outcome");
    assert_eq!(outcome.reason, None, "a mapped add-on is no warning");

    // The add-on ends with its subscription.
    let deleted = sub.event("evt_y1_deleted", "deleted", T0 + DAY, S::Canceled, false);
    let job = deliver(&t.store, &deleted.body).await.unwrap();
    wait_finished(&t.store, job, STEP).await;
    w.stop().await;
    let e = entitlements::get_at(&t.store, "usr_yara", ent_now()).await.unwrap().expect("an entitlement");
    assert_eq!((e.tier.as_str(), e.features.agent.clients), ("free", 0));
    t.close().await;
}

async fn an_unmapped_add_on_beside_a_plan_grants_the_plan_with_a_warning(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let mut sub = Sub::new("x1", "agent_yearly");
    sub.meta_user = Some("usr_xavi".into());
    // An "extra client" add-on nobody mapped, its key a near miss of nothing mapped.
    sub.extras.push((extra_client_price(), 1));
    let created = sub.event("evt_x1_created", "created", T0, S::Active, false);
    let job = deliver(&t.store, &created.body).await.unwrap();
    let w = default_worker(&t.store, ent_now());
    let done = wait_finished(&t.store, job, STEP).await;
    w.stop().await;
    assert_eq!(done.state, JobState::Succeeded, "a paying user is never locked out by an add-on: {done:?}");
    let e = entitlements::get_at(&t.store, "usr_xavi", ent_now()).await.unwrap().expect("an entitlement");
    assert_eq!(e.tier, "agent");
    let outcome = entitlements::event_outcome(&t.store, "evt_x1_created").await.unwrap().expect("an outcome");
    assert_eq!(outcome.outcome, "applied");
    let warning = outcome.reason.unwrap_or_default();
    assert!(warning.contains("price_extra_client") && warning.contains("extra_client"), "{warning}");
    let seen = entitlements::unmapped_prices(&t.store, at(T0 - DAY)).await.unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].price_id.as_str(), seen[0].events, seen[0].effect.as_str()),
        ("price_extra_client", 1, "ignored")
    );
    assert_eq!(seen[0].example_event_id, "evt_x1_created");
    t.close().await;
}

/// Everything the sync writes, as comparable text.
async fn snapshot_tables(t: &TestDb, users: &[&str], subs: &[&str], events: &[&str]) -> String {
    let mut out = String::new();
    for u in users {
        let e = entitlements::get_at(&t.store, u, ent_now()).await.unwrap();
        out.push_str(&format!("{u}: {}\n", serde_json::to_string(&e).unwrap()));
        let h = entitlements::history(&t.store, u).await.unwrap();
        out.push_str(&format!("{u} history: {}\n", serde_json::to_string(&h).unwrap()));
    }
    for s in subs {
        let st = entitlements::subscription_state(&t.store, s).await.unwrap();
        out.push_str(&format!("{s}: {}\n", serde_json::to_string(&st).unwrap()));
    }
    for ev in events {
        let o = entitlements::event_outcome(&t.store, ev).await.unwrap();
        out.push_str(&format!("{ev}: {}\n", serde_json::to_string(&o).unwrap()));
    }
    out
}

async fn rerunning_jobs_changes_nothing(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let sub = Sub::new("h1", "pro_monthly");
    let events = [
        sub.event("evt_h1_created", "created", T0, S::Active, false),
        sub.checkout("evt_h1_checkout", T0, None, Some("usr_hal")),
        sub.invoice("evt_h1_failed", T0 + 30 * DAY, "in_h1_2", false),
        sub.event("evt_h1_past_due", "updated", T0 + 30 * DAY, S::PastDue, false),
        sub.event("evt_h1_stale", "updated", T0 - 10, S::Incomplete, false),
    ];
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let w = default_worker(&t.store, ent_now());
    for e in &events {
        let j = deliver(&t.store, &e.body).await.unwrap();
        assert_eq!(wait_finished(&t.store, j, STEP).await.state, JobState::Succeeded);
    }
    let before = snapshot_tables(&t, &["usr_hal", "cus_h1"], &["sub_h1"], &ids).await;
    // A redelivery is deduplicated by the unique key: same job, nothing new.
    for e in &events {
        let again = deliver(&t.store, &e.body).await.unwrap();
        assert_eq!(t.store.get(again).await.unwrap().unwrap().state, JobState::Succeeded);
    }
    // Operator replays run the whole job again, twice, for every event.
    for _ in 0..2 {
        for e in &events {
            let j = replay(&t.store, &e.body).await;
            let job = wait_finished(&t.store, j, STEP).await;
            assert_eq!((job.state, job.attempts), (JobState::Succeeded, 1));
        }
    }
    w.stop().await;
    let after = snapshot_tables(&t, &["usr_hal", "cus_h1"], &["sub_h1"], &ids).await;
    assert_eq!(before, after, "re-running jobs must change nothing");
    assert!(before.contains("\"outcome\":\"stale\""), "{before}");
    t.close().await;
}

async fn checkout_and_created_race_without_retries(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let w = default_worker(&t.store, ent_now());
    // Several subscriptions, each with its checkout and created events arriving in the
    // same instant (two concurrent webhook requests).
    let mut jobs = Vec::new();
    for n in 0..8 {
        let sub = Sub::new(&format!("r{n}"), "basic_monthly");
        let checkout = sub.checkout(&format!("evt_r{n}_checkout"), T0, Some(&format!("usr_r{n}")), None);
        let created = sub.event(&format!("evt_r{n}_created"), "created", T0, S::Active, false);
        let (a, b2) = tokio::join!(deliver(&t.store, &checkout.body), deliver(&t.store, &created.body));
        jobs.push(a.unwrap());
        jobs.push(b2.unwrap());
    }
    for j in &jobs {
        let job = wait_finished(&t.store, *j, STEP).await;
        assert_eq!((job.state, job.attempts), (JobState::Succeeded, 1), "no error, no retry: {job:?}");
        assert_eq!(job.last_error, None);
    }
    w.stop().await;
    for n in 0..8 {
        let e = entitlements::get_at(&t.store, &format!("usr_r{n}"), ent_now()).await.unwrap().unwrap();
        assert_eq!((e.tier.as_str(), e.subscription_id.clone()), ("basic", format!("sub_r{n}")));
        assert!(entitlements::get(&t.store, &format!("cus_r{n}")).await.unwrap().is_none());
    }
    t.close().await;
}

async fn missing_event_row_is_permanent(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let job = t
        .store
        .enqueue_one(
            subsync_queue::NewJob::new("stripe", serde_json::json!({"event_id": "evt_missing"}))
                .with_unique_key("evt_missing")
                .with_group("sub_x"),
        )
        .await
        .unwrap()
        .job_id();
    let bad = t
        .store
        .enqueue_one(subsync_queue::NewJob::new("stripe", serde_json::json!({"nope": 1})).with_group("sub_y"))
        .await
        .unwrap()
        .job_id();
    let w = default_worker(&t.store, ent_now());
    let dead = wait_finished(&t.store, job, STEP).await;
    let dead_payload = wait_finished(&t.store, bad, STEP).await;
    w.stop().await;
    assert_eq!((dead.state, dead.attempts), (JobState::Dead, 1));
    assert!(dead.last_error.unwrap_or_default().contains("evt_missing"));
    assert_eq!(dead_payload.state, JobState::Dead);
    t.close().await;
}

async fn wait_running(store: &Store, id: subsync_queue::JobId) {
    let deadline = tokio::time::Instant::now() + STEP;
    while store.get(id).await.unwrap().unwrap().state != JobState::Running {
        assert!(tokio::time::Instant::now() < deadline, "job never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A context whose first job is slow (a stand-in for a slow database or a stuck call).
fn slow_first_job(store: &Store, delay: Duration) -> SyncContext {
    let slow = Arc::new(AtomicBool::new(true));
    SyncContext::new(store.clone(), TierConfig::default_config(), AccessPolicy::default())
        .with_clock(ent_now)
        .with_before_job(move |_job| {
            let first = slow.swap(false, Ordering::SeqCst);
            Box::pin(async move {
                if first {
                    tokio::time::sleep(delay).await;
                }
            })
        })
}

/// A subscription with one applied event and a second one queued.
async fn second_event_queued(t: &TestDb, n: &str) -> subsync_queue::JobId {
    let mut sub = Sub::new(n, "basic_monthly");
    sub.meta_user = Some(format!("usr_{n}"));
    let first =
        deliver(&t.store, &sub.event(&format!("evt_{n}_1"), "created", T0, S::Active, false).body).await.unwrap();
    let w = default_worker(&t.store, ent_now());
    assert_eq!(wait_finished(&t.store, first, STEP).await.state, JobState::Succeeded);
    w.stop().await;
    deliver(&t.store, &sub.event(&format!("evt_{n}_2"), "updated", T0 + DAY, S::PastDue, false).body).await.unwrap()
}

async fn slow_job_times_out_and_is_retried(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let job = second_event_queued(&t, "s1").await;
    let mut cfg = worker_config(2);
    cfg.job_timeout = Duration::from_millis(300);
    let w = spawn_worker(slow_first_job(&t.store, Duration::from_millis(800)), cfg);
    let done = wait_finished(&t.store, job, STEP).await;
    w.stop().await;
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 2, "the timed-out attempt was a retryable failure");
    let e = entitlements::get_at(&t.store, "usr_s1", ent_now()).await.unwrap().unwrap();
    assert_eq!(e.status.as_deref(), Some("past_due"));
    assert_eq!(entitlements::history(&t.store, "usr_s1").await.unwrap().len(), 1, "the abandoned attempt left nothing");
    t.close().await;
}

async fn shutdown_releases_in_flight_jobs(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let job = second_event_queued(&t, "u1").await;
    let mut cfg = worker_config(2);
    cfg.shutdown_grace = Duration::from_millis(200);
    let w = spawn_worker(slow_first_job(&t.store, Duration::from_secs(30)), cfg);
    wait_running(&t.store, job).await;
    let started = tokio::time::Instant::now();
    w.stop().await;
    assert!(started.elapsed() < Duration::from_secs(8), "shutdown took {:?}", started.elapsed());
    let released = t.store.get(job).await.unwrap().unwrap();
    assert_eq!(
        (released.state, released.attempts),
        (JobState::Pending, 0),
        "released, attempt not counted: {released:?}"
    );
    assert!(entitlements::event_outcome(&t.store, "evt_u1_2").await.unwrap().is_none(), "nothing committed");
    // Another worker takes it at once.
    let w = default_worker(&t.store, ent_now());
    let done = wait_finished(&t.store, job, STEP).await;
    w.stop().await;
    assert_eq!((done.state, done.attempts), (JobState::Succeeded, 1));
    t.close().await;
}
