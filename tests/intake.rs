//! The webhook intake, as Stripe sees it: the real `subsync intake` binary, real HTTP, real
//! SQLite and PostgreSQL. Every scenario runs on both backends.

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use std::time::Duration;

use common::{Backend, SECRET, Server, TestDb, ViaProxy, event, now, post, sign, subscription_event};
use serde_json::json;
use subsync_queue::both_backends;

both_backends!(
    stores_once_and_answers_duplicates_with_the_first_job,
    every_signature_failure_has_its_own_code_and_stores_nothing,
    secret_roll_and_whitespace_in_config,
    bad_bodies_are_refused_and_store_nothing,
    fifty_concurrent_duplicates_make_one_job,
    mixed_concurrent_traffic_is_stored_once_per_event,
    routes_events_to_their_subscription,
    unhandled_and_thin_events_are_stored_but_not_queued,
    database_unavailable_means_503_and_nothing_lost,
    health_readiness_and_metrics,
);

async fn intake(db: &TestDb, extra: &[(&str, String)]) -> Server {
    let mut env = vec![
        ("DATABASE_URL", db.url.clone()),
        ("STRIPE_WEBHOOK_SECRET", SECRET.to_string()),
        ("SUBSYNC_DB_TIMEOUT", "1".to_string()),
    ];
    env.extend(extra.iter().cloned());
    Server::start(&["intake"], &env).await
}

async fn stores_once_and_answers_duplicates_with_the_first_job(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let server = intake(&db, &[]).await;
    let client = reqwest::Client::new();
    let body = subscription_event("evt_once", "sub_once");
    let (status, first) = post(&client, &server.base, Some(&sign(SECRET, now(), &body)), body.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["received"], true);
    assert_eq!(first["duplicate"], false);
    let job_id = first["job_id"].as_str().expect("job id").to_string();
    // A late redelivery (new signature, same event) is answered with the first job.
    let (status, again) = post(&client, &server.base, Some(&sign(SECRET, now(), &body)), body).await;
    assert_eq!(status, 200);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["job_id"], job_id.as_str());
    assert_eq!(db.count("subsync_events", "").await, 1);
    assert_eq!(db.count("subsync_jobs", "").await, 1);
    // Stored as received, byte for byte, with its group.
    let group = db.text("SELECT group_key FROM subsync_jobs").await;
    assert_eq!(group.as_deref(), Some("sub_once"));
    server.stop().await;
    db.close().await;
}

