//! `reconcile` and `backfill` against the local Stripe API, on SQLite and PostgreSQL:
//! missed deliveries caught up to the oracle, a second run creating nothing, faults failing
//! cleanly without moving the high-water mark, and a backfill from empty equal to the oracle
//! with webhooks racing it kept in order.

mod support;

use std::collections::HashSet;

use serde_json::json;
use subsync_duties::store as duties;
use subsync_queue::testing::{TestDb, fast_config};
use subsync_queue::{Backend, JobFilter, both_backends};
use subsync_reconcile::{RECONCILE_DUTY, ReconcileError, ReconcileOptions, Since, backfill, reconcile};
use subsync_stripe_api::ApiError;
use subsync_stripe_api::fake::{FakeFault, FakeStripe};
use support::{DAY, KEY, assert_matches_oracle, client, deliver, drain, eval_now, json, lifecycles, worker};

both_backends!(180;
    missed_deliveries_are_caught_up_to_the_oracle,
    faults_fail_cleanly_and_the_next_run_catches_up,
    a_dry_run_stores_nothing,
    backfill_from_empty_equals_the_oracle,
    webhooks_racing_the_backfill_keep_their_order,
);

async fn missed_deliveries_are_caught_up_to_the_oracle(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let (lcs, _) = lifecycles(7, 40, true);
    let now = eval_now(&lcs);
    let fake = FakeStripe::start(KEY);
    let events: Vec<_> = lcs.iter().flat_map(|l| &l.events).collect();
    for e in &events {
        fake.add_event(json(&e.body));
    }
    // Every third delivery never arrives; every seventh arrives only after the reconcile.
    let (tx, handle) = worker(&t.store, now);
    let mut late = Vec::new();
    let mut missed = 0;
    for (i, e) in events.iter().enumerate() {
        match (i % 3, i % 7) {
            (0, _) => missed += 1,
            (_, 0) => late.push(e),
            _ => deliver(&t.store, &e.body).await,
        }
    }
    let api = client(&fake);
    let report = reconcile(&t.store, &api, month()).await.expect("reconcile");
    assert_eq!(report.listed as usize, events.len(), "{report:?}");
    assert_eq!(report.new as usize, missed + late.len(), "{report:?}");
    assert_eq!(report.already_stored as usize, events.len() - missed - late.len());
    assert!(report.high_water_mark.is_some());
    // The late ones arrive now: already stored, no second job.
    let jobs_before = t.store.count(&JobFilter::default()).await.unwrap();
    for e in &late {
        deliver(&t.store, &e.body).await;
    }
    assert_eq!(t.store.count(&JobFilter::default()).await.unwrap(), jobs_before, "a late delivery creates nothing");
    drain(&t.store).await;
    assert_matches_oracle(&t.store, &lcs, now).await;
    // A second run lists the overlap again and creates nothing.
    let again = reconcile(&t.store, &api, ReconcileOptions::default()).await.expect("again");
    assert_eq!(again.new, 0, "{again:?}");
    assert_eq!(t.store.count(&JobFilter::default()).await.unwrap(), jobs_before);
    let _ = tx.send(());
    handle.await.unwrap();
    t.close().await;
}

/// The first run after an outage longer than the default three days: `--since 29d`.
fn month() -> ReconcileOptions {
    ReconcileOptions { since: Some(Since::Ago(std::time::Duration::from_secs(29 * DAY as u64))), dry_run: false }
}

fn checkpoint_of(status: Option<subsync_duties::DutyStatus>) -> Option<i64> {
    status.and_then(|s| s.checkpoint)
}

