//! A local fake of the Stripe API for tests (feature `testing`).
//!
//! Why a fake: the reconcile, backfill and refetch paths must be tested without the
//! network, including Stripe's failures (429 storms, 5xx, slow answers, a wrong key).
//! It serves what subsync reads, with Stripe's semantics: `GET /v1/events` (newest
//! first, `limit`, `starting_after`, `ending_before`, `created[gt|gte|lt|lte]`,
//! `types[]`, `type` with `*`), `GET /v1/events/{id}`, `GET /v1/subscriptions` (`status`,
//! `customer`, `expand[]=data.customer`, …), `GET /v1/subscriptions/{id}`,
//! `GET /v1/customers/{id}`, `GET /v1/checkout/sessions` (`subscription`, `customer`) and
//! `GET /v1/checkout/sessions/{id}`. Lists are Stripe's `{"object":"list","data",
//! "has_more","url"}`, errors Stripe's `{"error":{…}}` body, and every answer has `Date`
//! and `Request-Id`. `tests/official_sdk.rs` proves the official Stripe SDKs
//! (Python and Node) read it.
//!
//! Unlike Stripe, the default subscription listing leaves out `incomplete_expired` as
//! well as `canceled` (both are `status=ended`); ask `status=all` for everything.

mod params;
mod server;
mod store;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use store::Collection;

/// A fault the fake applies to a coming request instead of (or before) answering it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeFault {
    /// Answer this status with Stripe's error body for it (429: the rate-limit error;
    /// 409: `lock_timeout`; 5xx: `api_error`), and `Stripe-Should-Retry` when given.
    Status {
        /// The HTTP status to answer.
        status: u16,
        /// The `Stripe-Should-Retry` header to send (`None`: no header).
        should_retry: Option<bool>,
    },
    /// Wait this long, then answer normally (a slow Stripe).
    Delay(Duration),
}

/// One request the fake received, for tests to assert retries, paging and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, …
    pub method: String,
    /// `/v1/events`, …
    pub path: String,
    /// The decoded query pairs, names as sent (`types[]`, `types[0]`, `created[gte]`).
    pub query: Vec<(String, String)>,
    /// Whether `Authorization: Bearer <the fake's key>` was sent.
    pub key_ok: bool,
    /// The `Stripe-Version` header, if sent.
    pub stripe_version: Option<String>,
    /// The `User-Agent` header, if sent.
    pub user_agent: Option<String>,
}

impl RecordedRequest {
    /// The value of query parameter `name` (the last one), if sent.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The objects the fake serves.
#[derive(Debug, Default)]
struct Data {
    next_seq: u64,
    events: Collection,
    subscriptions: Collection,
    customers: Collection,
    checkout_sessions: Collection,
    /// Prices, products, …: only for `expand[]`.
    others: Collection,
}

impl Data {
    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Any held object by id, for `expand[]`.
    fn lookup(&self, id: &str) -> Option<Value> {
        [&self.customers, &self.subscriptions, &self.checkout_sessions, &self.others, &self.events]
            .into_iter()
            .find_map(|c| c.get(id).cloned())
    }
}

/// State shared by the handle and the server task.
struct Shared {
    key: String,
    data: Mutex<Data>,
    faults: Mutex<VecDeque<(usize, FakeFault)>>,
    requests: Mutex<Vec<RecordedRequest>>,
    down: AtomicBool,
    now: Mutex<Option<i64>>,
    next_request: AtomicU64,
    latency: Mutex<Option<Duration>>,
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn lock_data(&self) -> MutexGuard<'_, Data> {
        lock(&self.data)
    }

    fn lock_requests(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        lock(&self.requests)
    }

    /// The fault for this request, if one is due (others wait their turn).
    fn take_fault(&self) -> Option<FakeFault> {
        let mut faults = lock(&self.faults);
        let (skip, _) = faults.front_mut()?;
        if *skip > 0 {
            *skip -= 1;
            return None;
        }
        faults.pop_front().map(|(_, fault)| fault)
    }

    /// The fake's clock for `Date`: `set_now`, else the wall clock.
    fn now(&self) -> i64 {
        lock(&self.now).unwrap_or_else(|| chrono::Utc::now().timestamp())
    }
}

/// A running fake Stripe API on `127.0.0.1` (a random port); stops when dropped.
pub struct FakeStripe {
    shared: Arc<Shared>,
    url: String,
    server: tokio::task::JoinHandle<()>,
}