async fn every_signature_failure_has_its_own_code_and_stores_nothing(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let server = intake(&db, &[]).await;
    let client = reqwest::Client::new();
    let body = subscription_event("evt_sig", "sub_sig");
    let t = now();
    let good = sign(SECRET, t, &body);
    let v1 = good.split("v1=").nth(1).expect("v1").to_string();
    let cases: Vec<(&str, Option<String>, Vec<u8>)> = vec![
        ("missing_signature_header", None, body.clone()),
        ("malformed_signature_header", Some("garbage".into()), body.clone()),
        ("malformed_signature_header", Some(format!("v1={v1}")), body.clone()),
        ("no_v1_signature", Some(format!("t={t},v0={v1}")), body.clone()),
        ("signature_mismatch", Some(sign("whsec_someone_else", t, &body)), body.clone()),
        ("signature_mismatch", Some(good.clone()), subscription_event("evt_sig", "sub_tampered")),
        ("timestamp_outside_tolerance", Some(sign(SECRET, t - 301, &body)), body.clone()),
        ("timestamp_outside_tolerance", Some(sign(SECRET, t + 3600, &body)), body.clone()),
    ];
    for (code, header, body) in cases {
        let (status, json) = post(&client, &server.base, header.as_deref(), body).await;
        assert_eq!(status, 400, "{code}: {json}");
        assert_eq!(json["error"], code, "{json}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(db.count("subsync_events", "").await, 0);
    assert_eq!(db.count("subsync_jobs", "").await, 0);
    server.stop().await;
    db.close().await;
}

async fn secret_roll_and_whitespace_in_config(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let old = "whsec_old_secret_value";
    let server = intake(&db, &[("STRIPE_WEBHOOK_SECRET", format!("  {old} ,\t{SECRET}  "))]).await;
    let client = reqwest::Client::new();
    // During a roll Stripe signs with both secrets: one v1 each. Either matching is enough.
    let body = subscription_event("evt_roll", "sub_roll");
    let t = now();
    let with_unknown = format!(
        "{},v1={}",
        sign("whsec_retired_secret", t, &body),
        sign(SECRET, t, &body).split("v1=").nth(1).unwrap_or_default()
    );
    let (status, json) = post(&client, &server.base, Some(&with_unknown), body).await;
    assert_eq!(status, 200, "{json}");
    let body = subscription_event("evt_roll_old", "sub_roll");
    let (status, json) = post(&client, &server.base, Some(&sign(old, now(), &body)), body).await;
    assert_eq!(status, 200, "the old secret still works during the roll: {json}");
    server.stop().await;
    db.close().await;
}

async fn bad_bodies_are_refused_and_store_nothing(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let server = intake(&db, &[]).await;
    let client = reqwest::Client::new();
    let t = now();
    // Empty body, validly signed: not an event.
    let (status, json) = post(&client, &server.base, Some(&sign(SECRET, t, b"")), Vec::new()).await;
    assert_eq!((status, json["error"].as_str()), (400, Some("invalid_json")), "{json}");
    // Malformed UTF-8, validly signed.
    let bad = b"{\"id\":\"evt_\xff\xfe\",\"type\":\"x\"}".to_vec();
    let (status, json) = post(&client, &server.base, Some(&sign(SECRET, t, &bad)), bad).await;
    assert_eq!((status, json["error"].as_str()), (400, Some("invalid_utf8")), "{json}");
    // JSON without an id.
    let no_id = serde_json::to_vec(&json!({"type": "customer.subscription.updated", "created": t})).unwrap_or_default();
    let (status, json) = post(&client, &server.base, Some(&sign(SECRET, t, &no_id)), no_id).await;
    assert_eq!((status, json["error"].as_str()), (400, Some("missing_id")), "{json}");
    // 10 MiB: over the 1 MiB limit, refused as soon as it is declared, or once the limit is
    // passed when the length is not declared (chunked).
    let huge = vec![b' '; 10 * 1024 * 1024];
    let sig = sign(SECRET, t, &huge);
    assert_eq!(common::raw_post(server.port, &sig, &huge, false).await, 413);
    assert_eq!(common::raw_post(server.port, &sig, &huge, true).await, 413);
    // Not JSON by content type.
    let body = subscription_event("evt_ct", "sub_ct");
    let resp = client
        .post(format!("{}/webhooks/stripe", server.base))
        .header("content-type", "text/plain")
        .header("stripe-signature", sign(SECRET, t, &body))
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 415);
    // Wrong method and path.
    let resp = client.get(format!("{}/webhooks/stripe", server.base)).send().await.expect("send");
    assert_eq!(resp.status().as_u16(), 405);
    let resp = client.post(format!("{}/webhooks/other", server.base)).send().await.expect("send");
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(db.count("subsync_events", "").await, 0);
    // And the server still serves valid requests.
    let body = subscription_event("evt_after", "sub_after");
    let (status, _) = post(&client, &server.base, Some(&sign(SECRET, now(), &body)), body).await;
    assert_eq!(status, 200);
    server.stop().await;
    db.close().await;
}

async fn fifty_concurrent_duplicates_make_one_job(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let server = intake(&db, &[]).await;
    let client = reqwest::Client::new();
    let body = subscription_event("evt_dup50", "sub_dup50");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (client, base, body) = (client.clone(), server.base.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let sig = sign(SECRET, now(), &body);
            post(&client, &base, Some(&sig), body).await
        }));
    }
    let mut job_ids = std::collections::HashSet::new();
    let mut fresh = 0;
    for t in tasks {
        let (status, json) = t.await.expect("join");
        assert_eq!(status, 200, "{json}");
        if json["duplicate"] == false {
            fresh += 1;
        }
        job_ids.insert(json["job_id"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(fresh, 1, "exactly one delivery is the first");
    assert_eq!(job_ids.len(), 1, "all answers name the same job");
    assert_eq!(db.count("subsync_jobs", "").await, 1);
    assert_eq!(db.count("subsync_events", "").await, 1);
    server.stop().await;
    db.close().await;
}

/// Concurrent deliveries of many events at once (new, redelivered, unhandled) land in the
/// same group commits: each event is stored once, exactly one of its deliveries is answered
/// as the first, and every answer names that event's one job.
async fn mixed_concurrent_traffic_is_stored_once_per_event(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let server = intake(&db, &[]).await;
    let client = reqwest::Client::new();
    let mut deliveries: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..60 {
        let id = format!("evt_mix_{i}");
        let body = subscription_event(&id, &format!("sub_mix_{}", i % 7));
        for _ in 0..1 + i % 3 {
            deliveries.push((id.clone(), body.clone()));
        }
    }
    for i in 0..20 {
        let id = format!("evt_mix_charge_{i}");
        let body =
            event(&id, "charge.succeeded", json!({"id": format!("ch_{i}"), "object": "charge", "customer": "cus_mix"}));
        deliveries.push((id.clone(), body.clone()));
        deliveries.push((id, body));
    }
    // Copies of one event go out side by side (so they share a commit), and some events come
    // again at the end (a later commit): duplicates within a batch and across batches.
    let late: Vec<(String, Vec<u8>)> = deliveries.iter().step_by(5).cloned().collect();
    deliveries.extend(late);
    let order: Vec<usize> = (0..deliveries.len()).collect();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::new();
    for k in order {
        let (id, body) = deliveries[k].clone();
        let (client, base, gate) = (client.clone(), server.base.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore");
            let sig = sign(SECRET, now(), &body);
            let (status, json) = post(&client, &base, Some(&sig), body).await;
            (id, status, json)
        }));
    }
    let mut answers: std::collections::HashMap<String, Vec<serde_json::Value>> = Default::default();
    for t in tasks {
        let (id, status, json) = t.await.expect("join");
        assert_eq!(status, 200, "{id}: {json}");
        answers.entry(id).or_default().push(json);
    }
    assert_eq!(answers.len(), 80);
    for (id, got) in &answers {
        let firsts = got.iter().filter(|j| j["duplicate"] == false).count();
        assert_eq!(firsts, 1, "{id}: exactly one delivery is the first: {got:?}");
        let jobs: std::collections::HashSet<String> = got.iter().map(|j| j["job_id"].to_string()).collect();
        assert_eq!(jobs.len(), 1, "{id}: every answer names the same job: {got:?}");
        let handled = !id.starts_with("evt_mix_charge_");
        assert_eq!(got[0]["job_id"].is_string(), handled, "{id}: {got:?}");
        if handled {
            let job = got[0]["job_id"].as_str().unwrap_or_default();
            let stored =
                db.text(&format!("SELECT CAST(job_id AS TEXT) FROM subsync_events WHERE event_id = '{id}'")).await;
            assert_eq!(stored.as_deref().map(str::to_lowercase), Some(job.to_lowercase()), "{id}");
        }
    }
    assert_eq!(db.count("subsync_events", "").await, 80);
    assert_eq!(db.count("subsync_jobs", "").await, 60);
    server.stop().await;
    db.close().await;
}

