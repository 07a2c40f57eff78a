//! The audit log through the admin API, the dashboard and the operations themselves, on
//! SQLite and on PostgreSQL: every action kind is recorded with its actor, target, job count
//! and result (failures too), `GET /api/audit` and `/audit` list it newest first, and the
//! table refuses every change.

mod support;

use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};
use subsync_admin::audit::{self, Actor, AuditFilter, Via};
use subsync_admin::ops;
use subsync_queue::{Dialect, JobState, both_backends};
use support::{Backend, TOKEN, TestDb, app, bearer, get, seed_dead, seed_many_dead, seed_pending, send};

both_backends!(
    api_actions_are_recorded_with_the_header_actor,
    audit_api_filters_and_refuses_mistakes,
    dashboard_sign_in_actions_and_sign_out_are_recorded,
    replay_is_recorded_with_its_job_and_failures_with_their_error,
    the_audit_table_is_append_only,
);

async fn post_as(app: &axum::Router, uri: &str, actor: Option<&str>, body: &str) -> support::Reply {
    let auth = bearer();
    let mut headers = vec![("authorization", auth.as_str()), ("content-type", "application/json")];
    if let Some(actor) = actor {
        headers.push(("x-subsync-actor", actor));
    }
    send(app, Method::POST, uri, &headers, body).await
}

