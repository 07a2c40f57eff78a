//! Fidelity of the fake Stripe API, checked by Stripe's OFFICIAL SDKs (stripe-python and
//! stripe-node, pinned in `tests/official-stripe/`): pointed at the fake, each official
//! client lists and auto-pages events and subscriptions, filters,
//! expands, retrieves, recognizes a wrong key and retries a 429 Stripe asks it to retry,
//! and reads back exactly the objects the fake holds. A fake the official client cannot
//! read is a wrong fake.
//!
//! Requires `bash tests/official-stripe/install.sh` to have been run. If python3, node or
//! a pinned package is missing these tests FAIL (never skip), saying so.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use subsync_stripe_api::fake::{FakeFault, FakeStripe};

const INSTALL_HINT: &str = "run `bash tests/official-stripe/install.sh` from the workspace root";
/// One SDK run may not take longer than this (either starts in about a second).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/official-stripe")
}

/// One official SDK and what it calls things.
#[derive(Clone, Copy)]
struct Sdk {
    program: &'static str,
    script: &'static str,
    /// The pin: file, and the text before and after the version on its line.
    pin: (&'static str, &'static str, &'static str),
    /// The SDK's names for a refused key, a rate limit, a server error.
    errors: [&'static str; 3],
    /// In the SDK's `User-Agent`.
    user_agent: &'static str,
}

const PYTHON: Sdk = Sdk {
    program: "python3",
    script: "fake_api.py",
    pin: ("requirements.txt", "stripe==", "#"),
    errors: ["AuthenticationError", "RateLimitError", "APIError"],
    user_agent: "PythonBindings",
};

const NODE: Sdk = Sdk {
    program: "node",
    script: "fake_api.js",
    pin: ("package.json", "\"stripe\": \"", "\""),
    errors: ["StripeAuthenticationError", "StripeRateLimitError", "StripeAPIError"],
    user_agent: "NodeBindings",
};

/// Runs `<program> <script> <args>` with `stdin`, bounded by [`CALL_TIMEOUT`]; returns stdout.
fn run(sdk: Sdk, args: Vec<String>, stdin: Vec<u8>) -> String {
    let Sdk { program, script, .. } = sdk;
    let mut child = Command::new(program)
        .arg(script)
        .args(&args)
        .current_dir(dir())
        // The fake is on loopback: never through a proxy from the environment.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program} ({e}); {INSTALL_HINT}"));
    let mut input = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin); // dropped afterwards: EOF
    });
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CALL_TIMEOUT;
    let status = loop {
        match child.try_wait().expect("wait for the SDK") {
            Some(status) => break status,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{program} {script} {args:?}` did not finish within {CALL_TIMEOUT:?}");
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let _ = writer.join();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if matches!(status.code(), Some(2) | Some(3)) {
        panic!("`{program} {script}` failed (exit {status}): {stderr}\n{INSTALL_HINT}");
    }
    assert!(status.success(), "`{program} {script} {}` failed ({status}):\n{stderr}", args.first().map_or("", |a| a));
    stdout.trim().to_owned()
}

/// Runs the SDK off the runtime's threads (the fake keeps serving meanwhile), parses its JSON.
async fn call(sdk: Sdk, args: &[&str], stdin: Value) -> Value {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let stdin = serde_json::to_vec(&stdin).expect("stdin");
    let out = tokio::task::spawn_blocking(move || run(sdk, args, stdin)).await.expect("SDK task");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{} printed no JSON ({e}): {out}", sdk.script))
}

/// Fails (never skips) unless the SDK is installed at the pinned version.
fn preflight(sdk: Sdk) {
    let (file, before, after) = sdk.pin;
    let text = std::fs::read_to_string(dir().join(file))
        .unwrap_or_else(|e| panic!("cannot read tests/official-stripe/{file}: {e}"));
    let pin = text
        .lines()
        .find_map(|line| Some(line.split_once(before)?.1.split(after).next()?.trim().to_owned()))
        .unwrap_or_else(|| panic!("no stripe pin in tests/official-stripe/{file}"));
    let found = run(sdk, vec!["version".into()], Vec::new());
    assert_eq!(found, pin, "{}: stripe {pin} is not installed (found {found:?}); {INSTALL_HINT}", sdk.program);
}

fn with_customer(fake: &FakeStripe, mut sub: Value) -> Value {
    let id = sub["customer"].as_str().unwrap_or_default().to_owned();
    sub["customer"] = fake.customer(&id).expect("customer held");
    sub
}

fn strs(value: &Value) -> Vec<String> {
    value.as_array().expect("array").iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect()
}

async fn reads_the_fake(sdk: Sdk) {
    preflight(sdk);
    let fake = FakeStripe::start(KEY);
    add_events(&fake, 25, false);
    add_subscriptions(&fake);
    let events = fake.events();
    let types = ["customer.subscription.updated", "invoice.paid"];
    let (gte, lt) = (BASE_CREATED + 4, BASE_CREATED + 21);
    let oldest_but_five = events[events.len() - 6]["id"].as_str().expect("id").to_owned();
    let params = json!({
        "types": types, "created_gte": gte, "created_lt": lt,
        "event": "evt_00007", "subscription": "sub_002", "customer": "cus_003",
        "ending_before": oldest_but_five,
    });
    let out = call(sdk, &["read", fake.url(), KEY], params).await;

    // Stripe's list shape, and every event through the SDK's auto-paging, 3 at a time.
    let first = &out["events_first_page"];
    assert_eq!(strs(&first["ids"]), ids(&events[..3]));
    assert_eq!(
        (&first["has_more"], &first["url"], &first["object"]),
        (&json!(true), &json!("/v1/events"), &json!("list"))
    );
    assert_eq!(out["events_all"], Value::Array(events.clone()), "same ids, same order, same contents");
    let filtered: Vec<Value> = events
        .iter()
        .filter(|e| types.contains(&e["type"].as_str().unwrap_or_default()))
        .filter(|e| (gte..lt).contains(&e["created"].as_i64().unwrap_or_default()))
        .cloned()
        .collect();
    assert_eq!(filtered.len(), 8);
    assert_eq!(strs(&out["events_filtered"]), ids(&filtered));
    let wildcard: Vec<Value> = events
        .iter()
        .filter(|e| e["type"].as_str().is_some_and(|t| t.starts_with("customer.subscription.")))
        .cloned()
        .collect();
    assert_eq!(strs(&out["events_wildcard"]), ids(&wildcard));
    let mut newer = ids(&events[..events.len() - 6]);
    newer.reverse();
    assert_eq!(strs(&out["events_newer_than"]), newer, "ending_before pages, walked backwards by the SDK");
    assert_eq!(out["event"], events.iter().find(|e| e["id"] == "evt_00007").cloned().expect("event"));

    // Subscriptions: every status, customers expanded, 2 a page; the default listing.
    let subs: Vec<Value> = fake.subscriptions().into_iter().map(|s| with_customer(&fake, s)).collect();
    assert_eq!(out["subscriptions_all"], Value::Array(subs));
    let live: Vec<Value> = fake
        .subscriptions()
        .into_iter()
        .filter(|s| !matches!(s["status"].as_str(), Some("canceled" | "incomplete_expired")))
        .collect();
    assert_eq!(strs(&out["subscriptions_default"]), ids(&live));
    let sub = with_customer(&fake, fake.subscription("sub_002").expect("sub"));
    assert_eq!(out["subscription"], sub);
    if sdk.program == "python3" {
        assert_eq!(out["subscription_customer_class"], "Customer", "the SDK typed the expanded customer");
    }
    assert_eq!(out["customer"], fake.customer("cus_003").expect("customer"));
    let sessions = out["checkout_sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["subscription"], "sub_002");
    assert_eq!(
        out["missing"],
        json!({"http_status": 404, "code": "resource_missing", "message": "No such subscription: 'sub_missing'"})
    );

    // What the SDK sent, as the fake saw it.
    let requests = fake.requests();
    assert!(requests.iter().all(|r| r.key_ok && r.stripe_version.is_some()), "{requests:?}");
    assert!(requests.iter().any(|r| r.param("types[0]").is_some()), "the SDK's indexed array form was understood");
    assert!(
        requests.iter().all(|r| r.user_agent.as_deref().is_some_and(|ua| ua.contains(sdk.user_agent))),
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_reads_the_fake() {
    reads_the_fake(PYTHON).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_sdk_reads_the_fake() {
    reads_the_fake(NODE).await;
}

async fn sees_a_wrong_key_as_an_authentication_error(sdk: Sdk) {
    preflight(sdk);
    let fake = FakeStripe::start(KEY);
    add_events(&fake, 3, false);
    let out = call(sdk, &["wrong-key", fake.url(), "sk_test_51NotTheFakesKey0000"], json!(null)).await;
    assert_eq!(out["error"], sdk.errors[0], "{out}");
    assert_eq!(out["http_status"], 401);
    assert_eq!(out["message"], "Invalid API Key provided: sk_test_****0000");
    assert_eq!(fake.requests().len(), 1, "the SDK does not retry a refused key either");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_sees_a_wrong_key_as_an_authentication_error() {
    sees_a_wrong_key_as_an_authentication_error(PYTHON).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_sdk_sees_a_wrong_key_as_an_authentication_error() {
    sees_a_wrong_key_as_an_authentication_error(NODE).await;
}

async fn retries_as_stripe_should_retry_says(sdk: Sdk) {
    preflight(sdk);
    let fake = FakeStripe::start(KEY);
    add_subscriptions(&fake);

    fake.fail_next(FakeFault::Status { status: 429, should_retry: Some(true) });
    let out = call(sdk, &["retry", fake.url(), KEY, "sub_001", "2"], json!(null)).await;
    assert_eq!(out, json!({"id": "sub_001"}));
    assert_eq!(fake.requests().len(), 2, "one 429, one retry");

    fake.clear_requests();
    fake.fail_next(FakeFault::Status { status: 429, should_retry: None });
    let out = call(sdk, &["retry", fake.url(), KEY, "sub_001", "0"], json!(null)).await;
    assert_eq!((&out["error"], &out["http_status"]), (&json!(sdk.errors[1]), &json!(429)), "{out}");
    assert!(out["message"].as_str().is_some_and(|m| m.starts_with("Request rate limit exceeded")), "{out}");
    assert_eq!(fake.requests().len(), 1);

    fake.clear_requests();
    fake.fail_next(FakeFault::Status { status: 500, should_retry: Some(false) });
    let out = call(sdk, &["retry", fake.url(), KEY, "sub_001", "2"], json!(null)).await;
    assert_eq!((&out["error"], &out["http_status"]), (&json!(sdk.errors[2]), &json!(500)), "{out}");
    assert_eq!(fake.requests().len(), 1, "Stripe-Should-Retry: false is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_retries_as_stripe_should_retry_says() {
    retries_as_stripe_should_retry_says(PYTHON).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_sdk_retries_as_stripe_should_retry_says() {
    retries_as_stripe_should_retry_says(NODE).await;
}