async fn routes_events_to_their_subscription(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let server = intake(&db, &[]).await;
    let client = reqwest::Client::new();
    let cases = vec![
        (
            "evt_checkout",
            event(
                "evt_checkout",
                "checkout.session.completed",
                json!({
                    "id": "cs_1", "object": "checkout.session", "mode": "subscription",
                    "subscription": "sub_from_checkout", "customer": "cus_9", "client_reference_id": "user_1", "metadata": {}
                }),
            ),
            "sub_from_checkout",
        ),
        (
            "evt_invoice_new",
            event(
                "evt_invoice_new",
                "invoice.paid",
                json!({
                    "id": "in_1", "object": "invoice", "customer": "cus_9",
                    "parent": { "type": "subscription_details", "subscription_details": { "subscription": "sub_from_parent" } }
                }),
            ),
            "sub_from_parent",
        ),
        (
            "evt_invoice_old",
            event(
                "evt_invoice_old",
                "invoice.payment_failed",
                json!({
                    "id": "in_2", "object": "invoice", "customer": "cus_9", "subscription": "sub_old_api"
                }),
            ),
            "sub_old_api",
        ),
        ("evt_sub", subscription_event("evt_sub", "sub_direct"), "sub_direct"),
    ];
    for (id, body, group) in cases {
        let (status, json) = post(&client, &server.base, Some(&sign(SECRET, now(), &body)), body).await;
        assert_eq!(status, 200, "{id}: {json}");
        let stored = db.text(&format!("SELECT group_key FROM subsync_jobs WHERE unique_key = '{id}'")).await;
        assert_eq!(stored.as_deref(), Some(group), "{id}");
    }
    server.stop().await;
    db.close().await;
}

