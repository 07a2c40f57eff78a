//! The whole system through the real `subsync` binary: `demo`, and `serve` (intake + worker
//! + admin in one process) taking Stripe's racing events to the right entitlement.

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use std::time::Duration;

use common::{Backend, SECRET, Server, TestDb, event, now, post, sign, subscription_event};
use serde_json::json;
use subsync_queue::both_backends;

both_backends!(
    checkout_and_subscription_created_racing_both_apply_without_retry,
    prune_forgets_only_what_is_past_retention,
    backup_under_load_holds_every_acknowledged_event,
);

const ADMIN_TOKEN: &str = "system-test-admin-token-0123";

fn checkout(id: &str, sub: &str, user: &str) -> Vec<u8> {
    event(
        id,
        "checkout.session.completed",
        json!({
            "id": format!("cs_{sub}"), "object": "checkout.session", "mode": "subscription", "status": "complete",
            "payment_status": "paid", "subscription": sub, "customer": format!("cus_{sub}"),
            "client_reference_id": user, "metadata": { "app_user_id": user }
        }),
    )
}

fn subscription_created(id: &str, sub: &str, lookup_key: &str) -> Vec<u8> {
    event(
        id,
        "customer.subscription.created",
        json!({
            "id": sub, "object": "subscription", "customer": format!("cus_{sub}"), "status": "active",
            "cancel_at_period_end": false, "metadata": {},
            "items": { "object": "list", "data": [ { "id": format!("si_{sub}"), "object": "subscription_item",
                "current_period_end": now() + 30 * 86400,
                "price": { "id": format!("price_{lookup_key}"), "object": "price", "lookup_key": lookup_key } } ] }
        }),
    )
}

async fn entitlement(db: &TestDb, user: &str) -> Option<serde_json::Value> {
    let out = tokio::process::Command::new(common::binary())
        .args(["entitlements", "show", user, "--json"])
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "error")
        .output()
        .await
        .expect("run entitlements show");
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

