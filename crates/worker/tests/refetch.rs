//! Asking Stripe instead of guessing: same-second conflicts decided by the fetched
//! subscription, thin events applied by fetching, stored fetches (a backfill) ordered against
//! webhooks, and `RefetchMode::Always`. The fetcher here serves from memory (the HTTP client
//! against the local Stripe API is tested in `subsync-stripe-api` and end to end in
//! `tests/`). Every test runs on SQLite and on PostgreSQL.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use subsync_domain::{AccessPolicy, SubscriptionStatus as S, TierConfig};
use subsync_eventlog::{EventRecord, FetchMeta, FetchedSubscription};
use subsync_queue::{JobState, both_backends};
use subsync_worker::{FetchError, FetchedObject, RefetchMode, SubscriptionFetcher, SyncContext, entitlements};
use support::{Backend, DAY, Sub, T0, TestDb, at, deliver, fast_config, spawn_worker, wait_finished, worker_config};

const STEP: Duration = Duration::from_secs(20);

both_backends!(90;
    a_same_second_conflict_is_decided_by_the_fetched_subscription,
    without_an_api_key_a_same_second_conflict_falls_back_to_the_rank,
    a_thin_event_is_applied_by_fetching_its_subscription,
    without_an_api_key_a_thin_event_is_skipped_with_a_reason,
    a_stored_fetch_is_ordered_against_webhooks,
    refetch_always_applies_every_event_as_fetched,
    a_refused_fetch_of_a_thin_event_is_permanent,
);

/// Stripe's API, from memory: the current object per subscription and the `Date` it
/// answers with; counts calls.
#[derive(Default)]
struct MemoryStripe {
    objects: Mutex<HashMap<String, (Value, i64)>>,
    calls: AtomicUsize,
    refuse: bool,
}

impl MemoryStripe {
    fn set(&self, object: Value, date: i64) {
        let id = object["id"].as_str().expect("id").to_owned();
        self.objects.lock().unwrap().insert(id, (object, date));
    }
}

impl SubscriptionFetcher for MemoryStripe {
    fn subscription<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<FetchedObject, FetchError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let found = self.objects.lock().unwrap().get(id).cloned();
        Box::pin(async move {
            if self.refuse {
                return Err(FetchError::Refused("Invalid API Key provided".into()));
            }
            let (object, date) = found.ok_or_else(|| FetchError::Refused(format!("No such subscription: {id}")))?;
            Ok(FetchedObject { object, date })
        })
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    at(T0 + 2 * DAY)
}

fn context(t: &TestDb, stripe: Option<(Arc<MemoryStripe>, RefetchMode)>) -> SyncContext {
    let ctx = SyncContext::new(t.store.clone(), TierConfig::default_config(), AccessPolicy::default()).with_clock(now);
    match stripe {
        Some((fetcher, mode)) => ctx.with_fetcher(fetcher, mode),
        None => ctx,
    }
}

/// The subscription object an event carries (what the API would return for it).
fn object_of(body: &[u8]) -> Value {
    let event: Value = serde_json::from_slice(body).expect("json");
    event["data"]["object"].clone()
}

async fn run_all(t: &TestDb, ctx: SyncContext, bodies: &[&[u8]]) -> Vec<subsync_queue::JobRecord> {
    let mut jobs = Vec::new();
    for body in bodies {
        jobs.push(deliver(&t.store, body).await.expect("handled"));
    }
    let w = spawn_worker(ctx, worker_config(2));
    let mut done = Vec::new();
    for id in jobs {
        done.push(wait_finished(&t.store, id, STEP).await);
    }
    w.stop().await;
    done
}

fn user_sub(n: &str, user: &str) -> Sub {
    let mut sub = Sub::new(n, "pro_monthly");
    sub.meta_user = Some(user.into());
    sub
}

async fn status_of(t: &TestDb, user: &str) -> (String, Option<String>) {
    let e = entitlements::get_at(&t.store, user, now()).await.unwrap().expect("entitlement");
    (e.tier, e.status)
}

async fn a_same_second_conflict_is_decided_by_the_fetched_subscription(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let sub = user_sub("r1", "usr_r1");
    // The payment recovered within the second: the rank alone would keep `unpaid`.
    let unpaid = sub.event("evt_r1_unpaid", "updated", T0, S::Unpaid, false);
    let active = sub.event("evt_r1_active", "updated", T0, S::Active, false);
    let stripe = Arc::new(MemoryStripe::default());
    stripe.set(object_of(&active.body), T0);
    let ctx = context(&t, Some((stripe.clone(), RefetchMode::OnConflict)));
    let jobs = run_all(&t, ctx, &[&active.body, &unpaid.body]).await;
    assert!(jobs.iter().all(|j| j.state == JobState::Succeeded), "{jobs:?}");
    assert_eq!(status_of(&t, "usr_r1").await, ("pro".into(), Some("active".into())));
    assert_eq!(stripe.calls.load(Ordering::SeqCst), 1, "one fetch, for the one conflict");
    t.close().await;
}

async fn without_an_api_key_a_same_second_conflict_falls_back_to_the_rank(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let sub = user_sub("r2", "usr_r2");
    let unpaid = sub.event("evt_r2_unpaid", "updated", T0, S::Unpaid, false);
    let active = sub.event("evt_r2_active", "updated", T0, S::Active, false);
    let jobs = run_all(&t, context(&t, None), &[&active.body, &unpaid.body]).await;
    assert!(jobs.iter().all(|j| j.state == JobState::Succeeded), "{jobs:?}");
    assert_eq!(status_of(&t, "usr_r2").await.1.as_deref(), Some("unpaid"), "the documented rank decides");
    t.close().await;
}