async fn faults_fail_cleanly_and_the_next_run_catches_up(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let (lcs, _) = lifecycles(11, 60, false);
    let fake = FakeStripe::start(KEY);
    let total: usize = lcs.iter().map(|l| l.events.len()).sum();
    assert!(total > 150, "more than one page of events: {total}");
    for e in lcs.iter().flat_map(|l| &l.events) {
        fake.add_event(json(&e.body));
    }
    let api = client(&fake);
    let opts = month();

    // A wrong key: refused at once, clearly, nothing stored.
    let mut wrong = subsync_stripe_api::ApiConfig::new("rk_test_51WrongKeyWrongKey0000".parse().unwrap());
    wrong.base = fake.url().to_owned();
    let wrong = subsync_stripe_api::StripeApi::new(wrong).unwrap();
    let err = reconcile(&t.store, &wrong, opts).await.expect_err("wrong key");
    assert!(matches!(err, ReconcileError::Api(ApiError::Unauthorized { .. })), "{err}");
    assert!(!err.to_string().contains("WrongKey"), "the key is never shown: {err}");

    // Stripe down: fails after the client's retries; no high-water mark.
    fake.set_down(true);
    let err = reconcile(&t.store, &api, opts).await.expect_err("down");
    assert!(err.to_string().contains("Stripe API"), "{err}");
    fake.set_down(false);
    assert_eq!(checkpoint_of(duties::get(&t.store, RECONCILE_DUTY).await.unwrap()), None);

    // A page failing midway (the first page answers, every attempt at the second fails):
    // the first page is stored, the mark does not move.
    fake.fail_after(1, FakeFault::Status { status: 500, should_retry: Some(true) });
    for _ in 0..3 {
        fake.fail_next(FakeFault::Status { status: 500, should_retry: Some(true) });
    }
    let err = reconcile(&t.store, &api, opts).await.expect_err("midway");
    assert!(matches!(err, ReconcileError::Api(_)), "{err}");
    assert_eq!(fake.pending_faults(), 0, "every attempt was made");
    assert_eq!(checkpoint_of(duties::get(&t.store, RECONCILE_DUTY).await.unwrap()), None, "no partial mark");
    let stored_after_failure = t.store.count(&JobFilter::default()).await.unwrap();
    assert_eq!(stored_after_failure, 100, "the first page was kept");

    // A 429 storm the client rides out: this run completes and catches up everything.
    for _ in 0..2 {
        fake.fail_next(FakeFault::Status { status: 429, should_retry: Some(true) });
    }
    let report = reconcile(&t.store, &api, opts).await.expect("rides out the 429s");
    assert_eq!(report.new as usize + stored_after_failure as usize, total, "{report:?}");
    assert!(checkpoint_of(duties::get(&t.store, RECONCILE_DUTY).await.unwrap()).is_some());
    assert_eq!(t.store.count(&JobFilter::default()).await.unwrap() as usize, total, "every event, once");
    t.close().await;
}

async fn a_dry_run_stores_nothing(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let (lcs, _) = lifecycles(3, 5, false);
    let fake = FakeStripe::start(KEY);
    for e in lcs.iter().flat_map(|l| &l.events) {
        fake.add_event(json(&e.body));
    }
    let first = lcs[0].events.first().expect("an event");
    deliver(&t.store, &first.body).await;
    let api = client(&fake);
    let report = reconcile(
        &t.store,
        &api,
        ReconcileOptions { dry_run: true, since: Some(Since::Ago(std::time::Duration::from_secs(29 * DAY as u64))) },
    )
    .await
    .expect("dry run");
    let total: u64 = lcs.iter().map(|l| l.events.len() as u64).sum();
    assert_eq!((report.listed, report.new, report.already_stored), (total, total - 1, 1), "{report:?}");
    assert_eq!(t.store.count(&JobFilter::default()).await.unwrap(), 1, "nothing stored");
    assert_eq!(checkpoint_of(duties::get(&t.store, RECONCILE_DUTY).await.unwrap()), None, "no mark");
    t.close().await;
}

/// Puts Stripe's current objects in the fake: each subscription as of its last event, its
/// customer, and its checkout session.
fn load_current_objects(fake: &FakeStripe, lcs: &[subsync_testkit::Lifecycle]) {
    let mut customers = HashSet::new();
    for lc in lcs {
        let mut last_sub = None;
        for e in &lc.events {
            let body = json(&e.body);
            let object = body["data"]["object"].clone();
            if e.event_type.starts_with("customer.subscription.") {
                last_sub = Some(object);
            } else if e.event_type == "checkout.session.completed" {
                fake.put_checkout_session(object);
            }
        }
        if customers.insert(lc.customer_id.clone()) {
            fake.put_customer(json!({"id": lc.customer_id, "object": "customer", "metadata": {}, "created": 1}));
        }
        fake.put_subscription(last_sub.expect("a subscription event"));
    }
}