async fn checkout_and_subscription_created_racing_both_apply_without_retry(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let (server, admin_port) = Server::serve_with_admin(&db.url, ADMIN_TOKEN).await;
    let client = reqwest::Client::new();
    // Both events for one purchase, at the same moment, as Stripe sends them.
    let a = checkout("evt_race_checkout", "sub_race", "user_race");
    let c = subscription_created("evt_race_created", "sub_race", "pro_monthly");
    let (sa, sc) = (sign(SECRET, now(), &a), sign(SECRET, now(), &c));
    let (ra, rc) = tokio::join!(post(&client, &server.base, Some(&sa), a), post(&client, &server.base, Some(&sc), c));
    assert_eq!(ra.0, 200, "{}", ra.1);
    assert_eq!(rc.0, 200, "{}", rc.1);

    let mut found = None;
    for _ in 0..200 {
        if let Some(e) = entitlement(&db, "user_race").await
            && e["entitlement"]["tier"] == "pro"
        {
            found = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let found = found.expect("user_race never got pro");
    assert_eq!(found["entitlement"]["subscription_id"], "sub_race");
    // Both jobs succeeded on their first attempt: no error, no retry.
    let jobs = client
        .get(format!("http://127.0.0.1:{admin_port}/api/jobs?group=sub_race"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("admin api")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    let list = jobs["jobs"].as_array().expect("jobs array");
    assert_eq!(list.len(), 2, "{jobs}");
    for job in list {
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["attempts"], 1, "{job}");
    }
    // The admin API shows the entitlement too, and refuses without the token.
    let unauthorized =
        client.get(format!("http://127.0.0.1:{admin_port}/api/entitlements/user_race")).send().await.expect("admin");
    assert_eq!(unauthorized.status().as_u16(), 401);
    let via_api = client
        .get(format!("http://127.0.0.1:{admin_port}/api/entitlements/user_race"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("admin")
        .text()
        .await
        .expect("text");
    assert!(via_api.contains("\"pro\""), "{via_api}");
    // Job outcomes and queue depth are on the admin /metrics.
    let metrics = client
        .get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("subsync_jobs_finished_total{queue=\"stripe\",outcome=\"succeeded\"} 2"), "{metrics}");
    assert!(metrics.contains("subsync_jobs_started_total{queue=\"stripe\"} 2"), "{metrics}");
    assert!(metrics.contains("subsync_job_duration_seconds_count{queue=\"stripe\"} 2"), "{metrics}");
    assert!(metrics.contains("subsync_intake_requests_total{outcome=\"accepted\"} 2"), "{metrics}");
    // SIGTERM: the process stops cleanly.
    let pid = server.child.id().expect("pid");
    let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let mut server = server;
    let status =
        tokio::time::timeout(Duration::from_secs(30), server.child.wait()).await.expect("stops").expect("wait");
    assert!(status.success(), "serve exited with {status}");
    db.close().await;
}

/// `subsync demo` runs the whole path and prints the story's entitlements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_prints_the_expected_entitlements() {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(common::binary()).arg("demo").output(),
    )
    .await
    .expect("demo timed out")
    .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("\"duplicate\":true"), "the bundled duplicate is recognised:\n{stdout}");
    assert!(stdout.contains("jobs: 15 succeeded"), "{stdout}");
    let line = |user: &str| stdout.lines().find(|l| l.starts_with(user)).unwrap_or_default().to_string();
    assert!(line("usr_alice").contains(" basic "), "{stdout}");
    assert!(line("usr_bob").contains(" pro ") && line("usr_bob").contains("cancels_at_period_end"), "{stdout}");
    assert!(line("usr_carol").contains(" basic ") && line("usr_carol").contains("past_due"), "{stdout}");
}

async fn prune_forgets_only_what_is_past_retention(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let run = |args: &'static [&'static str]| {
        let url = db.url.clone();
        async move {
            tokio::process::Command::new(common::binary())
                .args(args)
                .env("DATABASE_URL", url)
                .env("RUST_LOG", "error")
                .output()
                .await
                .expect("run subsync")
        }
    };
    assert!(run(&["migrate"]).await.status.success());
    // One old finished job with its event, one old dead job, one recent event and job.
    let statements: Vec<String> = match b {
        Backend::Sqlite => {
            let old = chrono::Utc::now().timestamp_millis() - 40 * 86_400_000;
            let new = chrono::Utc::now().timestamp_millis();
            vec![
                format!("INSERT INTO subsync_jobs (id, queue, unique_key, group_key, payload, state, max_attempts, run_at, created_at, finished_at) VALUES ('00000000-0000-7000-8000-000000000001', 'stripe', 'evt_old', 'sub_old', '{{}}', 'succeeded', 12, {old}, {old}, {old})"),
                format!("INSERT INTO subsync_jobs (id, queue, unique_key, group_key, payload, state, max_attempts, run_at, created_at, finished_at) VALUES ('00000000-0000-7000-8000-000000000002', 'stripe', 'evt_dead', 'sub_old', '{{}}', 'dead', 12, {old}, {old}, {old})"),
                format!("INSERT INTO subsync_jobs (id, queue, unique_key, group_key, payload, state, max_attempts, run_at, created_at, finished_at) VALUES ('00000000-0000-7000-8000-000000000003', 'stripe', 'evt_new', 'sub_new', '{{}}', 'succeeded', 12, {new}, {new}, {new})"),
                format!("INSERT INTO subsync_events (event_id, event_type, livemode, object_kind, group_key, disposition, payload, received_at, job_id) VALUES ('evt_old', 't', 0, 'event', 'sub_old', 'handled', '{{}}', {old}, '00000000-0000-7000-8000-000000000001')"),
                format!("INSERT INTO subsync_events (event_id, event_type, livemode, object_kind, group_key, disposition, payload, received_at, job_id) VALUES ('evt_new', 't', 0, 'event', 'sub_new', 'handled', '{{}}', {new}, '00000000-0000-7000-8000-000000000003')"),
            ]
        }
        Backend::Postgres => vec![
            "INSERT INTO subsync_jobs (id, queue, unique_key, group_key, payload, state, max_attempts, run_at, created_at, finished_at) VALUES ('00000000-0000-7000-8000-000000000001', 'stripe', 'evt_old', 'sub_old', '{}', 'succeeded', 12, now() - interval '40 days', now() - interval '40 days', now() - interval '40 days')".into(),
            "INSERT INTO subsync_jobs (id, queue, unique_key, group_key, payload, state, max_attempts, run_at, created_at, finished_at) VALUES ('00000000-0000-7000-8000-000000000002', 'stripe', 'evt_dead', 'sub_old', '{}', 'dead', 12, now() - interval '40 days', now() - interval '40 days', now() - interval '40 days')".into(),
            "INSERT INTO subsync_jobs (id, queue, unique_key, group_key, payload, state, max_attempts, run_at, created_at, finished_at) VALUES ('00000000-0000-7000-8000-000000000003', 'stripe', 'evt_new', 'sub_new', '{}', 'succeeded', 12, now(), now(), now())".into(),
            "INSERT INTO subsync_events (event_id, event_type, livemode, object_kind, group_key, disposition, payload, received_at, job_id) VALUES ('evt_old', 't', false, 'event', 'sub_old', 'handled', '{}', now() - interval '40 days', '00000000-0000-7000-8000-000000000001')".into(),
            "INSERT INTO subsync_events (event_id, event_type, livemode, object_kind, group_key, disposition, payload, received_at, job_id) VALUES ('evt_new', 't', false, 'event', 'sub_new', 'handled', '{}', now(), '00000000-0000-7000-8000-000000000003')".into(),
        ],
    };
    for sql in statements {
        db.exec(&sql).await;
    }
    let out = run(&["prune", "--json"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!((report["jobs_deleted"].as_u64(), report["events_deleted"].as_u64()), (Some(1), Some(1)), "{report}");
    assert_eq!(db.count("subsync_jobs", "WHERE unique_key = 'evt_dead'").await, 1, "dead jobs wait for an operator");
    assert_eq!(db.count("subsync_events", "WHERE event_id = 'evt_new'").await, 1);
    let out = run(&["prune", "--include-dead", "--json"]).await;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["jobs_deleted"].as_u64(), Some(1), "{report}");
    assert_eq!(db.count("subsync_jobs", "").await, 1);
    db.close().await;
}

/// `subsync backup` while `serve` takes webhooks: the copy opens, passes its integrity check
/// and holds every event (and its job) acknowledged before the backup began. On PostgreSQL
/// it refuses and names `pg_dump`.
async fn backup_under_load_holds_every_acknowledged_event(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let env = [("DATABASE_URL", db.url.clone()), ("STRIPE_WEBHOOK_SECRET", SECRET.to_string())];
    let server = Server::start(&["serve"], &env).await;
    let dest = std::env::temp_dir().join(format!("subsync-backup-{}.db", uuid::Uuid::new_v4().simple()));
    let backup = || {
        tokio::process::Command::new(common::binary())
            .args(["backup", dest.to_str().expect("utf-8 path")])
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "error")
            .output()
    };
    if let Backend::Postgres = b {
        let out = backup().await.expect("run subsync backup");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("pg_dump"), "{err}");
        assert!(!dest.exists(), "nothing written");
        server.stop().await;
        db.close().await;
        return;
    }
    let client = reqwest::Client::new();
    let mut acknowledged = Vec::new();
    for i in 0..40 {
        let (id, body) = (format!("evt_pre_{i}"), subscription_event(&format!("evt_pre_{i}"), &format!("sub_pre_{i}")));
        assert_eq!(post(&client, &server.base, Some(&sign(SECRET, now(), &body)), body).await.0, 200);
        acknowledged.push(id);
    }
    // Webhooks keep coming while the backup runs.
    let (load_client, base) = (client.clone(), server.base.clone());
    let load = tokio::spawn(async move {
        for i in 0..200 {
            let body = subscription_event(&format!("evt_during_{i}"), &format!("sub_during_{i}"));
            assert_eq!(post(&load_client, &base, Some(&sign(SECRET, now(), &body)), body).await.0, 200);
        }
    });
    let out = backup().await.expect("run subsync backup");
    load.await.expect("load");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("integrity check"), "{said}");

    let copy = sqlx::SqlitePool::connect(&format!("sqlite:{}?mode=ro", dest.display())).await.expect("open the copy");
    for id in &acknowledged {
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM subsync_events WHERE event_id = ?1")
            .bind(id)
            .fetch_one(&copy)
            .await
            .expect("count");
        let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM subsync_jobs WHERE unique_key = ?1")
            .bind(id)
            .fetch_one(&copy)
            .await
            .expect("count");
        assert_eq!((events, jobs), (1, 1), "{id} was acknowledged before the backup began");
    }
    copy.close().await;
    // A backup never overwrites a file.
    let again = backup().await.expect("run subsync backup");
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("exists"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", dest.display()));
    }
    server.stop().await;
    db.close().await;
}

