//! The admin HTTP API and dashboard, on SQLite and on PostgreSQL (`sqlite::name`,
//! `postgres::name`). PostgreSQL comes from `SUBSYNC_TEST_POSTGRES_URL`; without it the
//! postgres tests fail.

mod support;

use std::sync::Arc;

use axum::http::{Method, StatusCode, header};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde_json::{Value, json};
use subsync_admin::{BoxFuture, EntitlementsView, ViewError};
use subsync_queue::both_backends;
use subsync_queue::{JobFilter, JobState, Store};
use support::{Backend, Q, TOKEN, TestDb, app, bearer, get, post_json, seed_dead, seed_many_dead, seed_pending, send};

both_backends!(
    every_route_but_healthz_needs_the_token,
    list_filters_and_show,
    bad_filters_are_400_with_a_clear_message,
    retry_and_cancel_one_job,
    bulk_retry_and_cancel_300_jobs,
    stats_groups_and_metrics,
    cross_site_posts_are_refused,
    dashboard_login_csrf_and_retry,
    dashboard_escapes_attacker_controlled_data,
    views_answer_404_until_configured,
);

async fn dead_count(store: &Store) -> u64 {
    store.count(&JobFilter { states: vec![JobState::Dead], ..JobFilter::default() }).await.unwrap()
}

async fn every_route_but_healthz_needs_the_token(b: Backend) {
    let t = TestDb::new(b).await;
    let app = app(&t.store);
    let health = send(&app, Method::GET, "/healthz", &[], "").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");

    for uri in ["/api/jobs", "/api/stats", "/api/groups/running", "/api/jobs/evt_x", "/metrics", "/api/entitlements"] {
        let none = send(&app, Method::GET, uri, &[], "").await;
        assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{uri} without a token");
        assert_eq!(none.json()["error"], "unauthorized", "{uri}");
        assert!(none.json()["message"].as_str().unwrap().contains("Bearer"), "{uri}");
        let wrong = send(&app, Method::GET, uri, &[("authorization", "Bearer wrong-token-0123456789")], "").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{uri} with a wrong token");
        assert_eq!(wrong.json()["message"], "wrong admin token");
        let basic = send(&app, Method::GET, uri, &[("authorization", &format!("Basic {TOKEN}"))], "").await;
        assert_eq!(basic.status, StatusCode::UNAUTHORIZED, "{uri} with another scheme");
    }
    for (method, uri) in
        [(Method::POST, "/api/jobs/retry"), (Method::POST, "/api/jobs/x/retry"), (Method::POST, "/api/jobs/x/cancel")]
    {
        let r = send(&app, method, uri, &[], "{}").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    // Dashboard pages send a browser to the login page instead.
    let page = send(&app, Method::GET, "/jobs/abc?x=1", &[], "").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.headers[header::LOCATION], "/login?next=%2Fjobs%2Fabc%3Fx%3D1");
    let form = send(&app, Method::GET, "/login", &[], "").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("name=\"token\""));
    // The right token works, and the token never appears in a response.
    let ok = get(&app, "/api/jobs").await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(!ok.body.contains(TOKEN));
    // Security headers on everything.
    assert!(ok.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("default-src 'none'"));
    assert_eq!(ok.headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(ok.headers[header::CACHE_CONTROL], "no-store");
    t.close().await;
}

