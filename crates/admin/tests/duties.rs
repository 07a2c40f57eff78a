//! The scheduled duties in the admin API, `/metrics` and the dashboard, on SQLite and
//! PostgreSQL: what `subsync reconcile status` shows, for operators without a shell.

#[allow(unused_imports)] // the shared fixtures include seeding this file does not need
mod support;

use axum::http::{Method, StatusCode};
use chrono::Utc;
use serde_json::json;
use subsync_duties::store::{self as duties, RunRecord};
use subsync_queue::both_backends;
use support::{Backend, TestDb, app, bearer, get, send};

both_backends!(duties_are_listed_measured_and_shown);

async fn duties_are_listed_measured_and_shown(b: Backend) {
    let t = TestDb::new(b).await;
    let app = app(&t.store);
    let empty = get(&app, "/api/duties").await;
    assert_eq!((empty.status, empty.json()["duties"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));

    let ok = json!({"listed": 4, "new": 1});
    let now = Utc::now();
    duties::record_run(
        &t.store,
        "reconcile",
        &RunRecord { runner: "host:1:a", started_at: now, finished_at: now, result: Ok(&ok) },
    )
    .await
    .unwrap();
    duties::advance_checkpoint(&t.store, "reconcile", 1_800_000_000).await.unwrap();
    let failed =
        RunRecord { runner: "host:2:b", started_at: now, finished_at: now, result: Err("Stripe API: down <503>") };
    duties::record_run(&t.store, "reconcile", &failed).await.unwrap();

    let list = get(&app, "/api/duties").await.json();
    let d = &list["duties"][0];
    assert_eq!((d["name"].as_str(), d["runs"].as_i64(), d["failures"].as_i64()), (Some("reconcile"), Some(2), Some(1)));
    assert_eq!((d["last_ok"].as_bool(), d["checkpoint"].as_i64()), (Some(false), Some(1_800_000_000)));
    assert!(d["last_success_at"].is_string(), "{d}");

    let metrics = get(&app, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    for line in [
        "subsync_duty_runs_total{duty=\"reconcile\"} 2",
        "subsync_duty_failures_total{duty=\"reconcile\"} 1",
        "subsync_duty_checkpoint_seconds{duty=\"reconcile\"} 1800000000",
        "subsync_duty_running{duty=\"reconcile\"} 0",
    ] {
        assert!(metrics.body.contains(line), "missing {line:?} in\n{}", metrics.body);
    }
    assert!(metrics.body.contains("subsync_duty_last_success_timestamp_seconds{duty=\"reconcile\"}"));

    let page = send(&app, Method::GET, "/duties", &[("authorization", &bearer())], "").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("failed: Stripe API: down &lt;503&gt;"), "{}", page.body);
    t.close().await;
}
