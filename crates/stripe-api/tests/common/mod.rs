//! Data and clients shared by this crate's integration tests.
#![allow(dead_code)] // each test file uses part of it

use std::time::Duration;

use serde_json::{Value, json};
use subsync_stripe_api::fake::FakeStripe;
use subsync_stripe_api::{ApiConfig, ApiError, Page, Pager, StripeApi};

/// The fake's key. Its secret part must never show in an error.
pub const KEY: &str = "sk_test_51FakeSecretNeverShown4242";
pub const SECRET_PART: &str = "51FakeSecretNeverShown";
pub const BASE_CREATED: i64 = 1_750_000_000;
pub const TYPES: [&str; 4] =
    ["customer.subscription.created", "customer.subscription.updated", "invoice.paid", "customer.subscription.deleted"];

/// A client for the fake, quick to retry (1 ms backoff) and not rate limited in practice.
pub fn client(fake: &FakeStripe) -> StripeApi {
    client_with(fake, |_| {})
}

pub fn client_with(fake: &FakeStripe, tune: impl FnOnce(&mut ApiConfig)) -> StripeApi {
    let mut config = ApiConfig::new(fake.key().parse().expect("key"));
    config.base = fake.url().to_owned();
    config.backoff = Duration::from_millis(1);
    config.requests_per_second = 10_000;
    config.timeout = Duration::from_secs(10);
    tune(&mut config);
    StripeApi::new(config).expect("client")
}

/// An event shaped like Stripe's (a snapshot event of a subscription).
pub fn event(i: usize, kind: &str, created: i64) -> Value {
    json!({
        "id": format!("evt_{i:05}"),
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": created,
        "data": {"object": {"id": format!("sub_{:03}", i % 7), "object": "subscription", "status": "active", "customer": "cus_001"}},
        "livemode": false,
        "pending_webhooks": 0,
        "request": {"id": null, "idempotency_key": null},
        "type": kind
    })
}

/// `n` events of the four [`TYPES`] in turn, `created` one second apart (some sharing a
/// second when `shared_seconds`).
pub fn add_events(fake: &FakeStripe, n: usize, shared_seconds: bool) {
    for i in 0..n {
        let created = if shared_seconds { BASE_CREATED + (i / 3) as i64 } else { BASE_CREATED + i as i64 };
        fake.add_event(event(i, TYPES[i % TYPES.len()], created));
    }
}

pub fn customer(n: usize) -> Value {
    json!({
        "id": format!("cus_{n:03}"),
        "object": "customer",
        "created": BASE_CREATED - 1000 + n as i64,
        "email": format!("user{n}@example.com"),
        "livemode": false,
        "metadata": {"user_id": format!("user_{n}")}
    })
}

pub fn subscription(n: usize, status: &str, customer: usize) -> Value {
    json!({
        "id": format!("sub_{n:03}"),
        "object": "subscription",
        "created": BASE_CREATED + 10 * n as i64,
        "customer": format!("cus_{customer:03}"),
        "status": status,
        "livemode": false,
        "metadata": {},
        "items": {
            "object": "list",
            "data": [{
                "id": format!("si_{n:03}"),
                "object": "subscription_item",
                "price": {"id": "price_pro", "object": "price", "lookup_key": "pro_monthly", "product": "prod_pro"},
                "quantity": 1,
                "current_period_start": BASE_CREATED,
                "current_period_end": BASE_CREATED + 2_592_000
            }],
            "has_more": false,
            "url": format!("/v1/subscription_items?subscription=sub_{n:03}")
        }
    })
}

/// Three customers, six subscriptions of several statuses (two ended), two Checkout Sessions.
pub fn add_subscriptions(fake: &FakeStripe) {
    for n in 1..=3 {
        fake.put_customer(customer(n));
    }
    let statuses = ["active", "trialing", "past_due", "canceled", "incomplete_expired", "active"];
    for (i, status) in statuses.iter().enumerate() {
        fake.put_subscription(subscription(i + 1, status, i % 3 + 1));
    }
    for n in 1..=2 {
        fake.put_checkout_session(json!({
            "id": format!("cs_test_{n:03}"),
            "object": "checkout.session",
            "created": BASE_CREATED + n as i64,
            "customer": format!("cus_{n:03}"),
            "subscription": format!("sub_{n:03}"),
            "client_reference_id": format!("user_{n}"),
            "mode": "subscription",
            "status": "complete"
        }));
    }
}

pub fn ids(values: &[Value]) -> Vec<String> {
    values.iter().map(|v| v["id"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Every remaining page of `pager`, failing the test beyond `max_pages` (a pager that
/// never ends is a bug, not a hang).
pub async fn drain(pager: &mut Pager, max_pages: usize) -> Result<Vec<Page>, ApiError> {
    let mut pages = Vec::new();
    while let Some(page) = pager.next().await? {
        pages.push(page);
        assert!(pages.len() <= max_pages, "more than {max_pages} pages");
    }
    Ok(pages)
}