async fn unhandled_and_thin_events_are_stored_but_not_queued(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let server = intake(&db, &[]).await;
    let client = reqwest::Client::new();
    let ignored =
        event("evt_ignored", "charge.succeeded", json!({"id": "ch_1", "object": "charge", "customer": "cus_1"}));
    let (status, json) = post(&client, &server.base, Some(&sign(SECRET, now(), &ignored)), ignored).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["job_id"], serde_json::Value::Null);
    let thin = serde_json::to_vec(&json!({
        "id": "evt_thin", "object": "v2.core.event", "type": "v1.billing.meter.error_report_triggered",
        "created": "2026-11-24T00:00:00.000Z", "livemode": false,
        "related_object": { "id": "mtr_1", "type": "billing.meter", "url": "/v1/billing/meters/mtr_1" }
    }))
    .unwrap_or_default();
    let (status, json) = post(&client, &server.base, Some(&sign(SECRET, now(), &thin)), thin).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(
        db.text("SELECT disposition FROM subsync_events WHERE event_id = 'evt_ignored'").await.as_deref(),
        Some("ignored")
    );
    assert_eq!(
        db.text("SELECT disposition FROM subsync_events WHERE event_id = 'evt_thin'").await.as_deref(),
        Some("unsupported")
    );
    assert_eq!(db.count("subsync_jobs", "").await, 0);
    server.stop().await;
    db.close().await;
}

async fn database_unavailable_means_503_and_nothing_lost(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let client = reqwest::Client::new();
    let body = subscription_event("evt_outage", "sub_outage");
    match b {
        Backend::Sqlite => {
            let server = intake(&db, &[]).await;
            // Another process holds SQLite's write lock longer than the intake waits.
            let path = db.url.trim_start_matches("sqlite:").to_string();
            let (locked_tx, locked_rx) = std::sync::mpsc::channel();
            let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
            let holder = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
                rt.block_on(async move {
                    use sqlx::Connection;
                    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{path}")).await.expect("open");
                    sqlx::query("BEGIN EXCLUSIVE").execute(&mut conn).await.expect("lock");
                    locked_tx.send(()).expect("signal");
                    let _ = release_rx.recv_timeout(Duration::from_secs(30));
                    sqlx::query("ROLLBACK").execute(&mut conn).await.expect("unlock");
                });
            });
            locked_rx.recv_timeout(Duration::from_secs(10)).expect("lock taken");
            let (status, json) = post(&client, &server.base, Some(&sign(SECRET, now(), &body)), body.clone()).await;
            assert_eq!(status, 503, "{json}");
            assert_eq!(json["error"], "unavailable");
            release_tx.send(()).expect("release");
            holder.join().expect("holder");
            assert_eq!(db.count("subsync_events", "").await, 0, "a 503 stored nothing");
            // Stripe retries: now it is stored, as a first delivery.
            let (status, json) = post(&client, &server.base, Some(&sign(SECRET, now(), &body)), body).await;
            assert_eq!((status, json["duplicate"].as_bool()), (200, Some(false)), "{json}");
            server.stop().await;
        }
        Backend::Postgres => {
            // Migrate directly first, then run the intake through a proxy we can cut.
            let migrate = tokio::process::Command::new(common::binary())
                .arg("migrate")
                .env("DATABASE_URL", &db.url)
                .output()
                .await
                .expect("migrate");
            assert!(migrate.status.success());
            let proxy = common::Proxy::start("127.0.0.1:5432").await;
            let server =
                intake(&db, &[("DATABASE_URL", db.via_proxy(&proxy)), ("SUBSYNC_NO_MIGRATE", "true".into())]).await;
            let warm = subscription_event("evt_warm", "sub_warm");
            let (status, _) = post(&client, &server.base, Some(&sign(SECRET, now(), &warm)), warm).await;
            assert_eq!(status, 200);
            proxy.cut().await;
            for _ in 0..3 {
                let (status, json) = post(&client, &server.base, Some(&sign(SECRET, now(), &body)), body.clone()).await;
                assert_eq!(status, 503, "{json}");
            }
            let ready = client.get(format!("{}/readyz", server.base)).send().await.expect("readyz");
            assert_eq!(ready.status().as_u16(), 503);
            assert_eq!(db.count("subsync_events", "WHERE event_id = 'evt_outage'").await, 0);
            proxy.restore();
            // Stripe retries until the database is back; then the event is stored once.
            let mut stored = false;
            for _ in 0..40 {
                let (status, json) = post(&client, &server.base, Some(&sign(SECRET, now(), &body)), body.clone()).await;
                if status == 200 {
                    assert_eq!(json["duplicate"], false);
                    stored = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            assert!(stored, "intake never recovered after the database came back");
            assert_eq!(db.count("subsync_jobs", "WHERE unique_key = 'evt_outage'").await, 1);
            server.stop().await;
        }
    }
    db.close().await;
}

