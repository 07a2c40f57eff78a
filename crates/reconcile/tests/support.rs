//! Shared by the reconcile tests: a client for the local Stripe API, generated traffic placed
//! in "now" (Stripe lists only the last 30 days), a worker, and the oracle comparison.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use subsync_domain::{AccessPolicy, TierConfig};
use subsync_eventlog::EventRecord;
use subsync_queue::{JobFilter, JobState, Store};
use subsync_stripe_api::fake::FakeStripe;
use subsync_stripe_api::{ApiConfig, StripeApi};
use subsync_testkit::{GeneratorOptions, Lifecycle, expected_entitlements, generate_lifecycles};
use subsync_worker::{SyncContext, WorkerConfig, entitlements};
use tokio::sync::oneshot;

pub const KEY: &str = "rk_test_51ReconcileTestsKey0000";
pub const DAY: i64 = 86_400;

/// A client for `fake`, retrying quickly.
pub fn client(fake: &FakeStripe) -> StripeApi {
    let mut config = ApiConfig::new(fake.key().parse().expect("key"));
    config.base = fake.url().to_owned();
    config.backoff = Duration::from_millis(1);
    config.max_retries = 3;
    config.requests_per_second = 10_000;
    config.timeout = Duration::from_secs(5);
    StripeApi::new(config).expect("client")
}

/// Lifecycles whose events fall in Stripe's 30-day window: starting 25 days ago, a few
/// weeks long (renewals may lie ahead of the wall clock; the oracle and the worker evaluate
/// at [`eval_now`]).
pub fn lifecycles(seed: u64, count: usize, past_due: bool) -> (Vec<Lifecycle>, GeneratorOptions) {
    let options = GeneratorOptions {
        start: Utc::now().timestamp() - 25 * DAY,
        spread_secs: DAY,
        max_renewals: 1,
        past_due_ratio: if past_due { 0.25 } else { 0.0 },
        ..GeneratorOptions::default()
    };
    (generate_lifecycles(seed, count, &options), options)
}

/// After every generated event.
pub fn eval_now(lifecycles: &[Lifecycle]) -> DateTime<Utc> {
    let last = lifecycles.iter().flat_map(|l| &l.events).map(|e| e.created).max().unwrap_or(0);
    DateTime::from_timestamp(last + DAY, 0).expect("time")
}

pub fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("json")
}

/// Stores an event as the intake does.
pub async fn deliver(store: &Store, body: &[u8]) {
    let record = EventRecord::from_body(body).expect("parses");
    subsync_eventlog::store_batch(store, &[&record]).await.expect("store");
}

/// A worker on `store` evaluating at `now`; stop it with the sender.
pub fn worker(store: &Store, now: DateTime<Utc>) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let ctx =
        SyncContext::new(store.clone(), TierConfig::default_config(), AccessPolicy::default()).with_clock(move || now);
    let mut cfg = WorkerConfig::default().with_concurrency(4);
    cfg.queue.poll_interval = Duration::from_millis(50);
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        subsync_worker::run(ctx, cfg, async move {
            let _ = rx.await;
        })
        .await
        .expect("worker");
    });
    (tx, handle)
}

/// Waits until no job is pending or running (none may die).
pub async fn drain(store: &Store) {
    let busy = JobFilter { states: vec![JobState::Pending, JobState::Running], ..JobFilter::default() };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let counts = store.counts().await.expect("counts");
        assert!(counts.iter().all(|c| c.state != JobState::Dead), "no job may die: {counts:?}");
        if store.count(&busy).await.expect("count") == 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "jobs did not drain: {counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every user's entitlement equals the oracle's at `now` (tier, subscription, status,
/// features, access until).
pub async fn assert_matches_oracle(store: &Store, lifecycles: &[Lifecycle], now: DateTime<Utc>) {
    let expected =
        expected_entitlements(lifecycles, &TierConfig::default_config(), &AccessPolicy::default(), now.timestamp())
            .expect("oracle");
    let mut got = BTreeMap::new();
    for row in entitlements::list_at(store, 1000, 0, now).await.expect("list") {
        got.insert(row.user_id.clone(), row);
    }
    assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "the same users");
    for (user, exp) in &expected {
        let row = &got[user];
        let e = &exp.entitlement;
        assert_eq!(row.tier, e.tier.as_str(), "tier of {user}");
        assert_eq!(row.subscription_id, exp.subscription_id, "subscription of {user}");
        assert_eq!(row.status.as_deref(), exp.status.as_ref().map(|s| s.as_str()), "status of {user}");
        assert_eq!(row.features, e.features, "features of {user}");
        assert_eq!(row.access_until.map(|t| t.timestamp()), e.access_until, "access_until of {user}");
    }
}
