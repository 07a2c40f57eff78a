//! The change notifications in the admin API, `/metrics` and the dashboard, on SQLite and
//! PostgreSQL: what `subsync notifications` shows, for operators without a shell.

#[allow(unused_imports)] // the shared fixtures include seeding this file does not need
mod support;

use axum::http::{Method, StatusCode};
use chrono::Utc;
use subsync_outbox::{ChangeCause, EntitlementState, NewChange};
use subsync_queue::both_backends;
use support::{Backend, TestDb, app, bearer, get, send};

both_backends!(notifications_are_listed_measured_and_shown);

fn state(tier: &str) -> EntitlementState {
    EntitlementState {
        tier: tier.into(),
        features: serde_json::json!({}),
        status: None,
        reason: "active".into(),
        access_until: None,
        period_end: None,
    }
}

async fn notifications_are_listed_measured_and_shown(b: Backend) {
    let t = TestDb::new(b).await;
    let app = app(&t.store);
    let mut seqs = Vec::new();
    for (user, version) in [("usr_a", 1), ("usr_b", 1), ("usr_a", 2)] {
        let mut tx = t.store.begin().await.unwrap();
        let change = NewChange {
            user_id: user.into(),
            version,
            previous: state("free"),
            current: state("pro"),
            cause: ChangeCause::Event { event_id: format!("evt_{user}_{version}") },
            at: Utc::now() - chrono::Duration::seconds(30),
        };
        seqs.push(subsync_outbox::append(&t.store, &mut tx, change).await.unwrap().seq);
        tx.commit().await.unwrap();
    }
    subsync_outbox::mark_delivered(&t.store, seqs[1], Utc::now()).await.unwrap();
    subsync_outbox::mark_failed(&t.store, seqs[0], Utc::now(), "answered 503 <Service Unavailable>").await.unwrap();

    let all = get(&app, "/api/notifications").await;
    assert_eq!(all.status, StatusCode::OK);
    let body = all.json();
    assert_eq!((body["stats"]["undelivered"].as_i64(), body["stats"]["failing"].as_i64()), (Some(2), Some(1)));
    assert_eq!(body["notifications"].as_array().map(Vec::len), Some(3));
    assert!(body["lag_seconds"].as_f64().is_some_and(|l| l >= 29.0), "{body}");
    let mine = get(&app, "/api/notifications?user=usr_a&undelivered=1").await.json();
    let versions: Vec<_> = mine["notifications"].as_array().unwrap().iter().map(|n| n["version"].as_i64()).collect();
    assert_eq!(versions, vec![Some(2), Some(1)], "newest first");
    let bad = get(&app, "/api/notifications?limit=0").await;
    assert_eq!((bad.status, bad.json()["error"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")));

    let metrics = get(&app, "/metrics").await;
    for line in ["subsync_notify_undelivered 2", "subsync_notify_failing 1", "subsync_notify_delivered 1"] {
        assert!(metrics.body.contains(line), "missing {line:?} in\n{}", metrics.body);
    }
    assert!(metrics.body.contains("subsync_notify_lag_seconds "));
    assert!(metrics.body.contains("subsync_queue_jobs{queue=\"notify\",state=\"pending\"} 3"), "{}", metrics.body);

    let page = send(&app, Method::GET, "/notifications?undelivered=1", &[("authorization", &bearer())], "").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("answered 503 &lt;Service Unavailable&gt;"), "{}", page.body);
    assert!(!page.body.contains("usr_b"), "the delivered one is filtered out");
    t.close().await;
}