async fn backfill_from_empty_equals_the_oracle(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    // No past_due here: Stripe's object does not say when a past_due episode began, so a
    // backfilled one's grace starts at the backfill (documented), unlike the oracle's.
    let (lcs, _) = lifecycles(5, 40, false);
    let now = eval_now(&lcs);
    let fake = FakeStripe::start(KEY);
    fake.set_now(Some(now.timestamp() - DAY / 2));
    load_current_objects(&fake, &lcs);
    let api = client(&fake);
    let report = backfill(&t.store, &api, false).await.expect("backfill");
    assert_eq!((report.listed, report.new, report.refused), (40, 40, 0), "{report:?}");
    assert!(report.checkout_lookups > 0, "users named only by their checkout are looked up: {report:?}");
    let (tx, handle) = worker(&t.store, now);
    drain(&t.store).await;
    assert_matches_oracle(&t.store, &lcs, now).await;
    // Nothing changed in Stripe: a second backfill creates nothing.
    let jobs = t.store.count(&JobFilter::default()).await.unwrap();
    let again = backfill(&t.store, &api, false).await.expect("again");
    assert_eq!((again.new, again.unchanged), (0, 40), "{again:?}");
    assert_eq!(t.store.count(&JobFilter::default()).await.unwrap(), jobs);
    let _ = tx.send(());
    handle.await.unwrap();
    t.close().await;
}

async fn webhooks_racing_the_backfill_keep_their_order(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let (lcs, _) = lifecycles(9, 10, false);
    let now = eval_now(&lcs);
    let fetched_at = now.timestamp() - DAY / 2;
    let fake = FakeStripe::start(KEY);
    fake.set_now(Some(fetched_at));
    load_current_objects(&fake, &lcs);
    let (tx, handle) = worker(&t.store, now);
    // While the backfill runs, an older webhook (the first event of each lifecycle) and a
    // newer one (after the fetch: canceling the first subscription) arrive.
    let api = client(&fake);
    let older: Vec<_> = lcs.iter().map(|l| l.events[0].body.clone()).collect();
    let sub_id = lcs[0].subscription_id.clone();
    let mut object = fake.subscription(&sub_id).expect("in the fake");
    object["status"] = json!("canceled");
    let cancel = json!({"id": "evt_after_backfill", "object": "event", "type": "customer.subscription.deleted",
                        "created": fetched_at + 60, "livemode": false, "data": {"object": object}});
    let store = t.store.clone();
    let racing = tokio::spawn(async move {
        for body in &older {
            deliver(&store, body).await;
        }
    });
    let report = backfill(&t.store, &api, false).await.expect("backfill");
    racing.await.unwrap();
    deliver(&t.store, cancel.to_string().as_bytes()).await;
    drain(&t.store).await;
    assert_eq!(report.new, 10);
    // Everyone but the canceled one is as Stripe has them now (the older webhooks are stale
    // or were overtaken); the newer webhook won for the first.
    let canceled = subsync_worker::entitlements::subscription_state(&t.store, &sub_id).await.unwrap().expect("state");
    assert_eq!(canceled.status().map(|s| s.as_str()), Some("canceled"));
    let rest: Vec<_> = lcs[1..].to_vec();
    for lc in &rest {
        let state = subsync_worker::entitlements::subscription_state(&t.store, &lc.subscription_id)
            .await
            .unwrap()
            .expect("state");
        let expected = fake.subscription(&lc.subscription_id).expect("in the fake");
        assert_eq!(state.status().map(|s| s.as_str()), expected["status"].as_str(), "{}", lc.subscription_id);
    }
    let _ = tx.send(());
    handle.await.unwrap();
    t.close().await;
}
