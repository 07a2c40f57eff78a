//! Stripe's API side through the real `subsync` binary against the local Stripe API
//! (`subsync_stripe_api::fake`), on SQLite and PostgreSQL: `reconcile` (and `status`),
//! `backfill`, their errors, and `serve` catching up on its own schedule and applying a thin
//! event by fetching its subscription.

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use subsync_queue::{JobFilter, both_backends};
use subsync_stripe_api::fake::FakeStripe;

use common::{Backend, SECRET, Server, TestDb, binary, event, now, post, sign};

const KEY: &str = "rk_test_51BinaryTestsReadOnly000";

both_backends!(180;
    reconcile_backfill_and_status_from_the_command_line,
    a_missing_or_wrong_key_is_a_clear_error,
    serve_catches_up_on_schedule_and_applies_thin_events,
    two_workers_take_turns_at_the_reconcile_duty,
);

async fn subsync(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(binary());
    cmd.args(args).env("DATABASE_URL", &db.url).env("RUST_LOG", "error").env_remove("STRIPE_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("in time").expect("run")
}

fn stdout_json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn subscription(id: &str, customer: &str, user: &str) -> Value {
    json!({
        "id": id, "object": "subscription", "customer": customer, "status": "active",
        "cancel_at_period_end": false, "metadata": {"app_user_id": user}, "livemode": false,
        "items": {"object": "list", "data": [{"id": format!("si_{id}"), "object": "subscription_item",
            "current_period_end": now() + 30 * 86_400,
            "price": {"id": "price_pro", "object": "price", "lookup_key": "pro_monthly"}}]}
    })
}

fn with_fake(fake: &FakeStripe) -> [(&'static str, String); 2] {
    [("STRIPE_API_KEY", KEY.to_owned()), ("STRIPE_API_BASE", fake.url().to_owned())]
}

async fn reconcile_backfill_and_status_from_the_command_line(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    assert!(subsync(&db, &["migrate"], &[]).await.status.success());
    let fake = FakeStripe::start(KEY);
    for i in 0..5 {
        let sub = subscription(&format!("sub_cli{i}"), "cus_cli", &format!("usr_cli{i}"));
        let body: Value =
            serde_json::from_slice(&event(&format!("evt_cli{i}"), "customer.subscription.updated", sub.clone()))
                .unwrap();
        fake.add_event(body);
        fake.put_subscription(sub);
    }
    fake.put_customer(json!({"id": "cus_cli", "object": "customer", "metadata": {}}));
    let env = with_fake(&fake);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let dry = stdout_json(&subsync(&db, &["reconcile", "--since", "1d", "--dry-run", "--json"], &env).await);
    assert_eq!((dry["new"].as_u64(), dry["dry_run"].as_bool()), (Some(5), Some(true)), "{dry}");
    let first = stdout_json(&subsync(&db, &["reconcile", "--since", "1d", "--json"], &env).await);
    assert_eq!((first["listed"].as_u64(), first["new"].as_u64()), (Some(5), Some(5)), "{first}");
    assert!(first["high_water_mark"].as_i64().is_some(), "{first}");
    let second = stdout_json(&subsync(&db, &["reconcile", "--json"], &env).await);
    assert_eq!((second["new"].as_u64(), second["already_stored"].as_u64()), (Some(0), Some(5)), "{second}");
    let text = subsync(&db, &["reconcile"], &env).await;
    assert!(String::from_utf8_lossy(&text.stdout).contains("high-water mark"), "{text:?}");

    let status = stdout_json(&subsync(&db, &["reconcile", "status", "--json"], &[]).await);
    let reconcile =
        status.as_array().unwrap().iter().find(|d| d["name"] == "reconcile").expect("reconcile row").clone();
    assert_eq!((reconcile["runs"].as_i64(), reconcile["last_ok"].as_bool()), (Some(3), Some(true)), "{reconcile}");
    assert!(reconcile["last_runner"].as_str().unwrap_or("").starts_with("cli:"), "{reconcile}");

    let backfill = stdout_json(&subsync(&db, &["backfill", "--json"], &env).await);
    assert_eq!((backfill["listed"].as_u64(), backfill["new"].as_u64()), (Some(5), Some(5)), "{backfill}");
    let again = stdout_json(&subsync(&db, &["backfill", "--json"], &env).await);
    assert_eq!((again["new"].as_u64(), again["unchanged"].as_u64()), (Some(0), Some(5)), "{again}");
    let store = db.store.clone();
    assert_eq!(store.count(&JobFilter::default()).await.unwrap(), 10, "5 events and 5 snapshots, once each");
    db.close().await;
}

async fn a_missing_or_wrong_key_is_a_clear_error(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    assert!(subsync(&db, &["migrate"], &[]).await.status.success());
    let out = subsync(&db, &["reconcile"], &[]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("STRIPE_API_KEY") && err.contains("restricted key"), "{err}");

    let fake = FakeStripe::start(KEY);
    let wrong = [("STRIPE_API_KEY", "rk_test_51WrongWrongWrong00000"), ("STRIPE_API_BASE", fake.url())];
    let out = subsync(&db, &["backfill"], &wrong).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401") && err.contains("check STRIPE_API_KEY"), "{err}");
    assert!(!err.contains("WrongWrongWrong"), "the key is never printed: {err}");

    let out = subsync(&db, &["reconcile"], &[("STRIPE_API_KEY", "pk_live_nope")]).await;
    assert_eq!(out.status.code(), Some(2), "clap refuses a publishable key");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("nope"), "{out:?}");
    let out = subsync(&db, &["worker", "--refetch", "always"], &[]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("STRIPE_API_KEY"), "{out:?}");
    db.close().await;
}

async fn entitlement_tier(db: &TestDb, user: &str) -> Option<String> {
    subsync_worker::entitlements::get(&db.store, user).await.expect("read").map(|e| e.tier)
}

async fn serve_catches_up_on_schedule_and_applies_thin_events(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let fake = FakeStripe::start(KEY);
    // An event Stripe never delivered, and a subscription only a thin event will name.
    let missed = subscription("sub_missed", "cus_m", "usr_missed");
    fake.add_event(serde_json::from_slice(&event("evt_missed", "customer.subscription.created", missed)).unwrap());
    fake.put_subscription(subscription("sub_thin", "cus_t", "usr_thin"));
    fake.put_customer(json!({"id": "cus_t", "object": "customer", "metadata": {}}));
    let server = Server::start(
        &["serve"],
        &[
            ("DATABASE_URL", db.url.clone()),
            ("STRIPE_WEBHOOK_SECRET", SECRET.to_owned()),
            ("STRIPE_API_KEY", KEY.to_owned()),
            ("STRIPE_API_BASE", fake.url().to_owned()),
            ("SUBSYNC_RECONCILE_EVERY", "1s".to_owned()),
        ],
    )
    .await;
    let thin = serde_json::to_vec(&json!({
        "id": "evt_thin_1", "object": "v2.core.event", "type": "v1.customer.subscription.updated",
        "livemode": false, "created": "2026-12-01T10:00:00.123Z",
        "related_object": {"id": "sub_thin", "type": "subscription", "url": "/v1/subscriptions/sub_thin"}
    }))
    .unwrap();
    let client = reqwest::Client::new();
    let (status, _) = post(&client, &server.base, Some(&sign(SECRET, now(), &thin)), thin).await;
    assert_eq!(status, 200);
    // The duty records its run after committing what it found, and the worker can apply
    // the missed event before that: wait for both.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let missed = entitlement_tier(&db, "usr_missed").await;
        let thin = entitlement_tier(&db, "usr_thin").await;
        let runs = subsync_duties::store::get(&db.store, "reconcile").await.unwrap();
        let recorded = runs.as_ref().is_some_and(|r| r.runs >= 1 && r.last_ok == Some(true));
        if missed.as_deref() == Some("pro") && thin.as_deref() == Some("pro") && recorded {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "missed: {missed:?}, thin: {thin:?}, duty: {runs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fake.requests().iter().any(|r| r.path == "/v1/subscriptions/sub_thin"), "the thin event was fetched");
    server.stop().await;
    db.close().await;
}

async fn two_workers_take_turns_at_the_reconcile_duty(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    assert!(subsync(&db, &["migrate"], &[]).await.status.success());
    let fake = FakeStripe::start(KEY);
    for i in 0..250 {
        let sub = subscription(&format!("sub_w{}", i % 20), "cus_w", &format!("usr_w{}", i % 20));
        fake.add_event(
            serde_json::from_slice(&event(&format!("evt_w{i:03}"), "customer.subscription.updated", sub)).unwrap(),
        );
    }
    // A slow Stripe: each run takes about a second (3 pages), longer than the interval.
    fake.set_latency(Some(Duration::from_millis(300)));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let mut cmd = tokio::process::Command::new(binary());
        cmd.args(["worker", "--reconcile-every", "1s", "--no-migrate"])
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
            .env("STRIPE_API_KEY", KEY)
            .env("STRIPE_API_BASE", fake.url())
            .kill_on_drop(true);
        workers.push(cmd.spawn().expect("spawn worker"));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let duty = subsync_duties::store::get(&db.store, "reconcile").await.unwrap();
        if duty.as_ref().is_some_and(|d| d.runs >= 3) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "reconcile did not run three times: {duty:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for mut w in workers {
        let _ = w.start_kill();
        let _ = w.wait().await;
    }
    assert_eq!(fake.max_concurrent_requests(), 1, "two reconcile runs overlapped");
    let duty = subsync_duties::store::get(&db.store, "reconcile").await.unwrap().expect("row");
    assert_eq!(duty.failures, 0, "{duty:?}");
    assert_eq!(db.store.count(&JobFilter::default()).await.unwrap(), 250, "every event once, however many runs");
    db.close().await;
}