fn thin(id: &str, sub: &str) -> Vec<u8> {
    json!({"id": id, "object": "v2.core.event", "type": "v1.customer.subscription.updated", "livemode": false,
           "created": "2026-01-01T00:00:00.123Z",
           "related_object": {"id": sub, "type": "subscription", "url": format!("/v1/subscriptions/{sub}")}})
    .to_string()
    .into_bytes()
}

async fn a_thin_event_is_applied_by_fetching_its_subscription(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let sub = user_sub("r3", "usr_r3");
    let stripe = Arc::new(MemoryStripe::default());
    stripe.set(object_of(&sub.event("evt_unused", "updated", T0, S::Active, false).body), T0 + 5);
    let ctx = context(&t, Some((stripe.clone(), RefetchMode::OnConflict)));
    let jobs = run_all(&t, ctx, &[&thin("evt_thin_r3", "sub_r3")]).await;
    assert_eq!(jobs[0].state, JobState::Succeeded, "{jobs:?}");
    assert_eq!(status_of(&t, "usr_r3").await, ("pro".into(), Some("active".into())));
    let o = entitlements::event_outcome(&t.store, "evt_thin_r3").await.unwrap().expect("outcome");
    assert_eq!(o.outcome, "applied");
    t.close().await;
}

async fn without_an_api_key_a_thin_event_is_skipped_with_a_reason(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let jobs = run_all(&t, context(&t, None), &[&thin("evt_thin_r4", "sub_r4")]).await;
    assert_eq!(jobs[0].state, JobState::Succeeded, "skipping is not a failure: {jobs:?}");
    let o = entitlements::event_outcome(&t.store, "evt_thin_r4").await.unwrap().expect("outcome");
    assert_eq!(o.outcome, "ignored");
    assert!(o.reason.as_deref().unwrap_or("").contains("STRIPE_API_KEY"), "{o:?}");
    assert_eq!(o.subscription_id.as_deref(), Some("sub_r4"));
    t.close().await;
}

async fn a_refused_fetch_of_a_thin_event_is_permanent(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let stripe = Arc::new(MemoryStripe { refuse: true, ..MemoryStripe::default() });
    let ctx = context(&t, Some((stripe, RefetchMode::OnConflict)));
    let jobs = run_all(&t, ctx, &[&thin("evt_thin_r5", "sub_r5")]).await;
    assert_eq!(jobs[0].state, JobState::Dead, "a refused key does not fix itself: {jobs:?}");
    assert!(jobs[0].last_error.as_deref().unwrap_or("").contains("Invalid API Key"), "{:?}", jobs[0]);
    t.close().await;
}

async fn store_fetch(t: &TestDb, object: &Value, date: i64) -> String {
    let meta = FetchMeta { fetched_at: date * 1_000_000_000, source: "backfill".into(), checkout_session: None };
    let record =
        EventRecord::fetched_subscription(&FetchedSubscription { subscription: object, date, meta }).expect("record");
    let stored = subsync_eventlog::store_batch(&t.store, &[&record]).await.expect("store");
    assert!(stored[0].job_id.is_some());
    record.event_id
}

async fn a_stored_fetch_is_ordered_against_webhooks(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let sub = user_sub("r6", "usr_r6");
    // Backfilled as active at T0+10; a webhook from before that arrives late and is stale;
    // one from after it wins.
    let fetched = object_of(&sub.event("evt_x", "updated", T0, S::Active, false).body);
    let id = store_fetch(&t, &fetched, T0 + 10).await;
    let again = store_fetch(&t, &fetched, T0 + 20).await;
    assert_eq!(id, again, "an unchanged subscription stores nothing new");
    let older = sub.event("evt_r6_older", "updated", T0 + 5, S::PastDue, false);
    let newer = sub.event("evt_r6_newer", "updated", T0 + 30, S::Canceled, false);
    let first = run_all(&t, context(&t, None), &[&older.body]).await;
    assert_eq!(first[0].state, JobState::Succeeded);
    let o = entitlements::event_outcome(&t.store, "evt_r6_older").await.unwrap().expect("outcome");
    assert_eq!(o.outcome, "stale", "{o:?}");
    assert_eq!(status_of(&t, "usr_r6").await.1.as_deref(), Some("active"));
    run_all(&t, context(&t, None), &[&newer.body]).await;
    assert_eq!(status_of(&t, "usr_r6").await.1.as_deref(), Some("canceled"));
    t.close().await;
}

async fn refetch_always_applies_every_event_as_fetched(b: Backend) {
    let t = TestDb::with_config(b, fast_config()).await;
    let sub = user_sub("r7", "usr_r7");
    let stripe = Arc::new(MemoryStripe::default());
    // Stripe says canceled now, whatever the (older) events say.
    stripe.set(object_of(&sub.event("evt_y", "updated", T0, S::Canceled, false).body), T0 + 100);
    let events = [
        sub.event("evt_r7_created", "created", T0, S::Active, false),
        sub.event("evt_r7_updated", "updated", T0 + 1, S::Active, false),
    ];
    let ctx = context(&t, Some((stripe.clone(), RefetchMode::Always)));
    let jobs = run_all(&t, ctx, &[&events[0].body, &events[1].body]).await;
    assert!(jobs.iter().all(|j| j.state == JobState::Succeeded), "{jobs:?}");
    assert_eq!(stripe.calls.load(Ordering::SeqCst), 2, "one fetch per subscription event");
    assert_eq!(status_of(&t, "usr_r7").await.1.as_deref(), Some("canceled"));
    t.close().await;
}