async fn health_readiness_and_metrics(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let server = intake(&db, &[]).await;
    let client = reqwest::Client::new();
    let body = subscription_event("evt_metrics", "sub_metrics");
    post(&client, &server.base, Some(&sign(SECRET, now(), &body)), body.clone()).await;
    post(&client, &server.base, Some(&sign(SECRET, now(), &body)), body).await;
    post(&client, &server.base, None, b"{}".to_vec()).await;
    let ready = client.get(format!("{}/readyz", server.base)).send().await.expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);
    let text =
        client.get(format!("{}/metrics", server.base)).send().await.expect("metrics").text().await.expect("text");
    assert!(text.contains("subsync_intake_requests_total{outcome=\"accepted\"} 1"), "{text}");
    assert!(text.contains("subsync_intake_requests_total{outcome=\"duplicate\"} 1"), "{text}");
    assert!(text.contains("subsync_intake_requests_total{outcome=\"rejected_signature\"} 1"), "{text}");
    assert!(text.contains("subsync_intake_request_seconds_count 3"), "{text}");
    server.stop().await;
    db.close().await;
}

/// Headers made by Stripe's own Node library are accepted by the running intake, and a
/// tampered body is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_stripe_node_signatures_are_accepted() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/official-stripe/sign.js");
    let db = TestDb::unmigrated(Backend::Sqlite).await;
    let server = intake(&db, &[]).await;
    let client = reqwest::Client::new();
    let body = subscription_event("evt_node", "sub_node");
    let mut child = tokio::process::Command::new("node")
        .args([script, "sign", SECRET, &now().to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node is required: run tests/official-stripe/install.sh");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&body).await.expect("write");
    }
    let out = child.wait_with_output().await.expect("node");
    assert!(out.status.success(), "stripe-node signing failed: run tests/official-stripe/install.sh");
    let header = String::from_utf8(out.stdout).expect("utf-8").trim().to_string();
    let (status, json) = post(&client, &server.base, Some(&header), body).await;
    assert_eq!(status, 200, "{json}");
    let (status, _) = post(&client, &server.base, Some(&header), subscription_event("evt_node", "sub_evil")).await;
    assert_eq!(status, 400);
    server.stop().await;
    db.close().await;
}

/// Without a secret the process refuses to start and says where to get one.
#[tokio::test]
async fn refuses_to_start_without_a_secret() {
    let db_path = std::env::temp_dir().join(format!("subsync-nosecret-{}.db", uuid::Uuid::new_v4()));
    let out = tokio::process::Command::new(common::binary())
        .args(["intake"])
        .env_remove("STRIPE_WEBHOOK_SECRET")
        .env("DATABASE_URL", format!("sqlite:{}", db_path.display()))
        .env("SUBSYNC_LISTEN", format!("127.0.0.1:{}", common::free_port()))
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("STRIPE_WEBHOOK_SECRET") && stderr.contains("stripe listen"), "{stderr}");
    assert!(!db_path.exists(), "configuration is checked before the database is touched");
    let out = tokio::process::Command::new(common::binary())
        .args(["intake"])
        .env("STRIPE_WEBHOOK_SECRET", "sk_live_not_a_webhook_secret")
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("whsec_"));
    // A linger long enough to stall every webhook is refused with the setting's name.
    let out = tokio::process::Command::new(common::binary())
        .args(["intake", "--commit-linger-ms", "5000"])
        .env("STRIPE_WEBHOOK_SECRET", "whsec_test_secret")
        .env("DATABASE_URL", format!("sqlite:{}", db_path.display()))
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SUBSYNC_INTAKE_COMMIT_LINGER_MS"), "{out:?}");
    assert!(!db_path.exists(), "configuration is checked before the database is touched");
}
