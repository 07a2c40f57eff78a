//! Our client against the fake Stripe API: paging, filters, expansion, retries, faults.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use subsync_stripe_api::fake::{FakeFault, FakeStripe};
use subsync_stripe_api::{ApiError, EventsFilter, STRIPE_VERSION};

fn parse(raw: &serde_json::value::RawValue) -> Value {
    serde_json::from_str(raw.get()).expect("json")
}

fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Neither Display nor Debug of an error may carry the key's secret.
fn assert_no_key(error: &ApiError) {
    for shown in [error.to_string(), format!("{error:?}"), format!("{error:#?}")] {
        assert!(!shown.contains(SECRET_PART), "the key leaked: {shown}");
    }
}

#[tokio::test]
async fn pages_through_250_events_100_at_a_time() {
    let fake = FakeStripe::start(KEY);
    add_events(&fake, 250, true);
    let api = client(&fake);
    let mut pager = api.pages("/v1/events", EventsFilter::default().query().expect("query"));
    let pages = drain(&mut pager, 3).await.expect("pages");
    let sizes: Vec<usize> = pages.iter().map(|p| p.data.len()).collect();
    let got: Vec<Value> = pages.iter().flat_map(|p| p.data.iter().map(|raw| parse(raw))).collect();
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(got, fake.events(), "every event, newest first, ties by insertion");
    assert!(pager.next().await.expect("done").is_none());

    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].param("starting_after"), None);
    assert_eq!(requests[1].param("starting_after"), got[99]["id"].as_str());
    assert_eq!(requests[2].param("starting_after"), got[199]["id"].as_str());
    for request in &requests {
        assert_eq!((request.method.as_str(), request.path.as_str()), ("GET", "/v1/events"));
        assert_eq!(request.param("limit"), Some("100"));
        assert!(request.key_ok, "Authorization: Bearer <key>");
        assert_eq!(request.stripe_version.as_deref(), Some(STRIPE_VERSION));
        assert!(request.user_agent.as_deref().is_some_and(|ua| ua.starts_with("subsync/")), "{request:?}");
    }
}

