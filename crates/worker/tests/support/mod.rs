//! Shared fixtures: the intake's contract (event row + job in one transaction), realistic
//! event bodies, and running workers. The throwaway database per test and `both_backends!`
//! come from `subsync_queue::testing` (feature `testing`).
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use subsync_domain::{AccessPolicy, SubscriptionStatus, TierConfig};
use subsync_eventlog::{EventRecord, SyncJob};
use subsync_queue::{JobFilter, JobId, JobRecord, JobState, Store};
use subsync_stripe::Envelope;
use subsync_testkit::{ApiVersion, CatalogPrice, EventFact, GeneratedEvent, Interval, ItemFact};
use subsync_worker::{SyncContext, WorkerConfig, run};
use tokio::sync::oneshot;

pub use subsync_queue::Backend;
pub use subsync_queue::testing::{TestDb, fast_config};

/// Stores an event exactly as the intake does (through the event log's own store: one
/// event row and, for handled events, its sync job, atomically). A duplicate delivery
/// changes nothing and returns the first job. Returns the job, if any.
pub async fn deliver(store: &Store, body: &[u8]) -> Option<JobId> {
    let record = EventRecord::from_body(body).expect("test events parse");
    // A transient failure (PostgreSQL resolving a deadlock with a worker's batch) is tried
    // again, as Stripe retries a webhook the intake answered with 503.
    for attempt in 1.. {
        match subsync_eventlog::store_batch(store, &[&record]).await {
            Ok(stored) => return stored[0].job_id,
            Err(e) if e.is_transient() && attempt < 20 => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("store event: {e}"),
        }
    }
    unreachable!("the loop returns or panics")
}

/// An operator replay: `{"event_id": …, "replay": true}`, no unique key, same group.
pub async fn replay(store: &Store, body: &[u8]) -> JobId {
    let env = Envelope::parse(body).expect("test events parse");
    let job = SyncJob::replay(&env.id, &env.group_key().as_queue_group());
    store.enqueue_one(job).await.expect("enqueue replay").job_id()
}

/// A running sync worker (`subsync_worker::run`).
pub struct RunningWorker {
    stop: Option<oneshot::Sender<()>>,
    pub handle: tokio::task::JoinHandle<Result<(), subsync_worker::WorkerError>>,
}

impl RunningWorker {
    /// Asks for a graceful shutdown and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let res = tokio::time::timeout(Duration::from_secs(30), &mut self.handle)
            .await
            .expect("worker stops in time")
            .expect("worker task");
        res.expect("worker ran cleanly");
    }

    /// Kills the worker without clean-up: its leases are left to expire.
    pub fn kill(self) {
        self.handle.abort();
    }
}

/// Test worker settings: quick polling and lease rescue.
pub fn worker_config(concurrency: usize) -> WorkerConfig {
    let mut cfg = WorkerConfig::default().with_concurrency(concurrency);
    cfg.queue.poll_interval = Duration::from_millis(100);
    cfg.queue.rescue_interval = Duration::from_millis(100);
    cfg.shutdown_grace = Duration::from_secs(2);
    cfg.job_timeout = Duration::from_secs(20);
    cfg
}

pub fn spawn_worker(ctx: SyncContext, config: WorkerConfig) -> RunningWorker {
    let (tx, rx) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = rx.await;
    };
    let handle = tokio::spawn(run(ctx, config, shutdown));
    RunningWorker { stop: Some(tx), handle }
}

/// A worker with the default tiers and policy, evaluating at `now`.
pub fn default_worker(store: &Store, now: DateTime<Utc>) -> RunningWorker {
    let ctx =
        SyncContext::new(store.clone(), TierConfig::default_config(), AccessPolicy::default()).with_clock(move || now);
    spawn_worker(ctx, worker_config(4))
}