/// Logs written to a file or a pipe carry no terminal colour escapes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_into_a_pipe_have_no_colour_escapes() {
    let db = TestDb::unmigrated(Backend::Sqlite).await;
    let out = tokio::process::Command::new(common::binary())
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "debug")
        .env_remove("NO_COLOR")
        .output()
        .await
        .expect("run subsync migrate");
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && logs.contains("DEBUG"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "escape codes in piped logs: {logs}");
    db.close().await;
}

/// TLS to PostgreSQL (managed databases require it): `sslmode=require` connects over TLS;
/// `verify-full` with a root certificate that did not sign the server's is refused, with a
/// hint, and the cause is said once. (The test command turns `ssl` on for the test server.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls() {
    let db = TestDb::unmigrated(Backend::Postgres).await;
    let with = |params: &str| format!("{}{}{params}", db.url, if db.url.contains('?') { '&' } else { '?' });
    let migrate = |url: String| {
        tokio::process::Command::new(common::binary())
            .arg("migrate")
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "error")
            .output()
    };
    let ok = migrate(with("sslmode=require")).await.expect("run subsync migrate");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let tls = sqlx::PgPool::connect(&with("sslmode=require")).await.expect("connect over TLS");
    let encrypted: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&tls)
        .await
        .expect("pg_stat_ssl");
    tls.close().await;
    assert!(encrypted, "sslmode=require must encrypt");

    let public_roots = "/etc/ssl/certs/ca-certificates.crt";
    assert!(std::path::Path::new(public_roots).exists(), "{public_roots} is missing: install ca-certificates");
    let refused = migrate(with(&format!("sslmode=verify-full&sslrootcert={public_roots}"))).await.expect("run");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("sslrootcert") && err.contains("UnknownIssuer"), "a clear reason and what to check: {err}");
    assert_eq!(err.matches("invalid peer certificate").count(), 1, "the cause once, not once per layer: {err}");
    db.close().await;
}