async fn list_filters_and_show(b: Backend) {
    let t = TestDb::new(b).await;
    let app = app(&t.store);
    let dead_a = seed_dead(&t.store, "evt_a1", "sub_a", "price price_x has no tier").await;
    let dead_b = seed_dead(&t.store, "evt_b1", "sub_b", "boom").await;
    let pending = seed_pending(&t.store, "evt_a2", "sub_a").await;

    let all = get(&app, "/api/jobs").await.json();
    assert_eq!(all["total"], 3);
    assert_eq!(all["limit"], 50);
    let ids: Vec<&str> = all["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![pending.to_string(), dead_b.to_string(), dead_a.to_string()], "newest first");

    let dead = get(&app, "/api/jobs?state=dead").await.json();
    assert_eq!(dead["total"], 2);
    assert!(dead["jobs"].as_array().unwrap().iter().all(|j| j["state"] == "dead"));
    let two_states = get(&app, "/api/jobs?state=dead&state=pending").await.json();
    assert_eq!(two_states["total"], 3);
    let comma = get(&app, "/api/jobs?state=pending,dead&group=sub_a").await.json();
    assert_eq!(comma["total"], 2);
    let by_key = get(&app, "/api/jobs?key=evt_b1").await.json();
    assert_eq!(by_key["total"], 1);
    assert_eq!(by_key["jobs"][0]["id"], dead_b.to_string());
    let by_queue = get(&app, &format!("/api/jobs?queue={Q}&since=1h&limit=1&offset=1")).await.json();
    assert_eq!(by_queue["total"], 3);
    assert_eq!(by_queue["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(by_queue["jobs"][0]["id"], dead_b.to_string());
    let future = get(&app, "/api/jobs?since=2999-01-01T00:00:00Z").await.json();
    assert_eq!(future["total"], 0);

    // Show by job id and by event id.
    let by_id = get(&app, &format!("/api/jobs/{dead_a}")).await;
    assert_eq!(by_id.status, StatusCode::OK);
    let job = by_id.json();
    assert_eq!(job["state"], "dead");
    assert_eq!(job["last_error"], "price price_x has no tier");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["payload"]["event"], "evt_a1");
    let by_event = get(&app, "/api/jobs/evt_a1").await.json();
    assert_eq!(by_event["id"], dead_a.to_string());
    let with_queue = get(&app, &format!("/api/jobs/evt_a1?queue={Q}")).await;
    assert_eq!(with_queue.status, StatusCode::OK);

    // Unknown ids.
    for unknown in ["evt_nope", "0193a0b1-0000-7000-8000-000000000000"] {
        let r = get(&app, &format!("/api/jobs/{unknown}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{unknown}");
        assert_eq!(r.json()["error"], "not_found");
        assert_eq!(r.json()["message"], format!("no job with id or event id `{unknown}`"));
    }
    let wrong_queue = get(&app, "/api/jobs/evt_a1?queue=other").await;
    assert_eq!(wrong_queue.status, StatusCode::NOT_FOUND);

    // One event id in two queues is ambiguous until the queue is named.
    t.store.enqueue_one(subsync_queue::NewJob::new("other", json!({})).with_unique_key("evt_a1")).await.unwrap();
    let ambiguous = get(&app, "/api/jobs/evt_a1").await;
    assert_eq!(ambiguous.status, StatusCode::CONFLICT);
    assert!(ambiguous.json()["message"].as_str().unwrap().contains("several queues"), "{}", ambiguous.body);
    assert_eq!(get(&app, &format!("/api/jobs/evt_a1?queue={Q}")).await.json()["id"], dead_a.to_string());
    t.close().await;
}

async fn bad_filters_are_400_with_a_clear_message(b: Backend) {
    let t = TestDb::new(b).await;
    let app = app(&t.store);
    for (query, needle) in [
        ("state=deadd", "unknown job state `deadd`"),
        ("since=yesterday", "bad timestamp `yesterday`"),
        ("until=2026-13-01", "bad timestamp"),
        ("limit=0", "limit `0` is out of range: use 1 to 1000"),
        ("limit=1001", "out of range"),
        ("limit=ten", "limit `ten`"),
        ("offset=-3", "offset `-3`"),
        ("status=dead", "unknown query parameter `status`"),
        ("since=1h&until=2h", "must be before"),
    ] {
        let r = get(&app, &format!("/api/jobs?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
        assert_eq!(r.json()["error"], "bad_request", "{query}");
        let message = r.json()["message"].as_str().unwrap().to_string();
        assert!(message.contains(needle), "{query}: {message}");
    }
    let show = get(&app, "/api/jobs/evt_1?bogus=1").await;
    assert_eq!(show.status, StatusCode::BAD_REQUEST);
    t.close().await;
}

async fn retry_and_cancel_one_job(b: Backend) {
    let t = TestDb::new(b).await;
    let app = app(&t.store);
    let dead = seed_dead(&t.store, "evt_r1", "sub_r", "boom").await;

    let r = post_json(&app, "/api/jobs/evt_r1/retry", "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["retried"], 1);
    assert_eq!(r.json()["job"]["state"], "pending");
    assert_eq!(r.json()["job"]["attempts"], 0, "a retry gets a fresh attempt budget");
    assert_eq!(t.store.get(dead).await.unwrap().unwrap().state, JobState::Pending);

    // Retrying a job that is already due is a conflict that says why.
    let again = post_json(&app, &format!("/api/jobs/{dead}/retry"), "").await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.json()["message"].as_str().unwrap().contains("is pending"), "{}", again.body);

    let c = post_json(&app, &format!("/api/jobs/{dead}/cancel"), "").await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    assert_eq!(c.json()["job"]["state"], "cancelled");
    let c2 = post_json(&app, &format!("/api/jobs/{dead}/cancel"), "").await;
    assert_eq!(c2.status, StatusCode::CONFLICT);
    // A cancelled job can be retried.
    assert_eq!(post_json(&app, &format!("/api/jobs/{dead}/retry"), "").await.status, StatusCode::OK);

    // A running job is left to its worker.
    seed_pending(&t.store, "evt_run", "sub_run").await;
    let mut claimed = t.store.claim(Q, "w1", 10).await.unwrap();
    let running = claimed.iter().find(|c| c.unique_key.as_deref() == Some("evt_run")).unwrap().lease.job_id;
    let refused = post_json(&app, &format!("/api/jobs/{running}/cancel"), "").await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.json()["message"].as_str().unwrap().contains("running"));
    claimed.clear();

    let unknown = post_json(&app, "/api/jobs/evt_missing/retry", "").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["message"], "no job with id or event id `evt_missing`");
    // GET on an action is not allowed: state changes are POST only.
    assert_eq!(get(&app, &format!("/api/jobs/{dead}/retry")).await.status, StatusCode::METHOD_NOT_ALLOWED);
    t.close().await;
}

async fn bulk_retry_and_cancel_300_jobs(b: Backend) {
    let t = TestDb::new(b).await;
    let app = app(&t.store);
    seed_many_dead(&t.store, 300, "bulk").await;
    assert_eq!(dead_count(&t.store).await, 300);

    let unconfirmed = post_json(&app, "/api/jobs/retry", r#"{"state":"dead"}"#).await;
    assert_eq!(unconfirmed.status, StatusCode::BAD_REQUEST);
    assert_eq!(unconfirmed.json()["error"], "not_confirmed");
    assert!(unconfirmed.json()["message"].as_str().unwrap().contains("300 matching"), "{}", unconfirmed.body);
    let no_state = post_json(&app, "/api/jobs/retry", r#"{"confirm":true}"#).await;
    assert_eq!(no_state.status, StatusCode::BAD_REQUEST);
    assert!(no_state.json()["message"].as_str().unwrap().contains("at least one state"));
    let typo = post_json(&app, "/api/jobs/retry", r#"{"status":"dead","confirm":true}"#).await;
    assert_eq!(typo.status, StatusCode::BAD_REQUEST);
    assert!(typo.json()["message"].as_str().unwrap().contains("unknown field `status`"), "{}", typo.body);
    let not_json = post_json(&app, "/api/jobs/retry", "state=dead").await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    let bad_state = post_json(&app, "/api/jobs/retry", r#"{"state":["dead","zombie"],"confirm":true}"#).await;
    assert_eq!(bad_state.status, StatusCode::BAD_REQUEST);
    assert_eq!(dead_count(&t.store).await, 300, "refused bulk requests change nothing");

    // One group first, then the rest.
    let one = post_json(&app, "/api/jobs/retry", r#"{"state":"dead","group":"sub_bulk_7","confirm":true}"#).await;
    assert_eq!(one.json(), json!({ "retried": 1, "matched": 1 }));
    let rest = post_json(&app, "/api/jobs/retry", r#"{"state":["dead"],"since":"1h","confirm":true}"#).await;
    assert_eq!(rest.status, StatusCode::OK, "{}", rest.body);
    assert_eq!(rest.json(), json!({ "retried": 299, "matched": 299 }));
    assert_eq!(dead_count(&t.store).await, 0);

    let cancel = post_json(&app, "/api/jobs/cancel", r#"{"state":"pending","confirm":true}"#).await;
    assert_eq!(cancel.json(), json!({ "cancelled": 300, "matched": 300 }));
    let cancelled =
        t.store.count(&JobFilter { states: vec![JobState::Cancelled], ..JobFilter::default() }).await.unwrap();
    assert_eq!(cancelled, 300);
    t.close().await;
}

async fn stats_groups_and_metrics(b: Backend) {
    let t = TestDb::new(b).await;
    let registry = Arc::new(subsync_metrics::Registry::new());
    let requests = Family::<[(&str, &str); 1], Counter>::default();
    registry.register("subsync_intake_requests", "Webhook requests by outcome.", requests.clone()).unwrap();
    requests.get_or_create(&[("outcome", "accepted")]).inc_by(7);
    let state =
        subsync_admin::AdminState::new(t.store.clone(), subsync_admin::AdminToken::new(TOKEN).unwrap(), registry);
    let app = subsync_admin::router(state);

    seed_dead(&t.store, "evt_s1", "sub_s1", "boom").await;
    seed_pending(&t.store, "evt_s2", "sub_s2").await;
    let claimed = t.store.claim(Q, "worker-7", 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    seed_pending(&t.store, "evt_s3", "sub_s3").await;

    let stats = get(&app, "/api/stats").await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    let s = stats.json();
    assert_eq!(s["totals"]["dead"], 1);
    assert_eq!(s["totals"]["running"], 1);
    assert_eq!(s["totals"]["pending"], 1);
    assert_eq!(s["totals"]["succeeded"], 0);
    assert_eq!(s["running_groups"], 1);
    assert!(s["oldest_due_age_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(s["counts"].as_array().unwrap().len(), 3);
    let windows: Vec<u64> =
        s["throughput"].as_array().unwrap().iter().map(|w| w["window_minutes"].as_u64().unwrap()).collect();
    assert_eq!(windows, vec![1, 5, 15]);
    assert_eq!(s["throughput"][0]["dead"], 1, "the dead job finished within the last minute");
    assert_eq!(s["throughput_exact"], true);

    let groups = get(&app, "/api/groups/running").await.json();
    assert_eq!(groups["groups"].as_array().unwrap().len(), 1);
    assert_eq!(groups["groups"][0]["group_key"], "sub_s2");
    assert_eq!(groups["groups"][0]["lease_owner"], "worker-7");

    let m = get(&app, "/metrics").await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    for line in [
        "subsync_intake_requests_total{outcome=\"accepted\"} 7",
        "# TYPE subsync_queue_jobs gauge",
        "subsync_queue_jobs{queue=\"stripe\",state=\"dead\"} 1",
        "subsync_queue_jobs{queue=\"stripe\",state=\"running\"} 1",
        "subsync_queue_jobs{queue=\"stripe\",state=\"succeeded\"} 0",
        "subsync_queue_running_groups 1",
        "subsync_queue_store_up 1",
    ] {
        assert!(m.body.lines().any(|l| l == line), "missing `{line}` in\n{}", m.body);
    }
    assert!(m.body.contains("subsync_queue_oldest_due_age_seconds{queue=\"stripe\"} "));
    t.close().await;
}

async fn cross_site_posts_are_refused(b: Backend) {
    let t = TestDb::new(b).await;
    let app = app(&t.store);
    let dead = seed_dead(&t.store, "evt_x1", "sub_x", "boom").await;
    let auth = bearer();
    let uri = format!("/api/jobs/{dead}/retry");
    for headers in [
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "https://evil.example"), ("host", "127.0.0.1:8081")],
        vec![("origin", "http://127.0.0.1:8080"), ("host", "127.0.0.1:8081")],
        vec![("origin", "null"), ("host", "127.0.0.1:8081")],
    ] {
        let mut h = headers.clone();
        h.push(("authorization", auth.as_str()));
        let r = send(&app, Method::POST, &uri, &h, "").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert_eq!(r.json()["error"], "forbidden");
        // The dashboard's form endpoint and even the login form refuse it too.
        let form = send(&app, Method::POST, &format!("/jobs/{dead}/retry"), &headers, "").await;
        assert_eq!(form.status, StatusCode::FORBIDDEN, "{headers:?}");
        let login = send(&app, Method::POST, "/login", &headers, &format!("token={TOKEN}")).await;
        assert_eq!(login.status, StatusCode::FORBIDDEN, "{headers:?}");
    }
    assert_eq!(t.store.get(dead).await.unwrap().unwrap().state, JobState::Dead, "nothing changed");
    // Same-origin requests pass.
    let same = send(
        &app,
        Method::POST,
        &uri,
        &[
            ("authorization", auth.as_str()),
            ("origin", "http://127.0.0.1:8081"),
            ("host", "127.0.0.1:8081"),
            ("sec-fetch-site", "same-origin"),
        ],
        "",
    )
    .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    t.close().await;
}

fn csrf_from(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a csrf field on the page") + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

async fn dashboard_login_csrf_and_retry(b: Backend) {
    let t = TestDb::new(b).await;
    let app = app(&t.store);
    let dead = seed_dead(&t.store, "evt_d1", "sub_d1", "price price_9 has no tier mapping").await;
    let form = [("content-type", "application/x-www-form-urlencoded")];

    let wrong = send(&app, Method::POST, "/login", &form, "token=not-the-token-000000&next=%2F").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("That token is not right."));
    assert!(!wrong.headers.contains_key(header::SET_COOKIE));

    let ok =
        send(&app, Method::POST, "/login", &form, &format!("name=alice&token={TOKEN}&next=%2F%3Fstate%3Ddead")).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.headers[header::LOCATION], "/?state=dead");
    let set_cookie = ok.headers[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(!set_cookie.contains(TOKEN), "the cookie never carries the token");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    // Open redirects are refused.
    let evil =
        send(&app, Method::POST, "/login", &form, &format!("name=alice&token={TOKEN}&next=%2F%2Fevil.example")).await;
    assert_eq!(evil.headers[header::LOCATION], "/");

    let page = send(&app, Method::GET, "/", &[("cookie", &cookie)], "").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(page.body.contains("evt_d1") && page.body.contains("sub_d1"));
    assert!(page.body.contains("class=\"tile alert\""), "dead tile highlighted");
    let csrf = csrf_from(&page.body);
    // Filtered listing and detail page.
    let filtered = send(&app, Method::GET, "/?state=dead&group=sub_d1", &[("cookie", &cookie)], "").await;
    assert!(filtered.body.contains("Retry all <strong>1</strong>"), "bulk form for a dead filter");
    let detail = send(&app, Method::GET, "/jobs/evt_d1", &[("cookie", &cookie)], "").await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(detail.body.contains("price price_9 has no tier mapping"));
    assert!(detail.body.contains(&dead.to_string()));
    let missing = send(&app, Method::GET, "/jobs/evt_missing", &[("cookie", &cookie)], "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("no job with id or event id `evt_missing`"));
    let groups = send(&app, Method::GET, "/groups", &[("cookie", &cookie)], "").await;
    assert_eq!(groups.status, StatusCode::OK);

    let retry_uri = format!("/jobs/{dead}/retry");
    let with_cookie = [("cookie", cookie.as_str()), ("content-type", "application/x-www-form-urlencoded")];
    // No CSRF token, or a wrong one: refused.
    let no_csrf = send(&app, Method::POST, &retry_uri, &with_cookie, "next=%2F").await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    let bad_csrf = send(&app, Method::POST, &retry_uri, &with_cookie, "csrf=00ff&next=%2F").await;
    assert_eq!(bad_csrf.status, StatusCode::FORBIDDEN);
    assert_eq!(t.store.get(dead).await.unwrap().unwrap().state, JobState::Dead);
    // The JSON API does not accept a cookie for POSTs.
    let api_cookie = send(&app, Method::POST, &format!("/api/jobs/{dead}/retry"), &[("cookie", &cookie)], "").await;
    assert_eq!(api_cookie.status, StatusCode::UNAUTHORIZED);
    // …but GETs with a cookie are fine (viewing JSON in the browser).
    assert_eq!(send(&app, Method::GET, "/api/stats", &[("cookie", &cookie)], "").await.status, StatusCode::OK);

    let retried = send(&app, Method::POST, &retry_uri, &with_cookie, &format!("csrf={csrf}&next=%2F")).await;
    assert_eq!(retried.status, StatusCode::SEE_OTHER, "{}", retried.body);
    assert_eq!(retried.headers[header::LOCATION], "/?flash=retried");
    assert_eq!(t.store.get(dead).await.unwrap().unwrap().state, JobState::Pending);
    let after = send(&app, Method::GET, "/?flash=retried", &[("cookie", &cookie)], "").await;
    assert!(after.body.contains("Job queued for retry."));

    // Bulk retry from the dashboard needs the confirmation box.
    support::seed_many_dead_in(&t.store, "other", 3, "dash").await;
    let body = format!("csrf={csrf}&action=retry&state=dead");
    let unconfirmed = send(&app, Method::POST, "/jobs/bulk", &with_cookie, &body).await;
    assert_eq!(unconfirmed.status, StatusCode::BAD_REQUEST);
    let confirmed = send(&app, Method::POST, "/jobs/bulk", &with_cookie, &format!("{body}&confirm=yes")).await;
    assert_eq!(confirmed.status, StatusCode::SEE_OTHER, "{}", confirmed.body);
    assert_eq!(confirmed.headers[header::LOCATION], "/?state=dead&flash=bulk-retry%3A3");
    assert_eq!(dead_count(&t.store).await, 0);

    // Signing out clears the cookie.
    let out = send(&app, Method::POST, "/logout", &with_cookie, &format!("csrf={csrf}")).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.headers[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    // A forged or stale cookie is no session.
    let forged = send(&app, Method::GET, "/", &[("cookie", "subsync_admin_session=9999999999.00")], "").await;
    assert_eq!(forged.status, StatusCode::SEE_OTHER);
    t.close().await;
}

async fn dashboard_escapes_attacker_controlled_data(b: Backend) {
    let t = TestDb::new(b).await;
    let app = app(&t.store);
    let key = "evt_<script>alert(1)</script>";
    let group = "sub_\"><img src=x onerror=alert(2)>";
    let new = subsync_queue::NewJob::new(
        Q,
        json!({ "description": "</pre><script>alert(3)</script>", "metadata": { "x": "' onfocus='alert(4)" } }),
    )
    .with_unique_key(key)
    .with_group(group);
    let id = support::seed_dead_job(&t.store, new, "<script>alert(5)</script>\nsecond line").await;

    let login = send(
        &app,
        Method::POST,
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("name=alice&token={TOKEN}"),
    )
    .await;
    let cookie = login.headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    for uri in ["/".to_string(), format!("/jobs/{id}"), format!("/?group={}", subsync_admin::html::url_encode(group))] {
        let page = send(&app, Method::GET, &uri, &[("cookie", &cookie)], "").await;
        assert_eq!(page.status, StatusCode::OK, "{uri}");
        for raw in ["<script>alert", "<img src=x", "</pre><script>"] {
            assert!(!page.body.contains(raw), "{uri} contains raw `{raw}`");
        }
        assert!(page.body.contains("&lt;script&gt;alert("), "{uri} shows the text escaped");
    }
    let detail = send(&app, Method::GET, &format!("/jobs/{id}"), &[("cookie", &cookie)], "").await;
    // Every attribute is written in double quotes, so a single quote cannot end one: it shows
    // as text inside the payload's <pre>, the JSON string's double quotes escaped around it.
    assert!(detail.body.contains("&quot;' onfocus='alert(4)&quot;"), "{}", detail.body);
    assert!(detail.body.contains("&lt;/pre&gt;&lt;script&gt;alert(3)"));
    t.close().await;
}

struct FakeEntitlements;

impl EntitlementsView for FakeEntitlements {
    fn list(&self, limit: u32, offset: u64) -> BoxFuture<'_, Result<Vec<Value>, ViewError>> {
        Box::pin(async move { Ok(vec![json!({ "user_id": "u1", "tier": "pro", "limit": limit, "offset": offset })]) })
    }

    fn get<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Option<Value>, ViewError>> {
        Box::pin(async move {
            match user_id {
                "u1" => Ok(Some(json!({ "user_id": "u1", "tier": "pro", "status": "active" }))),
                "broken" => Err(ViewError::Unavailable("db down".into())),
                _ => Ok(None),
            }
        })
    }

    fn support<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Value>, ViewError>> {
        Box::pin(async move {
            Ok((key == "u1" || key == "cus_1")
                .then(|| json!({ "user_id": "u1", "found_by": "user_id", "entitlement": null })))
        })
    }

    fn unmapped_prices(&self, _since: chrono::DateTime<chrono::Utc>) -> BoxFuture<'_, Result<Vec<Value>, ViewError>> {
        Box::pin(async move {
            Ok(vec![json!({
                "price_id": "price_extra_client", "lookup_key": "extra_client", "events": 4, "subscriptions": 2,
                "effect": "ignored", "example_event_id": "evt_x1"
            })])
        })
    }
}

/// Stores `evt_1` (an `invoice.paid`) in the event log, as the intake would.
async fn store_event(store: &subsync_queue::Store) {
    let body = json!({
        "id": "evt_1", "object": "event", "type": "invoice.paid", "created": 1_700_000_000, "livemode": false,
        "data": { "object": { "id": "in_1", "object": "invoice", "customer": "cus_1" } }
    });
    let record = subsync_eventlog::EventRecord::from_body(body.to_string().as_bytes()).expect("event");
    subsync_eventlog::store_batch(store, &[&record]).await.expect("stored");
}

async fn views_answer_404_until_configured(b: Backend) {
    let t = TestDb::new(b).await;
    let bare = app(&t.store);
    // Stored events are the event log's, which the admin crate reads directly: always there.
    store_event(&t.store).await;
    assert_eq!(get(&bare, "/api/events/evt_1").await.json()["event_type"], "invoice.paid");
    for uri in ["/api/entitlements", "/api/entitlements/u1"] {
        let r = get(&bare, uri).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(r.json()["error"], "not_configured");
        assert!(r.json()["message"].as_str().unwrap().contains("view is not configured"), "{}", r.body);
    }
    let full = subsync_admin::router(support::state(&t.store).with_entitlements(Arc::new(FakeEntitlements)));
    let list = get(&full, "/api/entitlements?limit=5&offset=10").await.json();
    assert_eq!(list["entitlements"][0]["limit"], 5);
    assert_eq!(list["entitlements"][0]["offset"], 10);
    assert_eq!(get(&full, "/api/entitlements?limit=0").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(get(&full, "/api/entitlements/u1").await.json()["tier"], "pro");
    let none = get(&full, "/api/entitlements/u2").await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert_eq!(none.json()["message"], "no entitlement for user `u2`");
    let broken = get(&full, "/api/entitlements/broken").await;
    assert_eq!(broken.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&full, "/api/events/evt_1").await.json()["event_type"], "invoice.paid");
    assert_eq!(get(&full, "/api/support/cus_1").await.json()["user_id"], "u1");
    assert_eq!(get(&full, "/api/support/cus_2").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&full, "/api/events/evt_2").await.status, StatusCode::NOT_FOUND);

    let login = send(
        &full,
        Method::POST,
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("name=alice&token={TOKEN}"),
    )
    .await;
    let cookie = login.headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    let page = send(&full, Method::GET, "/entitlements?user=u1", &[("cookie", &cookie)], "").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("active"));
    let event = send(&full, Method::GET, "/events/evt_1", &[("cookie", &cookie)], "").await;
    assert!(event.body.contains("invoice.paid"));
    let latest = send(&full, Method::GET, "/entitlements", &[("cookie", &cookie)], "").await;
    assert!(
        latest.body.contains("price_extra_client") && latest.body.contains("href=\"/events/evt_x1\""),
        "{}",
        latest.body
    );
    let metrics = get(&full, "/metrics").await;
    assert!(metrics.body.contains("subsync_unmapped_prices_seen{effect=\"ignored\"} 1"), "{}", metrics.body);
    let bare_page = send(&bare, Method::GET, "/entitlements", &[("cookie", &cookie)], "").await;
    assert_eq!(bare_page.status, StatusCode::NOT_FOUND);
    t.close().await;
}