/// Waits until at least `n` jobs are in one of `states`, or panics after `limit`.
pub async fn wait_for_count(store: &Store, states: &[JobState], n: u64, limit: Duration) {
    let filter = JobFilter { states: states.to_vec(), ..JobFilter::default() };
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let count = store.count(&filter).await.expect("count");
        if count >= n {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let counts = store.counts().await.expect("counts");
            panic!("timed out waiting for {n} jobs in {states:?}; have {count}; all: {counts:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the job is finished (succeeded, dead or cancelled) and returns it.
pub async fn wait_finished(store: &Store, id: JobId, limit: Duration) -> JobRecord {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let job = store.get(id).await.expect("get").expect("job exists");
        if job.state.is_finished() {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "job {id} still {:?} after {limit:?}: {job:?}", job.state);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- realistic event bodies (rendered by subsync-testkit in Stripe's shapes) ----

/// Time origin of hand-written scenarios: 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600;
pub const DAY: i64 = 86_400;

pub fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().expect("valid time")
}

/// A subscription the scenario talks about.
#[derive(Clone, Debug)]
pub struct Sub {
    pub id: String,
    pub customer: String,
    pub price: CatalogPrice,
    pub api: ApiVersion,
    /// `metadata.app_user_id` on the subscription.
    pub meta_user: Option<String>,
    /// Prices on further items beside the plan (add-ons), with their quantities.
    pub extras: Vec<(CatalogPrice, u32)>,
    /// The current period, unix seconds: `[T0, T0 + 30 days)` unless a test moves it.
    pub period: (i64, i64),
}

impl Sub {
    pub fn new(n: &str, lookup_key: &str) -> Self {
        let price = subsync_testkit::price(lookup_key).unwrap_or_else(|| CatalogPrice {
            id: format!("price_{lookup_key}"),
            lookup_key: lookup_key.to_owned(),
            product: "prod_unknown".into(),
            amount: 4900,
            interval: Interval::Month,
        });
        Self {
            id: format!("sub_{n}"),
            customer: format!("cus_{n}"),
            price,
            api: ApiVersion::Basil,
            meta_user: None,
            extras: Vec::new(),
            period: (T0, T0 + 30 * DAY),
        }
    }

    pub fn legacy(mut self) -> Self {
        self.api = ApiVersion::Legacy;
        self
    }

    fn item(&self) -> ItemFact {
        ItemFact { item_id: format!("si_{}", self.id), price: self.price.clone(), quantity: 1 }
    }

    fn items(&self) -> Vec<ItemFact> {
        let plan = self.item();
        let extras = self.extras.iter().enumerate().map(|(n, (price, quantity))| ItemFact {
            item_id: format!("si_{}_extra{n}", self.id),
            price: price.clone(),
            quantity: *quantity,
        });
        std::iter::once(plan).chain(extras).collect()
    }

    /// `customer.subscription.<kind>` with `status`, period `[T0, period_end)`.
    pub fn event(
        &self,
        evt: &str,
        kind: &str,
        created: i64,
        status: SubscriptionStatus,
        cancel_at_period_end: bool,
    ) -> GeneratedEvent {
        let fact = EventFact::Subscription {
            subscription_id: self.id.clone(),
            customer_id: self.customer.clone(),
            status,
            previous_status: None,
            items: self.items(),
            cancel_at_period_end,
            current_period_start: self.period.0,
            current_period_end: self.period.1,
            app_user_id: self.meta_user.clone(),
            subscription_created: T0,
            latest_invoice: None,
        };
        GeneratedEvent::render(evt.into(), &format!("customer.subscription.{kind}"), created, self.api, fact)
    }

    /// `checkout.session.completed` naming `client_reference_id` and/or `metadata.app_user_id`.
    pub fn checkout(
        &self,
        evt: &str,
        created: i64,
        client_ref: Option<&str>,
        app_user: Option<&str>,
    ) -> GeneratedEvent {
        let fact = EventFact::CheckoutCompleted {
            session_id: format!("cs_test_{}", self.id),
            subscription_id: self.id.clone(),
            customer_id: self.customer.clone(),
            client_reference_id: client_ref.map(Into::into),
            app_user_id: app_user.map(Into::into),
            invoice_id: format!("in_first_{}", self.id),
            amount: self.price.amount,
            email: "someone@example.co.uk".into(),
        };
        GeneratedEvent::render(evt.into(), "checkout.session.completed", created, self.api, fact)
    }

    /// `invoice.paid` or `invoice.payment_failed`.
    pub fn invoice(&self, evt: &str, created: i64, invoice: &str, paid: bool) -> GeneratedEvent {
        let fact = EventFact::Invoice {
            invoice_id: invoice.into(),
            subscription_id: self.id.clone(),
            customer_id: self.customer.clone(),
            paid,
            item: self.item(),
            amount: self.price.amount,
            billing_reason: "subscription_cycle".into(),
            attempt_count: 1,
            period_start: T0,
            period_end: T0 + 30 * DAY,
            app_user_id: self.meta_user.clone(),
        };
        let ty = if paid { "invoice.paid" } else { "invoice.payment_failed" };
        GeneratedEvent::render(evt.into(), ty, created, self.api, fact)
    }
}

/// Re-types a rendered event (e.g. `invoice.paid` → `invoice.payment_succeeded`).
pub fn retype(event: &GeneratedEvent, id: &str, event_type: &str) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&event.body).expect("json");
    v["id"] = json!(id);
    v["type"] = json!(event_type);
    serde_json::to_vec(&v).expect("json")
}

/// Runs `f` with a deadline, for clearer failures than the test-wide timeout.
pub async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f).await.expect("step timed out")
}