impl FakeStripe {
    /// Starts serving, accepting only `Authorization: Bearer <key>`. Must be called
    /// inside a tokio runtime (the server is a task of it).
    pub fn start(key: &str) -> FakeStripe {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("fake Stripe: bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("fake Stripe: non-blocking listener");
        let url = format!("http://{}", listener.local_addr().expect("fake Stripe: local address"));
        let listener = tokio::net::TcpListener::from_std(listener).expect("fake Stripe: needs a tokio runtime");
        let shared = Arc::new(Shared {
            key: key.to_owned(),
            data: Mutex::new(Data::default()),
            faults: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            down: AtomicBool::new(false),
            now: Mutex::new(None),
            next_request: AtomicU64::new(1),
            latency: Mutex::new(None),
            in_flight: Default::default(),
            max_in_flight: Default::default(),
        });
        let app = axum::Router::new().fallback(server::handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "fake Stripe server stopped");
            }
        });
        FakeStripe { shared, url, server }
    }

    /// The base URL (`http://127.0.0.1:PORT`), for `ApiConfig::base`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The one key the fake accepts.
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// Adds (or replaces by id, keeping its place) an event; it needs `id`, `type`, `created`.
    pub fn add_event(&self, event: Value) {
        let mut data = self.shared.lock_data();
        let seq = data.seq();
        data.events.put(event, seq, true);
    }

    /// Forgets an event (Stripe keeps events 30 days); says whether it was there.
    pub fn remove_event(&self, id: &str) -> bool {
        self.shared.lock_data().events.remove(id)
    }

    /// Inserts or replaces a subscription by id, keeping a replaced one's list position.
    pub fn put_subscription(&self, subscription: Value) {
        let mut data = self.shared.lock_data();
        let seq = data.seq();
        data.subscriptions.put(subscription, seq, true);
    }

    /// Inserts or replaces a subscription by id, listed as the newest inserted among
    /// those with the same `created`.
    pub fn put_subscription_moved(&self, subscription: Value) {
        let mut data = self.shared.lock_data();
        let seq = data.seq();
        data.subscriptions.put(subscription, seq, false);
    }

    /// Forgets a subscription; says whether it was there.
    pub fn remove_subscription(&self, id: &str) -> bool {
        self.shared.lock_data().subscriptions.remove(id)
    }

    /// Inserts or replaces a customer by id.
    pub fn put_customer(&self, customer: Value) {
        let mut data = self.shared.lock_data();
        let seq = data.seq();
        data.customers.put(customer, seq, true);
    }

    /// Forgets a customer; says whether it was there.
    pub fn remove_customer(&self, id: &str) -> bool {
        self.shared.lock_data().customers.remove(id)
    }

    /// Inserts or replaces a Checkout Session by id.
    pub fn put_checkout_session(&self, session: Value) {
        let mut data = self.shared.lock_data();
        let seq = data.seq();
        data.checkout_sessions.put(session, seq, true);
    }

    /// Holds any other object (a price, a product) so `expand[]` can find it.
    pub fn put_object(&self, object: Value) {
        let mut data = self.shared.lock_data();
        let seq = data.seq();
        data.others.put(object, seq, true);
    }

    /// The subscription as the fake holds it (unexpanded).
    pub fn subscription(&self, id: &str) -> Option<Value> {
        self.shared.lock_data().subscriptions.get(id).cloned()
    }

    /// The customer as the fake holds it.
    pub fn customer(&self, id: &str) -> Option<Value> {
        self.shared.lock_data().customers.get(id).cloned()
    }

    /// Every event, in Stripe's list order (newest first).
    pub fn events(&self) -> Vec<Value> {
        self.shared.lock_data().events.sorted().into_iter().map(|item| item.value.clone()).collect()
    }

    /// Every subscription, in Stripe's list order (newest first), whatever its status.
    pub fn subscriptions(&self) -> Vec<Value> {
        self.shared.lock_data().subscriptions.sorted().into_iter().map(|item| item.value.clone()).collect()
    }

    /// Fixes the clock of the `Date` header (`None`: the wall clock).
    pub fn set_now(&self, now: Option<i64>) {
        *lock(&self.shared.now) = now;
    }

    /// While down, every request (recorded first) is answered `503` with an HTML body,
    /// as a load balancer in front of a down service would: not Stripe's error shape.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Applies `fault` to the next request (after faults queued before it).
    pub fn fail_next(&self, fault: FakeFault) {
        self.fail_after(0, fault);
    }

    /// Lets `ok_requests` requests through, then applies `fault` to the next one
    /// (counting starts once the faults queued before it are spent).
    pub fn fail_after(&self, ok_requests: usize, fault: FakeFault) {
        lock(&self.shared.faults).push_back((ok_requests, fault));
    }

    /// How many queued faults have not been applied yet.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults).len()
    }

    /// Delays every answer by `latency` (a slow Stripe for a whole test, unlike a one-off
    /// [`FakeFault::Delay`]).
    pub fn set_latency(&self, latency: Option<Duration>) {
        *lock(&self.shared.latency) = latency;
    }

    /// The most requests the fake was answering at once so far: whether callers that must
    /// take turns (one reconcile run at a time) really did.
    pub fn max_concurrent_requests(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock_requests().clone()
    }

    /// Forgets the recorded requests (between phases of a test).
    pub fn clear_requests(&self) {
        self.shared.lock_requests().clear();
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl std::fmt::Debug for FakeStripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeStripe").field("url", &self.url).finish_non_exhaustive()
    }
}