#[tokio::test]
async fn created_and_types_filters() {
    let fake = FakeStripe::start(KEY);
    add_events(&fake, 60, false);
    let api = client(&fake);
    let filter = EventsFilter {
        types: vec!["customer.subscription.updated".into(), "customer.subscription.deleted".into()],
        created_gte: Some(BASE_CREATED + 10),
        created_lt: Some(BASE_CREATED + 40),
    };
    let mut pager = api.pages("/v1/events", filter.query().expect("query"));
    let got: Vec<Value> =
        drain(&mut pager, 1).await.expect("pages").iter().flat_map(|p| p.data.iter().map(|raw| parse(raw))).collect();
    let want: Vec<Value> = fake
        .events()
        .into_iter()
        .filter(|e| {
            let created = e["created"].as_i64().unwrap_or_default();
            filter.types.iter().any(|t| e["type"] == t.as_str())
                && (BASE_CREATED + 10..BASE_CREATED + 40).contains(&created)
        })
        .collect();
    assert_eq!(want.len(), 15);
    assert_eq!(got, want);

    // Stripe's own limit errors name the status and Stripe's message.
    let err = api.list_page("/v1/events", &query(&[("limit", "101")]), None).await.expect_err("limit 101");
    match &err {
        ApiError::Stripe { status: 400, message, .. } => {
            assert_eq!(message, "This value must be less than or equal to 100.")
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("HTTP 400"), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn retrieves_a_subscription_with_its_customer_and_stripes_date() {
    let fake = FakeStripe::start(KEY);
    add_subscriptions(&fake);
    fake.set_now(Some(1_760_000_123));
    let api = client(&fake);
    let fetched = api.subscription("sub_002").await.expect("subscription");
    assert_eq!(fetched.date, 1_760_000_123);
    assert!(fetched.request_id.as_deref().is_some_and(|r| r.starts_with("req_")));
    let mut want = fake.subscription("sub_002").expect("held");
    want["customer"] = fake.customer("cus_002").expect("held");
    assert_eq!(parse(&fetched.body), want);
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/v1/subscriptions/sub_002");
    assert_eq!(requests[0].query, query(&[("expand[]", "customer")]));

    let err = api.subscription("sub_999").await.expect_err("missing");
    assert!(
        matches!(&err, ApiError::NotFound { message, .. } if message == "No such subscription: 'sub_999'"),
        "{err:?}"
    );
    assert!(api.subscription("sub_1/../x").await.is_err(), "ids are checked before any request");
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn lists_subscriptions_by_status_with_customers_expanded() {
    let fake = FakeStripe::start(KEY);
    add_subscriptions(&fake);
    let api = client(&fake);
    let q = query(&[("status", "all"), ("expand[]", "data.customer"), ("limit", "2")]);
    let mut pager = api.pages("/v1/subscriptions", q);
    let got: Vec<Value> =
        drain(&mut pager, 3).await.expect("pages").iter().flat_map(|p| p.data.iter().map(|raw| parse(raw))).collect();
    assert_eq!(fake.requests().len(), 3);
    let want: Vec<Value> = fake
        .subscriptions()
        .into_iter()
        .map(|mut sub| {
            let customer = sub["customer"].as_str().unwrap_or_default().to_owned();
            sub["customer"] = fake.customer(&customer).expect("customer");
            sub
        })
        .collect();
    assert_eq!(got, want);

    let page = api.list_page("/v1/subscriptions", &[], None).await.expect("default listing");
    let statuses: Vec<Value> = page.data.iter().map(|raw| parse(raw)["status"].clone()).collect();
    assert_eq!(statuses, ["active", "past_due", "trialing", "active"], "no canceled or incomplete_expired by default");
    let page =
        api.list_page("/v1/checkout/sessions", &query(&[("subscription", "sub_002")]), None).await.expect("sessions");
    assert_eq!(page.data.len(), 1);
    assert_eq!(parse(&page.data[0])["client_reference_id"], "user_2");
}

#[tokio::test]
async fn a_429_storm_is_retried_until_it_passes() {
    let fake = FakeStripe::start(KEY);
    add_subscriptions(&fake);
    let api = client(&fake);
    for _ in 0..3 {
        fake.fail_next(FakeFault::Status { status: 429, should_retry: None });
    }
    api.subscription("sub_001").await.expect("fourth attempt succeeds");
    assert_eq!(fake.requests().len(), 4);

    fake.clear_requests();
    for _ in 0..5 {
        fake.fail_next(FakeFault::Status { status: 429, should_retry: None });
    }
    let err = api.subscription("sub_001").await.expect_err("max_retries 4: five attempts");
    assert!(matches!(err, ApiError::RateLimited { attempts: 5, .. }), "{err:?}");
    assert!(err.to_string().contains("HTTP 429") && err.to_string().contains("Request rate limit exceeded"), "{err}");
    assert!(err.is_retryable());
    assert_eq!(fake.requests().len(), 5);
    assert_no_key(&err);
}

#[tokio::test]
async fn stripe_should_retry_decides() {
    let fake = FakeStripe::start(KEY);
    add_subscriptions(&fake);
    let api = client(&fake);
    fake.fail_next(FakeFault::Status { status: 500, should_retry: Some(false) });
    let err = api.subscription("sub_001").await.expect_err("not retried");
    assert!(matches!(&err, ApiError::Stripe { status: 500, kind, .. } if kind == "api_error"), "{err:?}");
    assert_eq!(fake.requests().len(), 1);

    // `true` retries even a status we would not retry on our own.
    fake.clear_requests();
    fake.fail_next(FakeFault::Status { status: 400, should_retry: Some(true) });
    api.subscription("sub_001").await.expect("retried");
    assert_eq!(fake.requests().len(), 2);

    // 409 (lock timeout) and 502 are retried without advice; another 400 is not.
    fake.clear_requests();
    fake.fail_next(FakeFault::Status { status: 409, should_retry: None });
    fake.fail_next(FakeFault::Status { status: 502, should_retry: None });
    api.subscription("sub_001").await.expect("retried");
    assert_eq!(fake.requests().len(), 3);
    fake.clear_requests();
    fake.fail_next(FakeFault::Status { status: 400, should_retry: None });
    assert!(api.subscription("sub_001").await.is_err());
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_wrong_key_is_refused_once_and_never_shown() {
    let fake = FakeStripe::start(KEY);
    add_subscriptions(&fake);
    let wrong = "sk_test_51WrongSecretNeverShown9876";
    let api = client_with(&fake, |c| c.key = wrong.parse().expect("key"));
    fake.fail_after(0, FakeFault::Status { status: 401, should_retry: Some(true) });
    let err = api.subscription("sub_001").await.expect_err("refused");
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err:?}");
    assert_eq!(fake.requests().len(), 1, "a refused key is never retried, whatever the header says");

    let err = api.list_page("/v1/events", &[], None).await.expect_err("refused");
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err:?}");
    let shown = err.to_string();
    assert!(shown.contains("Stripe refused the API key") && shown.contains("sk_test_****9876"), "{shown}");
    assert!(!shown.contains("WrongSecret") && !format!("{err:?}").contains("WrongSecret"), "{shown}");
    assert!(!err.is_retryable());
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| !r.key_ok));
}

#[tokio::test]
async fn a_slow_answer_times_out_after_retries() {
    let fake = FakeStripe::start(KEY);
    add_subscriptions(&fake);
    let api = client_with(&fake, |c| {
        c.timeout = Duration::from_millis(300);
        c.max_retries = 2;
    });
    fake.fail_next(FakeFault::Delay(Duration::from_secs(3)));
    api.subscription("sub_001").await.expect("the retry is answered in time");
    assert_eq!(fake.requests().len(), 2);

    fake.clear_requests();
    for _ in 0..3 {
        fake.fail_next(FakeFault::Delay(Duration::from_secs(3)));
    }
    let err = api.subscription("sub_001").await.expect_err("always slow");
    assert!(matches!(err, ApiError::Timeout), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn an_api_that_is_down_fails_clearly_after_retries() {
    let fake = FakeStripe::start(KEY);
    add_subscriptions(&fake);
    let api = client(&fake);
    fake.set_down(true);
    let err = api.subscription("sub_001").await.expect_err("down");
    match &err {
        ApiError::Stripe { status: 503, message, .. } => assert!(message.contains("Service Unavailable"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.requests().len(), 5, "one attempt and four retries");
    assert_no_key(&err);
    fake.set_down(false);
    api.subscription("sub_001").await.expect("back up");

    // Nothing listening at all: a transport error, after the same retries.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let api = client_with(&fake, |c| c.base = format!("http://127.0.0.1:{port}"));
    let err = api.subscription("sub_001").await.expect_err("refused");
    assert!(matches!(err, ApiError::Transport(_)), "{err:?}");
    assert!(err.to_string().starts_with("cannot reach the Stripe API"), "{err}");
    assert!(err.is_retryable());
    assert_no_key(&err);
}

#[tokio::test]
async fn a_page_failing_midway_stops_the_pager_with_earlier_pages_delivered() {
    let fake = FakeStripe::start(KEY);
    add_events(&fake, 250, false);
    let api = client(&fake);
    fake.fail_after(1, FakeFault::Status { status: 500, should_retry: Some(false) });
    let mut pager = api.pages("/v1/events", EventsFilter::default().query().expect("query"));
    let first = pager.next().await.expect("first page").expect("some");
    assert_eq!(first.data.len(), 100);
    let err = pager.next().await.expect_err("second page fails");
    assert!(matches!(err, ApiError::Stripe { status: 500, .. }), "{err:?}");
    assert_eq!(
        pager.cursor(),
        first.data.last().map(|raw| parse(raw)["id"].as_str().unwrap_or_default().to_owned()).as_deref()
    );

    // The pager kept its place: asking again continues from the same cursor.
    let rest: usize = drain(&mut pager, 2).await.expect("pages").iter().map(|p| p.data.len()).sum();
    assert_eq!(rest, 150);
    let cursors: Vec<Option<String>> =
        fake.requests().iter().map(|r| r.param("starting_after").map(str::to_owned)).collect();
    assert_eq!(cursors[1], cursors[2], "the failed page was asked again from the same cursor");
}

#[tokio::test]
async fn the_key_never_shows_in_any_error() {
    let fake = FakeStripe::start(KEY);
    let api = client_with(&fake, |c| {
        c.max_retries = 1;
        c.timeout = Duration::from_millis(200);
    });
    let mut errors = Vec::new();
    for fault in [
        FakeFault::Status { status: 429, should_retry: Some(false) },
        FakeFault::Status { status: 500, should_retry: Some(false) },
        FakeFault::Status { status: 403, should_retry: None },
        FakeFault::Status { status: 404, should_retry: None },
    ] {
        fake.fail_next(fault);
        errors.push(api.subscription("sub_001").await.expect_err("fault"));
    }
    fake.fail_next(FakeFault::Delay(Duration::from_secs(2)));
    fake.fail_next(FakeFault::Delay(Duration::from_secs(2)));
    errors.push(api.get("/v1/customers/cus_001", &[]).await.expect_err("slow"));
    errors.push(api.get("/v1/customers/cus_404", &[]).await.expect_err("missing"));
    errors.push(api.get("/v1/nowhere", &[]).await.expect_err("unknown url"));
    let wrong = client_with(&fake, |c| c.key = format!("{KEY}x").parse().expect("key"));
    errors.push(wrong.get("/v1/customers/cus_001", &[]).await.expect_err("wrong key"));
    assert_eq!(errors.len(), 8);
    assert!(matches!(errors[2], ApiError::Unauthorized { .. }), "403: {:?}", errors[2]);
    for error in &errors {
        assert_no_key(error);
    }
    assert!(!format!("{api:?}").contains(SECRET_PART), "the client's Debug hides the key");
}

#[tokio::test]
async fn an_answer_that_is_not_a_list_is_a_decode_error() {
    let fake = FakeStripe::start(KEY);
    add_subscriptions(&fake);
    let api = client(&fake);
    let err = api.list_page("/v1/subscriptions/sub_001", &[], None).await.expect_err("an object, not a list");
    assert!(matches!(&err, ApiError::Decode(m) if m.contains("expected object \"list\"")), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(fake.requests().len(), 1, "a decode error is not retried");
}