/// `GET /api/audit…`'s entries.
async fn entries(app: &axum::Router, query: &str) -> Vec<Value> {
    let r = get(app, &format!("/api/audit{query}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()["entries"].as_array().expect("entries").clone()
}

/// The fields of an entry a test compares: actor, via, action, target, jobs, ok.
fn summary(e: &Value) -> (String, String, String, String, u64, bool) {
    let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    (s("actor"), s("via"), s("action"), s("target"), e["jobs"].as_u64().expect("jobs"), e["ok"] == true)
}

fn row(
    actor: &str,
    via: &str,
    action: &str,
    target: &str,
    jobs: u64,
    ok: bool,
) -> (String, String, String, String, u64, bool) {
    (actor.into(), via.into(), action.into(), target.into(), jobs, ok)
}

async fn api_actions_are_recorded_with_the_header_actor(b: Backend) {
    let t = TestDb::new(b).await;
    let app = app(&t.store);
    let dead = seed_dead(&t.store, "evt_a1", "sub_a", "boom").await;

    assert_eq!(post_as(&app, "/api/jobs/evt_a1/retry", Some("alice"), "").await.status, StatusCode::OK);
    // Again: the job is pending now, so the retry is refused, and recorded as failed.
    let refused = post_as(&app, "/api/jobs/evt_a1/retry", Some("alice"), "").await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    // No header: the fixed name `api`.
    assert_eq!(post_as(&app, &format!("/api/jobs/{dead}/cancel"), None, "").await.status, StatusCode::OK);
    let unknown = post_as(&app, "/api/jobs/evt_nope/cancel", Some("bob"), "").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let list = entries(&app, "").await;
    let id = dead.to_string();
    assert_eq!(
        list.iter().map(summary).collect::<Vec<_>>(),
        vec![
            row("bob", "api", "cancel", "evt_nope", 0, false),
            row("api", "api", "cancel", &id, 1, true),
            row("alice", "api", "retry", &id, 0, false),
            row("alice", "api", "retry", &id, 1, true),
        ],
        "newest first"
    );
    assert_eq!(list[0]["error"], "no job with id or event id `evt_nope`");
    assert!(list[2]["error"].as_str().unwrap().contains("is pending"), "{}", list[2]);
    assert_eq!(list[3]["detail"], "event evt_a1; was dead");
    assert_eq!(list[3]["error"], Value::Null);
    let ids: Vec<i64> = list.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    assert!(chrono::DateTime::parse_from_rfc3339(list[0]["at"].as_str().unwrap()).is_ok());

    // Bulk: the filter, how many matched and how many changed.
    seed_many_dead(&t.store, 300, "bulk").await;
    let bulk = post_as(&app, "/api/jobs/retry", Some("carol@ops"), r#"{"state":"dead","confirm":true}"#).await;
    assert_eq!(bulk.json(), json!({ "retried": 300, "matched": 300 }));
    let cancel = r#"{"state":"pending","group":"sub_bulk_7","confirm":true}"#;
    assert_eq!(post_as(&app, "/api/jobs/cancel", Some("carol@ops"), cancel).await.json()["cancelled"], 1);
    // An unconfirmed bulk request is refused before anything is attempted: not an action.
    let unconfirmed = post_as(&app, "/api/jobs/cancel", Some("carol@ops"), r#"{"state":"pending"}"#).await;
    assert_eq!(unconfirmed.status, StatusCode::BAD_REQUEST);
    let list = entries(&app, "?actor=carol%40ops").await;
    assert_eq!(
        list.iter().map(summary).collect::<Vec<_>>(),
        vec![
            row("carol@ops", "api", "bulk_cancel", "state=pending group=sub_bulk_7", 1, true),
            row("carol@ops", "api", "bulk_retry", "state=dead", 300, true),
        ]
    );
    assert_eq!(list[1]["detail"], "matched 300");

    // A bad actor header is refused before the action runs, in the API's JSON error shape.
    let before = t.store.get(dead).await.unwrap().unwrap().state;
    for bad in ["", "a\tb"] {
        let r = post_as(&app, &format!("/api/jobs/{dead}/retry"), Some(bad), "").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(r.json()["error"], "bad_request");
        assert!(r.json()["message"].as_str().unwrap().starts_with("X-Subsync-Actor: "), "{}", r.body);
    }
    let long = "x".repeat(101);
    assert_eq!(post_as(&app, "/api/jobs/evt_a1/retry", Some(&long), "").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(t.store.get(dead).await.unwrap().unwrap().state, before);
    assert_eq!(entries(&app, "?limit=1000").await.len(), 6, "refused requests add nothing");
    t.close().await;
}

async fn audit_api_filters_and_refuses_mistakes(b: Backend) {
    let t = TestDb::new(b).await;
    let app = app(&t.store);
    seed_dead(&t.store, "evt_f1", "sub_f", "boom").await;
    seed_dead(&t.store, "evt_f2", "sub_f", "boom").await;
    post_as(&app, "/api/jobs/evt_f1/retry", Some("dana"), "").await;
    post_as(&app, "/api/jobs/evt_f2/retry", Some("erin"), "").await;

    assert_eq!(entries(&app, "").await.len(), 2);
    let r = get(&app, "/api/audit?limit=1").await.json();
    assert_eq!(r["limit"], 1);
    assert_eq!(r["entries"].as_array().unwrap().len(), 1);
    assert_eq!(r["entries"][0]["actor"], "erin", "newest first");
    assert_eq!(entries(&app, "?actor=dana").await.len(), 1);
    assert_eq!(entries(&app, "?actor=nobody").await.len(), 0);
    assert_eq!(entries(&app, "?since=1h").await.len(), 2);
    assert_eq!(entries(&app, "?since=2999-01-01T00:00:00Z").await.len(), 0);

    for (query, says) in [
        ("?limit=0", "limit must be a whole number from 1 to 1000"),
        ("?limit=x", "got `x`"),
        ("?since=yesterday", "bad timestamp `yesterday`"),
        ("?who=dana", "unknown query parameter `who`"),
    ] {
        let r = get(&app, &format!("/api/audit{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(r.json()["error"], "bad_request", "{query}");
        assert!(r.json()["message"].as_str().unwrap().contains(says), "{query}: {}", r.body);
    }
    let none = send(&app, Method::GET, "/api/audit", &[], "").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.json()["error"], "unauthorized");
    // There is no way to change the log through the API.
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let r = send(&app, method.clone(), "/api/audit", &[("authorization", &bearer())], "{}").await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
    assert_eq!(entries(&app, "").await.len(), 2);
    t.close().await;
}

fn csrf_from(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a csrf field on the page") + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

async fn dashboard_sign_in_actions_and_sign_out_are_recorded(b: Backend) {
    let t = TestDb::new(b).await;
    let app = app(&t.store);
    let dead = seed_dead(&t.store, "evt_d1", "sub_d", "boom").await;
    let form = [("content-type", "application/x-www-form-urlencoded")];

    // The name is required, and checked after the token.
    let page = send(&app, Method::GET, "/login", &[], "").await;
    assert!(page.body.contains("name=\"name\"") && page.body.contains("Your name"), "{}", page.body);
    let nameless = send(&app, Method::POST, "/login", &form, &format!("token={TOKEN}")).await;
    assert_eq!(nameless.status, StatusCode::BAD_REQUEST);
    assert!(nameless.body.contains("the actor name is empty"), "{}", nameless.body);
    assert!(!nameless.headers.contains_key(header::SET_COOKIE));
    let control = send(&app, Method::POST, "/login", &form, &format!("name=a%0Ab&token={TOKEN}")).await;
    assert_eq!(control.status, StatusCode::BAD_REQUEST);
    let wrong = send(&app, Method::POST, "/login", &form, "name=mallory&token=not-the-token-000000").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("value=\"mallory\""), "the name is kept in the form");
    assert_eq!(entries(&app, "").await.len(), 0, "refused sign-ins are not operator actions");

    let ok = send(&app, Method::POST, "/login", &form, &format!("name=Fran%20K.&token={TOKEN}&next=%2F")).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let cookie = ok.headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    assert!(cookie.contains("Fran%20K."), "the session carries the name: {cookie}");
    let home = send(&app, Method::GET, "/", &[("cookie", &cookie)], "").await;
    assert!(home.body.contains("href=\"/audit\""), "the navigation links the audit page");
    let csrf = csrf_from(&home.body);
    let with_cookie = [("cookie", cookie.as_str()), ("content-type", "application/x-www-form-urlencoded")];
    let retried = send(&app, Method::POST, &format!("/jobs/{dead}/retry"), &with_cookie, &format!("csrf={csrf}")).await;
    assert_eq!(retried.status, StatusCode::SEE_OTHER, "{}", retried.body);
    let refused = send(&app, Method::POST, &format!("/jobs/{dead}/retry"), &with_cookie, &format!("csrf={csrf}")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    // In another queue: seeding claims and fails due jobs, and the retried one is due.
    support::seed_many_dead_in(&t.store, "other", 3, "dash").await;
    let bulk = format!("csrf={csrf}&action=retry&state=dead&confirm=yes");
    assert_eq!(send(&app, Method::POST, "/jobs/bulk", &with_cookie, &bulk).await.status, StatusCode::SEE_OTHER);

    // A forged name breaks the session: the cookie's MAC covers it.
    let forged = cookie.replace("Fran", "Fred");
    assert_eq!(send(&app, Method::GET, "/", &[("cookie", &forged)], "").await.status, StatusCode::SEE_OTHER);

    // The audit page shows it all, newest first.
    let audit_page = send(&app, Method::GET, "/audit", &[("cookie", &cookie)], "").await;
    assert_eq!(audit_page.status, StatusCode::OK);
    let body = &audit_page.body;
    assert!(body.contains("<a href=\"/audit\" class=\"active\">Audit log</a>"), "{body}");
    let positions: Vec<usize> = [
        "data-action=\"bulk_retry\"",
        "data-action=\"retry\" data-ok=\"false\"",
        "data-action=\"retry\" data-ok=\"true\"",
        "data-action=\"login\"",
    ]
    .iter()
    .map(|needle| body.find(needle).unwrap_or_else(|| panic!("{needle} missing from {body}")))
    .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "newest first: {positions:?}");
    assert!(body.contains("Fran K.") && body.contains(&format!("href=\"/jobs/{dead}\"")), "{body}");
    let filtered = send(&app, Method::GET, "/audit?actor=nobody", &[("cookie", &cookie)], "").await;
    assert!(filtered.body.contains("No audit entries match."));
    let bad = send(&app, Method::GET, "/audit?limit=0", &[("cookie", &cookie)], "").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let out = send(&app, Method::POST, "/logout", &with_cookie, &format!("csrf={csrf}")).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let list = entries(&app, "").await;
    let id = dead.to_string();
    assert_eq!(
        list.iter().map(summary).collect::<Vec<_>>(),
        vec![
            row("Fran K.", "dashboard", "logout", "", 0, true),
            row("Fran K.", "dashboard", "bulk_retry", "state=dead", 3, true),
            row("Fran K.", "dashboard", "retry", &id, 0, false),
            row("Fran K.", "dashboard", "retry", &id, 1, true),
            row("Fran K.", "dashboard", "login", "", 0, true),
        ]
    );
    t.close().await;
}

/// Stores an event in the event log, as the intake would.
async fn store_event(store: &subsync_queue::Store, id: &str, kind: &str) {
    let body = json!({
        "id": id, "object": "event", "type": kind, "created": 1_700_000_000, "livemode": false,
        "data": { "object": { "id": "sub_1", "object": "subscription", "customer": "cus_1" } }
    });
    let record = subsync_eventlog::EventRecord::from_body(body.to_string().as_bytes()).expect("event");
    subsync_eventlog::store_batch(store, &[&record]).await.expect("stored");
}

async fn replay_is_recorded_with_its_job_and_failures_with_their_error(b: Backend) {
    let t = TestDb::new(b).await;
    store_event(&t.store, "evt_sub1", "customer.subscription.updated").await;
    let actor = Actor::new("gus", Via::Cli).unwrap();

    let job = ops::replay_event(&t.store, "evt_sub1", &actor).await.expect("replayed");
    let replayed = t.store.get(job).await.unwrap().expect("the replay job");
    assert_eq!(replayed.state, JobState::Pending);
    let missing = ops::replay_event(&t.store, "evt_missing", &actor).await.unwrap_err();
    assert_eq!(missing.to_string(), "no stored event with id `evt_missing`");

    let list = audit::list(&t.store, &AuditFilter { limit: 10, ..AuditFilter::default() }).await.unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!((list[0].action.as_str(), list[0].target.as_str(), list[0].ok), ("replay", "evt_missing", false));
    assert_eq!(list[0].error.as_deref(), Some("no stored event with id `evt_missing`"));
    assert_eq!((list[1].actor.as_str(), list[1].via.as_str(), list[1].jobs, list[1].ok), ("gus", "cli", 1, true));
    assert_eq!(list[1].detail, Some(format!("replay job {job}")));

    // Cancel and retry through the operations directly, with the CLI's actor.
    seed_pending(&t.store, "evt_p1", "sub_p").await;
    let jobs = ops::resolve_for_action(&t.store, ops::Action::Cancel, &["evt_p1".into()], &actor).await.unwrap();
    assert!(ops::act_on_job(&t.store, ops::Action::Cancel, &jobs[0], &actor).await.unwrap());
    let newest = audit::list(&t.store, &AuditFilter { limit: 1, ..AuditFilter::default() }).await.unwrap();
    assert_eq!((newest[0].action.as_str(), newest[0].jobs, newest[0].ok), ("cancel", 1, true));
    let by_actor = AuditFilter { actor: Some("gus".into()), limit: 100, ..AuditFilter::default() };
    assert_eq!(audit::list(&t.store, &by_actor).await.unwrap().len(), 3);
    t.close().await;
}

async fn the_audit_table_is_append_only(b: Backend) {
    let t = TestDb::new(b).await;
    let app = app(&t.store);
    let job = seed_dead(&t.store, "evt_x1", "sub_x", "boom").await.to_string();
    post_as(&app, "/api/jobs/evt_x1/retry", Some("hank"), "").await;
    assert_eq!(entries(&app, "").await.len(), 1);

    let statements = ["UPDATE subsync_audit SET actor = 'someone-else'", "DELETE FROM subsync_audit"];
    for sql in statements {
        let refused = match t.store.pool() {
            Dialect::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
            Dialect::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        };
        let e = refused.expect_err(sql);
        assert!(e.to_string().contains("subsync_audit is append-only"), "{sql}: {e}");
    }
    if let Dialect::Postgres(pool) = t.store.pool() {
        let e = sqlx::query("TRUNCATE subsync_audit").execute(pool).await.expect_err("truncate");
        assert!(e.to_string().contains("append-only"), "{e}");
    }
    // Pruning (jobs and events) leaves it alone.
    t.store.prune_before(chrono::Utc::now() + chrono::Duration::days(1), true).await.unwrap();
    subsync_eventlog::prune(&t.store, chrono::Utc::now() + chrono::Duration::days(1)).await.unwrap();
    let list = entries(&app, "").await;
    assert_eq!(list.iter().map(summary).collect::<Vec<_>>(), vec![row("hank", "api", "retry", &job, 1, true)]);
    t.close().await;
}
